"""THEIA MAJA Sentinel-2 L2A through ``datacubes.load``, and one mask registry for three families.

The MAJA products are real THEIA/MUSCATE crops of tile 31UFQ (``tests/data/maja/``, origin and
licence in its SOURCES.md): FRE B3/B4 at 10 m, B8A/B11 at 20 m and MASKS/CLM_R2, int16
reflectance x 10000 with nodata -10000 and **no nodata tag in the files**. Every expected value
below is read from the files with rasterio in the test, independently of the loader.
"""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine

import datacubes
import lab

MAJA = Path(__file__).parent / "data" / "maja"
REFERENCE = Path(__file__).parent / "data" / "reference" / "stac"
OUTSIDE = "SENTINEL2A_20151203-105818-575_L2A_T31UFQ_D_V1-1"  # outside the swath: all -10000
CLOUDY = "SENTINEL2A_20160418-104023-463_L2A_T31UFQ_D_V1-1"  # clouds and shadows, 24 clear px
CLEAR = "SENTINEL2A_20170622-104021-457_L2A_T31UFQ_C_V2-2"  # CLM 0 everywhere
THIN = "SENTINEL2A_20170910-104212-297_L2A_T31UFQ_D_V1-4"  # thin clouds (CLM 16 alone) too
PRODUCTS = (OUTSIDE, CLOUDY, CLEAR, THIN)


def _read(product: str, suffix: str) -> tuple[np.ndarray, Any]:
    """Pixels and nodata tag of one file of a product, read with rasterio."""
    folder = MAJA / product
    path = folder / "MASKS" / f"{product}_{suffix}.tif"
    if not path.exists():
        path = folder / f"{product}_{suffix}.tif"
    with rasterio.open(path) as src:
        return src.read(1), src.nodata


def _load(items: list[pystac.Item], bands: list[str], **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lab.EarthLabWarning)
        return datacubes.load(items, bands, **kwargs).compute()


@pytest.fixture(scope="module")
def items() -> list[pystac.Item]:
    return [datacubes.maja_item(MAJA / name) for name in PRODUCTS]


# -- items ------------------------------------------------------------------------------------


def test_a_product_directory_becomes_an_item_of_theia_s_dialect(items) -> None:
    item = items[1]
    assert item.id == CLOUDY
    assert item.collection_id == "sentinel2-l2a-theia"
    assert sorted(item.assets) == ["B03", "B04", "B11", "B8A", "CLM_R2"]
    assert item.assets["B04"].href.endswith(f"{CLOUDY}_FRE_B4.tif")
    assert "FRE_B4" in (item.assets["B04"].title or "")
    assert item.assets["B04"].extra_fields["proj:code"] == "EPSG:32631"
    assert item.assets["B04"].extra_fields["proj:shape"] == [80, 80]
    assert item.assets["B8A"].extra_fields["proj:shape"] == [40, 40]
    assert item.assets["B8A"].extra_fields["proj:transform"] == [20, 0, 670540, 0, -20, 5461500]
    assert item.datetime.isoformat() == "2016-04-18T10:40:23.463000+00:00"
    assert item.properties["platform"] == "sentinel-2a"
    assert item.properties["grid:code"] == "MGRS-31UFQ"
    assert "raster:bands" not in item.assets["B04"].extra_fields  # the band table scales
    pystac.Item.from_dict(item.to_dict())  # round-trips


def test_bands_by_common_name_with_scale_and_nodata_from_the_product(items) -> None:
    table = datacubes.describe_bands(items[1:2], ["red", "green", "nir08", "swir16"])
    assert list(table.asset_key) == ["B04", "B03", "B8A", "B11"]
    assert set(table.scale) == {1e-4}
    assert set(table.offset) == {0.0}
    assert set(table.nodata) == {-10000.0}
    assert set(table.data_type) == {"int16"}
    assert all("theia-maja" in rule for rule in table.scaling_rule)
    assert list(table.resolution) == [10.0, 10.0, 20.0, 20.0]


def test_reflectance_by_hand_and_nodata_without_a_tag(items) -> None:
    red, tag = _read(CLOUDY, "FRE_B4")
    nir, nir_tag = _read(CLOUDY, "FRE_B8A")
    assert tag is None and nir_tag is None  # the files say no nodata: the product rule does
    # CLOUDY B4 at row 10, column 20 holds DN 114: reflectance 0.0114; B8A at row 5,
    # column 7 (20 m grid) holds the DN read below, / 10000.
    assert red[10, 20] == 114
    ds = _load(items, ["red", "nir08"], resolution=10)
    step = list(ds.source_items.values).index(CLOUDY)
    assert ds.red.dtype == np.float32
    assert ds.red.values[step, 10, 20] == pytest.approx(0.0114, abs=1e-7)
    np.testing.assert_allclose(ds.red.values[step], red / 10000, rtol=1e-6)
    # 20 m pixel (5, 7) covers 10 m pixels rows 10-11, columns 14-15 of the output grid
    assert ds.nir08.values[step, 10, 14] == pytest.approx(nir[5, 7] / 10000, rel=1e-6)
    assert ds.nir08.values[step, 11, 15] == pytest.approx(nir[5, 7] / 10000, rel=1e-6)
    # outside the swath: every DN is -10000 and every value NaN
    outside, _ = _read(OUTSIDE, "FRE_B4")
    assert (outside == -10000).all()
    first = list(ds.source_items.values).index(OUTSIDE)
    assert np.isnan(ds.red.values[first]).all()
    assert np.isnan(ds.nir08.values[first]).all()
    assert ds.red.attrs["units"] == "1"
    assert ds.red.attrs["standard_name"] == "surface_bidirectional_reflectance"


def test_sre_by_choice(tmp_path: Path) -> None:
    """``reflectance="SRE"`` points the band assets at the SRE files (made here from FRE)."""
    folder = tmp_path / CLEAR
    shutil.copytree(MAJA / CLEAR, folder)
    with pytest.raises(lab.ConfigurationError, match=r"no SRE band file.*_FRE_B4.tif"):
        datacubes.maja_item(folder, reflectance="SRE")
    for path in folder.glob("*_FRE_*.tif"):
        path.rename(path.with_name(path.name.replace("_FRE_", "_SRE_")))
    item = datacubes.maja_item(folder, reflectance="SRE")
    assert item.assets["B04"].href.endswith("_SRE_B4.tif")
    assert "surface reflectance" in (item.assets["B04"].title or "")
    red, _ = _read(CLEAR, "FRE_B4")
    ds = _load([item], ["red"])
    np.testing.assert_allclose(ds.red.values[0], red / 10000, rtol=1e-6)
    with pytest.raises(lab.ConfigurationError, match="reflectance must be 'FRE' or 'SRE'"):
        datacubes.maja_item(folder, reflectance="TOA")  # type: ignore[arg-type]
    with pytest.raises(lab.ConfigurationError, match="not named like a THEIA MAJA"):
        datacubes.maja_item(tmp_path)


# -- masks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("product", PRODUCTS)
def test_clouds_mask_removes_exactly_the_clm_cloud_and_shadow_pixels(items, product) -> None:
    """``mask="clouds"`` on MAJA: NaN where any CLM bit is set, and where DN is -10000."""
    clm, _ = _read(product, "CLM_R2")
    nir, _ = _read(product, "FRE_B8A")
    red, _ = _read(product, "FRE_B4")
    item = items[PRODUCTS.index(product)]
    ds = _load([item], ["red", "nir08"], mask="clouds")
    cloudy = clm != 0  # bits 0-7 are all cloud or cloud-shadow bits (MUSCATE CLM)
    # at 20 m the mask is CLM_R2 pixel for pixel
    expected20 = cloudy | (nir == -10000)
    np.testing.assert_array_equal(
        np.isnan(ds.nir08.values[0]), np.kron(expected20, np.ones((2, 2)))
    )
    # the crops have no CLM_R1: 10 m bands take CLM_R2, each 20 m pixel over 2 x 2 pixels
    expected10 = np.kron(cloudy, np.ones((2, 2), bool)) | (red == -10000)
    np.testing.assert_array_equal(np.isnan(ds.red.values[0]), expected10)
    assert ds.red.attrs["mask"] == "NaN where CLM_R2 has any of bits 0, 1, 2, 3, 4, 5, 6, 7 set"
    assert "clm_r2" not in ds
    counts = {OUTSIDE: 0, CLOUDY: 1576, CLEAR: 0, THIN: 1600}  # np.count_nonzero(CLM) per file
    assert int(cloudy.sum()) == counts[product]


def test_maja_masks_at_the_band_s_resolution(tmp_path: Path) -> None:
    """With CLM_R1 and CLM_R2, 10 m bands take R1 and 20 m bands R2."""
    folder = tmp_path / CLOUDY
    shutil.copytree(MAJA / CLOUDY, folder)
    clm2, _ = _read(CLOUDY, "CLM_R2")
    r1 = np.zeros((80, 80), "uint8")
    r1[:40, :40] = 2  # a cloud over the top-left quarter only
    with rasterio.open(folder / "MASKS" / f"{CLOUDY}_CLM_R2.tif") as src:
        profile = src.profile
    profile.update(width=80, height=80, transform=Affine(10, 0, 670540, 0, -10, 5461500))
    with rasterio.open(folder / "MASKS" / f"{CLOUDY}_CLM_R1.tif", "w", **profile) as dst:
        dst.write(r1, 1)
    item = datacubes.maja_item(folder)
    ds = _load([item], ["red", "nir08"], mask="clouds")
    np.testing.assert_array_equal(np.isnan(ds.red.values[0]), r1 != 0)
    np.testing.assert_array_equal(
        np.isnan(ds.nir08.values[0]), np.kron(clm2 != 0, np.ones((2, 2), bool))
    )
    assert "CLM_R1" in ds.red.attrs["mask"] and "CLM_R2" in ds.nir08.attrs["mask"]


def test_maja_shadows_only(items) -> None:
    clm, _ = _read(CLOUDY, "CLM_R2")
    ds = _load([items[1]], ["nir08"], mask=["shadows"])
    shadow = (clm & 0b0110_0000) != 0  # bits 5 and 6
    np.testing.assert_array_equal(np.isnan(ds.nir08.values[0]), shadow)  # 20 m grid
    assert 0 < shadow.sum() < (clm != 0).sum()


def test_maja_masks_apply_per_item_before_same_day_fusion(items) -> None:
    """A cloudy pixel of the first item takes the clear value of the second, same day."""
    first = copy.deepcopy(items[1])  # CLOUDY
    second = copy.deepcopy(items[2])  # CLEAR
    second.id = f"{CLEAR}-same-day"
    second.datetime = first.datetime.replace(minute=first.datetime.minute + 1)
    clm, _ = _read(CLOUDY, "CLM_R2")
    a, _ = _read(CLOUDY, "FRE_B8A")
    b, _ = _read(CLEAR, "FRE_B8A")
    ds = _load([first, second], ["nir08"], mask="clouds", resolution=20)
    assert ds.sizes["time"] == 1
    expected = np.where(clm != 0, b, a) / 10000
    np.testing.assert_allclose(ds.nir08.values[0], expected, rtol=1e-6)


def test_a_maja_item_without_clm_says_so(items) -> None:
    item = copy.deepcopy(items[1])
    del item.assets["CLM_R2"]
    with pytest.raises(datacubes.BandNotFoundError, match=rf"CLM_R1 or CLM_R2.*{CLOUDY}"):
        _load([item], ["red"], mask="clouds")
    with pytest.raises(datacubes.BandNotFoundError, match=r"MG2_R1 or MG2_R2"):
        _load([items[1]], ["red"], mask=["water"])
    with pytest.raises(lab.ConfigurationError, match=r"SCL classes.*THEIA MAJA"):
        _load([items[1]], ["red"], mask={3, 8, 9})
    with pytest.raises(lab.ConfigurationError, match=r"mask names must be among"):
        _load([items[1]], ["red"], mask=["haze"])


def test_a_product_without_a_registered_mask_is_named(tmp_path: Path) -> None:
    path = tmp_path / "band.tif"
    profile = dict(driver="GTiff", width=4, height=4, count=1, dtype="uint16", crs="EPSG:32631")
    with rasterio.open(path, "w", transform=Affine(10, 0, 6e5, 0, -10, 5e6), **profile) as dst:
        dst.write(np.ones((4, 4), "uint16"), 1)
    item = pystac.Item("thing-1", None, None, datetime(2020, 1, 1, tzinfo=UTC), {})
    item.collection_id = "my-own-product"
    item.add_asset(
        "band",
        pystac.Asset(
            str(path),
            media_type=pystac.MediaType.GEOTIFF,
            roles=["data"],
            extra_fields={
                "proj:code": "EPSG:32631",
                "proj:shape": [4, 4],
                "proj:transform": [10, 0, 6e5, 0, -10, 5e6],
            },
        ),
    )
    message = (
        r"needs band 'scl'.*collection my-own-product.*no registered mask.*"
        r"Sentinel-2 L2A Sen2Cor.*THEIA MAJA.*Landsat Collection 2"
    )
    with pytest.raises(datacubes.BandNotFoundError, match=message):
        _load([item], ["band"], mask="clouds")


# -- Landsat QA_PIXEL ---------------------------------------------------------------------------


def _landsat(tmp_path: Path, qa: np.ndarray) -> pystac.Item:
    """The real Planetary Computer Landsat 8 C2 L2 item, its red and QA_PIXEL made local."""
    source = REFERENCE / "planetarycomputer-LC08_L2SP_202033_20220327_02_T1.json"
    item = pystac.Item.from_dict(json.loads(source.read_text()))
    item.set_self_href(None)
    transform = Affine(30, 0, 138585, 0, -30, 4429515)
    for key, data in (("red", np.full(qa.shape, 20000, "uint16")), ("qa_pixel", qa)):
        path = tmp_path / f"{key}.tif"
        with rasterio.open(
            path, "w", driver="GTiff", width=qa.shape[1], height=qa.shape[0], count=1,
            dtype="uint16", crs="EPSG:32630", transform=transform,
        ) as dst:  # fmt: skip
            dst.write(data, 1)
        asset = item.assets[key]
        asset.href = str(path)
        asset.extra_fields["proj:shape"] = list(qa.shape)
        asset.extra_fields["proj:transform"] = list(transform)[:6]
    item.properties["proj:shape"] = list(qa.shape)
    return item


def test_landsat_qa_pixel_bits_give_the_same_masks(tmp_path: Path) -> None:
    # USGS C2 L2 QA_PIXEL: bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow,
    # 5 snow, 6 clear, 7 water (the item's own classification:bitfields say the same)
    bits = {"fill": 1, "dilated": 2, "cirrus": 4, "cloud": 8, "shadow": 16, "snow": 32}
    bits.update(clear=64, water=128)
    qa = np.array(
        [
            [bits["clear"], bits["fill"], bits["dilated"], bits["cirrus"]],
            [bits["cloud"] | (3 << 8), bits["shadow"], bits["snow"], bits["water"] | bits["clear"]],
            [bits["clear"] | (1 << 8), bits["clear"], bits["water"], bits["snow"] | bits["clear"]],
        ],
        "uint16",
    )
    item = _landsat(tmp_path, qa)
    clouds = np.array([[0, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], bool)
    ds = _load([item], ["red"], mask="clouds")
    np.testing.assert_array_equal(np.isnan(ds.red.values[0]), clouds)
    # 20000 * 2.75e-05 - 0.2 = 0.35 where clear
    np.testing.assert_allclose(ds.red.values[0][~clouds], 0.35, rtol=1e-5)
    assert "QA_PIXEL has any of bits 0, 1, 2, 3, 4 set" in ds.red.attrs["mask"]
    water = _load([item], ["red"], mask=["water"])
    np.testing.assert_array_equal(np.isnan(water.red.values[0]), (qa & 128) != 0)
    snow = _load([item], ["red"], mask=["snow", "shadows"])
    np.testing.assert_array_equal(np.isnan(snow.red.values[0]), (qa & (32 | 16)) != 0)
    with pytest.raises(lab.ConfigurationError, match=r"do not flag 'edge'.*clouds, shadows"):
        _load([item], ["red"], mask=["edge"])


def test_every_maja_file_is_listed_in_sources_with_its_hash() -> None:
    import hashlib

    listed = {}
    for line in (MAJA / "SOURCES.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].endswith(".tif"):
            listed[cells[0]] = cells[2]
    files = sorted(p for p in MAJA.rglob("*.tif"))
    assert len(files) == 20
    for path in files:
        relative = path.relative_to(MAJA).as_posix()
        assert listed.get(relative) == hashlib.sha256(path.read_bytes()).hexdigest()[:16], relative


# -- flags: the registry's meanings as boolean variables ----------------------------------------


def test_flags_on_landsat_are_the_qa_pixel_bits(tmp_path: Path) -> None:
    qa = np.array([[64, 1, 2, 4], [8, 16, 32, 128 | 64], [128, 64 | 32, 1 | 128, 0]], "uint16")
    ds = _load([_landsat(tmp_path, qa)], ["red"], flags=["water", "clouds", "nodata", "snow"])
    assert set(ds.data_vars) == {"red", "flag_water", "flag_clouds", "flag_nodata", "flag_snow"}
    assert "qa_pixel" not in ds  # loaded for the flags, not asked for
    np.testing.assert_array_equal(ds.flag_water.values[0], (qa & 128) != 0)
    np.testing.assert_array_equal(ds.flag_clouds.values[0], (qa & 0b11111) != 0)
    np.testing.assert_array_equal(ds.flag_nodata.values[0], (qa & 1) != 0)
    np.testing.assert_array_equal(ds.flag_snow.values[0], (qa & 32) != 0)
    assert ds.flag_water.dtype == bool and not np.isnan(ds.red.values).any()  # no mask asked
    assert ds.flag_water.attrs == {
        "long_name": "water flag (Landsat Collection 2 Level-2 (QA_PIXEL bits))",
        "flag_test": "QA_PIXEL has bit 7 set",
    }
    kept = _load([_landsat(tmp_path, qa)], ["red", "qa_pixel"], flags=["water"])
    np.testing.assert_array_equal(kept.qa_pixel.values[0], qa)  # asked for: kept, exact


@pytest.mark.parametrize("product", PRODUCTS)
def test_flags_on_real_maja_products_read_clm(items, product) -> None:
    clm, _ = _read(product, "CLM_R2")
    item = items[PRODUCTS.index(product)]
    ds = _load([item], ["nir08"], flags=["clouds", "shadows"])
    np.testing.assert_array_equal(ds.flag_clouds.values[0], clm != 0)
    np.testing.assert_array_equal(ds.flag_shadows.values[0], (clm & 0b0110_0000) != 0)
    assert ds.flag_clouds.attrs["flag_test"] == "CLM_R2 has any of bits 0, 1, 2, 3, 4, 5, 6, 7 set"
    # the crops carry CLM only: a water flag needs MG2, and the error says which file
    with pytest.raises(datacubes.BandNotFoundError, match=r"MG2_R1 or MG2_R2.*lacks it"):
        _load([item], ["nir08"], flags=["water"])


def test_flags_refuse_unknown_names_and_names_a_product_does_not_flag(
    items, tmp_path: Path
) -> None:
    with pytest.raises(lab.ConfigurationError, match=r"flags must be mask names.*got 'sky'"):
        _load(items[:1], ["red"], flags=["sky"])
    landsat = _landsat(tmp_path, np.zeros((2, 2), "uint16"))
    with pytest.raises(lab.ConfigurationError, match=r"do not flag 'edge'; their flags are"):
        _load([landsat], ["red"], flags=["edge"])
