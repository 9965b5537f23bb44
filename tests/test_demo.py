"""`earthlab demo` on the sample federation, checked against the generator's own truth."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import rasterio

from lab._cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--centres", str(sample_dir / "centres.yaml"), "--out", str(out)]) == 0
    return out


def test_demo_writes_every_product(demo: Path) -> None:
    names = {p.name for p in demo.iterdir()}
    assert {"cube.zarr", "matchups.parquet", "validation.json", "report.html"} <= names
    assert {"matchup_scatter.png", "station_timeseries.png", "maps.png"} <= names
    maps = sorted(n for n in names if n.endswith(".tif"))
    assert len(maps) == 4 and any(n.startswith("turbidity_latest_") for n in maps)
    with rasterio.open(demo / "turbidity_median.tif") as cog:
        assert cog.crs.to_epsg() == 32631 and cog.res == (20.0, 20.0)
        assert cog.profile.get("tiled") and cog.overviews(1)  # a COG: tiled, with overviews
    report = (demo / "report.html").read_text()
    for figure in ("matchup_scatter.png", "station_timeseries.png", "maps.png"):
        assert f'src="{figure}"' in report


def test_validation_json_is_strict_and_complete(demo: Path) -> None:
    text = (demo / "validation.json").read_text()
    document = json.loads(
        text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}")
    )
    keys = {
        "n",
        "bias",
        "mae",
        "rmse",
        "mape",
        "log_bias",
        "log_mae",
        "mdsa",
        "sspb",
        "slope",
        "intercept",
        "r",
        "r2",
    }
    for parameter in ("turbidity", "chlorophyll_a"):
        assert keys <= set(document[parameter])
        assert document[parameter]["n"] >= 20
    assert {"nechad", "ndci"} <= set(document["recalibration"])


def test_rejections_are_exactly_those_the_generator_expects(demo: Path, sample_dir: Path) -> None:
    expected = pd.read_csv(sample_dir / "truth" / "expected_matchups.csv", parse_dates=["time"])
    expected["time"] = expected["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    expected = expected.set_index(["station_id", "time"])["expected"]
    matchups = pd.read_parquet(demo / "matchups.parquet")
    for parameter in ("turbidity", "chlorophyll_a"):
        rows = matchups[matchups["parameter"] == parameter].set_index(["station_id", "time"])[
            "reason"
        ]
        assert sorted(rows.index) == sorted(expected.index)
        for reason in ("time", "land", "clouds"):
            assert set(rows[rows == reason].index) == set(expected[expected == reason].index), (
                reason
            )
        # The generator does not model homogeneity: a kept event may only be lost to the CV test.
        lost = rows[(expected.reindex(rows.index) == "kept") & (rows != "kept")]
        assert set(lost) <= {"cv"}
        assert len(lost) <= 0.1 * (expected == "kept").sum()


def test_turbidity_is_recovered_and_nechad_recalibrates_to_the_generator(
    demo: Path, sample_truth: dict
) -> None:
    document = json.loads((demo / "validation.json").read_text())
    assert 0.9 <= document["turbidity"]["log_bias"] <= 1.1
    generator_a = sample_truth["algorithms"]["nechad2009_turbidity"]["A"]
    recalibrated = document["recalibration"]["nechad"]["A"]
    assert abs(recalibrated - generator_a) <= 0.1 * generator_a
    published = sample_truth["algorithms"]["ndci_mishra2012"]["coefficients"]
    refit = document["recalibration"]["ndci"]["a"]
    assert refit[0] == pytest.approx(published[0], rel=0.15)


def test_the_crossing_on_a_dask_cluster_writes_here_and_gives_the_same_result(
    demo: Path, sample_dir: Path, tmp_path: Path
) -> None:
    """With a cluster as the default client (a job on a user's gateway cluster), the
    workers compute and this process writes the cube: no Zarr write runs on a worker, and
    the validation and the cube are those of the plain run."""
    import distributed
    import numpy as np
    import xarray as xr

    from recipes.crossing import water_quality_crossing

    with (
        distributed.Client(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
        ) as client,
        distributed.get_task_stream(client) as stream,
    ):
        result = water_quality_crossing(
            tmp_path / "on-cluster", centres=sample_dir / "centres.yaml", progress=None
        )
    prefixes = {str(task["key"]).strip("('").split("-")[0] for task in stream.data}
    assert prefixes and not {p for p in prefixes if p.startswith("store")}, prefixes
    assert json.loads(result.files["validation"].read_text()) == json.loads(
        (demo / "validation.json").read_text()
    )
    here = xr.open_zarr(result.files["cube"], consolidated=False)
    plain = xr.open_zarr(demo / "cube.zarr", consolidated=False)
    assert sorted(here.variables) == sorted(plain.variables)
    for name in plain.data_vars:
        np.testing.assert_array_equal(here[name].values, plain[name].values)


def test_the_demo_runs_the_ocean_colour_crossing_too(
    sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``earthlab demo --crossing ocean-colour``: the second crossing of issue 18, as users run it."""
    from recipes.crossing import ocean_colour_crossing

    centres = str(sample_dir / "centres.yaml")
    out = tmp_path / "ocean"
    args = ["demo", "--crossing", "ocean-colour", "--centres", centres, "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2/5 opening the gridded product (lazy)" in printed
    names = {p.name for p in out.iterdir()}
    assert {"matchups.parquet", "intercomparison.parquet", "validation.json"} <= names
    assert {"report.html", "matchup_scatter.png", "intercomparison.png"} <= names
    direct = ocean_colour_crossing(tmp_path / "direct", centres=centres, progress=None)
    assert json.loads((out / "validation.json").read_text()) == direct.validation
    pd.testing.assert_frame_equal(pd.read_parquet(out / "matchups.parquet"), direct.matchups)
    # the protocol's defaults are the gridded ones (3 cells, 12 h), unless asked otherwise
    assert set(direct.matchups["n_pixels"].dropna()) == {9}
    wider = tmp_path / "wider"
    assert main([*args[:-1], str(wider), "--window", "5", "--max-dt", "1D"]) == 0
    assert set(pd.read_parquet(wider / "matchups.parquet")["n_pixels"].dropna()) == {25}
    # an option of the other crossing is refused, not ignored
    assert main([*args[:-1], str(tmp_path / "x"), "--collection", "sentinel2-l2a-theia"]) == 1
    assert "--collection chooses the Sentinel-2 L2A collection" in capsys.readouterr().err
