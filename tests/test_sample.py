"""The embedded sample federation: layout, STAC metadata, and the values it promises (its truth).

Most tests read the session sample (``sample_dir``); the formulas they check against are the
published ones (Nechad 2009, Mishra & Mishra 2012, Sentinel-2 L2A offsets), written out here
independently of the generator.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pystac
import pystac.validation
import pytest
import rasterio
import rustac
import xarray as xr
import yaml
from pyproj import Transformer

import lab
import lab._cli
import lab.sample
from lab._errors import ConfigurationError
from lab.sample import _scenes

S2 = "sentinel-2-l2a"
INSITU = "insitu-water-quality"
OCEAN = "ocean-colour-daily"
REFLECTANCE_ASSETS = ["blue", "green", "red", "rededge1", "nir", "nir08", "swir16"]
NECHAD_A, NECHAD_C = 282.95, 0.1728
SIGMA = 0.0003  # reflectance noise of the contract
LAGOON_STATIONS = [f"THAU0{i}" for i in range(1, 7)]


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def truth(sample_dir: Path) -> xr.Dataset:
    with xr.open_dataset(sample_dir / "truth" / "truth.nc", engine="h5netcdf") as ds:
        return ds.load()


@pytest.fixture(scope="session")
def s2_items(sample_dir: Path) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json"))
    return sorted(_sen2cor(catalog), key=lambda it: it.datetime)


@pytest.fixture(scope="session")
def insitu(sample_dir: Path) -> pd.DataFrame:
    files = sorted((sample_dir / "odatis" / INSITU).glob("*/*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.fixture(scope="session")
def matchups(sample_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sample_dir / "truth" / "expected_matchups.csv")


def read(item: pystac.Item, key: str) -> np.ndarray:
    with rasterio.open(item.assets[key].get_absolute_href()) as src:
        return src.read(1)


def reflectance(item: pystac.Item, key: str) -> np.ndarray:
    """Reflectance from DN with the item's own raster:bands scale and offset (NaN at nodata)."""
    band = item.assets[key].extra_fields["raster:bands"][0]
    dn = read(item, key)
    return np.where(dn == 0, np.nan, dn * band["scale"] + band["offset"])


def time_index(truth: xr.Dataset, item: pystac.Item) -> int:
    times = pd.DatetimeIndex(truth.time.values)
    return int(times.get_loc(pd.Timestamp(item.datetime).tz_convert(None)))


def clearest(items: list[pystac.Item], baseline: str) -> pystac.Item:
    mine = [it for it in items if it.properties["s2:processing_baseline"] == baseline]
    return min(mine, key=lambda it: it.properties["eo:cloud_cover"])


def station(sample_truth: dict, station_id: str) -> dict:
    return next(s for s in sample_truth["stations"] if s["station_id"] == station_id)


# ---------------------------------------------------------------------------- layout


def test_centres_file_has_the_documented_shape(sample_dir: Path) -> None:
    text = (sample_dir / "centres.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Centres of the Earth Analytics Lab embedded sample federation")
    doc = yaml.safe_load(text)
    assert doc["version"] == 1
    assert [c["name"] for c in doc["centres"]] == ["theia", "odatis", "dinamis", "aeris"]
    theia, odatis, _dinamis, aeris = doc["centres"]
    assert aeris["collections"] == ["aerosol-optical-depth-daily"]
    assert theia["catalog"] == {"kind": "stac-geoparquet", "href": "theia/items.parquet"}
    assert odatis["catalog"] == {"kind": "stac-geoparquet", "href": "odatis/items.parquet"}
    assert theia["collections"] == [S2, "sentinel2-l2a-theia"]
    assert odatis["collections"] == [INSITU, OCEAN]
    assert theia["title"] == "THEIA — continental surfaces (sample)"
    for centre in doc["centres"]:
        assert (sample_dir / centre["catalog"]["href"]).is_file()
        assert (sample_dir / centre["static_catalog"]).is_file()


def test_layout_has_every_file(sample_dir: Path, sample_truth: dict) -> None:
    assert len(sample_truth["acquisitions"]) == 16
    for acq in sample_truth["acquisitions"]:
        item_dir = sample_dir / "theia" / S2 / acq["item_id"]
        expected = {f"{k}.tif" for k in [*REFLECTANCE_ASSETS, "scl"]} | {f"{acq['item_id']}.json"}
        assert {p.name for p in item_dir.iterdir()} == expected
    for st in sample_truth["stations"]:
        item_dir = sample_dir / "odatis" / INSITU / st["item_id"]
        sid = st["station_id"]
        assert {p.name for p in item_dir.iterdir()} == {
            f"{st['item_id']}.json",
            f"{sid}.parquet",
            f"{sid}.csv",
        }
    for name in ("generator.json", "truth.nc", "expected_matchups.csv"):
        assert (sample_dir / "truth" / name).is_file()
    assert not any("partial" in p.name for p in sample_dir.parent.iterdir())


def test_no_absolute_or_temporary_path_leaks_into_metadata(sample_dir: Path) -> None:
    for path in [*sample_dir.rglob("*.json"), *sample_dir.rglob("*.yaml")]:
        text = path.read_text(encoding="utf-8")
        assert str(sample_dir) not in text and ".partial-" not in text, path


# ---------------------------------------------------------------------------- grid and COGs


def test_grid_is_centred_on_the_lagoon_at_20_m(sample_dir: Path, s2_items: list) -> None:
    with rasterio.open(s2_items[0].assets["red"].get_absolute_href()) as src:
        assert src.crs.to_epsg() == 32631
        assert (src.width, src.height) == (800, 800)
        t = src.transform
        assert (t.a, t.e, t.b, t.d) == (20.0, -20.0, 0.0, 0.0)
        assert t.c % 20 == 0 and t.f % 20 == 0
        cx, cy = Transformer.from_crs(4326, 32631, always_xy=True).transform(3.615, 43.395)
        assert abs(t.c + 8000 - cx) <= 10 and abs(t.f - 8000 - cy) <= 10


@pytest.mark.parametrize("key", ["red", "scl"])
def test_assets_are_cogs(s2_items: list, key: str) -> None:
    with rasterio.open(s2_items[3].assets[key].get_absolute_href()) as src:
        assert src.nodata == 0
        assert src.dtypes[0] == ("uint8" if key == "scl" else "uint16")
        assert src.block_shapes[0] == (256, 256)
        assert src.compression.name.upper() == "DEFLATE"
        assert src.overviews(1) == [2, 4]
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_surface_is_a_lagoon_ellipse_with_the_sea_south_east(truth: xr.Dataset) -> None:
    surface = truth.surface.values
    lagoon_km2 = np.count_nonzero(surface == 1) * 0.02**2
    assert lagoon_km2 == pytest.approx(np.pi * 9.5 * 2.6, rel=0.01)
    rows, cols = np.nonzero(surface == 2)
    lrows, lcols = np.nonzero(surface == 1)
    assert rows.mean() > lrows.mean() and cols.mean() > lcols.mean()  # south-east
    assert set(np.unique(surface)) == {0, 1, 2}


# ---------------------------------------------------------------------------- STAC items


def test_baselines_and_raster_offsets(s2_items: list) -> None:
    change = datetime(2022, 1, 25, tzinfo=UTC)
    assert {it.properties["s2:processing_baseline"] for it in s2_items} == {"03.01", "04.00"}
    for item in s2_items:
        new = item.datetime >= change
        assert item.properties["s2:processing_baseline"] == ("04.00" if new else "03.01")
        for key in REFLECTANCE_ASSETS:
            assert item.assets[key].extra_fields["raster:bands"] == [
                {
                    "nodata": 0,
                    "data_type": "uint16",
                    "spatial_resolution": 20,
                    "scale": 0.0001,
                    "offset": -0.1 if new else 0.0,
                }
            ]
        assert item.assets["scl"].extra_fields["raster:bands"] == [
            {"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}
        ]


def test_dates_every_15_days_at_the_overpass_time(s2_items: list) -> None:
    times = [it.datetime for it in s2_items]
    assert times[0] == datetime(2021, 10, 3, 10, 40, tzinfo=UTC)
    assert {(b - a).days for a, b in itertools.pairwise(times)} == {15}
    assert [it.properties["platform"] for it in s2_items[:2]] == ["sentinel-2a", "sentinel-2b"]


def test_item_json_has_the_extensions(sample_dir: Path, s2_items: list) -> None:
    item = s2_items[0]
    d = json.loads(Path(item.get_self_href()).read_text())
    assert d["stac_version"] == "1.1.0"
    assert set(d["stac_extensions"]) >= {
        "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    }
    p = d["properties"]
    assert p["proj:code"] == "EPSG:32631" and "proj:epsg" not in p
    assert p["proj:shape"] == [800, 800]
    with rasterio.open(item.assets["red"].get_absolute_href()) as src:
        assert p["proj:transform"] == list(src.transform)[:6]
        assert p["proj:bbox"] == list(src.bounds)
    assert p["s2:mgrs_tile"] == "31TEJ" and p["constellation"] == "sentinel-2"
    assert p["instruments"] == ["msi"] and 0 <= p["eo:cloud_cover"] <= 100
    assert p["created"] == p["updated"] and p["created"].startswith(p["datetime"][:10])
    assert (
        d["assets"]["red"]["eo:bands"][0].items() >= {"name": "B04", "common_name": "red"}.items()
    )
    assert d["assets"]["rededge1"]["eo:bands"][0]["name"] == "B05"
    assert d["assets"]["red"]["href"] == "./red.tif"
    for asset in d["assets"].values():
        href = Path(item.get_self_href()).parent / asset["href"]
        assert asset["file:size"] == href.stat().st_size
    # The core STAC 1.1 schema ships with pystac (extension schemas would need the network).
    pystac.validation.validate_dict(d, extensions=[])


def test_items_parquet_matches_the_static_catalogue(sample_dir: Path, s2_items: list) -> None:
    features = rustac.read_sync(str(sample_dir / "theia" / "items.parquet"))["features"]
    # the Sen2Cor-like items first, then the MAJA products of the same scenes
    assert [f["collection"] for f in features] == [S2] * 16 + ["sentinel2-l2a-theia"] * 16
    features = features[:16]
    assert [f["id"] for f in features] == [it.id for it in s2_items]
    for feature, item in zip(features, s2_items, strict=True):
        for key, asset in feature["assets"].items():
            assert asset["href"] == f"{S2}/{item.id}/{key}.tif"
            assert (sample_dir / "theia" / asset["href"]).is_file()
            assert asset["raster:bands"] == item.assets[key].extra_fields["raster:bands"]
        for name in ("proj:code", "s2:processing_baseline", "eo:cloud_cover", "platform"):
            assert feature["properties"][name] == item.properties[name]


def test_station_items(sample_dir: Path, sample_truth: dict) -> None:
    catalog = pystac.Catalog.from_file(str(sample_dir / "odatis" / "catalog.json"))
    stations = catalog.get_child(INSITU)
    assert stations is not None
    items = {it.properties["earthlab:station_id"]: it for it in stations.get_items()}
    assert sorted(items) == sorted([*LAGOON_STATIONS, "MEZE_LAND"])
    for sid, item in items.items():
        st = station(sample_truth, sid)
        assert item.geometry == {"type": "Point", "coordinates": [st["lon"], st["lat"]]}
        assert item.datetime is None
        assert item.common_metadata.start_datetime < item.common_metadata.end_datetime
        assert item.assets["parquet"].media_type == "application/vnd.apache.parquet"
        assert item.assets["csv"].media_type == "text/csv"
        pystac.validation.validate_dict(item.to_dict(), extensions=[])
    features = rustac.read_sync(str(sample_dir / "odatis" / "items.parquet"))["features"]
    assert [f["collection"] for f in features] == [INSITU] * 7 + [OCEAN] * 92
    for f in features:
        for asset in f["assets"].values():
            assert (sample_dir / "odatis" / asset["href"]).is_file()


# ---------------------------------------------------------------------------- reflectance values


@pytest.mark.parametrize("baseline", ["03.01", "04.00"])
def test_red_is_the_nechad_inverse_of_the_truth_turbidity(
    s2_items: list, truth: xr.Dataset, baseline: str
) -> None:
    item = clearest(s2_items, baseline)
    i = time_index(truth, item)
    water = read(item, "scl") == 6
    turbidity = truth.turbidity.values[i][water].astype(np.float64)
    expected = turbidity / (NECHAD_A + turbidity / NECHAD_C)
    error = reflectance(item, "red")[water] - expected
    assert water.sum() > 100_000
    assert abs(error.mean()) < 1e-5
    assert error.std() == pytest.approx(SIGMA, rel=0.05)
    assert np.abs(error).max() < 6 * SIGMA + 0.5e-4  # noise + DN rounding
    # and forward Nechad gives back the truth (noise dominates at low turbidity)
    rho = reflectance(item, "red")[water]
    estimate = NECHAD_A * rho / (1 - rho / NECHAD_C)
    assert np.median(np.abs(np.log(estimate / turbidity))) < 0.05


@pytest.mark.parametrize("baseline", ["03.01", "04.00"])
def test_ndci_reproduces_the_truth_chlorophyll(
    s2_items: list, truth: xr.Dataset, baseline: str
) -> None:
    item = clearest(s2_items, baseline)
    i = time_index(truth, item)
    water = read(item, "scl") == 6
    red, re1 = reflectance(item, "red")[water], reflectance(item, "rededge1")[water]
    ndci = (re1 - red) / (re1 + red)
    chl = 14.039 + 86.115 * ndci + 194.325 * ndci**2
    chl_truth = truth.chlorophyll_a.values[i][water]
    # error propagated from the reflectance noise into NDCI, pixel by pixel
    sigma_ndci = 2 * SIGMA * np.hypot(red, re1) / (red + re1) ** 2
    ndci_truth = (-86.115 + np.sqrt(86.115**2 - 4 * 194.325 * (14.039 - chl_truth))) / (2 * 194.325)
    assert np.all(np.abs(ndci - ndci_truth) < 6 * sigma_ndci + 0.01)
    assert np.median(np.abs(chl - chl_truth) / chl_truth) < 0.08
    assert abs(np.median(np.log(chl[chl > 0] / chl_truth[chl > 0]))) < 0.01


def test_water_indices_are_positive_on_clear_water(s2_items: list) -> None:
    item = clearest(s2_items, "03.01")
    water = read(item, "scl") == 6
    green, nir, swir = (reflectance(item, k)[water] for k in ("green", "nir", "swir16"))
    assert np.all((green - nir) / (green + nir) > 0.3)  # NDWI
    assert np.all((green - swir) / (green + swir) > 0.5)  # MNDWI
    assert np.median(swir) == pytest.approx(0.002, abs=1e-4)


def test_valid_dn_never_hits_nodata_and_land_is_vegetation_or_soil(
    s2_items: list, truth: xr.Dataset
) -> None:
    item = clearest(s2_items, "03.01")
    scl = read(item, "scl")
    for key in REFLECTANCE_ASSETS:
        assert np.all((read(item, key) == 0) == (scl == 0))
    land = truth.surface.values == 0
    assert set(np.unique(scl[land])) <= {0, 3, 4, 5, 8, 9, 10}
    assert {4, 5} <= set(np.unique(scl[land]))


# ---------------------------------------------------------------------------- clouds and SCL


def test_scl_is_water_exactly_on_clear_water(s2_items: list, truth: xr.Dataset) -> None:
    water = truth.surface.values > 0
    clear_dates = 0
    for item in s2_items:
        scl = read(item, "scl")
        np.testing.assert_array_equal(scl, truth.scl.values[time_index(truth, item)])
        assert not np.any((scl == 6) & ~water)
        assert set(np.unique(scl[water & (scl != 6)])) <= {0, 3, 8, 9, 10}
        if item.properties["eo:cloud_cover"] == 0 and not (scl == 0).any():
            np.testing.assert_array_equal(scl == 6, water)
            clear_dates += 1
    assert clear_dates >= 1


def test_cloud_cover_mix_and_cloud_cover_property(s2_items: list) -> None:
    covers = []
    for item in s2_items:
        scl = read(item, "scl")
        cloudy = np.isin(scl, (8, 9, 10)).sum() / (scl != 0).sum()
        assert item.properties["eo:cloud_cover"] == pytest.approx(100 * cloudy, abs=0.01)
        covers.append(item.properties["eo:cloud_cover"])
    assert sum(c == 0 for c in covers) >= 2
    assert sum(5 < c < 60 for c in covers) >= 2
    assert max(covers) >= 70


def test_clouds_are_bright_and_shadows_dark(s2_items: list) -> None:
    clear = clearest(s2_items, "03.01")
    seen = {8: 0, 9: 0, 3: 0, 10: 0}
    for item in s2_items:
        scl = read(item, "scl")
        for key in REFLECTANCE_ASSETS:
            rho = reflectance(item, key)
            cloud = np.isin(scl, (8, 9))
            if cloud.any():
                assert np.nanmin(rho[cloud]) > 0.15, (item.id, key)
                assert np.nanmedian(rho[scl == 9]) > 0.45
            # land is static: a shadowed land pixel is the clear-date pixel times 0.35
            shadow = (scl == 3) & (read(clear, "scl") >= 4) & (read(clear, "scl") <= 5)
            if key == "nir" and shadow.any():
                ratio = rho[shadow] / reflectance(clear, key)[shadow]
                assert np.median(ratio) == pytest.approx(0.35, abs=0.01)
        for code in seen:
            seen[code] += int((scl == code).sum())
    assert all(n > 0 for n in seen.values()), seen


def test_nodata_wedges_stay_away_from_stations(s2_items: list, sample_truth: dict) -> None:
    wedged = [it for it in s2_items if (read(it, "scl") == 0).any()]
    assert len(wedged) >= 2
    for item in wedged:
        scl = read(item, "scl")
        for st in sample_truth["stations"]:
            r, c = st["row"], st["col"]
            assert not (scl[r - 10 : r + 11, c - 10 : c + 11] == 0).any(), (item.id, st)


# ---------------------------------------------------------------------------- truth.nc


def test_truth_fields_ranges_nan_on_land_and_smooth(truth: xr.Dataset) -> None:
    land = truth.surface.values == 0
    for name, (lo, hi), unit in (
        ("turbidity", (1, 40), "FNU"),
        ("chlorophyll_a", (5, 40), "ug L-1"),
    ):
        field = truth[name]
        assert field.dtype == np.float32 and field.dims == ("time", "y", "x")
        assert field.attrs["units"] == unit and field.attrs["long_name"]
        values = field.values
        assert np.isnan(values[:, land]).all() and not np.isnan(values[:, ~land]).any()
        assert lo <= np.nanmin(values) and np.nanmax(values) <= hi
        assert np.nanmax(values) - np.nanmin(values) > 15  # it varies
        step = np.nanmax(np.abs(values[:, :, 5:] - values[:, :, :-5]))  # over 100 m
        assert step < 0.1 * (hi - lo)
        per_date = np.nanmean(values, axis=(1, 2))
        assert per_date.max() - per_date.min() > 1  # and it varies in time
    assert truth.scl.dtype == np.uint8 and truth.surface.dtype == np.uint8


def test_truth_grid_mapping_and_coordinates(sample_dir: Path, s2_items: list) -> None:
    with xr.open_dataset(
        sample_dir / "truth" / "truth.nc", engine="h5netcdf", decode_coords="all"
    ) as ds:
        assert "spatial_ref" in ds.coords
        assert ds.turbidity.encoding["grid_mapping"] == "spatial_ref"
        assert "UTM zone 31N" in ds.spatial_ref.attrs["crs_wkt"]
        with rasterio.open(s2_items[0].assets["red"].get_absolute_href()) as src:
            t = src.transform
        np.testing.assert_allclose(ds.x.values, t.c + 10 + 20 * np.arange(800))
        np.testing.assert_allclose(ds.y.values, t.f - 10 - 20 * np.arange(800))
        assert ds.x.attrs["units"] == "m"


# ---------------------------------------------------------------------------- stations and in-situ


def test_stations_inside_the_lagoon_and_on_land(truth: xr.Dataset, sample_truth: dict) -> None:
    from scipy import ndimage

    surface = truth.surface.values
    distance = ndimage.distance_transform_edt(surface == 1)
    to_utm = Transformer.from_crs(4326, 32631, always_xy=True)
    x0, y0 = sample_truth["grid"]["transform"][2], sample_truth["grid"]["transform"][5]
    for sid in LAGOON_STATIONS:
        st = station(sample_truth, sid)
        x, y = to_utm.transform(st["lon"], st["lat"])
        row, col = int((y0 - y) // 20), int((x - x0) // 20)
        assert (row, col) == (st["row"], st["col"])
        assert surface[row, col] == 1 and distance[row, col] >= 4, sid
    meze = station(sample_truth, "MEZE_LAND")
    r, c = meze["row"], meze["col"]
    assert (surface[r - 2 : r + 3, c - 2 : c + 3] == 0).all()
    assert meze["lat"] > 43.41  # north shore, at Mèze


def test_insitu_parquet_and_csv_are_the_same_table(sample_dir: Path) -> None:
    for pq_file in sorted((sample_dir / "odatis" / INSITU).glob("*/*.parquet")):
        table = pq.read_table(pq_file)
        assert str(table.schema.field("time").type) == "timestamp[us, tz=UTC]"
        assert str(table.schema.field("qc_flag").type) == "int8"
        frame = table.to_pandas()
        csv = pd.read_csv(pq_file.with_suffix(".csv"), dtype={"qc_flag": "int8"})
        assert csv["time"].str.endswith("Z").all()
        csv["time"] = pd.to_datetime(csv["time"], utc=True).dt.as_unit("us")
        pd.testing.assert_frame_equal(frame, csv)
        assert list(frame.columns) == [
            "station_id",
            "time",
            "lon",
            "lat",
            "parameter",
            "value",
            "unit",
            "qc_flag",
            "source",
        ]
        assert set(frame["unit"]) == {"FNU", "µg/L"} and (frame["source"] == "odatis-sample").all()
        assert set(frame["qc_flag"]) <= {1, 2, 3, 4, 6, 9}
        assert np.allclose(frame["value"], frame["value"].round(2))


def test_insitu_values_are_truth_times_lognormal_noise(
    insitu: pd.DataFrame, truth: xr.Dataset, sample_truth: dict
) -> None:
    times = pd.DatetimeIndex(truth.time.values).tz_localize("UTC")
    ratios = []
    for sid in LAGOON_STATIONS:
        st = station(sample_truth, sid)
        rows = insitu[insitu["station_id"] == sid]
        for _, sample in rows.iterrows():
            dt = np.abs((times - sample["time"]).total_seconds())
            i = int(np.argmin(dt))
            if dt[i] > 2 * 3600:
                continue  # truth.nc only holds the overpasses: use same-day samples
            field = truth[sample["parameter"]].values[i, st["row"], st["col"]]
            ratios.append(np.log(sample["value"] / field))
    ratios = np.array(ratios)
    assert len(ratios) > 80
    assert abs(np.median(ratios)) < 0.03
    assert np.std(ratios) == pytest.approx(0.08, rel=0.25)
    assert np.abs(ratios).max() < 5 * 0.08


def test_samples_are_same_day_or_days_off(insitu: pd.DataFrame, s2_items: list) -> None:
    overpasses = pd.DatetimeIndex([it.datetime for it in s2_items])
    events = insitu.drop_duplicates(["station_id", "time"])
    assert (insitu.groupby(["station_id", "time"]).size() == 2).all()  # both parameters
    hours = [np.abs((overpasses - t).total_seconds()).min() / 3600 for t in events["time"]]
    hours = np.array(hours)
    assert np.all((hours <= 2) | ((hours >= 22) & (hours <= 74)))
    assert (hours <= 2).sum() > (hours > 2).sum() > 5


# ---------------------------------------------------------------------------- expected matchups


def test_expected_matchups_have_every_outcome(matchups: pd.DataFrame) -> None:
    counts = matchups["expected"].value_counts()
    for outcome in ("kept", "clouds", "time", "land"):
        assert counts.get(outcome, 0) >= 3, counts
    land = matchups[matchups["expected"] == "land"]
    assert set(land["station_id"]) == {"MEZE_LAND"} and (land["water_pixels"] == 0).all()


def test_expected_matchups_recomputed_from_the_truth(
    matchups: pd.DataFrame, truth: xr.Dataset, sample_truth: dict, insitu: pd.DataFrame
) -> None:
    items = {a["item_id"]: a for a in sample_truth["acquisitions"]}
    times = pd.DatetimeIndex(truth.time.values).tz_localize("UTC")
    surface = truth.surface.values
    for row in matchups.itertuples():
        st = station(sample_truth, row.station_id)
        t = pd.Timestamp(row.time)
        i = int(np.argmin(np.abs((times - t).total_seconds())))
        assert items[row.item_id]["datetime"] == f"{times[i]:%Y-%m-%dT%H:%M:%SZ}"
        assert row.dt_hours == pytest.approx((t - times[i]).total_seconds() / 3600, abs=1e-3)
        box = (slice(st["row"] - 2, st["row"] + 3), slice(st["col"] - 2, st["col"] + 3))
        water = surface[box] > 0
        clear = water & (truth.scl.values[i][box] == 6)
        assert (row.water_pixels, row.clear_water_pixels) == (water.sum(), clear.sum())
        if abs(row.dt_hours) > 3:
            assert row.expected == "time"
        elif water.sum() == 0:
            assert row.expected == "land"
        else:
            assert row.expected == ("clouds" if clear.sum() / water.sum() < 0.5 else "kept")
    events = insitu.drop_duplicates(["station_id", "time"])
    assert len(events) == len(matchups)


# ---------------------------------------------------------------------------- generator record


def test_generator_record(sample_truth: dict, s2_items: list) -> None:
    assert sample_truth["seed"] == 20220125 and sample_truth["n_dates"] == 16
    assert sample_truth["grid"]["crs"] == "EPSG:32631"
    assert sample_truth["grid"]["shape"] == [800, 800]
    assert [a["item_id"] for a in sample_truth["acquisitions"]] == [it.id for it in s2_items]
    assert sample_truth["algorithms"]["nechad2009_turbidity"] == {
        "A": 282.95,
        "C": 0.1728,
        "band": "red",
    }
    assert sample_truth["algorithms"]["ndci_mishra2012"]["coefficients"] == [
        14.039,
        86.115,
        194.325,
    ]
    assert sample_truth["noise"]["reflectance_sigma"] == SIGMA
    assert sample_truth["noise"]["insitu_ln_sigma"] == 0.08
    assert sample_truth["matchup_protocol"] == {
        "box_size": 5,
        "max_time_difference_hours": 3.0,
        "min_valid_fraction": 0.5,
    }


# ---------------------------------------------------------------------------- dates option


def test_more_dates_keep_a_six_month_span_across_the_baseline_change() -> None:
    for n in (16, 17, 64, 113):
        acqs = _scenes.acquisitions(n)
        assert len(acqs) == n
        assert (acqs[-1].datetime - acqs[0].datetime).days >= 183
        assert {a.baseline for a in acqs} == {"03.01", "04.00"}
    with pytest.raises(ConfigurationError, match="at least 16"):
        _scenes.acquisitions(15)
    with pytest.raises(ConfigurationError, match="too large"):
        _scenes.acquisitions(114)


# ---------------------------------------------------------------------------- target directory


@pytest.fixture()
def fake_generate(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the (slow) generation by a tiny one; record the directories it wrote."""
    from lab.sample import _generate

    calls: list[Path] = []

    def generate(root: Path, acqs, seed, progress) -> None:
        calls.append(root)
        root.mkdir()
        (root / "centres.yaml").write_text(f"seed {seed}\n")

    monkeypatch.setattr(_generate, "generate", generate)
    return calls


def test_make_sample_refuses_a_non_empty_directory(tmp_path: Path, fake_generate: list) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match=r"not empty.*overwrite"):
        lab.make_sample(target)
    with pytest.raises(ConfigurationError, match="not a sample federation"):
        lab.make_sample(target, overwrite=True)  # never deletes someone else's files
    assert (target / "notes.txt").read_text() == "mine" and not fake_generate


def test_make_sample_overwrites_a_sample_and_leaves_no_temporary(
    tmp_path: Path, fake_generate: list
) -> None:
    target = tmp_path / "out"
    assert lab.make_sample(target, seed=1) == target / "centres.yaml"
    assert lab.make_sample(target, seed=2, overwrite=True).read_text() == "seed 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert fake_generate[0].parent == tmp_path  # generated in a sibling, then renamed


def test_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.sample import _generate

    def broken(root: Path, *args) -> None:
        root.mkdir()
        (root / "half.tif").write_bytes(b"...")
        raise KeyboardInterrupt

    monkeypatch.setattr(_generate, "generate", broken)
    with pytest.raises(KeyboardInterrupt):
        lab.make_sample(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_ensure_default_sample_generates_once_under_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_generate: list
) -> None:
    monkeypatch.setenv("EARTHLAB_CACHE_DIR", str(tmp_path))
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(lab.sample.ensure_default_sample()))
        for _ in range(4)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == [tmp_path / "sample-v5" / "centres.yaml"] * 4
    assert len(fake_generate) == 1


def test_cli_refuses_a_non_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "x").write_text("")
    assert lab._cli.main(["sample", "--out", str(tmp_path)]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_cli_rejects_too_few_dates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:  # a bad argument is argparse's error: status 2
        lab._cli.main(["sample", "--out", str(tmp_path / "s"), "--dates", "8"])
    assert exited.value.code == 2
    assert "argument --dates: must be an integer from 16 to 113" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------------------- determinism


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_cli_writes_a_byte_identical_federation(
    sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "again"
    assert lab._cli.main(["sample", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"export EARTHLAB_CENTRES={out / 'centres.yaml'}" in printed
    first, second = _digest(sample_dir), _digest(out)
    # the layout of the contract: scenes, their MAJA products (7 FRE, 3 masks, the item),
    # stations, ocean-colour and aerosol days and their references, Pléiades scenes, each
    # centre's catalogue, collection(s) and items.parquet, the truth's three files, centres.yaml
    scenes, maja = 16 * 9, 16 * (7 + 3 + 1)
    centres = 4 * 3 + 2  # theia and odatis have a second collection
    assert len(first) == scenes + maja + 7 * 3 + 2 * (92 * 2 + 1) + 3 * 5 + centres + 3 + 1
    assert first == second


class _StrictJson:
    """Stands in for orjson inside pystac: refuses what orjson refuses (numpy floats...)."""

    OPT_INDENT_2 = 0

    @staticmethod
    def dumps(document: object, option: int = 0) -> bytes:
        def walk(value: object, path: str) -> None:
            if isinstance(value, dict):
                for key, child in value.items():
                    walk(child, f"{path}.{key}")
            elif isinstance(value, list):
                for index, child in enumerate(value):
                    walk(child, f"{path}[{index}]")
            elif not (isinstance(value, str | int) or type(value) in (float, type(None))):
                # orjson takes subclasses of str and int (enums) but not of float
                raise TypeError(f"{path}: {type(value).__name__} is not JSON serializable")

        walk(document, "$")
        return json.dumps(document, indent=2).encode()


@pytest.mark.slow
def test_generation_writes_plain_json_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With orjson installed (common in Pangeo environments) pystac serialises through it, and
    orjson refuses numpy scalars: the generator must hand pystac plain Python values."""
    import pystac.stac_io

    monkeypatch.setattr(pystac.stac_io, "orjson", _StrictJson)
    lab.make_sample(tmp_path / "out")
    item = json.loads(next((tmp_path / "out").rglob("S2*_L2A.json")).read_text())
    assert type(item["properties"]["eo:cloud_cover"]) is float


def _sen2cor(catalog: pystac.Catalog) -> list[pystac.Item]:
    """The Sen2Cor-like items of theia (it also publishes the same scenes as MAJA products)."""
    return [i for i in catalog.get_items(recursive=True) if i.collection_id == "sentinel-2-l2a"]
