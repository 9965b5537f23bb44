"""datacubes.load on real STAC items of other providers and products (tests/data/stac-real/).

Per item: which asset each band resolves to, the scale/offset and nodata used, checked against
each provider's documentation; pixel values on small synthetic COGs written with the data
type, nodata, transform and CRS the real item declares (its ``proj:shape`` shrunk to a few
pixels); and one test per defect class found on these items (a: provider rules applied to the
wrong product, b: asset keys with file extensions, c: the file's own nodata, d: non-square
pixels, e: cloud masks before same-day fusion, f: loads that would be empty, g: files
contradicting their metadata).
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.warp
from affine import Affine

import datacubes
import lab

HERE = Path(__file__).parent / "data" / "stac-real"
REFERENCE = Path(__file__).parent / "data" / "reference" / "stac"


def _item(name: str, folder: Path = HERE) -> pystac.Item:
    path = next(folder.glob(f"{name}*.json"))
    item = pystac.Item.from_dict(json.loads(path.read_text()))
    item.set_self_href(None)  # the hrefs the tests set are local paths, not under the API's
    return item


def _cog(
    path: Path,
    data: np.ndarray,
    *,
    crs: Any,
    transform: Any,
    nodata: float | None = None,
) -> str:
    """A GeoTIFF holding ``data`` (its dtype), with the grid and nodata given."""
    profile = {
        "driver": "GTiff",
        "height": data.shape[0],
        "width": data.shape[1],
        "count": 1,
        "dtype": data.dtype.name,
        "transform": transform,
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


def _point(item: pystac.Item, key: str, href: str, shape: tuple[int, int]) -> None:
    """Point an asset at a local file and shrink the declared grid to ``shape``."""
    asset = item.assets[key]
    asset.href = href
    for owner in (asset.extra_fields, item.properties):
        if "proj:shape" in owner:
            owner["proj:shape"] = list(shape)
    if "proj:shape" not in asset.extra_fields and "proj:shape" not in item.properties:
        asset.extra_fields["proj:shape"] = list(shape)


def _grid(item: pystac.Item, key: str) -> tuple[Any, Affine]:
    asset = item.assets[key]
    transform = asset.extra_fields.get("proj:transform") or item.properties["proj:transform"]
    props = {**item.properties, **asset.extra_fields}
    code = props.get("proj:code") or (props.get("proj:epsg") and f"EPSG:{props['proj:epsg']}")
    crs = rasterio.crs.CRS.from_user_input(code or props["proj:wkt2"])
    return crs, Affine(*transform[:6])


def _load(items: list[pystac.Item], bands: list[str], **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lab.EarthLabWarning)
        return datacubes.load(items, bands, **kwargs).compute()


# -- band mapping, scale/offset and nodata, item by item (metadata only) ---------------------

# (file prefix, requested band, asset key, scale, offset, nodata): the values each provider
# documents.
MAPPING = [
    # USGS Landsat C2 L2 SR: DN * 0.0000275 - 0.2 (USGS Landsat 8-9 C2 L2 Science Product
    # Guide, LSDS-1619); LandsatLook keys carry the file extension (defect b).
    ("usgs-landsatlook-LC08_L2SR", "red", "SR_B4.TIF", 2.75e-05, -0.2, 0.0),
    ("usgs-landsatlook-LC08_L2SR", "nir08", "SR_B5.TIF", 2.75e-05, -0.2, 0.0),
    ("usgs-landsatlook-LC08_L2SR", "SR_B4", "SR_B4.TIF", 2.75e-05, -0.2, 0.0),
    ("usgs-landsatlook-LC08_L2SR", "qa_pixel", "QA_PIXEL.TIF", None, None, 1.0),
    # Landsat 7 ETM+: red is band 3 (LSDS-1618), same scale/offset
    ("usgs-landsatlook-LE07", "red", "red", 2.75e-05, -0.2, 0.0),
    ("usgs-landsatlook-LE07", "nir08", "nir08", 2.75e-05, -0.2, 0.0),
    # Landsat C2 L1 MSS radiance: the item's raster:bands (from the MTL file)
    ("planetarycomputer-landsat-c2-l1", "red", "red", 0.66024, 2.03976, 0.0),
    # CDSE Sentinel-2 quarterly mosaic: reflectance x 10000, no offset, nodata -32768 (CDSE
    # "Sentinel-2 Global Mosaics" documentation); not the L2A baseline offset (defect a)
    ("cdse-Sentinel-2_mosaic_2024_Q1_17RLM", "red", "B04", 1e-4, 0.0, -32768.0),
    ("cdse-Sentinel-2_mosaic_2024_Q1_53UNV", "nir", "B08", 1e-4, 0.0, -32768.0),
    # MODIS MOD09A1/MYD09A1 surface reflectance: scale 0.0001 (MOD09 user guide v6.1); the
    # fill value -28672 is not in STAC: the file's own is used (defect c)
    ("planetarycomputer-modis-09A1", "red", "sur_refl_b01", 1e-4, 0.0, None),
    ("planetarycomputer-modis-09A1", "nir08", "sur_refl_b02", 1e-4, 0.0, None),
    ("planetarycomputer-modis-09Q1", "red", "sur_refl_b01", 1e-4, 0.0, None),
    ("planetarycomputer-modis-13Q1", "250m_16_days_NDVI", "250m_16_days_NDVI", 1e-4, 0.0, None),
    # MODIS LST: Kelvin = DN * 0.02 (MOD11 user guide)
    ("planetarycomputer-modis-11A1", "LST_Day_1km", "LST_Day_1km", 0.02, 0.0, None),
    ("planetarycomputer-modis-43A4", "red", "Nadir_Reflectance_Band1", 1e-4, 0.0, None),
    # Sentinel-1 RTC: float32 gamma0, nodata -32768 in raster:bands
    ("planetarycomputer-sentinel-1-rtc", "vv", "vv", 1.0, 0.0, -32768.0),
    # ESA WorldCover: uint8 classes, 0 = no data (product user manual); classification
    # extension, no scale: a class band, kept as integers (scale None)
    ("planetarycomputer-esa-worldcover", "map", "map", None, None, 0.0),
    ("planetarycomputer-io-lulc-60W", "data", "data", 1.0, 0.0, 0.0),
    ("planetarycomputer-io-lulc-9-class", "data", "data", 1.0, 0.0, 0.0),
    # DEMs: metres as stored; nodata from the file
    ("planetarycomputer-cop-dem-glo-30", "data", "data", 1.0, 0.0, None),
    ("planetarycomputer-cop-dem-glo-90", "data", "data", 1.0, 0.0, None),
    ("planetarycomputer-alos-dem", "data", "data", 1.0, 0.0, None),
    ("planetarycomputer-nasadem", "elevation", "elevation", 1.0, 0.0, None),
    ("cdse-Copernicus_DSM_COG_10", "data", "data", 1.0, 0.0, None),
    ("planetarycomputer-chloris-biomass", "biomass", "biomass", 1.0, 0.0, 2147483647.0),
    ("planetarycomputer-alos-fnf-mosaic", "C", "C", None, None, 0.0),  # classes, as above
    ("planetarycomputer-jrc-gsw", "occurrence", "occurrence", 1.0, 0.0, None),
    # DEA ARD: no raster extension; surface reflectance x 10000, no offset, nodata -999 (DEA
    # Surface Reflectance product page, Geoscience Australia), decided by odc:product
    ("dea-ga_ls8c_ard", "nbart_red", "nbart_red", 1e-4, 0.0, -999.0),
    ("dea-ga_ls8c_ard", "nbart_nir", "nbart_nir", 1e-4, 0.0, -999.0),
    ("ga-lidar_dem", "dem", "dem", 1.0, 0.0, None),
]


@pytest.mark.parametrize(("name", "band", "key", "scale", "offset", "nodata"), MAPPING)
def test_band_mapping_scaling_and_nodata(name, band, key, scale, offset, nodata) -> None:
    row = datacubes.describe_bands([_item(name)], [band]).iloc[0]
    assert row.asset_key == key
    if scale is None:
        assert row.scale is None or np.isnan(row.scale)
    else:
        assert row.scale == pytest.approx(scale, rel=1e-12)
        assert row.offset == pytest.approx(offset, abs=1e-12)
    if nodata is None:
        assert row.nodata is None or np.isnan(row.nodata)
    else:
        assert row.nodata == nodata


def test_every_collected_item_is_listed_in_sources() -> None:
    files = sorted(p.name for p in HERE.glob("*.json"))
    sources = (HERE / "SOURCES.md").read_text()
    assert len(files) >= 20
    assert all(f"`{name}`" in sources for name in files)


# -- pixels ----------------------------------------------------------------------------------


def test_a_sentinel2_mosaic_gets_no_baseline_offset(tmp_path) -> None:
    """Defect a: CDSE quarterly mosaic, int16 reflectance x 10000, nodata -32768."""
    item = _item("cdse-Sentinel-2_mosaic_2024_Q1_17RLM")
    crs = rasterio.crs.CRS.from_epsg(32617)
    transform = Affine(10.0, 0, 300290.0, 0, -10.0, 3199340.0)
    item.assets["B04"].extra_fields["proj:transform"] = list(transform)[:6]
    dn = np.arange(64, dtype="int16").reshape(8, 8) * 100
    dn[0, 0] = -32768
    _point(item, "B04", _cog(tmp_path / "B04.tif", dn, crs=crs, transform=transform), dn.shape)
    red = _load([item], ["red"]).red.values[0]
    expected = np.where(dn == -32768, np.nan, dn / 10000.0)
    np.testing.assert_allclose(red, expected, atol=1e-6, equal_nan=True)


def test_usgs_keys_with_tif_extension_load(tmp_path) -> None:
    """Defect b: SR_B4.TIF resolves `red`; DN 10000 -> 10000 * 2.75e-05 - 0.2 = 0.075."""
    item = _item("usgs-landsatlook-LC08_L2SR")
    crs, transform = _grid(item, "SR_B4.TIF")
    dn = np.full((6, 6), 10000, dtype="uint16")
    dn[2, 3] = 0
    _point(item, "SR_B4.TIF", _cog(tmp_path / "b4.tif", dn, crs=crs, transform=transform), (6, 6))
    red = _load([item], ["red"]).red.values[0]
    assert np.isnan(red[2, 3])
    assert np.nanmax(np.abs(red - 0.075)) < 1e-6


@pytest.mark.parametrize(
    ("name", "band", "key", "dtype", "fill", "scale"),
    [
        # MODIS MOD09 _FillValue -28672 (MOD09 user guide), STAC has no nodata
        ("planetarycomputer-modis-09A1", "red", "sur_refl_b01", "int16", -28672, 1e-4),
        # DEA ARD nbart: int16, nodata -999 (DEA Surface Reflectance product page)
        ("dea-ga_ls8c_ard", "nbart_red", "nbart_red", "int16", -999, 1e-4),
    ],
)
def test_the_files_own_nodata_becomes_nan(tmp_path, name, band, key, dtype, fill, scale) -> None:
    """Defect c: the file's declared nodata, when STAC has none, is NaN, not a number."""
    item = _item(name)
    crs, transform = _grid(item, key)
    dn = (np.arange(100).reshape(10, 10) * 10).astype(dtype)
    dn[:3, :] = fill
    _point(
        item,
        key,
        _cog(tmp_path / f"{key}.tif", dn, crs=crs, transform=transform, nodata=fill),
        (10, 10),
    )
    values = _load([item], [band])[band].values[0]
    assert np.isnan(values[:3]).all()
    np.testing.assert_allclose(values[3:], dn[3:] * scale, rtol=1e-6)


def test_dea_ard_scale_applies_to_dea_ard_products_only(tmp_path: Path) -> None:
    item = _item("dea-ga_ls8c_ard")
    assert item.properties["odc:product"] == "ga_ls8c_ard_3" and item.collection_id is None
    rows = datacubes.describe_bands([item], ["nbart_red", "oa_solar_zenith"])
    red, zenith = rows.iloc[0], rows.iloc[1]
    assert (red.scale, red.offset, red.nodata) == (1e-4, 0.0, -999.0)
    assert "DEA ARD" in red.scaling_rule and "ga_ls8c_ard_3" in red.scaling_rule
    assert zenith.scale == 1.0 and "raw values" in zenith.scaling_rule  # not reflectance
    # the same band name in an item of another producer is not DEA's
    other = _item("dea-ga_ls8c_ard")
    for key in ("odc:product", "odc:producer", "odc:product_family"):
        other.properties.pop(key)
    row = datacubes.describe_bands([other], ["nbart_red"]).iloc[0]
    assert row.scale == 1.0 and "raw values" in row.scaling_rule
    assert row.nodata is None or np.isnan(row.nodata)
    # the product decides through the collection id too
    other.collection_id = "ga_s2am_ard_3"
    assert datacubes.describe_bands([other], ["nbart_red"]).iloc[0].scale == 1e-4
    # pixel values: reflectance x 10000, -999 is NaN
    crs, transform = _grid(item, "nbart_red")
    dn = np.full((8, 8), 1234, dtype="int16")
    dn[0, :] = -999
    _point(item, "nbart_red", _cog(tmp_path / "red.tif", dn, crs=crs, transform=transform), (8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", lab.EarthLabWarning)  # no "raw values" warning
        red_values = datacubes.load([item], ["nbart_red"]).compute()["nbart_red"].values[0]
    assert np.isnan(red_values[0]).all()
    np.testing.assert_allclose(red_values[1:], 0.1234, rtol=1e-6)


def test_non_square_pixels_keep_their_shape(tmp_path) -> None:
    """Defect d: Copernicus DEM at 89 deg S, pixels 10 times wider than tall: 64 x 64 stays."""
    item = _item("planetarycomputer-cop-dem-glo-30")
    crs, transform = _grid(item, "data")
    assert transform.a == pytest.approx(10 * -transform.e)
    dem = np.linspace(0, 3000, 64 * 64, dtype="float32").reshape(64, 64)
    _point(item, "data", _cog(tmp_path / "dem.tif", dem, crs=crs, transform=transform), (64, 64))
    ds = _load([item], ["data"])
    assert ds.data.shape == (1, 64, 64)  # dims latitude, longitude
    np.testing.assert_array_equal(ds.data.values[0], dem)


def test_cloud_mask_applies_per_item_before_same_day_fusion(tmp_path) -> None:
    """Defect e: a cloudy pixel of the first item must not hide a clear one of the second."""
    base = pystac.Item.from_file(
        str(
            REFERENCE
            / "planetarycomputer-S2B_MSIL2A_20220612T182919_R027_T24XWR_20220613T123251.json"
        )
    )
    crs = rasterio.crs.CRS.from_epsg(32624)
    transform = Affine(*base.assets["B04"].extra_fields["proj:transform"][:6])
    items = []
    for n, (scl, dn) in enumerate([(9, 2000), (4, 3000)]):
        item = copy.deepcopy(base)
        item.id = f"{base.id}-{n}"
        item.datetime = base.datetime.replace(minute=n)  # same solar day, first one first
        for key, data in (
            ("B04", np.full((8, 8), dn, "uint16")),
            ("SCL", np.full((8, 8), scl, "uint8")),
        ):
            path = _cog(tmp_path / f"{key}-{n}.tif", data, crs=crs, transform=transform)
            item.assets[key].href = path
            item.assets[key].extra_fields["proj:shape"] = [8, 8]
            item.assets[key].extra_fields["proj:transform"] = list(transform)[:6]
            item.properties.pop("proj:shape", None)
        items.append(item)
    ds = _load(items, ["red"], mask="clouds")
    assert ds.sizes["time"] == 1
    # baseline 04.00: 3000 * 1e-4 - 0.1 = 0.2 everywhere (the second item's clear pixels)
    np.testing.assert_allclose(ds.red.values[0], 0.2, atol=1e-6)
    eager = datacubes._load.load_values(items, ["red"], geobox=ds.odc.geobox, mask="clouds")
    np.testing.assert_allclose(eager.red.values[0], 0.2, atol=1e-6)


def _mosaic(tmp_path: Path, data: np.ndarray, crs: Any = "EPSG:32617") -> pystac.Item:
    item = _item("cdse-Sentinel-2_mosaic_2024_Q1_17RLM")
    transform = Affine(10.0, 0, 300290.0, 0, -10.0, 3199340.0)
    item.assets["B04"].extra_fields["proj:transform"] = list(transform)[:6]
    path = _cog(tmp_path / "B04.tif", data, crs=crs, transform=transform)
    _point(item, "B04", path, (8, 8))
    return item


def test_a_bbox_outside_every_item_is_an_error(tmp_path) -> None:
    """Defect f: a bbox the items do not reach."""
    item = _mosaic(tmp_path, np.ones((8, 8), "int16"))
    with pytest.raises(datacubes.EmptyLoadError, match="outside every item") as caught:
        datacubes.load([item], ["red"], bbox=(2.0, 43.0, 2.1, 43.1))
    assert isinstance(caught.value, lab.EarthLabError)


@pytest.mark.parametrize("eager", [False, True])
def test_a_file_contradicting_its_metadata_is_a_named_error(tmp_path, eager) -> None:
    """Defects f and g: dtype, proj:shape, proj:code contradicting the file; a file without CRS."""
    cases = {
        "float32": (np.ones((8, 8), "float32"), "EPSG:32617", None, "holds float32"),
        "shape": (np.ones((8, 8), "int16"), "EPSG:32617", [16, 16], "proj:shape"),
        "crs": (np.ones((8, 8), "int16"), "EPSG:32631", None, "the file is in"),
        "no-crs": (np.ones((8, 8), "int16"), None, None, "no CRS"),
    }
    for label, (data, crs, shape, message) in cases.items():
        folder = tmp_path / f"{label}-{eager}"
        folder.mkdir()
        item = _mosaic(folder, data, crs=crs)
        if shape:
            item.assets["B04"].extra_fields["proj:shape"] = shape
        with pytest.raises(datacubes.AssetMetadataError, match=message) as caught:
            if eager:
                from odc.geo.geobox import GeoBox

                gbox = GeoBox((8, 8), Affine(10.0, 0, 300290.0, 0, -10.0, 3199340.0), "EPSG:32617")
                datacubes._load.load_values([item], ["red"], geobox=gbox)
            else:
                _load([item], ["red"])
        assert item.id in str(caught.value) and "'B04'" in str(caught.value)
        assert isinstance(caught.value, lab.EarthLabError)


# -- class/QA bands outside the band tables: integers as stored, the file's nodata -----------


def _class_cog(
    tmp_path: Path,
    name: str,
    key: str,
    data: np.ndarray,
    fill: int | None,
    tag: str = "",
    middle: bool = True,
    folder: Path = HERE,
    centre: bool = False,
) -> pystac.Item:
    """Item ``name`` whose asset ``key`` is a COG of ``data`` at the scene's top left corner, or
    its middle (inside the footprint of a scene whose corner is outside it, like DEA's), or
    with ``centre`` at the pixel under the centre of the item's bbox (scenes whose grid's
    middle and corner both lie outside the bbox: polar or antimeridian tiles); the file's
    nodata is ``fill`` (none when ``None``)."""
    item = _item(name, folder)
    crs, transform = _grid(item, key)
    rows, cols = item.assets[key].extra_fields.get("proj:shape") or item.properties["proj:shape"]
    if centre:
        west, south, east, north = item.bbox
        xs, ys = rasterio.warp.transform(
            "EPSG:4326", crs, [(west + east) / 2], [(south + north) / 2]
        )
        col, row = ~transform * (xs[0], ys[0])
        transform = transform * Affine.translation(int(col), int(row))
    elif middle:
        transform = transform * Affine.translation(cols // 2, rows // 2)
    item.assets[key].extra_fields["proj:transform"] = list(transform)[:6]
    path = _cog(tmp_path / f"{key}{tag}.tif", data, crs=crs, transform=transform, nodata=fill)
    _point(item, key, path, data.shape)
    return item


def test_modis_qc_bit_flags_load_as_exact_uint32(tmp_path: Path) -> None:
    """MOD09A1 sur_refl_qc_500m: uint32 bit flags, no nodata in STAC, fill 787410671 in the
    file (MOD09 user guide). float32 would turn 2**31 + 7 into 2**31."""
    key, fill = "sur_refl_qc_500m", 787410671
    qc = np.arange(36, dtype="uint32").reshape(6, 6) * 1_000_003
    qc[0, 0], qc[0, 1], qc[5, 5] = 2**31 + 7, 2**32 - 2, fill
    # the tile's middle is beyond 180 degrees east (h35): keep its corner, inside the bbox
    item = _class_cog(tmp_path, "planetarycomputer-modis-09A1", key, qc, fill, middle=False)
    row = datacubes.describe_bands([item], [key]).iloc[0]
    assert (row.data_type, row.nodata) == ("uint32", float(fill))
    assert row.scale is None or np.isnan(row.scale)
    assert row.scaling_rule.startswith("class band (quality name") and "qc" in row.scaling_rule
    ds = _load([item], [key])
    assert ds[key].dtype == np.uint32
    np.testing.assert_array_equal(ds[key].values[0], qc)
    assert ds[key].values[0][0, 0] == 2**31 + 7
    assert ds[key].attrs["nodata"] == fill
    eager = datacubes._load.load_values([item], [key], geobox=ds.odc.geobox)
    assert eager[key].dtype == np.uint32 and eager[key].attrs["nodata"] == fill
    np.testing.assert_array_equal(eager[key].values[0], qc)


def test_dea_fmask_loads_as_uint8_with_the_files_nodata(tmp_path: Path) -> None:
    """DEA oa_fmask: no data_type nor nodata in STAC; a uint8 file with nodata 0 (DEA's fmask:
    0 nodata, 1 clear, 2 cloud, 3 shadow, 4 snow, 5 water)."""
    fmask = np.tile(np.arange(6, dtype="uint8"), (6, 1))
    item = _class_cog(tmp_path, "dea-ga_ls8c_ard", "oa_fmask", fmask, 0)
    assert "data_type" not in json.dumps(item.assets["oa_fmask"].to_dict())
    ds = _load([item], ["oa_fmask"])
    assert ds.oa_fmask.dtype == np.uint8
    np.testing.assert_array_equal(ds.oa_fmask.values[0], fmask)
    assert ds.oa_fmask.attrs["nodata"] == 0
    assert "fmask" in ds.oa_fmask.attrs["comment"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", lab.EarthLabWarning)  # no "raw values" warning
        datacubes.load([item], ["oa_fmask"])


@pytest.mark.parametrize("mask_eager", [False, True])
def test_same_day_class_bands_fuse_past_nodata(tmp_path: Path, mask_eager: bool) -> None:
    """Two items of one day: where the first holds the file's nodata, the second's class wins."""
    fill = 0
    first = np.full((6, 6), 2, "uint8")
    first[:, :3] = fill
    second = np.full((6, 6), 5, "uint8")
    items = []
    for n, data in enumerate([first, second]):
        item = _class_cog(tmp_path, "dea-ga_ls8c_ard", "oa_fmask", data, fill, tag=f"-{n}")
        item.id = f"{item.id}-{n}"
        item.datetime = item.datetime.replace(second=n)  # same solar day, first one first
        items.append(item)
    expected = np.where(first == fill, second, first)
    ds = _load(items, ["oa_fmask"])
    assert ds.sizes["time"] == 1 and ds.oa_fmask.dtype == np.uint8
    np.testing.assert_array_equal(ds.oa_fmask.values[0], expected)
    if mask_eager:
        eager = datacubes._load.load_values(items, ["oa_fmask"], geobox=ds.odc.geobox)
        np.testing.assert_array_equal(eager.oa_fmask.values[0], expected)
    else:  # per-item steps fused by the loader itself (its _fuse reads the nodata attribute)
        out = datacubes._output._fuse(
            {"oa_fmask": _load(items, ["oa_fmask"], groupby="id").oa_fmask},
            items,
            [[0, 1]],
            [[0], [1]],
        )
        np.testing.assert_array_equal(out["oa_fmask"].values[0], expected)


def _rasterio_values(href: str) -> np.ndarray:
    """The file's band 1 as rasterio reads it: the independent reference for exact values."""
    with rasterio.open(href) as src:
        return src.read(1)


# (item file prefix, folder, requested band, asset key, data type, nodata as the provider
# documents it, raster under the bbox centre instead of the grid's middle): class/QA bands
CLASS_BANDS = [
    # Landsat C2 QA_PIXEL: uint16 bit flags, bit 0 = fill, so fill pixels hold 1 (USGS Landsat
    # Collection 2 Level-1/Level-2 product guides); Planetary Computer says nodata 1 in
    # raster:bands, USGS's STAC says nothing (the band table's 1)
    ("planetarycomputer-landsat-c2-l1", HERE, "qa_pixel", "qa_pixel", "uint16", 1, False),
    ("usgs-landsatlook-LC08", HERE, "qa_pixel", "QA_PIXEL.TIF", "uint16", 1, True),
    ("usgs-landsatlook-LE07", HERE, "qa_pixel", "qa_pixel", "uint16", 1, True),
    # MOD13Q1 VI Quality: uint16 bit field, fill 65535; pixel reliability: int8 ranks 0..3,
    # fill -1 (LP DAAC MOD13Q1 v061 layers); STAC gives no nodata: the file's header does
    ("planetarycomputer-modis-13Q1", HERE, "250m_16_days_VI_Quality", "250m_16_days_VI_Quality",
     "uint16", 65535, True),
    ("planetarycomputer-modis-13Q1", HERE, "250m_16_days_pixel_reliability",
     "250m_16_days_pixel_reliability", "int8", -1, True),
    # MCD43A4 BRDF/Albedo mandatory quality: uint8 (0 full inversion, 1 magnitude inversion),
    # fill 255 (LP DAAC MCD43A4 v061 layers)
    ("planetarycomputer-modis-43A4", HERE, "BRDF_Albedo_Band_Mandatory_Quality_Band1",
     "BRDF_Albedo_Band_Mandatory_Quality_Band1", "uint8", 255, True),
    # Sentinel-2 L2A scene classification: uint8 classes 0..11, 0 = no data (ESA L2A product
    # format); Planetary Computer says no nodata, Earth Search nodata 0
    ("planetarycomputer-S2B_MSIL2A_20220612", REFERENCE, "scl", "SCL", "uint8", 0, False),
    ("earthsearch-S2A_13TDE", REFERENCE, "scl", "scl", "uint8", 0, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "folder", "band", "key", "dtype", "nodata", "centre"),
    [pytest.param(*case, id=f"{case[0]}:{case[3]}") for case in CLASS_BANDS],
)
def test_class_bands_of_real_items_load_exact_integers(
    tmp_path: Path,
    name: str,
    folder: Path,
    band: str,
    key: str,
    dtype: str,
    nodata: int,
    centre: bool,
) -> None:
    """Integer type kept, nodata as documented, values equal to rasterio's reading of the file:
    the data type's extremes, the fill value and every class of a small raster."""
    info = np.iinfo(dtype)
    values = np.linspace(info.min, info.max, 36).astype(dtype).reshape(6, 6)
    values[0, :3] = (info.min, info.max, nodata)
    values[5, 5] = nodata
    item = _class_cog(tmp_path, name, key, values, nodata, folder=folder, centre=centre)
    if "data_type" in json.dumps(item.assets[key].to_dict()):
        assert item.assets[key].extra_fields["raster:bands"][0]["data_type"] == dtype
    row = datacubes.describe_bands([item], [band]).iloc[0]
    assert (row.asset_key, row.data_type, row.nodata) == (key, dtype, float(nodata))
    assert row.scale is None or np.isnan(row.scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error", lab.EarthLabWarning)  # no "raw numbers" warning
        ds = datacubes.load([item], [band]).compute()
    (name_out,) = ds.data_vars
    out = ds[name_out]
    assert out.dtype == np.dtype(dtype)
    assert out.attrs["nodata"] == nodata
    expected = _rasterio_values(item.assets[key].href)
    assert expected.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out.values[0], expected)
    np.testing.assert_array_equal(out.values[0], values)
    eager = datacubes._load.load_values([item], [band], geobox=ds.odc.geobox)
    assert eager[name_out].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(eager[name_out].values[0], expected)


# -- the plan-time header read of a remote file ----------------------------------------------


@contextlib.contextmanager
def _serve(files: dict[str, bytes]) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server of ``files`` with byte ranges (as COG readers ask), and the log
    of requests (method, path, range)."""
    log: list[str] = []

    class Files(BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            data = files.get(self.path.lstrip("/"))
            wanted = self.headers.get("Range")
            log.append(f"{self.command} {self.path} {wanted}")
            if data is None:
                self.send_error(404)
                return
            start, end = 0, len(data) - 1
            if wanted and wanted.startswith("bytes="):
                first, _, last = wanted[6:].partition("-")
                start, end = int(first), min(int(last or end), end)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Content-Type", "image/tiff")
            self.end_headers()
            if body:
                self.wfile.write(data[start : end + 1])

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def test_remote_class_band_header_is_read_when_planning(tmp_path: Path) -> None:
    """DEA oa_fmask says neither data type nor nodata: the remote file's header (uint8, nodata 0)
    is read over HTTP when the load is planned, before any pixel; the pixels then match."""
    fmask = np.tile(np.arange(6, dtype="uint8"), (6, 1))
    fmask[2, 2] = 255
    local = _class_cog(tmp_path, "dea-ga_ls8c_ard", "oa_fmask", fmask, 0)
    path = Path(local.assets["oa_fmask"].href)
    np.testing.assert_array_equal(_rasterio_values(str(path)), fmask)
    assert "data_type" not in json.dumps(local.assets["oa_fmask"].to_dict())
    with _serve({"oa_fmask.tif": path.read_bytes()}) as (root, log):
        item = local.clone()
        item.assets["oa_fmask"].href = f"{root}/oa_fmask.tif"
        row = datacubes.describe_bands([item], ["oa_fmask"]).iloc[0]
        assert (row.href, row.data_type, row.nodata) == (f"{root}/oa_fmask.tif", "uint8", 0.0)
        assert log and all(" /oa_fmask.tif " in line for line in log)  # the header, only
        planned = len(log)
        ds = datacubes.load([item], ["oa_fmask"])  # lazy: planned, nothing read yet
        assert ds.oa_fmask.dtype == np.uint8 and ds.oa_fmask.attrs["nodata"] == 0
        assert len(log) == planned  # the header is cached: planning again read nothing
        path.unlink()  # the pixels can only come over HTTP (or GDAL's cache of it)
        values = ds.compute().oa_fmask.values[0]
        assert all(" /oa_fmask.tif " in line for line in log)
    np.testing.assert_array_equal(values, fmask)
