"""The root of the one exception tree, and the SDK's own errors.

Every error the lab raises on purpose derives from :class:`EarthLabError`, so a notebook can
catch them all with one ``except``; each package defines its own errors below it
(``datacubes`` and ``recipes`` in their ``_errors`` modules). Messages say what went wrong *and* what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AssetReadError",
    "CatalogError",
    "CentresFileError",
    "ClusterError",
    "ConfigurationError",
    "EarthLabError",
    "EarthLabWarning",
    "NoItemsError",
    "ProcessingError",
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


class AssetReadError(EarthLabError, OSError):
    """An asset could not be opened or read; the message names the item and the asset."""


class ClusterError(EarthLabError):
    """A Dask cluster could not be created, found or reached."""


class ProcessingError(EarthLabError):
    """A processing service refused a request, or a job failed; the message quotes the server."""
