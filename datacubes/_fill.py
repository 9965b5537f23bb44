"""Filling a cube region by region: plan the regions, compute one, write it, in parallel.

A region is a block of time steps on one spatial tile, aligned to the store's write unit (the
shard when sharding, else the chunk), so two regions never share a stored object and can be
written concurrently. Each region loads only its own items over its own window (memory is one
region per worker, whatever the number of time steps), is computed with Dask's synchronous
scheduler inside its worker, and written with ``to_zarr(region=...)``.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from datacubes._manifest import Manifest, Region, Step
from datacubes._spec import Chunks, CompositeSpec
from datacubes._steps import iso_time, period_start
from lab import AssetReadError, EarthLabError

_REDUCERS: dict[str, Callable[..., np.ndarray]] = {
    "median": np.nanmedian,
    "mean": np.nanmean,
    "min": np.nanmin,
    "max": np.nanmax,
}


@dataclass(frozen=True)
class GridRecord:
    """A cube grid as stored in its manifest."""

    crs: str
    """CRS (``EPSG:32631`` or WKT)."""
    transform: tuple[float, ...]
    """Affine transform, six numbers."""
    shape: tuple[int, int]
    """Rows and columns."""

    @classmethod
    def from_geobox(cls, geobox: GeoBox) -> GridRecord:
        """Record of a GeoBox."""
        assert geobox.crs is not None  # cube grids always have one
        epsg = geobox.crs.epsg
        crs = f"EPSG:{epsg}" if epsg else geobox.crs.to_wkt()
        rows, cols = geobox.shape
        return cls(crs, tuple(float(v) for v in tuple(geobox.transform)[:6]), (rows, cols))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GridRecord:
        """Read back :meth:`to_dict`."""
        rows, cols = data["shape"]
        return cls(str(data["crs"]), tuple(float(v) for v in data["transform"]), (rows, cols))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the manifest."""
        return {"crs": self.crs, "transform": list(self.transform), "shape": list(self.shape)}

    @property
    def geobox(self) -> GeoBox:
        """The grid as a GeoBox."""
        from affine import Affine

        return GeoBox(self.shape, Affine(*self.transform), self.crs)


@dataclass(frozen=True)
class RegionJob:
    """Everything one worker needs to fill one region (picklable for Dask clusters)."""

    region: Region
    """The block to fill."""
    steps: tuple[Step, ...]
    """The cube's steps ``region.t[0] .. region.t[1]``."""
    items: tuple[pystac.Item, ...] = field(repr=False)
    """Source items of those steps."""
    bands: tuple[str, ...]
    """Bands to load."""
    variables: Mapping[str, str]
    """Output variables and their in-memory dtype (``float32``, or ``uint8`` for classes)."""
    grid: GridRecord
    """The cube's grid."""
    url: str
    """The Zarr store."""
    storage_options: Mapping[str, Any] = field(repr=False, default_factory=dict)
    """fsspec options of the store."""
    mask: Any = None
    """Cloud mask argument of :func:`datacubes.load`."""
    composite: CompositeSpec | None = None
    """Temporal composite, if any."""
    retries: int = 2
    """Further attempts after a read or write failure."""
    retry_delay: float = 0.5
    """Seconds before the first retry (doubled each time)."""


@dataclass(frozen=True)
class RegionResult:
    """What happened to one region."""

    key: str
    """Region key."""
    ok: bool
    """Whether the region is written."""
    error: str = ""
    """Why it failed."""
    attempts: int = 1
    """Tries made."""
    seconds: float = 0.0
    """Wall time."""
    nbytes: int = 0
    """Bytes of values written (in memory, before compression)."""


def tiles(shape: tuple[int, int], unit: Chunks) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Spatial tiles ``((y0, y1), (x0, x1))`` of a grid, aligned to the write unit."""
    rows, cols = shape
    return [
        ((y0, min(y0 + unit.y, rows)), (x0, min(x0 + unit.x, cols)))
        for y0 in range(0, rows, unit.y)
        for x0 in range(0, cols, unit.x)
    ]


def all_tile_keys(shape: tuple[int, int], unit: Chunks) -> list[str]:
    """Keys of every spatial tile (as in :attr:`Region.tile`)."""
    return [Region((0, 0), y, x).tile for y, x in tiles(shape, unit)]


def plan_regions(
    n_steps: int, shape: tuple[int, int], unit: Chunks, manifest: Manifest
) -> list[Region]:
    """Regions still to fill: per time block and tile, the unfilled steps of the block.

    Returns
    -------
    list of Region
        In time-block order, then row-major tiles.
    """
    regions = []
    for block in range(math.ceil(n_steps / unit.time)):
        start, stop = block * unit.time, min((block + 1) * unit.time, n_steps)
        for y, x in tiles(shape, unit):
            filled = manifest.filled.get(Region((0, 0), y, x).tile, [])
            missing = [t for t in range(start, stop) if not any(a <= t < b for a, b in filled)]
            if missing:
                regions.append(Region((min(missing), max(missing) + 1), y, x))
    return regions


def count_regions(n_steps: int, shape: tuple[int, int], unit: Chunks) -> int:
    """Number of regions of a full cube."""
    return math.ceil(n_steps / unit.time) * len(tiles(shape, unit))


# --- one region -----------------------------------------------------------------------------


def _retrying(
    job: RegionJob, step: Callable[[], Any], retry: tuple[type[BaseException], ...]
) -> tuple[Any, str, int]:
    """Run ``step``, again after ``retry`` errors (at most ``job.retries`` more times).

    Returns
    -------
    tuple
        ``(its value or None, the error or '', attempts)``: other lab errors are not retried.
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            return step(), "", attempts
        except retry as exc:
            if attempts > job.retries:
                return None, _message(exc), attempts
            time.sleep(job.retry_delay * 2 ** (attempts - 1))
        except EarthLabError as exc:
            return None, _message(exc), attempts


def fill_region(job: RegionJob) -> RegionResult:
    """Compute and write one region, retrying read and write failures (bounded).

    Returns
    -------
    RegionResult
        ``ok=False`` with the error when the region could not be written; the region's
        previous content is untouched in that case.
    """
    started = time.monotonic()

    def fill() -> int:
        values = compute_region(job)
        write_region(job, values)
        return int(sum(v.nbytes for v in values.data_vars.values()))

    nbytes, error, attempts = _retrying(job, fill, (AssetReadError, OSError))
    return RegionResult(
        job.region.key, not error, error, attempts, time.monotonic() - started, nbytes or 0
    )


def compute_values(job: RegionJob) -> tuple[str, xr.Dataset | None, str, int, float]:
    """Compute one region's values without writing them (on a cluster's worker).

    Reads are retried as in :func:`fill_region`. The job comes without the store's
    credentials: the worker never writes.

    Returns
    -------
    tuple
        ``(region key, values or None, error, attempts, seconds)``.
    """
    started = time.monotonic()
    values, error, attempts = _retrying(job, lambda: compute_region(job), (AssetReadError, OSError))
    return job.region.key, values, error, attempts, time.monotonic() - started


def write_values(
    job: RegionJob, computed: tuple[str, xr.Dataset | None, str, int, float]
) -> RegionResult:
    """Write the values :func:`compute_values` gave (here, retrying write failures)."""
    key, values, error, attempts, seconds = computed
    if values is None:
        return RegionResult(key, False, error, attempts, seconds)
    started = time.monotonic()
    _, error, tries = _retrying(job, lambda: write_region(job, values), (OSError,))
    nbytes = 0 if error else int(sum(v.nbytes for v in values.data_vars.values()))
    return RegionResult(
        key, not error, error, attempts + tries - 1, seconds + time.monotonic() - started, nbytes
    )


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def region_geobox(grid: GridRecord, region: Region) -> GeoBox:
    """Grid of a region's spatial window."""
    return grid.geobox[slice(*region.y), slice(*region.x)]


def compute_region(job: RegionJob) -> xr.Dataset:
    """Load, mask, (composite) and compute one region's values in memory.

    The region's exact pixels are read at once into NumPy arrays (:func:`load_values`): no
    Dask graph inside a region, whose work is already one task of the build. The cube grid's
    alignment with the items' pixels is checked once per build, when planning the steps.
    """
    from datacubes._load import load_values

    box = region_geobox(job.grid, job.region)
    cube = load_values(
        list(job.items), list(job.bands), geobox=box, mask=job.mask, fail_on_error=True
    )
    if job.composite is not None:
        return _composite(cube, job)
    _check_steps(cube, job.steps, job.region)
    return xr.Dataset(
        {
            name: (("time", "y", "x"), np.asarray(cube[name].values, dtype=dtype))
            for name, dtype in job.variables.items()
        }
    )


def _check_steps(cube: xr.Dataset, steps: Sequence[Step], region: Region) -> None:
    times = [iso_time(t) for t in cube["time"].values]
    items = [tuple(sorted(str(v).split(","))) for v in cube["source_items"].values]
    expected = [(s.time, s.items) for s in steps]
    if list(zip(times, items, strict=False)) != expected:
        raise AssertionError(  # the loader grouped differently from the plan: a bug
            f"region {region.key}: loaded steps {list(zip(times, items, strict=False))} differ "
            f"from the planned {expected}"
        )


def _composite(cube: xr.Dataset, job: RegionJob) -> xr.Dataset:
    assert job.composite is not None
    labels = [iso_time(period_start(t, job.composite.period)) for t in cube["time"].values]
    reduce = _REDUCERS[job.composite.method]
    out = {}
    for name, dtype in job.variables.items():
        values = np.asarray(cube[name].values, dtype="float32")
        planes = []
        for step in job.steps:
            index = [i for i, label in enumerate(labels) if label == step.time]
            if not index:
                raise AssertionError(
                    f"region {job.region.key}: no loaded date in period {step.time}"
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
                planes.append(reduce(values[index], axis=0))
        out[name] = (("time", "y", "x"), np.stack(planes).astype(dtype))
    return xr.Dataset(out)


def write_region(job: RegionJob, values: xr.Dataset) -> None:
    """Write computed values into the store's region (encoded as the store says)."""
    values.to_zarr(
        job.url,
        region=job.region.slices(),
        mode="r+",
        consolidated=False,
        storage_options=dict(job.storage_options) or None,
    )


# --- many regions ---------------------------------------------------------------------------


def run_regions(
    jobs: Sequence[RegionJob],
    *,
    workers: int,
    client: Any = None,
    on_result: Callable[[RegionJob, RegionResult], None],
    progress: bool = True,
    write_from_client: bool = False,
) -> None:
    """Fill regions in parallel, calling ``on_result`` in this thread as each one ends.

    Parameters
    ----------
    jobs : sequence of RegionJob
        Regions to fill.
    workers : int
        Regions filled at once (threads) when no ``client`` is given.
    client : dask.distributed.Client, optional
        Fill regions on a Dask cluster instead (its workers must reach the store).
    on_result : callable
        Receives each job and its result, in completion order.
    progress : bool
        Show a progress bar on standard error.
    write_from_client : bool
        With ``client``: the workers compute the regions and this process writes them (the
        workers get no credentials of the store and need no route to it).
    """
    from tqdm.auto import tqdm

    by_key = {job.region.key: job for job in jobs}
    with tqdm(total=len(jobs), unit="region", disable=not progress, desc="cube build") as bar:
        for result in _results(jobs, workers, client, write_from_client):
            on_result(by_key[result.key], result)
            bar.update(1)


def _results(
    jobs: Sequence[RegionJob], workers: int, client: Any, write_from_client: bool = False
) -> Iterable[RegionResult]:
    if not jobs:
        return
    if client is not None and write_from_client:
        from distributed import as_completed

        by_key = {job.region.key: job for job in jobs}
        futures = client.map(
            compute_values, [replace(job, storage_options={}) for job in jobs], pure=False
        )
        for future in as_completed(futures):
            computed = future.result()
            future.release()  # the values live here now: free the worker's copy
            yield write_values(by_key[computed[0]], computed)
        return
    if client is not None:
        from distributed import as_completed

        futures = client.map(fill_region, list(jobs), pure=False)
        for future in as_completed(futures):
            yield future.result()
        return
    with cf.ThreadPoolExecutor(
        max_workers=max(1, workers), thread_name_prefix="cube-region"
    ) as pool:
        pending = {pool.submit(fill_region, job) for job in jobs}
        try:
            for future in cf.as_completed(pending):
                yield future.result()
        finally:
            for future in pending:
                future.cancel()
