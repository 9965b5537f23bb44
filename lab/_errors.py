"""One exception tree for the three packages (``lab``, ``datacubes``, ``recipes``).

Every error the lab raises on purpose derives from :class:`EarthLabError`, so a notebook can
catch them all with one ``except``. Messages say what went wrong *and* what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AssetReadError",
    "BandNotFoundError",
    "CatalogError",
    "CentresFileError",
    "ClusterError",
    "ConfigurationError",
    "EarthLabError",
    "EarthLabWarning",
    "InSituFormatError",
    "NoItemsError",
    "RestrictedDataError",
    "UnknownCentreError",
]


class EarthLabError(Exception):
    """Base class of every error raised by ``lab``, ``datacubes`` and ``recipes``."""


class EarthLabWarning(UserWarning):
    """Base class of every warning issued by the lab."""


class ConfigurationError(EarthLabError, ValueError):
    """A configuration value or an argument is invalid; the message names it."""


class CentresFileError(ConfigurationError):
    """The centres file is missing, unreadable or malformed; the message names the field."""


class UnknownCentreError(ConfigurationError, KeyError):
    """A data centre name is not in the centres file; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class CatalogError(EarthLabError):
    """A catalogue could not be searched."""


class NoItemsError(CatalogError):
    """A search or a load found no item; the message names the query."""


class RestrictedDataError(CatalogError, PermissionError):
    """The data exists but the caller may not read it; the message says how to request access."""


class BandNotFoundError(EarthLabError, KeyError):
    """A band asked for does not exist in the items; the message lists the bands that do."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AssetReadError(EarthLabError, OSError):
    """An asset could not be opened or read; the message names the item and the asset."""


class InSituFormatError(EarthLabError, ValueError):
    """An in-situ file cannot be read as the format asked for; the message says why."""


class ClusterError(EarthLabError):
    """A Dask cluster could not be created, found or reached."""
