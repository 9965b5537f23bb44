"""datacubes.load on the embedded sample federation: values checked against the COGs themselves."""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import dask.array
import numpy as np
import pystac
import pytest
import rasterio

import datacubes
import lab

CLOUDY = [0, 1, 3, 8, 9, 10]
REFLECTANCE = ["blue", "green", "red", "rededge1", "nir", "nir08", "swir16"]


@pytest.fixture(scope="module")
def items(sample_dir: Path) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json"))
    found = list(_sen2cor(catalog))
    assert len(found) == 16
    return sorted(found, key=lambda item: item.datetime)


def _dn(item: pystac.Item, key: str) -> np.ndarray:
    with rasterio.open(item.assets[key].get_absolute_href()) as src:
        return src.read(1)


def _by_baseline(items: list[pystac.Item], baseline: str) -> pystac.Item:
    return next(i for i in items if i.properties["s2:processing_baseline"] == baseline)


def _copy(item: pystac.Item) -> pystac.Item:
    copy = item.clone()
    for key, asset in copy.assets.items():  # clones lose the self link: make hrefs absolute
        asset.href = item.assets[key].get_absolute_href()
    return copy


def test_grid_is_the_sample_grid(items):
    ds = datacubes.load(items, ["red", "scl"])
    gbox = ds.odc.geobox
    assert ds.rio.crs.to_epsg() == 32631
    assert gbox.crs.epsg == 32631
    assert gbox.shape == (800, 800)
    assert tuple(gbox.transform)[:6] == (20.0, 0.0, 541800.0, 0.0, -20.0, 4812860.0)
    assert ds.sizes == {"time": 16, "y": 800, "x": 800}


def test_cube_is_lazy_until_compute(items, monkeypatch):
    def no_read(*args, **kwargs):
        raise AssertionError("load() must not read pixels")

    monkeypatch.setattr(rasterio, "open", no_read)
    ds = datacubes.load(items, [*REFLECTANCE, "scl"], mask="clouds")
    for name, var in ds.data_vars.items():
        assert isinstance(var.data, dask.array.Array), name
    monkeypatch.undo()
    assert float(ds.red.isel(time=0, y=400, x=400).compute()) > 0


@pytest.mark.parametrize(("baseline", "offset"), [("03.01", 0.0), ("04.00", -0.1)])
@pytest.mark.parametrize("band", ["red", "nir08", "swir16"])
def test_reflectance_recomputed_from_the_cog(items, baseline, offset, band):
    item = _by_baseline(items, baseline)
    t = [i.id for i in items].index(item.id)
    ds = datacubes.load(items, [band])
    loaded = ds[band].isel(time=t).values
    dn = _dn(item, band)
    expected = np.where(dn == 0, np.nan, dn * 1e-4 + offset)
    assert loaded.dtype == np.float32
    assert np.count_nonzero(dn) > 600_000  # most of the scene is valid
    np.testing.assert_allclose(loaded, expected, rtol=0, atol=1e-6, equal_nan=True)
    # a single pixel, spelled out: DN 10000 rho (+1000 from baseline 04.00)
    row, col = 400, 400
    assert loaded[row, col] == pytest.approx(dn[row, col] / 10000 + offset, abs=1e-6)


def test_scl_stays_an_integer_class_band(items):
    ds = datacubes.load(items, ["scl"])
    assert ds.scl.dtype == np.uint8
    scl = ds.scl.isel(time=3).values
    np.testing.assert_array_equal(scl, _dn(items[3], "scl"))
    assert ds.scl.attrs["flag_values"].tolist() == list(range(12))
    assert ds.scl.attrs["flag_meanings"].split()[9] == "cloud_high_probability"


def test_cloud_mask_nans_exactly_the_cloudy_classes(items):
    plain = datacubes.load(items, ["red"]).red.values
    masked = datacubes.load(items, ["red"], mask="clouds")
    assert "scl" not in masked  # loaded for the mask, not asked for
    red = masked.red.values
    scl = np.stack([_dn(item, "scl") for item in items])
    dn = np.stack([_dn(item, "red") for item in items])
    for value in (0, 3, 8, 9, 10):  # the sample draws these; the test is not vacuous
        assert np.count_nonzero(scl == value) > 0, value
    np.testing.assert_array_equal(dn == 0, scl == 0)  # the sample's nodata is SCL class 0
    expected_nan = np.isin(scl, CLOUDY)
    np.testing.assert_array_equal(np.isnan(red), expected_nan)
    np.testing.assert_array_equal(red[~expected_nan], plain[~expected_nan])
    assert "SCL is 0, 1, 3, 8, 9, 10" in masked.red.attrs["mask"]


def test_mask_by_chosen_classes_and_by_callable(items):
    scl = np.stack([_dn(item, "scl") for item in items[:4]])
    ds = datacubes.load(items[:4], ["red", "scl"], mask={8, 9})
    assert np.count_nonzero(np.isin(scl, [8, 9])) > 0
    nodata = scl == 0  # NaN anyway (DN 0)
    np.testing.assert_array_equal(np.isnan(ds.red.values), np.isin(scl, [8, 9]) | nodata)
    assert "scl" in ds
    water = datacubes.load(items[:4], ["red", "scl"], mask=lambda d: d.scl != 6)
    np.testing.assert_array_equal(np.isnan(water.red.values), scl != 6)


def test_item_ids_and_times_per_step(items):
    ds = datacubes.load(items, ["red"])
    assert ds.source_items.values.tolist() == [item.id for item in items]
    expected = np.array([item.datetime.replace(tzinfo=None) for item in items], "datetime64[ns]")
    np.testing.assert_array_equal(ds.time.values.astype("datetime64[ns]"), expected)
    assert ds.red.attrs["applied_offset"].tolist() == [
        -0.1 if item.properties["s2:processing_baseline"] == "04.00" else 0.0 for item in items
    ]


def test_centre_recorded_per_step(items):
    tagged = [_copy(item) for item in items[:3]]
    for item in tagged:
        item.properties["earthlab:centre"] = "theia"
    ds = datacubes.load(tagged, ["red"])
    assert ds.centre.values.tolist() == ["theia"] * 3


def test_items_from_the_federated_catalogue(sample_centres_env, items):
    found = list(lab.catalog().search(collections=["sentinel-2-l2a"]))
    ds = datacubes.load(found, ["red"])
    assert ds.centre.values.tolist() == ["theia"] * 16
    assert ds.source_items.values.tolist() == [item.id for item in items]
    dn = _dn(items[0], "red")
    np.testing.assert_allclose(
        ds.red.values[0], np.where(dn == 0, np.nan, dn * 1e-4), atol=1e-6, equal_nan=True
    )


def test_cf_attributes(items):
    ds = datacubes.load(items[:2], ["red", "scl"])
    assert ds.red.attrs["units"] == "1"
    assert ds.red.attrs["standard_name"] == "surface_bidirectional_reflectance"
    assert "665 nm" in ds.red.attrs["long_name"]
    assert "nodata" not in ds.red.attrs  # NaN is the nodata of float bands
    assert ds.scl.attrs["nodata"] == 0


def test_provider_keys_give_common_names(items):
    ds = datacubes.load(items[:2], ["B04", "B8A", "SCL"])
    assert list(ds.data_vars) == ["red", "nir08", "scl"]


def test_unknown_band_lists_the_existing_ones(items):
    with pytest.raises(datacubes.BandNotFoundError) as caught:
        datacubes.load(items, ["red", "chlorophyll"])
    message = str(caught.value)
    assert "'chlorophyll'" in message
    for name in [*REFLECTANCE, "scl"]:
        assert name in message


def test_no_item_is_a_clear_error():
    with pytest.raises(lab.NoItemsError, match="no STAC item"):
        datacubes.load([], ["red"])


def test_missing_asset_file_names_item_and_asset(items, tmp_path):
    broken = [_copy(item) for item in items[:3]]
    broken[1].assets["red"].href = str(tmp_path / "gone" / "red.tif")
    with pytest.raises(lab.AssetReadError) as caught:
        datacubes.load(broken, ["red"])
    assert broken[1].id in str(caught.value)
    assert "'red'" in str(caught.value)

    with pytest.warns(datacubes.AssetReadWarning, match=broken[1].id):
        ds = datacubes.load(broken, ["red"], fail_on_error=False)
    red = ds.red.values
    assert np.isnan(red[1]).all()  # the gap
    assert np.isfinite(red[0]).mean() > 0.5 and np.isfinite(red[2]).mean() > 0.5


def test_a_band_missing_everywhere_is_a_gap_not_a_crash(items, tmp_path):
    lone = _copy(items[0])
    lone.assets["red"].href = str(tmp_path / "red.tif")
    with pytest.warns(datacubes.AssetReadWarning):
        ds = datacubes.load([lone], ["red", "nir"], fail_on_error=False)
    assert np.isnan(ds.red.values).all()
    np.testing.assert_array_equal(np.isnan(ds.nir.values[0]), _dn(items[0], "nir") == 0)


def test_unreadable_asset_fails_at_compute_with_item_and_asset(items, tmp_path):
    garbage = tmp_path / "red.tif"
    garbage.write_bytes(b"this is not a GeoTIFF" * 100)
    broken = [_copy(item) for item in items[:2]]
    broken[0].assets["red"].href = str(garbage)
    ds = datacubes.load(broken, ["red"])  # lazy: nothing read yet
    with pytest.raises(lab.AssetReadError) as caught:
        ds.compute()
    assert broken[0].id in str(caught.value) and "'red'" in str(caught.value)

    lenient = datacubes.load(broken, ["red"], fail_on_error=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        red = lenient.red.values
    assert any(issubclass(w.category, datacubes.AssetReadWarning) for w in seen)
    assert np.isnan(red[0]).all() and np.isfinite(red[1]).mean() > 0.5


def test_one_step_with_two_scalings_is_refused(items):
    old = _by_baseline(items, "03.01")
    new = _copy(_by_baseline(items, "04.00"))
    new.id = "same-day-other-baseline"
    new.datetime = old.datetime + timedelta(minutes=5)
    with pytest.raises(lab.ConfigurationError, match="different scale/offset"):
        datacubes.load([old, new], ["red"])
    ds = datacubes.load([old, new], ["red"], groupby="time")
    assert ds.red.attrs["applied_offset"].tolist() == [0.0, -0.1]


def test_same_solar_day_items_are_fused_first_valid_wins(items):
    first = _by_baseline(items, "04.00")
    second = _copy(first)
    second.id = "same-day-second-pass"
    second.datetime = first.datetime + timedelta(minutes=5)
    ds = datacubes.load([second, first], ["red"])
    assert ds.sizes["time"] == 1
    assert ds.source_items.values.tolist() == [f"{first.id},{second.id}"]
    dn = _dn(first, "red")
    expected = np.where(dn == 0, np.nan, dn * 1e-4 - 0.1)
    np.testing.assert_allclose(ds.red.values[0], expected, rtol=0, atol=1e-6, equal_nan=True)


def test_bbox_crops_on_the_same_pixel_grid(items):
    full = datacubes.load(items[:1], ["red"])
    part = datacubes.load(items[:1], ["red"], bbox=(3.58, 43.37, 3.65, 43.42))
    assert 0 < part.sizes["x"] < 800 and 0 < part.sizes["y"] < 800
    assert set(part.x.values) <= set(full.x.values)
    sub = full.red.sel(x=part.x, y=part.y)
    np.testing.assert_array_equal(part.red.values, sub.values)


def test_coarser_resolution(items):
    ds = datacubes.load(items[:2], ["red"], resolution=40)
    assert ds.odc.geobox.shape == (400, 400)
    assert ds.odc.geobox.resolution.x == 40


def test_bad_arguments_are_named(items):
    with pytest.raises(lab.ConfigurationError, match="bbox"):
        datacubes.load(items, ["red"], bbox=(541800, 4796860, 557800, 4812860))
    with pytest.raises(lab.ConfigurationError, match="groupby"):
        datacubes.load(items, ["red"], groupby="week")
    with pytest.raises(lab.ConfigurationError, match="mask"):
        datacubes.load(items, ["red"], mask="shadows")
    with pytest.raises(lab.ConfigurationError, match="resolution"):
        datacubes.load(items, ["red"], crs="EPSG:4326")


def test_describe_bands_shows_the_rule(items):
    table = datacubes.describe_bands(items, ["red", "scl"])
    red = table[table.band == "red"]
    assert set(red.asset_key) == {"red"}
    assert red.offset.tolist() == [
        -0.1 if i.properties["s2:processing_baseline"] == "04.00" else 0.0 for i in items
    ]
    assert set(table[table.band == "scl"].scaling_rule) == {"class band: not scaled"}


# --- geobox= : an exact output grid -----------------------------------------------------------

WINDOW = (slice(100, 300), slice(250, 600))  # rows, columns of the 800 x 800 sample grid


def _dn_window(item: pystac.Item, key: str) -> np.ndarray:
    from rasterio.windows import Window

    rows, cols = WINDOW
    with rasterio.open(item.assets[key].get_absolute_href()) as src:
        return src.read(
            1, window=Window.from_slices((rows.start, rows.stop), (cols.start, cols.stop))
        )


@pytest.mark.parametrize("baseline", ["03.01", "04.00"])
def test_geobox_loads_exactly_its_pixels(items, baseline):
    full = datacubes.load(items[:1], ["red"]).odc.geobox
    window = full[WINDOW]
    item = _by_baseline(items, baseline)
    ds = datacubes.load([item], ["red", "nir08", "scl"], geobox=window)
    assert ds.odc.geobox == window
    assert ds.sizes == {"time": 1, "y": 200, "x": 350}
    assert tuple(window.transform)[:6] == (
        20.0,
        0.0,
        541800.0 + 250 * 20,
        0.0,
        -20.0,
        4812860.0 - 100 * 20,
    )
    offset = -0.1 if baseline == "04.00" else 0.0
    for band in ("red", "nir08"):
        dn = _dn_window(item, band)
        assert np.count_nonzero(dn) > 60_000  # mostly valid pixels
        expected = np.where(dn == 0, np.nan, dn * 1e-4 + offset)
        np.testing.assert_allclose(ds[band].values[0], expected, rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(ds["scl"].values[0], _dn_window(item, "scl"))


def test_geobox_with_cloud_mask_equals_the_full_load_cropped(items):
    from datacubes._grid import crop

    window = datacubes.load(items[:1], ["red"]).odc.geobox[WINDOW]
    exact = datacubes.load(items[:4], ["red", "green"], geobox=window, mask="clouds")
    wider = datacubes.load(items[:4], ["red", "green"], mask="clouds")  # the whole scene
    ref = crop(wider, window).compute()
    for name in ("red", "green"):
        np.testing.assert_array_equal(exact[name].values, ref[name].values)
        assert exact[name].attrs["mask"] == ref[name].attrs["mask"]
    scl = np.stack([_dn_window(i, "scl") for i in items[:4]])
    red = np.stack([_dn_window(i, "red") for i in items[:4]])
    masked = np.isin(scl, CLOUDY) | (red == 0)
    np.testing.assert_array_equal(np.isnan(exact["red"].values), masked)


def test_load_values_equals_the_lazy_load_computed(items):
    from datacubes._load import load_values

    window = datacubes.load(items[:1], ["red"]).odc.geobox[WINDOW]
    bands = ["red", "rededge1", "scl"]
    lazy = datacubes.load(items[:6], bands, geobox=window, mask="clouds")
    now = load_values(items[:6], bands, geobox=window, mask="clouds")
    for name in bands:
        assert isinstance(now[name].data, np.ndarray), name
        assert now[name].dtype == lazy[name].dtype
        np.testing.assert_array_equal(now[name].values, lazy[name].values)
        assert now[name].attrs.keys() == lazy[name].attrs.keys()
    np.testing.assert_array_equal(
        now["red"].attrs["applied_offset"], lazy["red"].attrs["applied_offset"]
    )
    assert now.source_items.values.tolist() == lazy.source_items.values.tolist()


def test_geobox_at_another_resolution_is_resampled_like_resolution(items):
    coarse = datacubes.load(items[:2], ["red"], resolution=40)
    ds = datacubes.load(items[:2], ["red"], geobox=coarse.odc.geobox)
    assert ds.odc.geobox == coarse.odc.geobox
    np.testing.assert_array_equal(ds.red.values, coarse.red.values)


def test_geobox_arguments_are_checked(items):
    from odc.geo.geobox import GeoBox

    window = datacubes.load(items[:1], ["red"]).odc.geobox[WINDOW]
    for extra in ({"crs": "EPSG:32631"}, {"resolution": 20}, {"bbox": (3.5, 43.3, 3.7, 43.5)}):
        name = next(iter(extra))
        with pytest.raises(lab.ConfigurationError, match=f"geobox=.*{name}=.*cannot be given"):
            datacubes.load(items[:1], ["red"], geobox=window, **extra)
    with pytest.raises(lab.ConfigurationError, match=r"must be an odc\.geo GeoBox.*tuple"):
        datacubes.load(items[:1], ["red"], geobox=(541800, 4796860, 557800, 4812860))
    no_crs = GeoBox(window.shape, window.transform, None)
    with pytest.raises(lab.ConfigurationError, match="no CRS"):
        datacubes.load(items[:1], ["red"], geobox=no_crs)


def _sen2cor(catalog: pystac.Catalog) -> list[pystac.Item]:
    """The Sen2Cor-like items of theia (it also publishes the same scenes as MAJA products)."""
    return [i for i in catalog.get_items(recursive=True) if i.collection_id == "sentinel-2-l2a"]
