"""The second crossing: the gridded ocean-colour product against the stations and Sentinel-2.

``recipes.intercomparison.aggregate_to_grid`` is checked cell by cell against a plain
selection of the Sentinel-2 pixels whose centre falls in the cell; the crossing's outputs
against the matchups and pairs recomputed here, and against the truth: the product and the
Sentinel-2 retrieval come from the same truth model (the product at 10:30, the scenes at
10:40), so they agree to a fraction of a percent.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import Transformer

import datacubes
import lab
from recipes import crossing, intercomparison, matchup
from recipes import water_quality as wq


@pytest.fixture(scope="module")
def federation(sample_dir: Path) -> lab.FederatedCatalog:
    return lab.catalog(sample_dir / "centres.yaml")


@pytest.fixture(scope="module")
def product(federation: lab.FederatedCatalog) -> xr.Dataset:
    (collection,) = [c for c in federation.collections() if c.id == "ocean-colour-daily"]
    return datacubes.load_gridded(collection, datetime="2021-10-03/2021-10-18")


@pytest.fixture(scope="module")
def sentinel2(federation: lab.FederatedCatalog) -> xr.Dataset:
    scenes = federation.search(collections="sentinel-2-l2a", datetime="2021-10-01/2021-10-20")
    cube = datacubes.load(scenes, bands=[*crossing.BANDS, "scl"], mask="clouds")
    return wq.add_water_quality(cube)[["turbidity", "chlorophyll_a"]].compute()


def test_each_cell_is_the_mean_of_the_pixels_inside_it(
    product: xr.Dataset, sentinel2: xr.Dataset
) -> None:
    fine = intercomparison.aggregate_to_grid(sentinel2, product, ["turbidity"])
    assert fine["turbidity"].dims == ("time", "lat", "lon")
    assert fine.sizes == {"time": 2, "lat": product.sizes["lat"], "lon": product.sizes["lon"]}
    xs, ys = np.meshgrid(sentinel2["x"].to_numpy(), sentinel2["y"].to_numpy())
    lon, lat = Transformer.from_crs(sentinel2.rio.crs, 4326, always_xy=True).transform(xs, ys)
    dlat, dlon = 0.0027, 0.0037
    values = sentinel2["turbidity"].isel(time=0).to_numpy().astype("float64")
    checked = kept = 0
    for r in range(0, product.sizes["lat"], 7):
        for c in range(0, product.sizes["lon"], 7):
            clat, clon = float(product["lat"][r]), float(product["lon"][c])
            inside = (np.abs(lat - clat) < dlat / 2) & (np.abs(lon - clon) < dlon / 2)
            ours = fine["turbidity"].isel(time=0, lat=r, lon=c).item()
            valid = inside & np.isfinite(values)
            assert fine["turbidity_count"].isel(time=0, lat=r, lon=c).item() == valid.sum()
            if inside.sum() and valid.sum() >= 0.5 * inside.sum():
                assert ours == pytest.approx(values[valid].mean(), rel=1e-9)
                kept += 1
            else:
                assert np.isnan(ours)
            checked += 1
    assert checked >= 49 and kept >= 5


def test_aggregation_refuses_what_it_cannot_do(product: xr.Dataset, sentinel2: xr.Dataset) -> None:
    with pytest.raises(lab.ConfigurationError, match="min_coverage"):
        intercomparison.aggregate_to_grid(sentinel2, product, ["turbidity"], min_coverage=0)
    with pytest.raises(lab.ConfigurationError, match="not in the cube"):
        intercomparison.aggregate_to_grid(sentinel2, product, ["spm"])
    with pytest.raises(lab.ConfigurationError, match="no lat or latitude dimension"):
        intercomparison.aggregate_to_grid(sentinel2, sentinel2, ["turbidity"])
    fine = intercomparison.aggregate_to_grid(sentinel2, product, ["turbidity"])
    with pytest.raises(lab.ConfigurationError, match="cannot pair 'chl' with 'turbidity'"):
        intercomparison.compare(product[["tur"]], fine, {"chl": "turbidity"})


def test_gridded_datetime_takes_rfc3339_instants_with_a_zone(
    product: xr.Dataset, federation: lab.FederatedCatalog
) -> None:
    assert product.sizes["time"] == 16  # 2021-10-03 to 2021-10-18, whole days
    days = federation.search(collections="ocean-colour-daily", datetime="2021-10-03/2021-10-06")
    zoned = datacubes.load_gridded(days, datetime="2021-10-04T00:00:00Z/2021-10-05T23:59:59+00:00")
    assert [str(t)[:16] for t in zoned["time"].to_numpy()] == [
        "2021-10-04T10:30",
        "2021-10-05T10:30",
    ]
    with pytest.raises(lab.EarthLabError, match="RFC 3339"):
        datacubes.load_gridded(days, datetime="2021-13-45T99:00Z/..")


@pytest.fixture(scope="module")
def crossed(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> crossing.CrossingResult:
    out = tmp_path_factory.mktemp("ocean-colour")
    return crossing.ocean_colour_crossing(out, centres=sample_dir / "centres.yaml", progress=None)


def test_the_crossing_writes_what_it_computed(
    crossed: crossing.CrossingResult, sample_dir: Path, product: xr.Dataset
) -> None:
    files = crossed.files
    assert set(files) == {
        "matchups",
        "intercomparison",
        "validation",
        "figure_scatter",
        "figure_intercomparison",
        "report",
    }
    matchups = pd.read_parquet(files["matchups"])
    assert len(matchups) == len(crossed.matchups) and matchups["kept"].sum() >= 20
    # samples after the product's 92 days are left out (counted), not rejected as "time"
    validation = json.loads(files["validation"].read_text())
    assert validation["n_samples_outside_product_days"] > 0
    assert "time" not in validation["reasons"]
    assert validation["reasons"]["land"] > 0 and validation["reasons"]["clouds"] > 0
    kept = matchups[matchups["kept"]]
    for parameter in ("turbidity", "chlorophyll_a"):
        assert validation[parameter]["n"] == int((kept["parameter"] == parameter).sum())
        # the product is the truth at 10:30, a sample the truth at its time x 8 % noise
        assert abs(validation[parameter]["log_bias"] - 1) < 0.05
    # the inter-comparison: every pair is a product cell and the S2 mean on the same day
    pairs = pd.read_parquet(files["intercomparison"])
    assert set(pairs["variable"]) == {"tur", "chl"}
    assert ((pairs["time"] - pairs["product_time"]).abs() <= pd.Timedelta("12h")).all()
    first = pairs[(pairs["variable"] == "tur")].iloc[0]
    with xr.open_dataset(
        sample_dir
        / "odatis"
        / "ocean-colour-daily"
        / f"OC_THAU_{first['product_time']:%Y%m%d}"
        / f"OC_THAU_{first['product_time']:%Y%m%d}.nc",
        engine="h5netcdf",
    ) as day:
        assert first["product"] == day["tur"].sel(lat=first["lat"], lon=first["lon"]).item()
    for name in ("tur", "chl"):
        stats = validation["intercomparison"][name]
        assert stats["n"] == int((pairs["variable"] == name).sum()) > 1000
        assert abs(stats["log_bias"] - 1) < 0.01 and stats["r"] > 0.99 and stats["mdsa"] < 2


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_report_shows_both_comparisons(crossed: crossing.CrossingResult) -> None:
    page = _Tables()
    page.feed(crossed.files["report"].read_text(encoding="utf-8"))
    assert {"reasons", "metrics", "intercomparison", "figure-scatter"} <= set(page.ids)
    assert "figure-intercomparison" in page.ids
    text = " ".join(page.text)
    assert "Synthetic data" in text or "synthetic" in text.lower()
    assert "3 × 3-cell box" in text
    assert "the product never has a value there" in text  # the gridded rule for "land"
    for name in ("matchup_scatter.png", "intercomparison.png"):
        assert (crossed.out / name).stat().st_size > 10_000


def test_the_crossing_without_sentinel2_and_its_errors(sample_dir: Path, tmp_path: Path) -> None:
    result = crossing.ocean_colour_crossing(
        tmp_path / "alone",
        centres=sample_dir / "centres.yaml",
        compare_sentinel2=False,
        datetime="2021-11-01/2021-11-30",
        progress=None,
    )
    assert "intercomparison" not in result.files and "intercomparison" not in result.validation
    assert result.matchups["time"].min() >= pd.Timestamp("2021-10-31T12:00")
    with pytest.raises(lab.NoItemsError, match="no gridded product days"):
        crossing.ocean_colour_crossing(
            tmp_path / "none",
            centres=sample_dir / "centres.yaml",
            datetime="2030-01-01/2030-01-31",
            progress=None,
        )
    # the same matchups as the recipe's building block gives on the same inputs
    assert (result.matchups["reason"] != "kept").any()
    assert set(result.matchups["reason"]) <= set(matchup.REASONS)
