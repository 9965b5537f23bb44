"""THEIA MAJA-format products of the sample's scenes, and the crossing on them.

Issue 18: ``theia`` publishes the same acquisitions as Sen2Cor-like items (``sentinel-2-l2a``)
and as MAJA products in THEIA's format (``sentinel2-l2a-theia``), masks consistent with the
scene classification; the water-quality crossing gives the same result on either. Every
expected value is read from the files with rasterio (or the generator's ``truth.nc``), not
through the loader.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

import datacubes
import lab
from lab._cli import main
from recipes import matchup
from recipes.crossing import water_quality_crossing

MAJA = "sentinel2-l2a-theia"
SEN2COR = "sentinel-2-l2a"
NAME = re.compile(r"SENTINEL2[AB]_(\d{8})-(\d{6})-000_L2A_T31TEJ_C_V3-1")
BAND_KEYS = ["B02", "B03", "B04", "B05", "B08", "B8A", "B11"]
SIGMA = 0.0003  # the generator's reflectance noise, per processing chain


@pytest.fixture(scope="module")
def federation(sample_dir: Path) -> lab.FederatedCatalog:
    return lab.catalog(sample_dir / "centres.yaml")


@pytest.fixture(scope="module")
def pairs(federation: lab.FederatedCatalog) -> list[tuple[object, object]]:
    """(MAJA item, Sen2Cor item) of each acquisition, by datetime."""
    maja = list(federation.search(collections=MAJA))
    sen2cor = {item.datetime: item for item in federation.search(collections=SEN2COR)}
    return [(item, sen2cor[item.datetime]) for item in maja]


@pytest.fixture(scope="module")
def truth(sample_dir: Path) -> xr.Dataset:
    with xr.open_dataset(sample_dir / "truth" / "truth.nc") as ds:
        return ds[["scl", "surface"]].load()


def _read(href: str) -> np.ndarray:
    with rasterio.open(href) as src:
        if "/SENTINEL2" in href:
            assert src.nodata is None  # as MAJA writes them: no nodata tag
        return src.read(1)


def test_theia_publishes_every_scene_in_both_formats(pairs, federation) -> None:
    assert len(pairs) == 16
    for maja, sen2cor in pairs:
        match = NAME.fullmatch(maja.id)
        assert match, maja.id
        assert match.group(1) == f"{sen2cor.datetime:%Y%m%d}"
        assert maja.properties["earthlab:centre"] == "theia"
        assert maja.properties["platform"] == sen2cor.properties["platform"]
        assert maja.properties["eo:cloud_cover"] == sen2cor.properties["eo:cloud_cover"]
        assert sorted(maja.assets) == sorted([*BAND_KEYS, "CLM_R2", "MG2_R2", "EDG_R2"])
        for key, asset in maja.assets.items():  # as THEIA's catalogue: no raster extension
            assert "raster:bands" not in asset.extra_fields
            assert asset.extra_fields["proj:shape"] == [800, 800]
            number = key[1:].lstrip("0")
            expected = (
                f"MASKS/{maja.id}_{key}.tif" if key[0] in "CME" else f"{maja.id}_FRE_B{number}.tif"
            )
            assert asset.href.endswith(f"/{maja.id}/{expected}"), asset.href
    # the lab's own MUSCATE reader sees the same product in the directory
    maja, _ = pairs[0]
    folder = Path(maja.assets["B04"].href).parent
    again = datacubes.maja_item(folder)
    assert again.id == maja.id and set(again.assets) == set(maja.assets)
    described = datacubes.describe_bands([maja], ["red", "nir08"])
    assert list(described["asset_key"]) == ["B04", "B8A"]
    assert list(described["scale"]) == [1e-4, 1e-4] and list(described["offset"]) == [0.0, 0.0]
    assert list(described["nodata"]) == [-10000, -10000]


def test_maja_masks_say_what_the_scene_classification_says(pairs, truth) -> None:
    water_surface = truth["surface"].values != 0
    for t, (maja, sen2cor) in enumerate(pairs):
        scl = _read(sen2cor.assets["scl"].href)
        np.testing.assert_array_equal(scl, truth["scl"].values[t])
        clm = _read(maja.assets["CLM_R2"].href)
        mg2 = _read(maja.assets["MG2_R2"].href)
        edg = _read(maja.assets["EDG_R2"].href)
        # CLM (MUSCATE bit order): medium clouds 0-2, high clouds 0-3, cirrus 4 and 7
        # (thinnest, 1.38 um), cloud shadows 0 and 5; nothing else
        expected = np.select(
            [scl == 8, scl == 9, scl == 10, scl == 3],
            [0b0000_0111, 0b0000_1111, 0b1001_0000, 0b0010_0001],
            0,
        )
        np.testing.assert_array_equal(clm, expected)
        np.testing.assert_array_equal(edg, (scl == 0).astype(np.uint8))
        # MG2 bit 0 water: the surface is water inside the swath, clouds or not; clear water
        # (no CLM bit) is exactly SCL class 6
        np.testing.assert_array_equal((mg2 & 1) != 0, water_surface & (scl != 0))
        np.testing.assert_array_equal(((mg2 & 1) != 0) & (clm == 0), scl == 6)
        np.testing.assert_array_equal((mg2 & 2) != 0, np.isin(scl, (8, 9, 10)))
        np.testing.assert_array_equal((mg2 & 8) != 0, scl == 3)
        assert not (mg2 & 0b1111_0100).any()


def test_maja_reflectance_is_the_same_scene_through_another_chain(pairs) -> None:
    """FRE = the same noise-free reflectance, its own noise: differences of sigma x sqrt(2)."""
    diffs = []
    for maja, sen2cor in pairs[:4]:
        scl = _read(sen2cor.assets["scl"].href)
        offset = 1000 if sen2cor.properties["s2:processing_baseline"] >= "04.00" else 0
        for key, common in (("B04", "red"), ("B05", "rededge1")):
            fre = _read(maja.assets[key].href)
            assert fre.dtype == np.int16
            np.testing.assert_array_equal(fre == -10000, scl == 0)
            dn = _read(sen2cor.assets[common].href).astype(np.float64)
            clear = np.isin(scl, (4, 5, 6))
            diffs.append((fre[clear] - (dn[clear] - offset)) / 10000)
    diff = np.concatenate(diffs)
    assert abs(diff.mean()) < 1e-5
    assert diff.std() == pytest.approx(SIGMA * np.sqrt(2), rel=0.05)  # two draws, not one


def test_flags_of_both_formats_agree_pixel_for_pixel(pairs) -> None:
    maja = [m for m, _ in pairs[:5]]
    sen2cor = [s for _, s in pairs[:5]]
    flags = ["water", "clouds", "nodata"]
    a = datacubes.load(maja, ["red"], mask="clouds", flags=flags).compute()
    b = datacubes.load(sen2cor, ["red", "scl"], mask="clouds", flags=flags).compute()
    scl = b["scl"].values
    clear_water = a.flag_water & ~a.flag_clouds & ~a.flag_nodata
    np.testing.assert_array_equal(clear_water.values, scl == 6)
    np.testing.assert_array_equal(b.flag_water.values, scl == 6)
    np.testing.assert_array_equal(a.flag_nodata.values, scl == 0)
    # the MAJA clouds flag is CLM's (the edge is flag_nodata); Sen2Cor's includes SCL 0
    np.testing.assert_array_equal(a.flag_clouds.values | a.flag_nodata.values, b.flag_clouds.values)
    np.testing.assert_array_equal(np.isnan(a.red.values), np.isnan(b.red.values))
    assert a.flag_water.attrs["flag_test"] == "MG2_R2 has bit 0 set"
    assert b.flag_water.attrs["flag_test"] == "SCL is 6"
    # the matchup's surface states are the same from the SCL and from either product's flags
    from_scl = matchup.surface_states(b).values
    np.testing.assert_array_equal(matchup.surface_states(a).values, from_scl)
    np.testing.assert_array_equal(matchup.surface_states(b.drop_vars("scl")).values, from_scl)


@pytest.mark.slow
def test_the_crossing_gives_the_same_result_on_maja_and_on_sen2cor(
    sample_dir: Path, tmp_path: Path
) -> None:
    centres = sample_dir / "centres.yaml"
    sen2cor = water_quality_crossing(tmp_path / "sen2cor", centres=centres, progress=None)
    # the MAJA run as users start it: `earthlab demo --collection`
    out = tmp_path / "maja"
    args = ["demo", "--collection", MAJA, "--centres", str(centres), "--out", str(out)]
    assert main(args) == 0
    maja_matchups = pd.read_parquet(out / "matchups.parquet")
    maja_validation = json.loads((out / "validation.json").read_text())
    a, b = sen2cor.matchups, maja_matchups
    assert len(a) == len(b) == 178
    assert list(a["station_id"]) == list(b["station_id"])
    assert list(pd.to_datetime(a["sat_time"])) == list(pd.to_datetime(b["sat_time"]))
    assert all(ids.startswith("SENTINEL2") for ids in b["item_ids"].dropna())
    # the same water, clouds and swath: every reason but the noise-dependent ones is the same
    assert (a["reason"] == b["reason"]).sum() >= len(a) - 2
    differ = a["reason"] != b["reason"]
    assert set(a["reason"][differ]) | set(b["reason"][differ]) <= {"kept", "cv"}
    for column in ("n_water", "n_clear", "n_valid"):
        assert list(a[column].fillna(-1)) == list(b[column].fillna(-1)), column
    both = a["kept"] & b["kept"]
    relative = (b["sat_mean"][both] - a["sat_mean"][both]).abs() / a["sat_mean"][both]
    assert relative.median() < 0.01 and relative.max() < 0.1
    for parameter in ("turbidity", "chlorophyll_a"):
        m, s = maja_validation[parameter], sen2cor.validation[parameter]
        assert abs(m["n"] - s["n"]) <= 2
        assert m["log_bias"] == pytest.approx(s["log_bias"], abs=0.01)
        assert m["r2"] == pytest.approx(s["r2"], abs=0.03)
        assert m["mdsa"] == pytest.approx(s["mdsa"], abs=2.0)
    cube = xr.open_zarr(out / "cube.zarr", consolidated=False)
    assert {"flag_water", "flag_clouds", "flag_nodata", "water"} <= set(cube.data_vars)
    assert all(ids.startswith("SENTINEL2") for ids in cube["source_items"].values)
