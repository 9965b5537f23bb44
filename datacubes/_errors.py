"""The errors of ``datacubes``, below the lab's one exception tree (:class:`lab.EarthLabError`)."""

from __future__ import annotations

from lab import AssetReadError, EarthLabError

__all__ = ["AssetMetadataError", "BandNotFoundError", "EmptyLoadError"]


class BandNotFoundError(EarthLabError, KeyError):
    """A band asked for does not exist in the items; the message lists the bands that do."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class EmptyLoadError(EarthLabError, ValueError):
    """The load asked for would hold no data (a bbox or grid outside every item)."""


class AssetMetadataError(AssetReadError):
    """A file contradicts its STAC metadata (data type, grid, CRS) or lacks a CRS.

    Loading it would give nodata, shifted or garbage pixels; the message names the item, the
    asset, what the metadata says and what the file holds.
    """
