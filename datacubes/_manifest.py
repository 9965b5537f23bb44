"""The build manifest: which time steps a cube has, which regions are filled, what failed.

The manifest (``<name>.meta/manifest.json``) is the single source of truth of a build. Only the
process driving the build writes it, each time as a whole object (atomic on a local disk and on
S3), and always *after* the pixels it vouches for are in the store: a build killed at any moment
re-does at most the regions done since the last save, and never skips a region it did not
finish.

Regions are identified by their index ranges, ``t0-4/y0-400/x400-800``; filled time steps are
kept per spatial tile as ``[start, stop)`` ranges so that appends and refills stay compact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab import ConfigurationError

FORMAT = "earthlab-cube-manifest/1"
_RUNS_KEPT = 50


@dataclass(frozen=True)
class Step:
    """One time step of a cube and the STAC items it is made of."""

    time: str
    """Time coordinate, ISO 8601 without zone (UTC), e.g. ``2021-10-03T10:40:00``."""
    items: tuple[str, ...]
    """Ids of the source items, sorted."""
    centres: tuple[str, ...] = ()
    """Data centres the items came from."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"time": self.time, "items": list(self.items), "centres": list(self.centres)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        """Read back :meth:`to_dict`."""
        return cls(str(data["time"]), tuple(data["items"]), tuple(data.get("centres", ())))


@dataclass(frozen=True)
class Region:
    """A block of the cube written by one task: a time range times a spatial tile."""

    t: tuple[int, int]
    """Time steps ``[start, stop)``."""
    y: tuple[int, int]
    """Rows ``[start, stop)``."""
    x: tuple[int, int]
    """Columns ``[start, stop)``."""

    @property
    def key(self) -> str:
        """Identifier, e.g. ``t0-4/y0-400/x0-400``."""
        return f"t{self.t[0]}-{self.t[1]}/{self.tile}"

    @property
    def tile(self) -> str:
        """Identifier of the spatial tile, e.g. ``y0-400/x0-400``."""
        return f"y{self.y[0]}-{self.y[1]}/x{self.x[0]}-{self.x[1]}"

    def slices(self) -> dict[str, slice]:
        """Region for ``to_zarr(region=...)``."""
        return {"time": slice(*self.t), "y": slice(*self.y), "x": slice(*self.x)}


def add_range(ranges: Sequence[Sequence[int]], start: int, stop: int) -> list[list[int]]:
    """Union of sorted ``[start, stop)`` ranges with one more, merged."""
    merged: list[list[int]] = []
    for a, b in sorted([*(list(r) for r in ranges), [start, stop]]):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def remove_steps(ranges: Sequence[Sequence[int]], steps: Iterable[int]) -> list[list[int]]:
    """Ranges without the given steps."""
    drop = set(steps)
    kept: list[list[int]] = []
    for a, b in ranges:
        for t in range(a, b):
            if t not in drop:
                kept = add_range(kept, t, t + 1)
    return kept


def covers(ranges: Sequence[Sequence[int]], step: int) -> bool:
    """Whether ``step`` is in one of the ranges."""
    return any(a <= step < b for a, b in ranges)


class Manifest:
    """Build state of one cube (see the module docstring)."""

    def __init__(self, document: Mapping[str, Any]):
        if document.get("format") != FORMAT:
            raise ConfigurationError(
                f"the cube's manifest has format {document.get('format')!r}, not {FORMAT}: "
                "it was written by another tool or version; rebuild with --overwrite"
            )
        self.doc: dict[str, Any] = dict(document)
        self.steps: list[Step] = [Step.from_dict(s) for s in document.get("steps", [])]
        self.filled: dict[str, list[list[int]]] = {
            k: [list(r) for r in v] for k, v in document.get("filled", {}).items()
        }
        self.failed: dict[str, dict[str, Any]] = dict(document.get("failed", {}))
        self.cog_steps: list[list[int]] = [list(r) for r in document.get("cog_steps", [])]

    @classmethod
    def new(
        cls,
        *,
        name: str,
        spec_hash: str,
        spec: Mapping[str, Any],
        grid: Mapping[str, Any],
        write_unit: Mapping[str, int],
    ) -> Manifest:
        """An empty manifest for a new cube."""
        now = _now()
        return cls(
            {
                "format": FORMAT,
                "name": name,
                "spec_hash": spec_hash,
                "spec": dict(spec),
                "grid": dict(grid),
                "write_unit": dict(write_unit),
                "created": now,
                "updated": now,
                "steps": [],
                "filled": {},
                "failed": {},
                "cog_steps": [],
                "runs": [],
                "complete": False,
            }
        )

    @property
    def spec_hash(self) -> str:
        """Hash of the spec that built the cube."""
        return str(self.doc["spec_hash"])

    @property
    def grid(self) -> dict[str, Any]:
        """``crs``, ``transform`` (6 numbers) and ``shape`` of the cube."""
        return dict(self.doc["grid"])

    @property
    def complete(self) -> bool:
        """Whether every region of every step is filled and nothing failed."""
        return bool(self.doc.get("complete"))

    def is_filled(self, region: Region) -> bool:
        """Whether all steps of ``region`` are filled on its tile."""
        ranges = self.filled.get(region.tile, [])
        return all(covers(ranges, t) for t in range(*region.t))

    def mark_filled(self, region: Region) -> None:
        """Record a region written (call after its pixels are in the store)."""
        self.filled[region.tile] = add_range(self.filled.get(region.tile, []), *region.t)
        self.failed.pop(region.key, None)

    def mark_failed(self, region: Region, error: str, attempts: int, items: Sequence[str]) -> None:
        """Record a region that could not be written."""
        self.failed[region.key] = {"error": error, "attempts": attempts, "items": list(items)}

    def invalidate(self, steps: Iterable[int]) -> None:
        """Forget the filled state of steps whose source items changed."""
        steps = list(steps)
        self.filled = {k: remove_steps(v, steps) for k, v in self.filled.items()}
        self.cog_steps = remove_steps(self.cog_steps, steps)

    def items_done(self, tiles: Sequence[str]) -> list[str]:
        """Ids of source items whose steps are filled on every tile."""
        done: list[str] = []
        for index, step in enumerate(self.steps):
            if all(covers(self.filled.get(tile, []), index) for tile in tiles):
                done.extend(step.items)
        return sorted(done)

    def to_dict(self, tiles: Sequence[str] | None = None) -> dict[str, Any]:
        """The manifest as JSON-ready data."""
        out = dict(self.doc)
        out["steps"] = [s.to_dict() for s in self.steps]
        out["filled"] = {k: self.filled[k] for k in sorted(self.filled)}
        out["failed"] = {k: self.failed[k] for k in sorted(self.failed)}
        out["cog_steps"] = self.cog_steps
        if tiles is not None:
            out["items_done"] = self.items_done(tiles)
        return out

    def start_run(self, **info: Any) -> dict[str, Any]:
        """Append a run record (kept: the last 50) and return it for updating."""
        run = {"started": _now(), "finished": None, **info}
        runs = [*self.doc.get("runs", []), run][-_RUNS_KEPT:]
        self.doc["runs"] = runs
        return run

    def touch(self, complete: bool) -> None:
        """Update the ``updated`` time and the completion flag."""
        self.doc["updated"] = _now()
        self.doc["complete"] = complete


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
