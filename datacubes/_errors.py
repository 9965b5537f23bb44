"""The errors of ``datacubes``, below the lab's one exception tree (:class:`lab.EarthLabError`)."""

from __future__ import annotations

from lab import EarthLabError

__all__ = ["BandNotFoundError"]


class BandNotFoundError(EarthLabError, KeyError):
    """A band asked for does not exist in the items; the message lists the bands that do."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""
