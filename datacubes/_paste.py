"""Eager reads of local rasters already on the output grid: window reads pasted in place.

odc-stac reads every case: reprojection, resampling, overviews, remote files with its GDAL
environment. In one case a read is a plain copy, and odc-stac finds it too: the asset has the
output grid's CRS and pixel size and an integer pixel offset from it. There, odc-stac still
computes a reprojection plan, opens a GDAL environment and allocates a temporary array per
asset, then fuses it into the output. This module reads that case straight into the output
arrays: one ``rasterio`` window read per local asset inside one GDAL environment. The result is
the same as odc-stac's (its fill value, its order of fusing, its "first valid pixel wins").
Build regions use it; anything else goes to odc-stac.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from rasterio.windows import Window

from datacubes._io import READ_ERRORS, AssetReadWarning, AssetRef, local_path, read_failure
from datacubes._plan import ItemBand
from lab import AssetReadError, EarthLabError

_TOLERANCE = 1e-6
"""Largest difference (in pixels) between a raster's and the output grid's pixel edges."""


class _NotOnGridError(EarthLabError):
    """A file is not where its metadata says: odc-stac must read (and resample) it.

    Never leaves :func:`paste_load`, which answers ``None`` so that the caller falls back.
    """


def paste_load(
    plans: Sequence[Sequence[ItemBand]],
    bands: Sequence[str],
    geobox: GeoBox,
    groups: Sequence[Sequence[int]],
    times: Sequence[datetime],
    refs: Mapping[str, AssetRef],
    fail_on_error: bool,
) -> xr.Dataset | None:
    """The DN dataset ``odc.stac.load`` makes, when every asset can be pasted; else ``None``.

    Parameters
    ----------
    plans : sequence of sequence of ItemBand
        Per item, its resolved bands (in the order of ``bands``).
    bands : sequence of str
        Canonical band names, the output variables.
    geobox : GeoBox
        The output grid.
    groups : sequence of sequence of int
        Item indices of each time step, in fusing order.
    times : sequence of datetime
        Time of each step (naive UTC).
    refs : mapping
        Item and asset of each href (for messages; ``missing`` ones are left as gaps).
    fail_on_error : bool
        Raise :class:`~lab.AssetReadError` on a failed read, else warn and leave a gap.

    Returns
    -------
    xarray.Dataset or None
        ``None`` when some asset is remote, lacks a known data type or nodata, or is not on
        the output grid (by its metadata, or by the file itself).
    """
    if geobox.crs is None or not _axis_aligned(tuple(geobox.transform)[:6]):
        return None
    dtypes: dict[str, np.dtype] = {}
    nodatas: dict[str, float] = {}
    for position, name in enumerate(bands):
        entries = [plan[position] for plan in plans]
        types = {e.data_type for e in entries}
        values = {e.nodata for e in entries}
        if None in types or None in values or len(types) != 1 or len(values) != 1:
            return None
        dtypes[name] = np.dtype(types.pop())
        nodatas[name] = float(values.pop())  # type: ignore[arg-type]
    file_crs = rasterio.crs.CRS.from_wkt(geobox.crs.to_wkt())
    crs_ok: dict[str, bool] = {}
    for entry in (e for plan in plans for e in plan):
        if local_path(entry.href) is None or entry.crs is None or entry.transform is None:
            return None
        if entry.crs not in crs_ok:
            crs_ok[entry.crs] = bool(geobox.crs == entry.crs)
        if not crs_ok[entry.crs] or _offset(entry.transform, geobox) is None:
            return None
    arrays = {
        name: np.full((len(groups), *geobox.shape), nodatas[name], dtype=dtypes[name])
        for name in bands
    }
    try:
        with rasterio.Env(VSI_CACHE=False):
            for step, group in enumerate(groups):
                for position, name in enumerate(bands):
                    target = _Target(arrays[name][step], geobox, file_crs, nodatas[name])
                    for order, index in enumerate(group):
                        entry = plans[index][position]
                        _paste(entry, target, order == 0, refs.get(entry.href), fail_on_error)
    except _NotOnGridError:
        return None
    coords = xr_coords(geobox)
    coords["time"] = xr.DataArray(np.array(times, dtype="datetime64[ns]"), dims=("time",))
    dims = ("time", *geobox.dims)
    out = xr.Dataset(
        {
            name: (dims, arrays[name], {"nodata": _attr_value(nodatas[name], dtypes[name])})
            for name in bands
        },
        coords=coords,
    )
    for name in bands:
        out[name].encoding["grid_mapping"] = "spatial_ref"
    return out


def _attr_value(nodata: float, dtype: np.dtype) -> Any:
    return dtype.type(nodata) if dtype.kind in "iu" else nodata


def _axis_aligned(transform: Sequence[float]) -> bool:
    a, b, _, d, e, _ = transform
    return b == 0 and d == 0 and a > 0 and e < 0


def _offset(transform: Sequence[float], geobox: GeoBox) -> tuple[int, int] | None:
    """Whole-pixel (row, column) of a raster's origin on the output grid, or ``None``."""
    if not _axis_aligned(transform):
        return None
    a, _, c, _, e, f = transform
    ga, _, gc, _, ge, gf = tuple(geobox.transform)[:6]
    if not (math.isclose(a, ga, rel_tol=1e-9) and math.isclose(e, ge, rel_tol=1e-9)):
        return None
    col, row = (c - gc) / ga, (f - gf) / ge
    if abs(col - round(col)) > _TOLERANCE or abs(row - round(row)) > _TOLERANCE:
        return None
    return round(row), round(col)


@dataclass(frozen=True)
class _Target:
    """One time step of one band of the output, and what a file must match to be pasted."""

    plane: np.ndarray
    """The step's (y, x) array of the band, prefilled with nodata."""
    geobox: GeoBox
    """The output grid."""
    crs: Any
    """The output CRS as rasterio sees it (compared with each file's)."""
    nodata: float
    """The band's nodata value."""


def _paste(
    entry: ItemBand, target: _Target, first: bool, ref: AssetRef | None, fail_on_error: bool
) -> None:
    """Copy one asset's pixels into the target plane where they fall.

    The first asset of a time step is read in place (the plane holds nodata there); the
    others fill only the pixels still at nodata, as odc-stac's default fuser does.
    """
    if ref is not None and ref.missing:
        return  # reported when the load started: a gap
    plane, nodata = target.plane, target.nodata
    window: Any = None
    try:
        with rasterio.open(local_path(entry.href), sharing=False) as src:
            origin = _offset(tuple(src.transform)[:6], target.geobox)
            if origin is None or src.crs != target.crs:
                raise _NotOnGridError(entry.href)
            row, col = origin
            rows, cols = plane.shape
            y0, y1 = max(0, row), min(rows, row + src.height)
            x0, x1 = max(0, col), min(cols, col + src.width)
            if y0 >= y1 or x0 >= x1:
                return
            window = np.s_[y0:y1, x0:x1]
            where = Window(x0 - col, y0 - row, x1 - x0, y1 - y0)
            if first:
                src.read(1, window=where, out=plane[window])
                return
            pixels = src.read(1, window=where, out_dtype=plane.dtype)
    except READ_ERRORS as error:
        if first and window is not None:
            plane[window] = nodata  # a read that failed half-way leaves nothing behind
        message = read_failure(ref, entry.href, error)
        if fail_on_error:
            raise AssetReadError(message) from error
        warnings.warn(message, AssetReadWarning, stacklevel=2)
        return
    part = plane[window]
    empty = np.isnan(part) if np.isnan(nodata) else part == nodata
    np.copyto(part, pixels, where=empty)
