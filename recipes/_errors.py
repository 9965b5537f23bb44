"""The errors of ``recipes``, below the lab's one exception tree (:class:`lab.EarthLabError`)."""

from __future__ import annotations

from lab import EarthLabError

__all__ = ["InSituFormatError"]


class InSituFormatError(EarthLabError, ValueError):
    """An in-situ file cannot be read as the format asked for; the message says why."""
