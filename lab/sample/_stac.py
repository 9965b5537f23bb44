"""STAC items, collections, static catalogues and stac-geoparquet of the sample centres."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pystac
import rustac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from lab.sample import SampleGenerationError, _grid
from lab.sample._scenes import BANDS, MGRS_TILE, Scene

S2_COLLECTION = "sentinel-2-l2a"
INSITU_COLLECTION = "insitu-water-quality"
LICENSE = "CC0-1.0"  # synthetic data
PARQUET_TYPE = "application/vnd.apache.parquet"


def footprint(grid: _grid.Grid) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON polygon (WGS84, 6 decimals) and bbox of the scene grid's extent."""
    xmin, ymin, xmax, ymax = grid.bounds
    corners = [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)]
    ring = [[round(c, 6) for c in _grid.to_lonlat(x, y)] for x, y in corners]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return {"type": "Polygon", "coordinates": [ring]}, [min(lons), min(lats), max(lons), max(lats)]


def scene_item(
    scene: Scene, grid: _grid.Grid, directory: Path, sizes: dict[str, int]
) -> pystac.Item:
    """STAC item of one acquisition, its assets pointing at the COGs in ``directory``."""
    acq = scene.acquisition
    geometry, bbox = footprint(grid)
    processed = acq.datetime + timedelta(hours=6)
    item = pystac.Item(
        id=acq.item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=acq.datetime,
        properties={
            "created": pystac.utils.datetime_to_str(processed),
            "updated": pystac.utils.datetime_to_str(processed),
            "platform": acq.platform,
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "gsd": _grid.RESOLUTION,
            "s2:mgrs_tile": MGRS_TILE,
            "s2:processing_baseline": acq.baseline,
        },
        collection=S2_COLLECTION,
    )
    EOExtension.ext(item, add_if_missing=True).cloud_cover = scene.cloud_cover
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code=_grid.CRS,
        shape=list(_grid.SHAPE),
        transform=list(grid.transform)[:6],
        bbox=list(grid.bounds),
    )
    offset = -0.1 if acq.dn_offset else 0.0
    for key, name, common_name, wavelength, fwhm in BANDS:
        asset = _cog_asset(directory / f"{key}.tif", f"{common_name.capitalize()} ({name})")
        asset.roles = ["data", "reflectance"]
        item.add_asset(key, asset)
        EOExtension.ext(asset, add_if_missing=True).bands = [
            Band.create(
                name=name,
                common_name=common_name,
                center_wavelength=wavelength,
                full_width_half_max=fwhm,
            )
        ]
        _raster_band(asset, DataType.UINT16, scale=0.0001, offset=offset)
        FileExtension.ext(asset, add_if_missing=True).size = sizes[key]
    scl = _cog_asset(directory / "scl.tif", "Scene classification map (SCL)")
    item.add_asset("scl", scl)
    _raster_band(scl, DataType.UINT8)
    FileExtension.ext(scl, add_if_missing=True).size = sizes["scl"]
    return item


def station_item(
    station: _grid.Station,
    start: datetime,
    end: datetime,
    files: dict[str, Path],
) -> pystac.Item:
    """STAC item of one in-situ station, with its table as ``parquet`` and ``csv`` assets."""
    item = pystac.Item(
        id=station_item_id(station.station_id),
        geometry={"type": "Point", "coordinates": [station.lon, station.lat]},
        bbox=[station.lon, station.lat, station.lon, station.lat],
        datetime=None,
        start_datetime=start,
        end_datetime=end,
        properties={
            "title": f"Water quality at {station.station_id}",
            "created": pystac.utils.datetime_to_str(end + timedelta(days=1)),
            "updated": pystac.utils.datetime_to_str(end + timedelta(days=1)),
            "earthlab:station_id": station.station_id,
            "earthlab:parameters": ["turbidity", "chlorophyll_a"],
        },
        collection=INSITU_COLLECTION,
    )
    for key, media_type in (("parquet", PARQUET_TYPE), ("csv", "text/csv")):
        path = files[key]
        asset = pystac.Asset(
            str(path), title=f"{station.station_id} samples", media_type=media_type
        )
        asset.roles = ["data"]
        item.add_asset(key, asset)
        FileExtension.ext(asset, add_if_missing=True).size = path.stat().st_size
    return item


def station_item_id(station_id: str) -> str:
    """Item id of a station's in-situ item."""
    return f"{station_id}-water-quality"


@dataclass(frozen=True)
class SampleCollection:
    """One collection of a sample centre: its items and collection-level assets.

    Asset hrefs (of the items and of the collection) are absolute paths under
    ``<centre root>/<id>/``.
    """

    id: str
    description: str
    items: Sequence[pystac.Item]
    license: str = LICENSE
    assets: Mapping[str, pystac.Asset] = field(default_factory=dict)


def write_centre(
    root: Path,
    *,
    centre: str,
    title: str,
    description: str,
    collections: Sequence[SampleCollection],
) -> None:
    """Write the self-contained static catalogue and ``items.parquet`` of one centre.

    Item asset hrefs must be absolute paths under ``root/<collection>/<item id>/``; both
    outputs get hrefs relative to the item file (catalogue) or to ``root`` (parquet).
    """
    catalog = pystac.Catalog(id=centre, title=title, description=description)
    for spec in collections:
        collection = pystac.Collection(
            id=spec.id,
            description=spec.description,
            extent=pystac.Extent(
                pystac.SpatialExtent([_union_bbox(spec.items)]),
                pystac.TemporalExtent([_interval(spec.items)]),
            ),
            license=spec.license,
            title=spec.description,
        )
        for key, asset in spec.assets.items():
            collection.add_asset(key, asset.clone())
        catalog.add_child(collection)
        collection.add_items(spec.items)
    catalog.normalize_hrefs(str(root))
    for spec in collections:
        for item in spec.items:
            item.make_asset_hrefs_relative()
    for child in catalog.get_children():
        if isinstance(child, pystac.Collection):
            child.make_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    parquet = root / "items.parquet"
    rustac.write_sync(
        str(parquet), [_parquet_dict(it, spec.id) for spec in collections for it in spec.items]
    )
    _sort_geometry_types(parquet)


def _sort_geometry_types(path: Path) -> None:
    """Sort the GeoParquet ``geometry_types`` list in place, for byte-identical samples.

    rustac writes the geometry types of a file mixing Points and Polygons in an arbitrary
    order (a hash set's). The sorted list has the same length, so the footer keeps its size
    and offsets.
    """
    import re

    data = path.read_bytes()

    def ordered(match: re.Match[bytes]) -> bytes:
        names = sorted(re.findall(rb'"[^"]*"', match.group(1)))
        return b'"geometry_types":[' + b",".join(names) + b"]"

    fixed = re.sub(rb'"geometry_types":\[([^\]]*)\]', ordered, data)
    if len(fixed) != len(data):  # pragma: no cover - only reordered, never resized
        raise SampleGenerationError(f"cannot normalise the GeoParquet metadata of {path}")
    path.write_bytes(fixed)


def _parquet_dict(item: pystac.Item, collection_id: str) -> dict[str, Any]:
    """Item as a dict for stac-geoparquet: hrefs relative to the centre directory."""
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    for asset in d["assets"].values():
        name = asset["href"].removeprefix("./")
        asset["href"] = f"{collection_id}/{item.id}/{name}"
    d["links"] = [
        {
            "rel": "collection",
            "href": f"{collection_id}/collection.json",
            "type": "application/json",
        }
    ]
    return d


def _cog_asset(path: Path, title: str) -> pystac.Asset:
    return pystac.Asset(str(path), title=title, media_type=pystac.MediaType.COG, roles=["data"])


def _raster_band(
    asset: pystac.Asset,
    data_type: DataType,
    scale: float | None = None,
    offset: float | None = None,
) -> None:
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(
            nodata=0,
            data_type=data_type,
            spatial_resolution=_grid.RESOLUTION,
            scale=scale,
            offset=offset,
        )
    ]


def _union_bbox(items: Sequence[pystac.Item]) -> list[float]:
    boxes = [it.bbox for it in items if it.bbox]
    return [min(b[i] for b in boxes) for i in (0, 1)] + [max(b[i] for b in boxes) for i in (2, 3)]


def _interval(items: Sequence[pystac.Item]) -> list[datetime]:
    starts = [it.datetime or it.common_metadata.start_datetime for it in items]
    ends = [it.datetime or it.common_metadata.end_datetime for it in items]
    return [min(s for s in starts if s), max(e for e in ends if e)]
