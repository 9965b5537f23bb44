"""datacubes.load on real provider items (reference/stac): band mapping, grid, scale/offset.

Pixels of the real assets are not reachable offline: pixel checks copy the item, write small
local GeoTIFFs with the item's CRS and transform (proj:shape edited to match) and known DN, and
compare the loaded values with DN * scale + offset computed here from the expectations table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds

import datacubes
import lab

pytestmark = pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning")

S2_SCALE = 1e-4
LANDSAT_SCALE, LANDSAT_OFFSET = 2.75e-05, -0.2


@dataclass(frozen=True)
class Expect:
    """What the provider's own metadata (and the documented rules) say for band ``red``."""

    file: str
    red_key: str
    epsg: int
    resolution: float
    scale: float
    offset: float
    scl_key: str | None  # S2 scene classification asset, or Landsat qa_pixel
    why: str


EXPECTED = [
    Expect("cdse-S2A_MSIL2A_20220217T183431_N0510_R027_T13VEK_20240516T022440.json",
           "B04_10m", 32613, 10, S2_SCALE, -0.1, "SCL_20m", "flattened raster:scale/offset"),
    Expect("earthsearch-LC08_L2SP_033032_20231008_02_T1.json",
           "red", 32613, 30, LANDSAT_SCALE, LANDSAT_OFFSET, "qa_pixel", "raster:bands"),
    Expect("earthsearch-S2A_13TDE_20231008_0_L2A.json",
           "red", 32613, 10, S2_SCALE, 0.0, "scl", "boa_offset_applied=true"),
    Expect("earthsearch-S2B_24MUV_20250731_0_L2A.json",
           "red", 32724, 10, S2_SCALE, 0.0, "scl", "boa_offset_applied=true"),
    Expect("earthsearch-c1-S2B_T24MUV_20250731T130245_L2A.json",
           "red", 32724, 10, S2_SCALE, -0.1, "scl", "c1-l2a raster:bands, ESA DN"),
    Expect("earthsearch-v0-S2A_28QCH_20200714_0_L2A.json",
           "B04", 32628, 10, S2_SCALE, 0.0, "SCL", "no baseline, 2020 < 2022-01-25"),
    Expect("planetarycomputer-LC08_L2SP_202033_20220327_02_T1.json",
           "red", 32630, 30, LANDSAT_SCALE, LANDSAT_OFFSET, "qa_pixel", "raster:bands"),
    Expect("planetarycomputer-S2A_MSIL2A_20150704T101006_R022_T35XQA_20210411T133707.json",
           "B04", 32635, 10, S2_SCALE, 0.0, "SCL", "baseline 02.12"),
    Expect("planetarycomputer-S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json",
           "B04", 32606, 10, S2_SCALE, 0.0, "SCL", "baseline 02.12"),
    Expect("planetarycomputer-S2B_MSIL2A_20220612T182919_R027_T24XWR_20220613T123251.json",
           "B04", 32624, 10, S2_SCALE, -0.1, "SCL", "baseline 04.00"),
    Expect("planetarycomputer-S2B_MSIL2A_20250312T014549_R074_T53NKG_20250312T041213.json",
           "B04", 32653, 10, S2_SCALE, -0.1, "SCL", "baseline 05.11"),
    Expect("usgs-landsatlook-LC08_L2SP_028030_20200114_20200824_02_T1_SR.json",
           "red", 32615, 30, LANDSAT_SCALE, LANDSAT_OFFSET, "qa_pixel", "known C2 L2 values"),
]  # fmt: skip

RED_DN = np.array(
    [[0, 1, 1000, 1999], [2500, 9000, 10000, 12345], [30000, 45000, 60000, 65535], [4, 40, 400, 0]],
    dtype="uint16",
)


def _raw(reference_dir: Path, name: str) -> dict:
    return json.loads((reference_dir / "stac" / name).read_text())


def _item(reference_dir: Path, name: str) -> pystac.Item:
    return pystac.Item.from_dict(_raw(reference_dir, name))


def _field(d: dict, asset: dict, key: str):
    return asset.get(key, d["properties"].get(key))


def _crs(d: dict, asset: dict) -> str:
    code = _field(d, asset, "proj:code")
    return code or f"EPSG:{_field(d, asset, 'proj:epsg')}"


def _localised(d: dict, rasters: dict[str, np.ndarray], folder: Path) -> pystac.Item:
    """Copy of item dict ``d`` whose assets ``rasters`` point at small local GeoTIFFs."""
    d = json.loads(json.dumps(d))
    bounds = None
    for key, dn in rasters.items():
        asset = d["assets"][key]
        transform = Affine(*_field(d, asset, "proj:transform")[:6])
        crs = _crs(d, asset)
        path = folder / f"{d['id']}-{key}.tif"
        profile = {"driver": "GTiff", "height": dn.shape[0], "width": dn.shape[1], "count": 1,
                   "dtype": dn.dtype.name, "crs": crs, "transform": transform, "nodata": 0}  # fmt: skip
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(dn, 1)
        asset["href"] = path.as_uri()  # absolute: the item keeps its remote self link
        asset.pop("alternate", None)
        target = asset if "proj:shape" in asset else d["properties"]
        target["proj:shape"] = list(dn.shape)
        for holder in (asset, d["properties"]):
            holder.pop("proj:bbox", None)
        with rasterio.open(path) as src:
            box = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        bounds = box if bounds is None else bounds
    west, south, east, north = bounds
    d["bbox"] = [west, south, east, north]
    d["geometry"] = {"type": "Polygon", "coordinates": [[[west, south], [east, south],
                     [east, north], [west, north], [west, south]]]}  # fmt: skip
    return pystac.Item.from_dict(d)


@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: c.file.split("-")[0] + "-" + c.why)
def test_band_mapping_and_scaling_from_metadata(reference_dir, case):
    item = _item(reference_dir, case.file)
    table = datacubes.describe_bands([item], ["red", case.scl_key])
    red, classes = table.iloc[0], table.iloc[1]
    assert red.band == "red"
    assert red.asset_key == case.red_key
    assert red.scale == pytest.approx(case.scale, rel=1e-9)
    assert red.offset == pytest.approx(case.offset, abs=1e-12)
    assert red.nodata == 0
    assert classes.band in {"scl", "qa_pixel"}
    assert classes.asset_key == case.scl_key
    assert math.isnan(classes.scale)


@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: c.file.split("-")[0] + "-" + c.why)
def test_grid_is_the_items_grid(reference_dir, case):
    d = _raw(reference_dir, case.file)
    asset = d["assets"][case.red_key]
    ds = datacubes.load([pystac.Item.from_dict(d)], ["red"])  # lazy: no pixel is read
    gbox = ds.odc.geobox
    assert gbox.crs.epsg == case.epsg
    assert ds.rio.crs.to_epsg() == case.epsg
    assert gbox.resolution.x == case.resolution
    assert gbox.shape == tuple(_field(d, asset, "proj:shape"))
    assert tuple(gbox.transform)[:6] == tuple(
        float(v) for v in _field(d, asset, "proj:transform")[:6]
    )


@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: c.file.split("-")[0] + "-" + c.why)
def test_pixels_are_dn_times_scale_plus_offset(reference_dir, tmp_path, case):
    d = _raw(reference_dir, case.file)
    if case.scl_key == "qa_pixel":  # Landsat: same 30 m grid for both bands
        classes = (21824 + np.arange(16, dtype="uint16")).reshape(4, 4)
    else:  # Sentinel-2: SCL is a 20 m band, 2 x 2 pixels cover the 4 x 4 of 10 m red
        classes = np.array([[1, 4], [6, 9]], dtype="uint8")
    rasters = {case.red_key: RED_DN, case.scl_key: classes}
    item = _localised(d, rasters, tmp_path)
    ds = datacubes.load([item], ["red"]).compute()
    dn = rasters[case.red_key].astype("float64")
    expected = np.where(dn == 0, np.nan, dn * case.scale + case.offset)
    assert ds.red.dtype == np.float32
    np.testing.assert_allclose(ds.red.values[0], expected, rtol=0, atol=1e-6, equal_nan=True)

    scl = datacubes.load([item], [case.scl_key]).compute()
    name = "qa_pixel" if case.scl_key == "qa_pixel" else "scl"
    assert scl[name].dtype == rasters[case.scl_key].dtype
    np.testing.assert_array_equal(scl[name].values[0], rasters[case.scl_key])


def test_earthsearch_flag_false_falls_back_to_the_baseline(reference_dir):
    d = _raw(reference_dir, "earthsearch-S2A_13TDE_20231008_0_L2A.json")
    d["properties"]["earthsearch:boa_offset_applied"] = False
    (row,) = datacubes.describe_bands([pystac.Item.from_dict(d)], ["red"]).itertuples()
    assert row.offset == -0.1  # PB 05.09, DN are ESA's
    d["properties"]["s2:processing_baseline"] = "03.01"
    (row,) = datacubes.describe_bands([pystac.Item.from_dict(d)], ["red"]).itertuples()
    assert row.offset == 0.0  # the item's raster offset of -0.1 is not trusted either way


def test_s2_date_rule_when_no_baseline_at_all(reference_dir):
    d = _raw(reference_dir, "earthsearch-v0-S2A_28QCH_20200714_0_L2A.json")
    offsets = {}
    for day in ("2022-01-24T23:59:00Z", "2022-01-25T00:00:00Z"):
        d["properties"]["datetime"] = day
        (row,) = datacubes.describe_bands([pystac.Item.from_dict(d)], ["B04"]).itertuples()
        offsets[day[:10]] = row.offset
    assert offsets == {"2022-01-24": 0.0, "2022-01-25": -0.1}


@pytest.mark.parametrize(
    ("resolution", "key"),
    [
        (None, "B04_10m"),
        (10, "B04_10m"),
        (20, "B04_20m"),
        (60, "B04_60m"),
        (30, "B04_10m"),
    ],
)
def test_cdse_resolution_suffix(reference_dir, resolution, key):
    item = _item(reference_dir, EXPECTED[0].file)
    (row,) = datacubes.describe_bands([item], ["red"], resolution=resolution).itertuples()
    assert row.asset_key == key


@pytest.mark.parametrize(
    ("file", "request_", "key", "name"),
    [
        (EXPECTED[9].file, "B8A", "B8A", "nir08"),  # PC writes common_name "rededge" on B8A
        (EXPECTED[9].file, "nir08", "B8A", "nir08"),
        (EXPECTED[9].file, "rededge2", "B06", "rededge2"),
        (EXPECTED[2].file, "B04", "red", "red"),  # COG chosen over the red-jp2 duplicate
        (EXPECTED[0].file, "SCL", "SCL_20m", "scl"),
        (EXPECTED[11].file, "SR_B5", "nir08", "nir08"),
        (EXPECTED[11].file, "B4", "red", "red"),  # USGS eo:bands name
        (EXPECTED[1].file, "OLI_B4", "red", "red"),  # Earth Search eo:bands name
    ],
)
def test_provider_keys_and_common_names(reference_dir, file, request_, key, name):
    (row,) = datacubes.describe_bands([_item(reference_dir, file)], [request_]).itertuples()
    assert (row.asset_key, row.band) == (key, name)


def test_ambiguous_common_name_lists_candidates(reference_dir):
    item = _item(reference_dir, EXPECTED[9].file)
    with pytest.raises(lab.ConfigurationError, match="B05, B06, B07, B8A"):
        datacubes.describe_bands([item], ["rededge"])


def test_unknown_band_lists_common_names_and_keys(reference_dir):
    item = _item(reference_dir, EXPECTED[0].file)
    with pytest.raises(datacubes.BandNotFoundError) as caught:
        datacubes.load([item], ["ndvi"])
    assert "red (B04_10m)" in str(caught.value)
    assert "TCI_10m" in str(caught.value)


def test_cloud_mask_of_a_landsat_item_comes_from_its_qa_pixel_band(reference_dir):
    """mask="clouds" means the same on Landsat as on SCL (the mask registry, issue 18): the
    USGS item's QA_PIXEL bits, and without that band an error naming it."""
    item = _item(reference_dir, EXPECTED[11].file)
    cube = datacubes.load([item], ["red"], mask="clouds")
    assert cube["red"].attrs["mask"] == "NaN where QA_PIXEL has any of bits 0, 1, 2, 3, 4 set"
    del item.assets["qa_pixel"]
    with pytest.raises(datacubes.BandNotFoundError, match=r"needs band 'qa_pixel'.*mask=None"):
        datacubes.load([item], ["red"], mask="clouds")


def test_items_in_several_crs_need_crs(reference_dir):
    items = [_item(reference_dir, EXPECTED[9].file), _item(reference_dir, EXPECTED[10].file)]
    with pytest.raises(lab.ConfigurationError, match="several CRSs"):
        datacubes.load(items, ["red"])


@pytest.mark.parametrize(
    ("collection", "file"),
    [
        ("sentinel-2-l2a", EXPECTED[2].file),
        ("sentinel-2-l2a", EXPECTED[3].file),
        ("sentinel-2-c1-l2a", EXPECTED[4].file),
        ("landsat-c2-l2", EXPECTED[1].file),
    ],
)
def test_earthsearch_choice_agrees_with_the_collection_item_assets(reference_dir, collection, file):
    # The sentinel-2-l2a items say offset -0.1 and boa_offset_applied=true; their collection
    # says 0. The loader follows the flag, which agrees with the collection.
    listing = json.loads(
        (reference_dir / "stac-api" / "earthsearch-v1-collections.json").read_text()
    )
    (found,) = [c for c in listing["collections"] if c["id"] == collection]
    declared = found["item_assets"]["red"]["raster:bands"][0]
    item = _item(reference_dir, file)
    (row,) = datacubes.describe_bands([item], ["red"]).itertuples()
    assert (row.scale, row.offset) == pytest.approx((declared["scale"], declared["offset"]))
    item_offset = item.assets["red"].extra_fields["raster:bands"][0]["offset"]
    if collection == "sentinel-2-l2a":
        assert item.properties["earthsearch:boa_offset_applied"] is True
        assert item_offset == -0.1  # the item's own (wrong) value, not used
        assert "boa_offset_applied=true" in row.scaling_rule


def test_describe_bands_lists_every_band_by_common_name(reference_dir):
    pc = datacubes.describe_bands([_item(reference_dir, EXPECTED[10].file)])
    mapping = dict(zip(pc.band, pc.asset_key, strict=True))
    s2 = {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05",
          "rededge2": "B06", "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09",
          "swir16": "B11", "swir22": "B12", "scl": "SCL", "aot": "AOT", "wvp": "WVP"}  # fmt: skip
    assert mapping == s2
    legacy = datacubes.describe_bands([_item(reference_dir, EXPECTED[5].file)])
    assert "visual" not in set(legacy.asset_key) and "overview" not in set(legacy.asset_key)
    assert dict(zip(legacy.band, legacy.asset_key, strict=True)) == s2
