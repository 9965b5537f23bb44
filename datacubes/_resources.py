"""What a build will need, checked before anything is written: memory, disk, a writable target.

A build fills one *region* (a write unit: ``target.shards`` or ``target.chunks``, at most the
grid) per worker at once; each region's values are loaded into memory as float32, with the
stored copy beside them. A cube whose regions cannot fit in the memory available, whose
values cannot fit on the target's disk, or whose target cannot be written, is refused up front
with the figures and what to change, instead of a ``MemoryError`` or a half-written store
minutes later.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from datacubes._spec import CLASS_BANDS, CubeSpec, SpecError

__all__ = ["BuildEstimate", "check_resources", "check_target_writable", "estimate"]

MEMORY_SAFETY = 0.5
"""Share of the machine's available memory a build's regions may use at once."""
LOAD_OVERHEAD = 2.0
"""Copies of a region's values alive at once while it is loaded, converted and written."""
MAX_REGIONS = 1_000_000
"""More regions than this make the manifest and the store's metadata unmanageable."""


@dataclass(frozen=True)
class BuildEstimate:
    """Sizes of a cube to build (uncompressed bytes)."""

    shape: tuple[int, int]
    """Rows and columns of the grid."""
    steps: int
    """Time steps to write."""
    bands: int
    """Variables stored."""
    step_bytes: int
    """Bytes of one time step of every variable, as stored."""
    region_bytes: int
    """Memory one region needs while filled (loaded float32 values and their stored copy)."""
    regions: int
    """Regions of the cube."""

    @property
    def total_bytes(self) -> int:
        """Bytes of the values of every step, uncompressed."""
        return self.step_bytes * self.steps


def estimate(
    spec: CubeSpec,
    shape: tuple[int, int],
    steps: int,
    dates_per_region: int | None = None,
    stored_dtypes: Mapping[str, str] | None = None,
) -> BuildEstimate:
    """Estimate a cube's sizes from its grid shape, bands, dtypes, steps and write unit.

    Parameters
    ----------
    spec : CubeSpec
        The spec (bands, encoding, chunks, shards).
    shape : tuple of int
        Rows and columns of the grid.
    steps : int
        Time steps to write.
    dates_per_region : int, optional
        Most acquisition dates loaded for one region (composites load every date of their
        periods); default: the write unit's time size.
    stored_dtypes : mapping, optional
        Stored dtype of each variable (default: from the spec's encoding).
    """
    rows, cols = shape
    unit = spec.target.write_unit
    if stored_dtypes is None:
        stored_dtypes = {
            band: "uint8" if band.lower() in CLASS_BANDS else spec.encoding.dtype
            for band in spec.bands
        }
    itemsizes = [np.dtype(dtype).itemsize for dtype in stored_dtypes.values()]
    pixels = min(unit.y, rows) * min(unit.x, cols)
    dates = dates_per_region if dates_per_region is not None else unit.time
    loaded = dates * pixels * 4 * len(itemsizes)
    stored = min(unit.time, max(steps, 1)) * pixels * sum(itemsizes)
    regions = (
        math.ceil(max(steps, 1) / unit.time) * math.ceil(rows / unit.y) * math.ceil(cols / unit.x)
    )
    return BuildEstimate(
        shape=(rows, cols),
        steps=steps,
        bands=len(itemsizes),
        step_bytes=rows * cols * sum(itemsizes),
        region_bytes=int((loaded + stored) * LOAD_OVERHEAD),
        regions=regions,
    )


def available_memory() -> int:
    """Bytes of memory available to new work (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return 0  # unknown: not checked


def check_resources(
    spec: CubeSpec, figures: BuildEstimate, url: str, workers: int, *, local_fill: bool = True
) -> list[str]:
    """Refuse a build that cannot fit in memory or on disk; return notes on what was not checked.

    Parameters
    ----------
    spec : CubeSpec
        The spec, for the message.
    figures : BuildEstimate
        The cube's sizes.
    url : str
        The target (a local path or a URL).
    workers : int
        Regions filled at once.
    local_fill : bool
        Whether regions are filled on this machine (not on a Dask cluster).

    Raises
    ------
    SpecError
        With the estimate and what to change in the spec.
    """
    notes: list[str] = []
    rows, cols = figures.shape
    what = (
        f"the cube is {rows} x {cols} pixels x {figures.bands} variables"
        + (f" x {figures.steps} time steps" if figures.steps > 1 else " per time step")
        + f" (grid.resolution {spec.grid.resolution:g})"
    )
    if figures.regions > MAX_REGIONS:
        raise SpecError(
            f"{what}: {figures.regions:,} regions of {_unit(spec)} to write, more than "
            f"{MAX_REGIONS:,}; give a coarser grid.resolution, a smaller extent "
            "(grid.bounds, grid.bbox) or larger target.shards"
        )
    if local_fill:
        available = available_memory()
        needed = figures.region_bytes * max(1, workers)
        if available and needed > available * MEMORY_SAFETY:
            raise SpecError(
                f"{what}: filling {max(1, workers)} region(s) of {_unit(spec)} at once needs "
                f"about {_size(needed)} of memory, more than {MEMORY_SAFETY:.0%} of the "
                f"{_size(available)} available; give smaller target.chunks / target.shards, "
                "fewer workers, or a coarser grid.resolution"
            )
    if "://" in url and not url.startswith("file://"):
        notes.append(
            f"free space not checked on {url.split('://', 1)[0]}:// storage (the cube's values "
            f"are about {_size(figures.total_bytes)} uncompressed)"
        )
        return notes
    parent = _existing_parent(url)
    free = shutil.disk_usage(parent).free
    if figures.total_bytes > free:
        raise SpecError(
            f"{what}: about {_size(figures.total_bytes)} of values (uncompressed), more than "
            f"the {_size(free)} free on {parent}; give a coarser grid.resolution, a smaller "
            "extent (grid.bounds, grid.bbox) or a shorter source.datetime, or another target"
        )
    return notes


def check_target_writable(url: str, what: str = "target") -> None:
    """Refuse a local target that cannot be created (a file in the way, a read-only folder).

    Nothing is created. URLs (``s3://``) are not checked.

    Raises
    ------
    SpecError
        Naming the target and the path that is in the way.
    """
    if "://" in url and not url.startswith("file://"):
        return
    path = os.path.abspath(url.removeprefix("file://"))
    if os.path.exists(path) and not os.path.isdir(path):
        raise SpecError(
            f"{what}: {path} exists and is not a directory (a Zarr store is one): give a new "
            "path ending in .zarr"
        )
    parent = _existing_parent(path)
    if not os.path.isdir(parent):
        raise SpecError(
            f"{what}: cannot create {path}: {parent} is a file, not a directory; give a path "
            "under a directory you can write to"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError(
            f"{what}: cannot create {path}: {parent} is not writable; give a path under a "
            "directory you can write to"
        )


def _existing_parent(url: str) -> str:
    path = os.path.dirname(os.path.abspath(url.removeprefix("file://")))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _unit(spec: CubeSpec) -> str:
    unit = spec.target.write_unit
    kind = "target.shards" if spec.target.shards is not None else "target.chunks"
    return f"{unit.time} x {unit.y} x {unit.x} ({kind})"


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} PB"


def dates_per_region(steps: Sequence[object], unit_time: int, dates: Sequence[int]) -> int:
    """Most dates loaded for one region: the sum of ``dates`` over each block of steps."""
    best = 0
    for start in range(0, len(steps), unit_time):
        best = max(best, sum(dates[start : start + unit_time]))
    return best
