"""Eager loads of local rasters on the output grid: window reads give exactly odc-stac's dataset.

Every test loads the same items twice with ``load_values``: through the window reads
(``datacubes._paste``) and with them switched off, so that odc-stac reads. The two datasets must
be identical (values, dtypes, coordinates, attributes), and the test checks which reader ran.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

import datacubes
import lab
from datacubes import _load
from datacubes._load import load_values


@pytest.fixture(scope="module")
def items(sample_dir: Path) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json"))
    return sorted(_sen2cor(catalog), key=lambda item: item.datetime)


@pytest.fixture(scope="module")
def grid(items):
    return datacubes.load(items[:1], ["red"]).odc.geobox


def _both(monkeypatch, items, bands, geobox, **kwargs):
    """``load_values`` by window reads and by odc-stac, and whether the window reads ran."""
    used = []
    real = _load.paste_load

    def spy(*args, **kw):
        out = real(*args, **kw)
        used.append(out is not None)
        return out

    with warnings.catch_warnings(record=True) as pasted_warnings:
        warnings.simplefilter("always")
        monkeypatch.setattr(_load, "paste_load", spy)
        pasted = load_values(items, bands, geobox=geobox, **kwargs)
    with warnings.catch_warnings(record=True) as odc_warnings:
        warnings.simplefilter("always")
        monkeypatch.setattr(_load, "paste_load", lambda *a, **k: None)
        by_odc = load_values(items, bands, geobox=geobox, **kwargs)
    monkeypatch.setattr(_load, "paste_load", real)
    read_warnings = [
        [str(w.message) for w in seen if issubclass(w.category, datacubes.AssetReadWarning)]
        for seen in (pasted_warnings, odc_warnings)
    ]
    return pasted, by_odc, used, read_warnings


def _copy(item: pystac.Item, new_id: str | None = None) -> pystac.Item:
    copy = item.clone()
    for key, asset in copy.assets.items():
        asset.href = item.assets[key].get_absolute_href()
    if new_id:
        copy.id = new_id
    return copy


def _tile(item: pystac.Item, rows: slice, cols: slice, folder: Path, new_id: str) -> pystac.Item:
    """A copy of ``item`` holding only a window of its rasters (as if cut from a larger tile)."""
    tile = _copy(item, new_id)
    folder.mkdir(parents=True, exist_ok=True)
    for key in ("red", "scl"):
        source = item.assets[key].get_absolute_href()
        with rasterio.open(source) as src:
            window = Window.from_slices((rows.start, rows.stop), (cols.start, cols.stop))
            data = src.read(1, window=window)
            profile = src.profile | {
                "driver": "GTiff",
                "height": data.shape[0],
                "width": data.shape[1],
                "transform": src.window_transform(window),
            }
            profile.pop("blockxsize", None)
            profile.pop("blockysize", None)
            profile["tiled"] = False
        path = folder / f"{key}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data, 1)
        asset = tile.assets[key]
        asset.href = str(path)
        transform = profile["transform"]
        asset.extra_fields["proj:shape"] = list(data.shape)
        asset.extra_fields["proj:transform"] = list(transform)[:6]
    for key in [k for k in tile.assets if k not in ("red", "scl")]:
        del tile.assets[key]
    return tile


def _assert_same(pasted: xr.Dataset, by_odc: xr.Dataset) -> None:
    xr.testing.assert_identical(pasted, by_odc)
    for name in pasted.data_vars:
        assert pasted[name].dtype == by_odc[name].dtype
        assert pasted[name].encoding.get("grid_mapping") == by_odc[name].encoding.get(
            "grid_mapping"
        )


def test_sample_scenes_are_pasted_and_equal_odc_stac(monkeypatch, items, grid):
    bands = ["blue", "red", "nir08", "scl"]
    pasted, by_odc, used, _ = _both(monkeypatch, items[:6], bands, grid, mask="clouds")
    assert used == [True]
    _assert_same(pasted, by_odc)
    assert np.isnan(pasted.red.values).any() and np.isfinite(pasted.red.values).mean() > 0.5


def test_a_window_of_the_grid_is_pasted_and_equals_odc_stac(monkeypatch, items, grid):
    window = grid[100:300, 250:600]
    pasted, by_odc, used, _ = _both(monkeypatch, items[:4], ["red", "scl"], window)
    assert used == [True]
    _assert_same(pasted, by_odc)
    assert pasted.sizes == {"time": 4, "y": 200, "x": 350}


def test_overlapping_tiles_of_one_day_fuse_like_odc_stac(monkeypatch, items, grid, tmp_path):
    scene = items[3]
    west = _tile(scene, slice(0, 500), slice(0, 450), tmp_path / "west", "tile-west")
    east = _tile(scene, slice(200, 800), slice(300, 800), tmp_path / "east", "tile-east")
    east.datetime = scene.datetime + timedelta(minutes=1)
    with rasterio.open(west.assets["red"].href, "r+") as dst:  # a nodata hole in the overlap
        red = dst.read(1)
        red[250:350, 350:450] = 0
        dst.write(red, 1)
    # beyond the scene on two sides: pixels no tile covers
    wider = GeoBox((800, 800), grid.transform * Affine.translation(-30, -40), grid.crs)
    pasted, by_odc, used, _ = _both(monkeypatch, [east, west], ["red", "scl"], wider)
    assert used == [True]
    _assert_same(pasted, by_odc)
    assert pasted.sizes["time"] == 1
    red = pasted.red.values[0]
    assert np.isnan(red[:40]).all() and np.isnan(red[:, :30]).all()  # outside every tile
    with rasterio.open(scene.assets["red"].get_absolute_href()) as src:
        truth = src.read(1)
    # the hole in the first tile is filled from the second one, where the second has data
    hole = truth[250:350, 350:450]
    np.testing.assert_array_equal(np.isnan(red[290:390, 380:480]), hole == 0)


def test_a_missing_file_is_the_same_gap_both_ways(monkeypatch, items, grid, tmp_path):
    broken = [_copy(item) for item in items[:3]]
    broken[1].assets["red"].href = str(tmp_path / "gone" / "red.tif")
    pasted, by_odc, used, read_warnings = _both(
        monkeypatch, broken, ["red", "scl"], grid, fail_on_error=False
    )
    assert used == [True]
    _assert_same(pasted, by_odc)
    assert np.isnan(pasted.red.values[1]).all()
    assert read_warnings[0] and read_warnings[0] == read_warnings[1]
    with pytest.raises(lab.AssetReadError, match=broken[1].id):
        load_values(broken, ["red"], geobox=grid)


def test_an_unreadable_file_names_item_and_asset_and_leaves_a_gap(
    monkeypatch, items, grid, tmp_path
):
    garbage = tmp_path / "red.tif"
    garbage.write_bytes(b"this is not a GeoTIFF" * 100)
    broken = [_copy(item) for item in items[:2]]
    broken[0].assets["red"].href = str(garbage)
    with pytest.raises(lab.AssetReadError) as caught:
        load_values(broken, ["red"], geobox=grid)
    assert broken[0].id in str(caught.value) and "'red'" in str(caught.value)
    pasted, by_odc, used, read_warnings = _both(
        monkeypatch, broken, ["red"], grid, fail_on_error=False
    )
    assert used == [True]
    _assert_same(pasted, by_odc)
    assert np.isnan(pasted.red.values[0]).all() and np.isfinite(pasted.red.values[1]).any()
    assert len(read_warnings[0]) == 1 and broken[0].id in read_warnings[0][0]


def test_a_file_off_the_grid_its_metadata_claims_goes_to_odc_stac(
    monkeypatch, items, grid, tmp_path
):
    shifted = _tile(items[0], slice(0, 800), slice(0, 800), tmp_path / "shifted", "shifted")
    path = shifted.assets["red"].href
    with rasterio.open(path, "r+") as dst:  # half a pixel east of where the item says
        dst.transform = dst.transform * Affine.translation(0.5, 0)
    pasted, by_odc, used, _ = _both(monkeypatch, [shifted], ["red"], grid)
    assert used == [False]
    _assert_same(pasted, by_odc)


def test_another_pixel_size_goes_to_odc_stac(monkeypatch, items, grid):
    coarse = datacubes.load(items[:1], ["red"], resolution=40).odc.geobox
    _, _, used, _ = _both(monkeypatch, items[:2], ["red"], coarse)
    assert used == [False]


def _sen2cor(catalog: pystac.Catalog) -> list[pystac.Item]:
    """The Sen2Cor-like items of theia (it also publishes the same scenes as MAJA products)."""
    return [i for i in catalog.get_items(recursive=True) if i.collection_id == "sentinel-2-l2a"]
