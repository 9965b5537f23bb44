"""``datacubes.load``: STAC items to a lazy, scaled, CF-described xarray datacube."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from datacubes._bands import available_bands
from datacubes._errors import EmptyLoadError
from datacubes._io import AssetReadWarning, AssetRef, NamingRioDriver, check_file, missing_local
from datacubes._masks import MASK_NAMES, plan_flags, plan_masks
from datacubes._output import finish
from datacubes._paste import paste_load
from datacubes._plan import (
    ItemBand,
    acquired,
    as_band_list,
    as_items,
    describe_plan,
    finest_pixel,
    finest_resolution,
    native_crs,
    native_geobox,
    plan_items,
)
from lab import AssetReadError, ConfigurationError, EarthLabWarning

DEFAULT_CHUNKS: dict[str, int] = {"time": 4, "y": 2048, "x": 2048}
"""Four time steps of up to 2048 x 2048 pixels per Dask chunk (64 MB of float32): large enough
that task overhead stays small (benchmarks/bench_load.py), small enough for a laptop."""

GROUPBY = ("solar_day", "time", "id")
_COLLECTION = "earthlab-load"
_PROJ = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
_RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"

MaskSpec = str | Iterable[int] | Iterable[str] | Callable[[xr.Dataset], xr.DataArray] | None
Resolution = float | tuple[float, float]


def load(
    items: Iterable[pystac.Item],
    bands: str | Sequence[str],
    *,
    resolution: Resolution | None = None,
    crs: str | int | None = None,
    bbox: Sequence[float] | None = None,
    geobox: GeoBox | None = None,
    chunks: Mapping[str, int] | None = None,
    mask: MaskSpec = None,
    flags: Sequence[str] | None = None,
    groupby: str = "solar_day",
    fail_on_error: bool = True,
) -> xr.Dataset:
    """Load STAC items as a lazy datacube of physical values.

    Wraps :func:`odc.stac.load` (grid, reprojection, grouping, Dask chunking) and adds what it
    leaves to the user: band names that work across providers, per-item scale and offset,
    nodata as NaN, cloud masks and CF metadata. Nothing is read until ``.compute()``.

    Parameters
    ----------
    items : iterable of pystac.Item
        Items of one sensor (e.g. the result of ``lab.catalog().search(...)``).
    bands : str or sequence of str
        Bands by common name (``"red"``, ``"nir"``, ``"nir08"``, ``"scl"``) or provider key
        (``"B04"``, ``"B04_10m"``, ``"SCL"``, ``"SR_B4"``). Output variables are always named
        by common name (``"scl"`` for the Sentinel-2 scene classification). In each item, the
        asset is found by, in order: asset key; asset key equal to the common name; the alias
        table of the sensor (Sentinel-2: B01 coastal, B02 blue, B03 green, B04 red, B05-B07
        rededge1-3, B08 nir, B8A nir08, B09 nir09, B11 swir16, B12 swir22, SCL scl, AOT aot,
        WVP wvp, with CDSE ``_10m/_20m/_60m`` suffixes: the one at ``resolution``, else the
        finest; Landsat C2 L2: SR_B1..SR_B7 by sensor, ST_B10 lwir11, QA_PIXEL qa_pixel;
        THEIA MAJA L2A (collection ``sentinel2-l2a-theia`` or a MUSCATE product id, see
        :func:`maja_item`): B02..B12 as Sentinel-2 but no B01/B09/B10, reflectance x 1e-4
        with no offset and nodata -10000, CLM_R1/CLM_R2, MG2_R1/MG2_R2, EDG_R1/EDG_R2 as
        ``clm_r1``... class bands); ``eo:bands``/``bands`` ``common_name`` or ``name``. :func:`describe_bands` shows the
        choice per item.
    resolution : float or (float, float), optional
        Pixel size in units of the output CRS (metres for UTM), a positive finite number, or
        an ``(x, y)`` pair of them for pixels taller than wide (lat/lon grids). Default: the
        finest native pixel size of the requested bands, as its own (x, y) pair. Required when
        ``crs`` is given. NaN, infinity, zero or a negative size is a
        :class:`~lab.ConfigurationError`.
    crs : str or int, optional
        Output CRS (``"EPSG:32631"``, ``32631``). Default: the items' own CRS, and the output
        grid is aligned on their pixels (no resampling at native resolution); items in several
        CRSs need an explicit ``crs``.
    bbox : sequence of 4 floats, optional
        ``(min_lon, min_lat, max_lon, max_lat)`` in WGS84 degrees (not in CRS units). Default:
        the union of the items' extents.
    geobox : odc.geo.geobox.GeoBox, optional
        The exact output grid (CRS, pixel size, alignment and extent), e.g. ``ds.odc.geobox``
        of another cube or a slice of one (``gbox[0:512, 0:512]``). Pixels on the items' own
        grid are copied, others are reprojected (nearest neighbour). Replaces ``crs``,
        ``resolution`` and ``bbox``: give either it or them. Assets of providers offering
        several resolutions of a band (CDSE ``_10m/_20m/_60m``) are chosen by its pixel
        width.
    chunks : mapping, optional
        Dask chunk sizes by dimension (``time``, ``y``, ``x``), merged over the default
        ``{"time": 4, "y": 2048, "x": 2048}`` (64 MB of float32 per chunk).
    mask : "clouds", list of mask names, set of int or callable, optional
        ``"clouds"`` sets reflectance (and other float bands) to NaN where the product's quality
        band flags clouds (thin ones and cirrus included), cloud shadows or missing data, the
        same meaning on every registered product: Sentinel-2 L2A SCL 0, 1, 3, 8, 9, 10; THEIA
        MAJA any CLM bit (at the band's resolution, ``CLM_R1`` for 10 m bands and ``CLM_R2``
        for 20 m ones, else the one the items have); Landsat C2 L2 QA_PIXEL bits 0-4. A list
        of names among ``clouds``, ``shadows``, ``water``, ``snow``, ``edge``, ``nodata``
        masks their union (table in docs/datacubes.md); a set of integers masks those SCL
        classes. The quality bands are loaded for the mask and left out of the output unless
        asked for; items without them raise :class:`~datacubes.BandNotFoundError` naming the
        asset, and products with no registered mask an error listing the registered ones. A
        callable receives the scaled dataset and returns a boolean DataArray, True where pixels
        must become NaN.
    flags : sequence of str, optional
        Mask names (among ``clouds``, ``shadows``, ``water``, ``snow``, ``edge``, ``nodata``)
        to add as boolean variables ``flag_<name>``, True where the product's quality band
        says so, with the meanings of ``mask=`` (the same registry): e.g. ``flag_water`` is
        SCL class 6 on Sen2Cor items, MG2 bit 0 on THEIA MAJA ones (water under clouds
        included: combine with ``flag_clouds`` for clear water), QA_PIXEL bit 7 on Landsat.
        Code that reads flags instead of a product's own classification runs unchanged on
        every registered product. The quality bands are chosen at the output pixel size (MAJA
        ``_R1`` at 10 m, ``_R2`` at 20 m, else the one every item has) and left out of the
        output unless asked for. Flags describe each time step's quality band after fusing
        (the first item with data).
    groupby : {"solar_day", "time", "id"}
        Items of one solar day (UTC time + longitude / 15 h, per item), of one exact time, or
        none are fused into one time step (first valid pixel wins, in time then id order).
    fail_on_error : bool
        If True, a missing or unreadable asset raises :class:`~lab.AssetReadError` naming the
        item and the asset (local files are checked here, remote ones when computing). If
        False, an :class:`~datacubes.AssetReadWarning` is issued and its pixels stay NaN.

    Returns
    -------
    xarray.Dataset
        Dask-backed, dims ``(time, y, x)``, CRS readable by ``ds.rio.crs`` and
        ``ds.odc.geobox``. Reflectance and physical bands are float32 with nodata as NaN;
        class bands (``scl`` uint8, 0 = no data; ``qa_pixel``; the class bands of the Notes)
        keep their integer type and exact values, with their nodata in attribute ``nodata``.
        Coordinate ``source_items`` (along time) holds the ids of the items fused into each
        step (comma-separated), ``centre`` their data centre when items carry
        ``earthlab:centre``. Each float variable has CF ``units``, ``long_name``,
        ``standard_name`` where one exists, and ``applied_scale``/``applied_offset`` (one value
        per time step).

    Raises
    ------
    lab.NoItemsError
        No item was given.
    datacubes.BandNotFoundError
        A band is not in some item; the message lists the bands the item has.
    lab.ConfigurationError
        An argument is invalid (``geobox`` together with ``crs``, ``resolution`` or ``bbox``, or
        not a GeoBox with a CRS; ``resolution`` not a finite positive number or (x, y) pair of
        them), a band name is ambiguous, the items span several CRSs without
        ``crs=`` or ``geobox=``, or items fused into one time step have different scale/offset (load them
        with ``groupby="time"`` or ``"id"``).
    lab.AssetReadError
        An asset is missing or unreadable and ``fail_on_error`` is True.
    datacubes.AssetMetadataError
        A file has no CRS, or its CRS, data type or ``proj:shape`` contradict its metadata
        (checked when each file is first read, against every item naming it; by
        :func:`load_values` up front), or an asset's nodata cannot occur in its integer data
        type (uint16 with -9999: checked when the load is planned, before any read).
    datacubes.EmptyLoadError
        ``bbox`` (or ``geobox``) lies outside every item: the cube would be all nodata.

    Notes
    -----
    Scale and offset are chosen per item and per band, then applied lazily per time step
    (``DN * scale + offset``); nodata DN become NaN first (when the metadata gives no nodata,
    each file's own nodata value). Cloud masks apply to each item before items of one time
    step are fused. Native pixel sizes are kept as (x, y) pairs (lat/lon grids). The rules:

    - Raster extension (``raster:bands[0].scale/offset`` or STAC 1.1 ``raster:scale`` /
      ``raster:offset`` on the asset) when present, except for the Earth Search flag below.
    - Sentinel-2 multi-date products (mosaics, composites: ``product:type`` ``S2MSI_L3__MCQ``,
      ``processing:level`` L3, collection ids with ``mosaic``/``composite``): the raster
      offset, else 0 (reflectance x 10000); the baseline rules below are for L1C/L2A scenes.
    - Sentinel-2 scene reflectance without raster offset: processing baseline
      (``s2:processing_baseline`` or ``processing:version``) >= 04.00 gives -0.1, below gives
      0; with no baseline at all, acquisitions from 2022-01-25 (first day of baseline 04.00)
      get -0.1, earlier ones 0. Scale 1e-4 when absent.
    - Earth Search: items carrying ``earthsearch:boa_offset_applied: true`` (collection
      ``sentinel-2-l2a``) hold COGs whose DN were already harmonised by Element84, and their
      ``raster:bands`` offset of -0.1 is wrong (the collection's ``item_assets`` say 0; the
      provider says the flag is the truth, Element84/earth-search#9): the offset used is 0.
      With the flag ``false`` the baseline rule decides. The flag itself is reported wrong
      for some 2022-2025 scenes (Element84/earth-search#66, #71), which no metadata can
      reveal; collection ``sentinel-2-c1-l2a`` (ESA DN, offset -0.1, no flag) avoids it.
    - Landsat Collection 2 Level-2 without raster extension: 2.75e-05 / -0.2 for surface
      reflectance, 0.00341802 / 149 for surface temperature.
    - Class and quality bands outside the band tables are not scaled and keep their integer
      type (no float32, which cannot hold every uint32: MODIS QC bit flags stay exact): a band
      nothing above scales, whose data type is an integer and which carries
      ``classification:*`` fields (classification extension) or a quality-style asset key or
      band name (whole token ``qc``, ``qa``, ``quality``, ``state``, ``fmask``, ``mask``,
      ``flag(s)`` or ``scl``: MODIS ``sur_refl_qc_500m``, DEA ``oa_fmask``). When STAC gives no nodata (or no
      data type), the file's header is read once per file when the load is planned; its
      nodata becomes the variable's ``nodata`` attribute, and items fused into one time step
      fill each other's nodata pixels (first valid value wins). ``describe_bands`` shows the
      reason in ``scaling_rule``.

    Examples
    --------
    >>> ds = datacubes.load(items, ["red", "nir", "scl"], mask="clouds")
    >>> ndwi = (ds.green - ds.nir) / (ds.green + ds.nir)
    """
    return _load(
        items,
        bands,
        resolution=resolution,
        crs=crs,
        bbox=bbox,
        geobox=geobox,
        chunks=chunks,
        eager=False,
        mask=mask,
        flags=flags,
        groupby=groupby,
        fail_on_error=fail_on_error,
    )


def load_values(
    items: Iterable[pystac.Item],
    bands: str | Sequence[str],
    *,
    geobox: GeoBox,
    mask: MaskSpec = None,
    fail_on_error: bool = True,
) -> xr.Dataset:
    """:func:`load` on an exact grid, read at once into NumPy arrays (no Dask graph).

    For one region of a build, computed inside its worker: the same values, dtypes and
    attributes as ``load(items, bands, geobox=geobox, mask=mask).compute()``, without the
    cost of building and scheduling a graph. Reads run one after another in this thread.
    Local rasters already on ``geobox``'s CRS and pixel size (whole-pixel offsets) are read
    by window straight into the output arrays (:mod:`datacubes._paste`); any other asset
    makes the whole call go through odc-stac.
    """
    return _load(
        items,
        bands,
        resolution=None,
        crs=None,
        bbox=None,
        geobox=geobox,
        chunks=None,
        eager=True,
        mask=mask,
        groupby="solar_day",
        fail_on_error=fail_on_error,
    )


def _load(
    items: Iterable[pystac.Item],
    bands: str | Sequence[str],
    *,
    resolution: Resolution | None,
    crs: str | int | None,
    bbox: Sequence[float] | None,
    geobox: GeoBox | None,
    chunks: Mapping[str, int] | None,
    eager: bool,
    mask: MaskSpec,
    groupby: str,
    fail_on_error: bool,
    flags: Sequence[str] | None = None,
) -> xr.Dataset:
    """:func:`load`, or with ``eager`` :func:`load_values`."""
    items = as_items(items)
    requested = as_band_list(bands)
    dask_chunks = None if eager else _check_chunks(chunks)
    mask_request, mask_func = _check_mask(mask)
    flag_names = _check_flags(flags)
    if groupby not in GROUPBY:
        raise ConfigurationError(f"groupby must be one of {', '.join(GROUPBY)}, got {groupby!r}")
    bbox_t = _check_bbox(bbox)
    pixel = _check_resolution(resolution)
    res = None if pixel is None else pixel[0]  # chooses between _10m/_20m/_60m assets
    if geobox is not None:
        _check_geobox(geobox, crs=crs, resolution=resolution, bbox=bbox)
        res = abs(float(geobox.resolution.x))

    plans = plan_items(items, requested, res)
    names = [entry.name for entry in plans[0]]
    extra: list[str] = []
    mask_plan = None
    if mask_request is not None:
        pixels = {entry.name: entry.resolution for entry in plans[0]}
        mask_plan = plan_masks(items, names, pixels, mask_request, f"mask={mask!r}")
        extra = list(mask_plan.extra)
        if extra:
            plans = plan_items(items, [*requested, *extra], res)
    flag_plan = None
    if flag_names:
        sizes = [e.resolution for e in plans[0] if e.name in names and e.resolution]
        pixel_size = res if res is not None else min(sizes, default=None)
        flag_plan = plan_flags(items, flag_names, names, pixel_size, f"flags={list(flag_names)!r}")
        more = [band for band in flag_plan.extra if band not in extra]
        if more:
            extra += more
            plans = plan_items(items, [*requested, *extra], res)

    out_res: Any = None  # odc-stac's resolution=, when it makes the grid itself
    if geobox is not None:
        out_crs, gbox = str(geobox.crs), geobox
    else:
        out_crs, gbox, out_res = _grid(plans, crs, pixel, bbox_t)
    missing = _check_local_files(plans, fail_on_error)
    _check_overlap(items, bbox_t, geobox)
    # A lazy load checks each file when it is first read, against the metadata of the item
    # its reader belongs to; items naming one file with different metadata are checked now
    # (one reader serves the file).
    checked = [e for plan in plans for e in plan] if eager else _shared_files(plans)
    for entry in (e for e in checked if e.href not in missing):
        check_file(
            entry.item_id,
            entry.asset_key,
            entry.href,
            crs=entry.crs,
            data_type=entry.data_type,
            shape=entry.shape,
        )
    _warn_unscaled(plans)
    keys = _group_keys(items, groupby)
    groups = _groups(items, keys)
    read_keys, read_groups = keys, groups
    if mask_plan is not None and any(len(group) > 1 for group in groups):
        # A cloud mask belongs to its item: read every item as its own step, mask it, then
        # fuse the steps (a cloudy pixel of the first item must not hide a clear one of the
        # second).
        order = [index for group in groups for index in group]
        rank = {index: position for position, index in enumerate(order)}
        read_keys = [rank[index] for index in range(len(items))]
        read_groups = [[index] for index in order]
    refs = {
        e.href: AssetRef(
            e.item_id,
            e.asset_key,
            missing=e.href in missing,
            crs=e.crs,
            data_type=e.data_type,
            shape=e.shape,
        )
        for plan in plans
        for e in plan
    }
    import rioxarray  # noqa: F401  (registers the ``.rio`` accessor users read the CRS with)

    raw = None
    if eager and gbox is not None:  # local rasters on the grid: window reads, pasted in place
        times = [acquired(items[g[0]]).replace(tzinfo=None) for g in read_groups]  # as odc
        raw = paste_load(plans, [*names, *extra], gbox, read_groups, times, refs, fail_on_error)
    if raw is None:
        raw = _odc_load(
            items,
            plans,
            [*names, *extra],
            gbox,
            out_crs,
            out_res,
            bbox_t,
            read_keys,
            dask_chunks,
            fail_on_error,
            refs,
        )
    if raw.sizes["time"] != len(read_groups):  # odc-stac grouped differently: a bug
        raise AssertionError(
            f"expected {len(read_groups)} time steps, odc-stac made {raw.sizes['time']}"
        )
    return finish(
        raw, items, plans, groups, names, mask_plan, mask_func, groupby, read_groups, flag_plan
    )


def _shared_files(plans: list[list[ItemBand]]) -> list[ItemBand]:
    """Entries whose file another entry names with a different CRS, data type or shape."""
    seen: dict[str, set[tuple[Any, ...]]] = {}
    for entry in (e for plan in plans for e in plan):
        seen.setdefault(entry.href, set()).add((entry.crs, entry.data_type, entry.shape))
    return [e for plan in plans for e in plan if len(seen[e.href]) > 1]


def _odc_load(
    items: list[pystac.Item],
    plans: list[list[ItemBand]],
    bands: list[str],
    gbox: GeoBox | None,
    out_crs: str,
    res: Any,
    bbox: tuple[float, float, float, float] | None,
    keys: list[Any],
    dask_chunks: Mapping[str, int] | None,
    fail_on_error: bool,
    refs: Mapping[str, AssetRef],
) -> xr.Dataset:
    """DN dataset of ``odc.stac.load`` (lazy with ``dask_chunks``, else read now)."""
    import odc.stac

    return odc.stac.load(
        [_normalised(item, plan) for item, plan in zip(items, plans, strict=True)],
        bands=bands,
        geobox=gbox,
        crs=None if gbox is not None else out_crs,
        resolution=None if gbox is not None else res,
        bbox=None if gbox is not None else bbox,
        groupby=lambda _item, _parsed, idx: keys[idx],
        chunks=None if dask_chunks is None else dict(dask_chunks),
        fail_on_error=fail_on_error,
        driver=NamingRioDriver(refs),
    )


def describe_bands(
    items: Iterable[pystac.Item],
    bands: str | Sequence[str] | None = None,
    *,
    resolution: Resolution | None = None,
) -> pd.DataFrame:
    """Show, without reading pixels, which asset and scaling :func:`load` uses per item.

    Parameters
    ----------
    items : iterable of pystac.Item
        The items to inspect.
    bands : str or sequence of str, optional
        Band names as for :func:`load`. Default: every single-band raster all items offer.
    resolution : float or (float, float), optional
        Target pixel size, or (x, y) pair (its x chooses between CDSE ``_10m/_20m/_60m``
        assets).

    Returns
    -------
    pandas.DataFrame
        One row per item and band: ``item_id``, ``collection``, ``datetime``, ``band``,
        ``asset_key``, ``href``, ``crs``, ``resolution``, ``data_type``, ``nodata``,
        ``scale``, ``offset`` and ``scaling_rule`` (which metadata decided).
    """
    found = as_items(items)
    if bands is None:
        offered = [set(available_bands(item)) for item in found]
        bands = sorted(set.intersection(*offered))
    pixel = _check_resolution(resolution)
    plans = plan_items(found, as_band_list(bands), None if pixel is None else pixel[0])
    return describe_plan(found, plans)


# --- argument checks ------------------------------------------------------------------------


def _check_chunks(chunks: Mapping[str, int] | None) -> dict[str, int]:
    if chunks is None:
        return dict(DEFAULT_CHUNKS)
    if not isinstance(chunks, Mapping):
        raise ConfigurationError(f"chunks must be a mapping like {DEFAULT_CHUNKS}, got {chunks!r}")
    unknown = set(chunks) - set(DEFAULT_CHUNKS)
    if unknown:
        raise ConfigurationError(
            f"chunks has unknown dimensions {sorted(unknown)}; use time, y and x"
        )
    for dim, size in chunks.items():
        if not (size == "auto" or (isinstance(size, int) and (size > 0 or size == -1))):
            raise ConfigurationError(f"chunks[{dim!r}] must be a positive int, -1 or 'auto'")
    return {**DEFAULT_CHUNKS, **chunks}


def _check_mask(
    mask: MaskSpec,
) -> tuple[tuple[str, ...] | frozenset[int] | None, Callable[[xr.Dataset], xr.DataArray] | None]:
    """Mask names (or SCL classes) to plan, or the callable."""
    if mask is None:
        return None, None
    if isinstance(mask, str):
        if mask != "clouds":
            raise ConfigurationError(
                f"mask must be 'clouds', a list of mask names among {', '.join(MASK_NAMES)} "
                f"(e.g. ['clouds', 'snow']), a set of SCL classes or a callable, got {mask!r}"
            )
        return ("clouds",), None
    if callable(mask):
        return None, mask
    listed: list[Any] = list(mask)
    if listed and all(isinstance(name, str) for name in listed):
        unknown = [str(name) for name in listed if name not in MASK_NAMES]
        if unknown:
            raise ConfigurationError(
                f"mask names must be among {', '.join(MASK_NAMES)}, got {', '.join(unknown)}"
            )
        return tuple(dict.fromkeys(str(name) for name in listed)), None
    classes = frozenset(listed)
    if not classes or not all(isinstance(c, int | np.integer) and 0 <= c <= 255 for c in classes):
        raise ConfigurationError(
            f"mask classes must be SCL values 0..11, got {sorted(classes, key=str)}"
        )
    return frozenset(int(c) for c in classes), None


def _check_flags(flags: Sequence[str] | None) -> tuple[str, ...]:
    """Flag names, checked against :data:`MASK_NAMES`."""
    if flags is None:
        return ()
    listed = [flags] if isinstance(flags, str) else list(flags)
    unknown = [repr(name) for name in listed if name not in MASK_NAMES]
    if unknown:
        raise ConfigurationError(
            f"flags must be mask names among {', '.join(MASK_NAMES)} "
            f"(e.g. flags=['water', 'clouds']), got {', '.join(unknown)}"
        )
    return tuple(dict.fromkeys(str(name) for name in listed))


def _check_bbox(bbox: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    values = tuple(float(v) for v in bbox)
    if len(values) != 4:
        raise ConfigurationError(f"bbox must be (min_lon, min_lat, max_lon, max_lat), got {bbox!r}")
    west, south, east, north = values
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ConfigurationError(
            f"bbox {bbox!r} is not (min_lon, min_lat, max_lon, max_lat) in degrees; "
            "give it in WGS84 longitude/latitude, not in CRS units"
        )
    return west, south, east, north


def _check_resolution(resolution: Resolution | None) -> tuple[float, float] | None:
    """``(x, y)`` pixel size from a number or a pair; NaN, inf, 0, negatives are errors."""
    if resolution is None:
        return None

    def positive(value: Any) -> bool:
        return bool(
            isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool | np.bool_)
            and math.isfinite(value)
            and value > 0
        )

    pair: tuple[Any, ...] = (
        tuple(resolution)
        if isinstance(resolution, Sequence | np.ndarray) and not isinstance(resolution, str)
        else (resolution, resolution)
    )
    if len(pair) != 2 or not all(positive(value) for value in pair):
        raise ConfigurationError(
            f"resolution must be a positive number, got {resolution!r}: give the pixel size in "
            "units of the output CRS (metres for UTM, e.g. 10), finite and > 0, or an (x, y) "
            "pair of them (e.g. (0.0003, 0.0001) on a lat/lon grid)"
        )
    return float(pair[0]), float(pair[1])


def _check_geobox(
    geobox: Any,
    *,
    crs: str | int | None,
    resolution: Resolution | None,
    bbox: Sequence[float] | None,
) -> None:
    pairs = (("crs", crs), ("resolution", resolution), ("bbox", bbox))
    given = [name for name, value in pairs if value is not None]
    if given:
        raise ConfigurationError(
            f"geobox= is the whole output grid; {', '.join(f'{n}=' for n in given)} cannot be "
            "given with it: drop them, or drop geobox= and describe the grid with crs=, "
            "resolution= and bbox="
        )
    if not isinstance(geobox, GeoBox):
        raise ConfigurationError(
            f"geobox must be an odc.geo GeoBox (e.g. ds.odc.geobox, or "
            f"odc.geo.geobox.GeoBox.from_bbox(...)), got {type(geobox).__name__}"
        )
    if geobox.crs is None:
        raise ConfigurationError("geobox has no CRS: build it with crs= (e.g. 'EPSG:32631')")
    if 0 in geobox.shape:
        raise ConfigurationError(f"geobox has no pixel (shape {tuple(geobox.shape)})")


def _grid(
    plans: list[list[ItemBand]],
    crs: str | int | None,
    wanted_pixel: tuple[float, float] | None,
    bbox: tuple[float, float, float, float] | None,
) -> tuple[str, Any, Any]:
    """Output CRS, grid (``None``: odc-stac makes it) and the resolution odc-stac gets."""
    from odc.geo import CRS

    if crs is not None:
        try:
            wanted = CRS(f"EPSG:{crs}" if isinstance(crs, int) else crs)
        except Exception as error:
            raise ConfigurationError(f"crs {crs!r} is not a valid CRS: {error}") from None
    native = None
    try:
        native = CRS(native_crs(plans))
    except ConfigurationError:
        if crs is None:
            raise
    if crs is None or wanted == native:
        out = native
        # Without resolution=, the finest asset's own pixel, as an (x, y) pair: lat/lon grids
        # (Copernicus DEM tiles at high latitude) have pixels taller than wide.
        pixel = wanted_pixel if wanted_pixel is not None else finest_pixel(plans)
        res: Any = _odc_resolution(wanted_pixel) if wanted_pixel else finest_resolution(plans)
        gbox = native_geobox(plans, str(out), pixel, bbox)
        return str(out), gbox, res
    if wanted_pixel is None:
        raise ConfigurationError(f"resolution= is required with crs={crs!r}, in units of that CRS")
    return str(wanted), None, _odc_resolution(wanted_pixel)


def _odc_resolution(pixel: tuple[float, float]) -> Any:
    """odc-stac's ``resolution=``: a number for square pixels, else an (x, -y) Resolution."""
    from odc.geo import resxy_

    x, y = pixel
    return x if x == y else resxy_(x, -y)


# --- items, groups --------------------------------------------------------------------------


def _check_local_files(plans: list[list[ItemBand]], fail_on_error: bool) -> set[str]:
    """Hrefs of local files that do not exist (an error, or a warning and a gap)."""
    missing = set()
    for entry in (e for plan in plans for e in plan):
        if missing_local(entry.href):
            message = (
                f"item {entry.item_id!r} asset {entry.asset_key!r}: file {entry.href} does "
                "not exist. Regenerate or re-download it, drop the item, or pass "
                "fail_on_error=False to leave its pixels as NaN."
            )
            if fail_on_error:
                raise AssetReadError(message)
            warnings.warn(message, AssetReadWarning, stacklevel=3)
            missing.add(entry.href)
    return missing


def _check_overlap(
    items: list[pystac.Item],
    bbox: tuple[float, float, float, float] | None,
    geobox: GeoBox | None,
) -> None:
    """An error when the requested area touches no item: the cube would be all nodata."""
    if bbox is not None:
        area, what = bbox, f"bbox {list(bbox)}"
    elif geobox is not None:
        try:
            west, south, east, north = geobox.extent.to_crs("EPSG:4326").boundingbox
        except Exception:  # a grid that does not project to lon/lat: nothing to compare
            return
        area, what = (west, south, east, north), "the geobox"
    else:
        return
    boxes = [item.bbox for item in items if item.bbox and len(item.bbox) >= 4]
    if len(boxes) < len(items):
        return  # some item does not say where it is
    w, s, e, n = area
    for box in boxes:
        bw, bs, be, bn = box[0], box[1], box[-2], box[-1]
        if bw > be or (bw < e and w < be and bs < n and s < bn):
            return  # across the antimeridian (not checked), or overlapping
    union = [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[-2] for b in boxes),
        max(b[-1] for b in boxes),
    ]
    raise EmptyLoadError(
        f"{what} ({w:g}, {s:g}, {e:g}, {n:g} in lon/lat degrees) lies outside every item "
        f"(the {len(items)} items cover {', '.join(f'{v:g}' for v in union)}): the cube would "
        "be entirely nodata. Give a bbox inside the items (lon/lat, not CRS units), or search "
        "items over your area."
    )


def _warn_unscaled(plans: list[list[ItemBand]]) -> None:
    raw = sorted(
        {
            e.name
            for plan in plans
            for e in plan
            if e.scaling and e.scaling.rule.startswith("no scale")
        }
    )
    if raw:
        warnings.warn(
            f"bands {', '.join(raw)} have no scale/offset in their metadata and no known values: "
            "they are loaded as raw numbers (float32)",
            EarthLabWarning,
            stacklevel=3,
        )


def _centre_lon(item: pystac.Item) -> float:
    if item.bbox:
        west, east = item.bbox[0], item.bbox[2]
        return (west + east) / 2 if west <= east else ((west + east + 360) / 2 + 180) % 360 - 180
    return 0.0


def _group_keys(items: list[pystac.Item], groupby: str) -> list[Any]:
    if groupby == "id":
        return list(range(len(items)))
    if groupby == "time":
        return [acquired(item) for item in items]
    return [(acquired(item) + timedelta(hours=_centre_lon(item) / 15)).date() for item in items]


def _groups(items: list[pystac.Item], keys: list[Any]) -> list[list[int]]:
    """Item indices per time step, in the order odc-stac makes them."""
    order = sorted(range(len(items)), key=lambda i: (keys[i], acquired(items[i]), items[i].id))
    return [list(g) for _, g in itertools.groupby(order, key=lambda i: keys[i])]


def _normalised(item: pystac.Item, plan: list[ItemBand]) -> pystac.Item:
    """Copy of ``item`` with one asset per planned band, keyed by its canonical name."""
    copy = pystac.Item(
        id=item.id,
        geometry=item.geometry,
        bbox=item.bbox,
        datetime=acquired(item),
        properties={},
        stac_extensions=[_PROJ, _RASTER],
        collection=_COLLECTION,
    )
    for entry in plan:
        fields: dict[str, Any] = {}
        if entry.crs is not None:
            fields["proj:code"] = entry.crs
        if entry.shape is not None and entry.transform is not None:
            fields["proj:shape"] = list(entry.shape)
            fields["proj:transform"] = list(entry.transform)
        band: dict[str, Any] = {}
        if entry.data_type is not None:
            band["data_type"] = entry.data_type
        if entry.nodata is not None:
            band["nodata"] = entry.nodata
        elif entry.scaling is not None:
            # The metadata does not say the nodata value: read the DN as float32 and let the
            # reader turn each file's own nodata (GeoTIFF tag; MODIS fill -28672, DEA -999)
            # into NaN, item by item.
            band["data_type"], band["nodata"] = "float32", "nan"
        if band:
            fields["raster:bands"] = [band]
        copy.add_asset(
            entry.name,
            pystac.Asset(
                href=entry.href,
                media_type=pystac.MediaType.GEOTIFF,
                roles=["data"],
                extra_fields=fields,
            ),
        )
    return copy
