"""Builds keep the items' own pixel grid, as ``datacubes.load`` does.

Landsat Collection 2 scenes have their pixel edges 15 m off the multiples of 30 m (pixel centres
on multiples of 30). A cube built from them at 30 m in their own CRS must copy their pixels: the
same values and the same x/y coordinates as ``datacubes.load`` of the same items, and exactly
the files' pixels (no half-pixel shift, no resampling).

The items are small Landsat-like COGs written here with known pixels: every pixel of every band
and date holds a different number, so that any shift or resampling shows.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import yaml
from affine import Affine
from rasterio.warp import transform_bounds

import datacubes
from datacubes._grid import pixel_origins, spec_geobox
from datacubes._spec import GridSpec

EPSG = 32631
RES = 30.0
ROWS, COLS = 40, 50
DATES = [datetime(2023, 6, d, 10, 30, tzinfo=UTC) for d in (1, 17)] + [
    datetime(2023, 7, 3, 10, 30, tzinfo=UTC)
]
SCALE, OFFSET = 2.75e-05, -0.2
# asset key, common name, nodata (Landsat C2 L2: 0 for reflectance, 1 = fill bit of QA_PIXEL)
BANDS = [("red", "red", 0), ("nir08", "nir08", 0), ("qa_pixel", None, 1)]
NAMES = [key for key, _, _ in BANDS]
LANDSAT = (499_995.0, 4_800_015.0)
"""Upper-left corner of the scenes: pixel edges 15 m off multiples of 30, as in Landsat C2."""


def dn_of(date: int, band: int) -> np.ndarray:
    """The pixels of one band of one date: a different number everywhere, 0/1 left for nodata."""
    first = 2 + (date * len(BANDS) + band) * ROWS * COLS
    values = np.arange(first, first + ROWS * COLS, dtype="uint16").reshape(ROWS, COLS)
    if band < 2:
        values[3 + date, 5 + 2 * date] = 0  # one nodata pixel inside the cube per date
    return values


def landsat_items(folder: Path, origin: tuple[float, float]) -> list[pystac.Item]:
    """Three Landsat-like C2 L2 items, one COG per band, upper-left pixel corner at ``origin``."""
    transform = Affine(RES, 0.0, origin[0], 0.0, -RES, origin[1])
    west, south, east, north = transform_bounds(
        f"EPSG:{EPSG}",
        "EPSG:4326",
        origin[0],
        origin[1] - RES * ROWS,
        origin[0] + RES * COLS,
        origin[1],
    )
    items = []
    for date, when in enumerate(DATES):
        scene = f"LC08_L2SP_196030_{when:%Y%m%d}_02_T1"
        item = pystac.Item(
            id=scene,
            geometry={
                "type": "Polygon",
                "coordinates": [
                    [[west, south], [east, south], [east, north], [west, north], [west, south]]
                ],
            },
            bbox=[west, south, east, north],
            datetime=when,
            properties={
                "platform": "landsat-8",
                "instruments": ["oli", "tirs"],
                "landsat:collection_number": "02",
                "landsat:correction": "L2SP",
                "eo:cloud_cover": 5.0,
                "proj:epsg": EPSG,
                "proj:shape": [ROWS, COLS],
                "proj:transform": list(transform)[:6],
            },
            collection="landsat-c2-l2",
        )
        for band, (key, common, nodata) in enumerate(BANDS):
            path = folder / scene / f"{scene}_{key.upper()}.TIF"
            path.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(
                path,
                "w",
                driver="COG",
                width=COLS,
                height=ROWS,
                count=1,
                dtype="uint16",
                crs=f"EPSG:{EPSG}",
                transform=transform,
                nodata=nodata,
            ) as dst:
                dst.write(dn_of(date, band), 1)
            raster: dict = {"nodata": nodata, "data_type": "uint16"}
            if common is not None:
                raster |= {"scale": SCALE, "offset": OFFSET}
            fields: dict = {"raster:bands": [raster]}
            if common is not None:
                fields["eo:bands"] = [{"name": key, "common_name": common}]
            item.add_asset(
                key,
                pystac.Asset(
                    href=str(path),
                    media_type=pystac.MediaType.COG,
                    roles=["data"],
                    extra_fields=fields,
                ),
            )
        items.append(item)
    return items


def write_centres(root: Path, items: list[pystac.Item]) -> Path:
    """A centres file with one centre, ``usgs``: a static catalogue of ``items``."""
    catalog = pystac.Catalog(id="usgs-copy", description="Landsat-like test items")
    collection = pystac.Collection(
        id="landsat-c2-l2",
        description="Landsat-like test items",
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[None, None]]),
        ),
    )
    for item in items:
        collection.add_item(item.clone())
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(root / "usgs"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    path = root / "centres.yaml"
    centre = {
        "name": "usgs",
        "catalog": {"kind": "stac-static", "href": "usgs/catalog.json"},
        "collections": ["landsat-c2-l2"],
    }
    path.write_text(yaml.safe_dump({"version": 1, "centres": [centre]}))
    return path


def inner_bounds(origin: tuple[float, float], margin: int = 2) -> list[float]:
    """Bounds on multiples of 30 m, ``margin`` pixels or more inside the scenes."""
    x0, y0 = origin
    return [
        math.ceil((x0 + margin * RES) / RES) * RES,
        math.ceil((y0 - (ROWS - margin) * RES) / RES) * RES,
        math.floor((x0 + (COLS - margin) * RES) / RES) * RES,
        math.floor((y0 - margin * RES) / RES) * RES,
    ]


def spec_doc(origin: tuple[float, float], **changes: object) -> dict:
    return {
        "name": "landsat-grid",
        "licence": "CC0-1.0",
        "source": {"centres": ["usgs"], "collections": ["landsat-c2-l2"]},
        "bands": NAMES,
        "grid": {"crs": f"EPSG:{EPSG}", "resolution": RES, "bounds": inner_bounds(origin)},
        "target": {"chunks": {"time": 2, "y": 16, "x": 16}},  # edge regions on all sides
        **changes,
    }


@pytest.mark.parametrize(
    "origin",
    [LANDSAT, (500_015.0, 4_800_015.0)],
    ids=["landsat-15m-offset", "5m-and-15m-offsets"],
)
def test_build_keeps_the_items_pixels_like_load(tmp_path, origin):
    items = landsat_items(tmp_path / "files", origin)
    centres = write_centres(tmp_path, items)
    url = tmp_path / "landsat-grid.zarr"
    report = datacubes.build(spec_doc(origin), target=str(url), centres=str(centres), workers=2)
    assert report.complete and report.steps == 3
    cube = datacubes.open_cube(str(url)).compute()

    # the cube's pixel edges are the items' own: the spec's bounds widened to the items' grid
    x0, y0 = origin
    xmin, ymin, xmax, ymax = inner_bounds(origin)
    left = x0 + math.floor((xmin - x0) / RES) * RES
    top = y0 - math.floor((y0 - ymax) / RES) * RES
    cols = math.ceil((xmax - left) / RES)
    rows = math.ceil((top - ymin) / RES)
    gbox = cube.odc.geobox
    assert tuple(gbox.transform)[:6] == (RES, 0.0, left, 0.0, -RES, top)
    assert gbox.shape == (rows, cols)
    col0, row0 = round((left - x0) / RES), round((y0 - top) / RES)

    # the same pixels and coordinates as datacubes.load of the items on their own grid
    ref = datacubes.load(items, NAMES).compute()
    window = ref.isel(y=slice(row0, row0 + rows), x=slice(col0, col0 + cols))
    if origin == LANDSAT:
        np.testing.assert_array_equal(cube.x.values, window.x.values)
        np.testing.assert_array_equal(cube.y.values, window.y.values)
    else:  # load's grid, from odc-geo's fractional anchor, carries float rounding (6e-11 m)
        np.testing.assert_allclose(cube.x.values, window.x.values, rtol=0, atol=1e-6)
        np.testing.assert_allclose(cube.y.values, window.y.values, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(cube.time.values, window.time.values)
    for name in NAMES:
        assert cube[name].dtype == window[name].dtype
        np.testing.assert_array_equal(cube[name].values, window[name].values)

    # ... which are the files' pixels, untouched
    np.testing.assert_array_equal(cube.x.values, x0 + (col0 + np.arange(cols) + 0.5) * RES)
    np.testing.assert_array_equal(cube.y.values, y0 - (row0 + np.arange(rows) + 0.5) * RES)
    for date in range(len(DATES)):
        for band, name in enumerate(NAMES):
            dn = dn_of(date, band)[row0 : row0 + rows, col0 : col0 + cols]
            values = cube[name].values[date]
            if name == "qa_pixel":
                np.testing.assert_array_equal(values, dn)
                continue
            assert np.isnan(values).sum() == 1
            np.testing.assert_array_equal(np.isnan(values), dn == 0)
            found = np.round((values[dn > 0].astype("float64") - OFFSET) / SCALE)
            np.testing.assert_array_equal(found, dn[dn > 0])


def test_items_on_multiples_keep_the_spec_grid(tmp_path):
    """Items already on multiples of the resolution: the grid is exactly the spec's."""
    origin = (499_980.0, 4_800_000.0)
    items = landsat_items(tmp_path / "files", origin)
    centres = write_centres(tmp_path, items)
    url = tmp_path / "landsat-grid.zarr"
    spec = spec_doc(origin)
    datacubes.build(spec, target=str(url), centres=str(centres))
    cube = datacubes.open_cube(str(url))
    assert cube.odc.geobox == spec_geobox(datacubes.read_spec(spec).grid)
    xmin, _, _, ymax = inner_bounds(origin)
    assert tuple(cube.odc.geobox.transform)[:6] == (RES, 0.0, xmin, 0.0, -RES, ymax)


def test_pixel_origins_of_items_and_the_grid_they_give(tmp_path):
    items = landsat_items(tmp_path / "a", LANDSAT)
    assert pixel_origins(items, NAMES, f"EPSG:{EPSG}", RES) == [LANDSAT]
    # another resolution or CRS: no asset's pixels are copied, the grid is on multiples
    assert pixel_origins(items, NAMES, f"EPSG:{EPSG}", 60.0) == []
    assert pixel_origins(items, NAMES, "EPSG:32632", RES) == []
    # a scene shifted by whole pixels is on the same grid; one shifted by 10 m is not
    moved = landsat_items(tmp_path / "b", (LANDSAT[0] + 3 * RES, LANDSAT[1] - 7 * RES))
    assert pixel_origins([items[0], moved[1]], ["red"], f"EPSG:{EPSG}", RES) == [LANDSAT]
    other = landsat_items(tmp_path / "c", (LANDSAT[0] + 10, LANDSAT[1]))
    assert pixel_origins([items[0], other[1]], ["red"], f"EPSG:{EPSG}", RES) == [
        LANDSAT,
        (LANDSAT[0] + 10, LANDSAT[1]),
    ]
    grid = GridSpec(
        resolution=RES, crs=f"EPSG:{EPSG}", bounds=(500_010, 4_798_860, 501_300, 4_799_940)
    )
    snapped = spec_geobox(grid)
    assert tuple(snapped.transform)[:6] == (RES, 0.0, 500_010.0, 0.0, -RES, 4_799_940.0)
    kept = spec_geobox(grid, origin=LANDSAT)
    assert tuple(kept.transform)[:6] == (RES, 0.0, 499_995.0, 0.0, -RES, 4_799_955.0)
    assert kept.shape == (snapped.shape[0] + 1, snapped.shape[1] + 1)
    assert spec_geobox(grid, origin=(0.0, 0.0)) == snapped


def test_items_on_two_grids_fall_back_to_multiples(tmp_path):
    """Scenes that disagree: the cube is on multiples of the resolution and the report says
    why; the scene on that grid is copied, the other one is read as the loader reads it."""
    on_multiples = landsat_items(tmp_path / "a", (499_980.0, 4_800_000.0))
    offset = landsat_items(tmp_path / "b", LANDSAT)
    items = [on_multiples[0], offset[1]]
    centres = write_centres(tmp_path, items)
    url = tmp_path / "landsat-grid.zarr"
    spec = spec_doc((499_980.0, 4_800_000.0))
    report = datacubes.build(spec, target=str(url), centres=str(centres))
    assert any("2 pixel grids" in note for note in report.notes), report.notes
    cube = datacubes.open_cube(str(url))
    assert cube.odc.geobox == spec_geobox(datacubes.read_spec(spec).grid)
