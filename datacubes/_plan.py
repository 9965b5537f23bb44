"""Load plan: for every item and requested band, the asset, grid, nodata and scaling to use.

Everything here is metadata only (no pixel is read), so it is cheap, testable on real provider
items, and shown to users by :func:`datacubes.describe_bands`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pystac
from affine import Affine
from odc.geo.geobox import GeoBox

from datacubes._bands import BandInfo, Family, asset_resolution, is_level2, resolve_band
from datacubes._errors import AssetMetadataError, BandNotFoundError
from datacubes._io import READ_ERRORS, FileHeader, file_header, missing_local
from datacubes._scaling import (
    DEA_ARD_NODATA,
    RAW_RULE,
    Scaling,
    asset_data_type,
    asset_nodata,
    class_band_reason,
    dea_ard_reflectance,
    scaling_for,
)
from lab import ConfigurationError, NoItemsError


@dataclass(frozen=True)
class ItemBand:
    """One requested band of one item, resolved."""

    item_id: str
    """STAC item id."""
    name: str
    """Canonical band name (output variable)."""
    asset_key: str
    """Key of the asset holding the band in the original item."""
    href: str
    """Absolute href of the asset."""
    crs: str | None
    """CRS of the asset (``EPSG:32631`` or WKT), when the item says."""
    shape: tuple[int, int] | None
    """``proj:shape`` (rows, columns), when the item says."""
    transform: tuple[float, ...] | None
    """First six terms of ``proj:transform``, when the item says."""
    resolution: float | None
    """Native pixel width, when known."""
    pixel_size: tuple[float, float] | None
    """Native pixel width and height ``(x, y)``, positive, when known: they differ on
    latitude/longitude grids (Copernicus DEM tiles beyond 50 degrees of latitude)."""
    data_type: str | None
    """Pixel data type of the asset, when known."""
    nodata: float | None
    """Nodata value of the asset, when known."""
    scaling: Scaling | None
    """Scale/offset to apply, ``None`` for class bands."""
    info: BandInfo | None
    """Alias-table entry, when the sensor family is known."""
    family: Family | None
    """Sensor family of the item, when known."""
    level2: bool
    """Whether the item is a surface (Level-2) product."""
    class_rule: str | None = None
    """Why a band outside the band tables is a class band (kept as integers), else ``None``."""

    @property
    def geobox(self) -> GeoBox | None:
        """Native pixel grid of the asset, when CRS, shape and transform are all known."""
        if self.crs is None or self.shape is None or self.transform is None:
            return None
        return GeoBox(self.shape, Affine(*self.transform), self.crs)


def as_items(items: Iterable[pystac.Item] | pystac.Item) -> list[pystac.Item]:
    """Materialise the items, checking their type; an empty list is an error."""
    if isinstance(items, pystac.Item):
        items = [items]
    if isinstance(items, (str, bytes, dict)):
        raise ConfigurationError(
            f"items must be an iterable of pystac.Item, got {type(items).__name__}; "
            "use lab.catalog().search(...) or pystac.ItemCollection.from_file(...)"
        )
    found = list(items)
    if not found:
        raise NoItemsError(
            "no STAC item to load: the search returned nothing. Widen the date range, the "
            "bounding box or the collections, or check the centres answered (result.federation)"
        )
    for item in found:
        if not isinstance(item, pystac.Item):
            raise ConfigurationError(
                f"items must be pystac.Item objects, got {type(item).__name__}; "
                "convert dictionaries with pystac.Item.from_dict"
            )
    ids = [item.id for item in found]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigurationError(f"items are repeated: {', '.join(duplicates)}; pass each once")
    return found


def as_band_list(bands: str | Sequence[str]) -> list[str]:
    """Requested band names as a non-empty list of distinct strings."""
    names = [bands] if isinstance(bands, str) else list(bands)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigurationError(
            f"bands must be a band name or a list of band names, e.g. ['red', 'nir'], got {bands!r}"
        )
    if len(set(names)) != len(names):
        raise ConfigurationError(f"bands are repeated in {names!r}")
    return names


def _proj(item: pystac.Item, asset: pystac.Asset, key: str) -> object:
    value = asset.extra_fields.get(key)
    return item.properties.get(key) if value is None else value


def _crs(item: pystac.Item, asset: pystac.Asset) -> str | None:
    code = _proj(item, asset, "proj:code")
    if code:
        return str(code)
    epsg = _proj(item, asset, "proj:epsg")
    if epsg:
        return f"EPSG:{int(epsg)}"  # type: ignore[call-overload]
    wkt = _proj(item, asset, "proj:wkt2")
    return str(wkt) if wkt else None


def _absolute_href(item: pystac.Item, key: str) -> str:
    href = item.assets[key].get_absolute_href()
    if href is None:
        raise ConfigurationError(
            f"item {item.id!r} asset {key!r} has a relative href "
            f"{item.assets[key].href!r} and the item has no self link to resolve it; read "
            "items with pystac (Catalog.from_file / Item.from_file) or make hrefs absolute"
        )
    return href


def _default_nodata(item: pystac.Item, key: str, info: BandInfo | None) -> float | None:
    """Nodata when the item does not say: the band table's, else the product's known value."""
    if info is not None and info.nodata is not None:
        return info.nodata
    if dea_ard_reflectance(item, key) is not None:
        return DEA_ARD_NODATA
    return None


def _header(href: str) -> FileHeader | None:
    """The file's header, ``None`` when it is missing or unreadable (the read reports it)."""
    if missing_local(href):
        return None
    try:
        return file_header(href)
    except READ_ERRORS:
        return None


def _class_band(
    asset: pystac.Asset,
    key: str,
    href: str,
    scaling: Scaling | None,
    data_type: str | None,
    nodata: float | None,
) -> tuple[str, str | None, float | None] | None:
    """``(why, data type, nodata)`` when a band outside the band tables is a class band.

    A band nothing scales (no raster extension scale/offset, no provider rule) whose
    metadata says it holds classes (:func:`~datacubes._scaling.class_band_reason`) and whose
    data type is an integer. When STAC lacks the data type or the nodata, the file's header
    says them (read once per file, cached). ``None`` for any other band.
    """
    if scaling is None or scaling.rule != RAW_RULE:
        return None
    why = class_band_reason(asset, key)
    if why is None:
        return None
    if data_type is None or nodata is None:
        header = _header(href)
        if header is not None:
            data_type = data_type or header.dtype
            if nodata is None and header.nodata is not None:
                nodata = float(header.nodata)
    try:
        integer = data_type is not None and np.dtype(data_type).kind in "iu"
    except TypeError:  # a data type numpy does not know (cint16...): not a class band
        integer = False
    if not integer or data_type is None:
        return None
    return why, data_type, nodata


def _fits(value: float, data_type: str) -> bool:
    limits = np.iinfo(np.dtype(data_type))
    return not math.isnan(value) and value == int(value) and limits.min <= value <= limits.max


def _check_nodata(
    item_id: str, name: str, key: str, data_type: str | None, nodata: float | None
) -> None:
    """An error when the nodata value cannot occur in pixels of the asset's integer type.

    A uint16 band with nodata -9999 or 70000 (or NaN, or 0.5) contradicts itself: no pixel can
    hold that value, so either the data type or the nodata is wrong, and the loader would fail
    deep in the read (or keep the real fill value as data). Checked when the load is planned,
    before anything is read.
    """
    if nodata is None or data_type is None:
        return
    try:
        kind = np.dtype(data_type).kind
    except TypeError:  # a data type numpy does not know (cint16...): not checked here
        return
    if kind not in "iu" or _fits(nodata, data_type):
        return
    limits = np.iinfo(np.dtype(data_type))
    raise AssetMetadataError(
        f"item {item_id!r} band {name!r} (asset {key!r}): nodata {nodata:g} cannot occur in "
        f"{data_type} pixels (whole numbers {limits.min}..{limits.max}), so the metadata (raster:bands "
        "nodata / data_type) contradicts itself. Fix the item's nodata or data_type (the "
        "file's own header says which: rio info), or leave the item out"
    )


def plan_item(item: pystac.Item, bands: Sequence[str], resolution: float | None) -> list[ItemBand]:
    """Resolve every requested band of one item."""
    plan = []
    for requested in bands:
        band = resolve_band(item, requested, resolution)
        asset = item.assets[band.asset_key]
        href = _absolute_href(item, band.asset_key)
        shape: Any = _proj(item, asset, "proj:shape")
        transform: Any = _proj(item, asset, "proj:transform")
        info = band.info
        resolution = asset_resolution(item, band.asset_key)
        pixel_size = None
        if transform:
            pixel_size = (abs(float(transform[0])), abs(float(transform[4])))
        elif resolution:
            pixel_size = (resolution, resolution)
        scaling = scaling_for(item, band)
        data_type = asset_data_type(asset, info.data_type if info else None)
        nodata = asset_nodata(asset, _default_nodata(item, band.asset_key, info))
        found = _class_band(asset, band.asset_key, href, scaling, data_type, nodata)
        class_rule = None
        if found is not None:
            class_rule, data_type, nodata = found
            scaling = None
        _check_nodata(item.id, band.name, band.asset_key, data_type, nodata)
        plan.append(
            ItemBand(
                item_id=item.id,
                name=band.name,
                asset_key=band.asset_key,
                href=href,
                crs=_crs(item, asset),
                shape=(int(shape[0]), int(shape[1])) if shape else None,
                transform=tuple(float(v) for v in transform[:6]) if transform else None,
                resolution=resolution,
                pixel_size=pixel_size,
                data_type=data_type,
                nodata=nodata,
                scaling=scaling,
                info=info,
                family=band.family,
                level2=is_level2(item),
                class_rule=class_rule,
            )
        )
    return plan


def plan_items(
    items: Sequence[pystac.Item], bands: Sequence[str], resolution: float | None
) -> list[list[ItemBand]]:
    """Resolve the bands of every item and check they agree across items."""
    plans = [plan_item(item, bands, resolution) for item in items]
    for position, requested in enumerate(bands):
        names = {plan[position].name for plan in plans}
        if len(names) > 1:
            raise ConfigurationError(
                f"band {requested!r} means different bands in these items ({', '.join(sorted(names))}); "
                "load items of one sensor at a time"
            )
        types = {plan[position].data_type for plan in plans}
        if len(types) > 1:
            raise ConfigurationError(
                f"band {requested!r} has different data types across items "
                f"({', '.join(sorted(map(str, types)))}); load items of one product at a time"
            )
    resolved = [entry.name for entry in plans[0]]
    repeated = sorted({n for n in resolved if resolved.count(n) > 1})
    if repeated:
        raise ConfigurationError(
            f"bands {list(bands)!r} name the same band twice ({', '.join(repeated)}); ask once"
        )
    return plans


def require_band(items: Sequence[pystac.Item], name: str, why: str) -> None:
    """Check every item has band ``name``; the error says ``why`` it is needed."""
    lacking = []
    for item in items:
        try:
            resolve_band(item, name)
        except BandNotFoundError:
            lacking.append(item.id)
    if lacking:
        shown = ", ".join(lacking[:5]) + (" ..." if len(lacking) > 5 else "")
        raise BandNotFoundError(
            f"{why} needs band {name!r}, which {len(lacking)} item(s) lack: {shown}. "
            "Use items that have it (Sentinel-2 L2A for scl) or pass mask=None."
        )


def native_crs(plans: Sequence[Sequence[ItemBand]]) -> str:
    """The one CRS of all planned assets, or an error saying what to pass."""
    crss = {entry.crs for plan in plans for entry in plan}
    if None in crss:
        raise ConfigurationError(
            "some items do not say their projection (no proj:code / proj:epsg): pass crs= "
            "and resolution= to choose the output grid"
        )
    if len(crss) > 1:
        raise ConfigurationError(
            f"items are in several CRSs ({', '.join(sorted(map(str, crss)))}): pass crs= "
            "(e.g. one of these) and resolution= in its units"
        )
    return str(crss.pop())


def finest_resolution(plans: Sequence[Sequence[ItemBand]]) -> float:
    """Finest native pixel size among the planned assets."""
    sizes = [entry.resolution for plan in plans for entry in plan if entry.resolution]
    if not sizes:
        raise ConfigurationError(
            "the items do not say their pixel size (proj:transform, gsd): pass resolution="
        )
    return min(sizes)


def finest_pixel(plans: Sequence[Sequence[ItemBand]]) -> tuple[float, float]:
    """``(x, y)`` pixel size of the finest planned asset (by width, then height)."""
    sizes = [entry.pixel_size for plan in plans for entry in plan if entry.pixel_size]
    if not sizes:
        raise ConfigurationError(
            "the items do not say their pixel size (proj:transform, gsd): pass resolution="
        )
    return min(sizes)


def native_geobox(
    plans: Sequence[Sequence[ItemBand]],
    crs: str,
    resolution: float | tuple[float, float],
    bbox: tuple[float, float, float, float] | None,
) -> GeoBox | None:
    """Output grid in the items' own CRS, aligned on their pixel grid.

    The extent is the union of the assets' grids (or ``bbox``, in lon/lat degrees); the
    pixel edges keep the alignment of the first item's finest asset, so that loading at the
    native resolution copies pixels without resampling. ``None`` when the items lack
    ``proj:shape``/``proj:transform`` (odc-stac then works from the footprints).
    """
    from odc.geo import resxy_, xy_
    from odc.geo.geom import BoundingBox, bbox_union

    res_x, res_y = resolution if isinstance(resolution, tuple) else (resolution, resolution)

    boxes = [entry.geobox for plan in plans for entry in plan]
    if any(box is None for box in boxes):
        return None
    grids = [box for box in boxes if box is not None]
    reference = min(grids, key=lambda box: abs(box.resolution.x))
    transform = reference.transform

    def fraction(origin: float, size: float) -> float:
        value = (origin / size) % 1.0
        return 0.0 if math.isclose(value, 0.0, abs_tol=1e-6) or math.isclose(value, 1.0) else value

    anchor = xy_(fraction(transform.c, res_x), fraction(transform.f, res_y))
    if bbox is None:
        extent = bbox_union(box.boundingbox for box in grids)
    else:
        extent = BoundingBox(*bbox, crs="EPSG:4326").to_crs(crs)
    return GeoBox.from_bbox(extent, crs=crs, resolution=resxy_(res_x, -res_y), anchor=anchor)


def acquired(item: pystac.Item) -> datetime:
    """Acquisition time, UTC-aware (``datetime``, else ``start_datetime``)."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise ConfigurationError(f"item {item.id!r} has neither datetime nor start_datetime")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def describe_plan(
    items: Sequence[pystac.Item], plans: Sequence[Sequence[ItemBand]]
) -> pd.DataFrame:
    """One row per item and band: what :func:`datacubes.load` reads and how it scales it."""
    rows = []
    for item, plan in zip(items, plans, strict=True):
        for entry in plan:
            scaling = entry.scaling
            rows.append(
                {
                    "item_id": item.id,
                    "collection": item.collection_id,
                    "datetime": pd.Timestamp(acquired(item)),
                    "band": entry.name,
                    "asset_key": entry.asset_key,
                    "href": entry.href,
                    "crs": entry.crs,
                    "resolution": entry.resolution,
                    "data_type": entry.data_type,
                    "nodata": entry.nodata,
                    "scale": scaling.scale if scaling else None,
                    "offset": scaling.offset if scaling else None,
                    "scaling_rule": scaling.rule
                    if scaling
                    else f"class band{f' ({entry.class_rule})' if entry.class_rule else ''}: "
                    "not scaled",
                }
            )
    return pd.DataFrame(rows)
