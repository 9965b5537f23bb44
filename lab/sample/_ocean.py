"""The ``odatis`` daily gridded ocean-colour product of the sample.

One CF NetCDF file a day on a regular latitude/longitude grid of about 300 m (0.0027° of
latitude by 0.0037° of longitude: not square in degrees), over the scenes' extent:
chlorophyll-a (mg m-3, i.e. µg/L) and turbidity (FNU) from the same truth model as the
scenes and the stations, evaluated at each cell's centre at 10:30 UTC, packed as int16
(``scale_factor``, ``add_offset``, ``_FillValue``), latitude stored north to south. Land
cells (their centre on land in the scenes' surface classes) and cloudy cells (a smooth random
cloud field per day, 0–60 % of the area) are missing.

The collection also has one ``references`` asset: kerchunk references combining every day
along time (read once here, so that a reader opens the whole series without opening each file),
their targets relative to the reference file so that the product can be moved or served.
:func:`write_product` writes the files and the references and returns the STAC items, the
collection's assets and the generator's record. Its pieces (a day's file and item, a cloud
mask, the references and their asset) also write the ``aeris`` product (:mod:`._aerosol`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pystac.extensions.file import FileExtension

from lab.sample import _grid
from lab.sample._fields import TruthModel, days

__all__ = [
    "COLLECTION",
    "DAYS",
    "REFERENCES",
    "RESOLUTION_DEG",
    "axes",
    "cell_utm",
    "cloud_mask",
    "daily_fields",
    "day_item",
    "references_asset",
    "write_day",
    "write_product",
    "write_references",
]

COLLECTION = "ocean-colour-daily"
DAYS = 92  # a season: every day from the first acquisition's
REFERENCES = "references.json"  # in the collection's directory
RESOLUTION_DEG = (0.0027, 0.0037)  # latitude, longitude: about 300 m at 43.4°N
OVERPASS = timedelta(hours=10, minutes=30)
FILL = -32768
PACKING = {  # variable: (scale_factor, add_offset, units, long name, standard name)
    "chl": (
        0.001,
        25.0,
        "mg m-3",
        "chlorophyll-a concentration",
        "mass_concentration_of_chlorophyll_a_in_sea_water",
    ),
    "tur": (0.001, 25.0, "FNU", "turbidity", "sea_water_turbidity"),
}


def axes(grid: _grid.Grid) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes (north to south) and longitudes covering the scenes' extent."""
    xmin, ymin, xmax, ymax = grid.bounds
    corners = [_grid.to_lonlat(x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
    west, east = min(c[0] for c in corners), max(c[0] for c in corners)
    south, north = min(c[1] for c in corners), max(c[1] for c in corners)
    dlat, dlon = RESOLUTION_DEG
    lat0 = np.ceil(north / dlat) * dlat
    lon0 = np.floor(west / dlon) * dlon
    n_lat = int(np.floor((lat0 - south) / dlat))
    n_lon = int(np.floor((east - lon0) / dlon))
    lat = np.round(lat0 - (np.arange(n_lat) + 0.5) * dlat, 6)
    lon = np.round(lon0 + (np.arange(n_lon) + 0.5) * dlon, 6)
    return lat, lon


def cell_utm(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lons, lats = np.meshgrid(lon, lat)
    x, y = _grid._TO_UTM.transform(lons, lats)
    return np.asarray(x), np.asarray(y)


def _water(grid: _grid.Grid, surf: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether each cell's centre is water (lagoon or sea) in the scenes' surface classes."""
    rows = np.floor((grid.y0 - y) / _grid.RESOLUTION).astype(int)
    cols = np.floor((x - grid.x0) / _grid.RESOLUTION).astype(int)
    inside = (rows >= 0) & (rows < surf.shape[0]) & (cols >= 0) & (cols < surf.shape[1])
    water = np.zeros(x.shape, dtype=bool)
    water[inside] = surf[rows[inside], cols[inside]] != _grid.LAND
    return water


def cloud_mask(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, scale: float = 1.0
) -> np.ndarray:
    """A smooth random cloud mask covering 0 to 60 % of the area (cells ``scale`` x 1.5-5 km)."""
    cover = rng.uniform(0.0, 0.6)
    field = np.zeros(x.shape)
    xmin, xmax, ymin, ymax = x.min(), x.max(), y.min(), y.max()
    for _ in range(6):
        cx, cy = rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)
        sigma = scale * rng.uniform(1500.0, 5000.0)
        field += np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / sigma**2)
    if cover == 0.0:
        return np.zeros(x.shape, dtype=bool)
    return field >= np.quantile(field, 1.0 - cover)


def daily_fields(
    model: TruthModel,
    when: datetime,
    x: np.ndarray,
    y: np.ndarray,
    water: np.ndarray,
    clouds: np.ndarray,
) -> dict[str, np.ndarray]:
    """Chlorophyll-a and turbidity at the cells' centres at ``when`` (NaN: land or cloud)."""
    t = days(when)
    gap = ~water | clouds
    chl = np.where(gap, np.nan, model.chlorophyll_a(t, x, y))
    tur = np.where(gap, np.nan, model.turbidity(t, x, y))
    return {"chl": chl.astype("float64"), "tur": tur.astype("float64")}


def write_day(
    path: Path,
    when: datetime,
    lat: np.ndarray,
    lon: np.ndarray,
    fields: dict[str, np.ndarray],
    packing: dict[str, tuple[float, float, str, str, str]] = PACKING,
    title: str = "Daily ocean colour over the Étang de Thau (synthetic sample)",
) -> None:
    """One day of a gridded product as a CF NetCDF-4 file, each variable int16-packed."""
    import xarray as xr

    variables = {}
    for name, values in fields.items():
        scale, offset, units, long_name, standard = packing[name]
        variables[name] = xr.Variable(
            ("time", "lat", "lon"),
            values[np.newaxis].astype("float32"),
            attrs={"units": units, "long_name": long_name, "standard_name": standard},
            encoding={
                "dtype": "int16",
                "scale_factor": scale,
                "add_offset": offset,
                "_FillValue": FILL,
                "zlib": True,
                "complevel": 4,
                "chunksizes": (1, len(lat), len(lon)),
            },
        )
    dataset = xr.Dataset(
        variables,
        coords={
            "time": ("time", [np.datetime64(when.replace(tzinfo=None), "ns")]),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": title,
            "source": "earthlab sample generator: the truth model of the sample federation",
            "institution": "Earth Analytics Lab (sample data, not an observation)",
        },
    )
    dataset["time"].encoding = {
        "units": "minutes since 1970-01-01",
        "calendar": "standard",
        "dtype": "int64",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_netcdf(path, engine="h5netcdf")


def write_references(directory: Path, files: Sequence[Path]) -> Path:
    """Kerchunk references of ``files`` combined along time, targets relative to them."""
    import gc
    import json

    from kerchunk.combine import MultiZarrToZarr
    from kerchunk.hdf import SingleHdf5ToZarr

    # no cyclic garbage collection while kerchunk holds h5py's lock and waits on Zarr's
    # event-loop thread (datacubes.write_references says why)
    gc.collect()
    gc.disable()
    try:
        singles = []
        for path in files:
            with path.open("rb") as handle:
                translated = SingleHdf5ToZarr(handle, str(path), inline_threshold=300)
                singles.append(translated.translate())
        combined = MultiZarrToZarr(singles, concat_dims=["time"], inline_threshold=300).translate()
    finally:
        gc.enable()
    for key, ref in combined["refs"].items():
        if isinstance(ref, list) and ref and isinstance(ref[0], str):
            ref[0] = Path(ref[0]).relative_to(directory).as_posix()
            combined["refs"][key] = ref
    out = directory / REFERENCES
    out.write_text(json.dumps(combined, sort_keys=True), encoding="utf-8")
    return out


def day_item(
    item_id: str,
    when: datetime,
    path: Path,
    bbox: tuple[float, ...],
    cover: float,
    collection: str = COLLECTION,
    title: str = "chlorophyll-a and turbidity (CF NetCDF-4)",
) -> pystac.Item:
    west, south, east, north = bbox
    item = pystac.Item(
        id=item_id,
        geometry={
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        bbox=list(bbox),
        datetime=when,
        properties={"eo:cloud_cover": round(100 * cover, 2)},
        collection=collection,
    )
    item.add_asset(
        "data",
        pystac.Asset(
            str(path),
            title=title,
            media_type="application/x-netcdf",
            roles=["data"],
        ),
    )
    FileExtension.ext(item.assets["data"], add_if_missing=True).size = path.stat().st_size
    return item


def write_product(
    root: Path,
    grid: _grid.Grid,
    surf: np.ndarray,
    model: TruthModel,
    dates: Sequence[datetime],
    rng: np.random.Generator,
) -> tuple[list[pystac.Item], dict[str, pystac.Asset], dict[str, Any]]:
    """Write one NetCDF file a day under ``root/<collection>/<item id>/`` and the references.

    Returns the items (asset hrefs absolute), the collection's assets (the references) and the
    generator's record.
    """
    lat, lon = axes(grid)
    dlat, dlon = RESOLUTION_DEG
    x, y = cell_utm(lat, lon)
    water = _water(grid, surf, x, y)
    items, covers = [], []
    west, east = (round(float(v), 6) for v in (lon[0] - dlon / 2, lon[-1] + dlon / 2))
    south, north = (round(float(v), 6) for v in (lat[-1] - dlat / 2, lat[0] + dlat / 2))
    for day, day_rng in zip(dates, rng.spawn(len(dates)), strict=True):
        when = datetime(day.year, day.month, day.day, tzinfo=UTC) + OVERPASS
        clouds = cloud_mask(day_rng, x, y)
        fields = daily_fields(model, when, x, y, water, clouds)
        item_id = f"OC_THAU_{when:%Y%m%d}"
        path = root / COLLECTION / item_id / f"{item_id}.nc"
        write_day(path, when, lat, lon, fields)
        covers.append(float((clouds & water).sum() / max(1, water.sum())))
        items.append(day_item(item_id, when, path, (west, south, east, north), covers[-1]))
    references = write_references(root / COLLECTION, [Path(i.assets["data"].href) for i in items])
    record = {
        "collection": COLLECTION,
        "references": references.relative_to(root).as_posix(),
        "resolution_deg": list(RESOLUTION_DEG),
        "shape": [len(lat), len(lon)],
        "lat": [float(lat[0]), float(lat[-1])],
        "lon": [float(lon[0]), float(lon[-1])],
        "water_cells": int(water.sum()),
        "days": len(dates),
        "cloud_cover": [round(c, 4) for c in covers],
        "packing": {k: {"scale_factor": v[0], "add_offset": v[1]} for k, v in PACKING.items()},
    }
    return items, {"references": references_asset(references)}, record


def references_asset(path: Path) -> pystac.Asset:
    """The collection asset naming a product's kerchunk references."""
    return pystac.Asset(
        str(path),
        title="kerchunk references: every day of the collection along time",
        media_type="application/json",
        roles=["references", "index"],
        extra_fields={"xarray:open_kwargs": {"engine": "kerchunk", "consolidated": False}},
    )
