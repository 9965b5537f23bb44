"""Matchups of a gridded product with in-situ samples (``recipes.matchup.extract_gridded``).

On the sample's daily ocean-colour product every kept matchup's statistics are recomputed from
the day's NetCDF file by hand (the station's cell found from the grid's edges, the box, the
mean ± 1.5 σ filter); every rejection is checked against the file too. On a real NASA OBPG
SeaWiFS L3m file (no time axis, a non-CF standard name) the matchup reads the file's value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import datacubes
import lab
from recipes import insitu, matchup

DATA = Path(__file__).parent / "data" / "gridded"


@pytest.fixture(scope="module")
def ocean(sample_dir: Path) -> tuple[xr.Dataset, pd.DataFrame, pd.DataFrame]:
    federation = lab.catalog(sample_dir / "centres.yaml")
    (collection,) = [c for c in federation.collections() if c.id == "ocean-colour-daily"]
    cube = datacubes.load_gridded(collection)
    stations = federation.search(collections="insitu-water-quality")
    table = pd.concat(
        [insitu.read(i.assets["parquet"].get_absolute_href()).data for i in stations],
        ignore_index=True,
    )
    return cube, table, matchup.extract_gridded(cube, table)


def _day_file(sample_dir: Path, when: pd.Timestamp) -> Path:
    item_id = f"OC_THAU_{when:%Y%m%d}"
    return sample_dir / "odatis" / "ocean-colour-daily" / item_id / f"{item_id}.nc"


def _cell(day: xr.Dataset, lon: float, lat: float) -> tuple[int, int]:
    """The cell holding (lon, lat), from the grid's outer edges and its steps."""
    lats, lons = day["lat"].to_numpy(), day["lon"].to_numpy()
    dlat, dlon = lats[0] - lats[1], lons[1] - lons[0]
    north, west = lats[0] + dlat / 2, lons[0] - dlon / 2
    return int((north - lat) // dlat), int((lon - west) // dlon)


def test_kept_matchups_are_the_files_box_statistics(sample_dir: Path, ocean) -> None:
    cube, _table, found = ocean
    assert dict(found["variable"].dropna().drop_duplicates().items()) != {}
    assert set(found.loc[found["parameter"] == "turbidity", "variable"]) == {"tur"}
    assert set(found.loc[found["parameter"] == "chlorophyll_a", "variable"]) == {"chl"}
    kept = found[found["kept"]]
    assert len(kept) >= 20
    ever = {name: cube[name].notnull().any("time").to_numpy() for name in ("chl", "tur")}
    for row in kept.itertuples():
        assert abs(row.dt_hours) <= 12
        with xr.open_dataset(_day_file(sample_dir, row.sat_time), engine="h5netcdf") as day:
            r, c = _cell(day, row.lon, row.lat)
            assert (r, c) == (row.row, row.col)
            box = day[row.variable].to_numpy()[0, r - 1 : r + 2, c - 1 : c + 2]
        water = (ever["chl"] | ever["tur"])[r - 1 : r + 2, c - 1 : c + 2]
        values = box[np.isfinite(box)]
        assert row.n_water == water.sum() and row.n_valid == values.size
        mean, std = values.mean(), values.std(ddof=1)
        filtered = values[np.abs(values - mean) <= 1.5 * std] if std > 0 else values
        assert row.sat_mean == pytest.approx(filtered.mean(), rel=1e-12)
        assert row.sat_n == filtered.size
        assert row.cv <= 0.15


def test_rejections_say_what_the_files_hold(sample_dir: Path, ocean) -> None:
    cube, _table, found = ocean
    reasons = found["reason"].value_counts().to_dict()
    assert set(reasons) <= {"kept", "time", "land", "clouds", "cv"}
    # the station georeferenced on land never meets water, on any day
    land = found[found["station_id"] == "MEZE_LAND"]
    assert set(land["reason"]) <= {"land", "time"} and (land["reason"] == "land").any()
    assert set(found.loc[found["reason"] == "land", "station_id"]) == {"MEZE_LAND"}
    # samples after the product's 92 days have no product time within 12 h
    last = pd.Timestamp(cube["time"].to_numpy()[-1])
    late = found[found["time"] > last + pd.Timedelta("12h")]
    assert len(late) > 0 and set(late["reason"]) == {"time"}
    # clouds: fewer than half of the box's water cells have a value that day
    clouds = found[found["reason"] == "clouds"]
    assert len(clouds) >= 10
    for row in clouds.itertuples():
        assert row.n_valid < 0.5 * row.n_water
        with xr.open_dataset(_day_file(sample_dir, row.sat_time), engine="h5netcdf") as day:
            box = day[row.variable].to_numpy()[
                0, row.row - 1 : row.row + 2, row.col - 1 : row.col + 2
            ]
        assert np.isfinite(box).sum() == row.n_valid


def test_the_product_agrees_with_the_stations_as_the_truth_says(ocean) -> None:
    """The product is the truth at 10:30; a sample is the truth at its time x 8 % noise."""
    _cube, _table, found = ocean
    kept = found[found["kept"]]
    for parameter in ("turbidity", "chlorophyll_a"):
        rows = kept[kept["parameter"] == parameter]
        ratio = np.log(rows["sat_mean"] / rows["insitu_value"])
        assert len(rows) >= 8
        assert abs(float(np.median(ratio))) < 0.1, parameter
        assert (
            float(np.corrcoef(np.log(rows["sat_mean"]), np.log(rows["insitu_value"]))[0, 1]) > 0.8
        )


def test_a_wider_time_window_gives_a_candidate_per_day(ocean) -> None:
    cube, table, same_day = ocean
    wider = matchup.extract_gridded(cube, table, max_dt="1D")
    assert len(wider) > len(same_day)
    # each sample within the product's days now has the day before or after as well
    counts = wider[wider["reason"] != "time"].groupby(["station_id", "time", "parameter"]).size()
    assert counts.max() == 2 and counts.min() >= 1


def test_real_obpg_l3m_file_without_a_time_axis() -> None:
    """SeaWiFS L3m daily CHL, 9 km: nine valid cells, standard name as NASA OBPG writes it."""
    item = {
        "type": "Feature",
        "id": "S2008001.L3m_DAY_CHL_chlor_a_9km",
        "properties": {"datetime": None},
        "assets": {
            "data": {
                "href": str(DATA / "S2008001.L3m_DAY_CHL_chlor_a_9km.nc"),
                "type": "application/x-netcdf",
            }
        },
    }
    cube = datacubes.load_gridded(item, bbox=(164.5, -78.0, 171.0, -75.5))
    # no time axis in the file: the middle of its time_coverage_start/end
    assert list(cube["time"].to_numpy()) == [np.datetime64("2008-01-01T05:29:07", "ns")]
    assert cube["chlor_a"].attrs["standard_name"] == (
        "mass_concentration_chlorophyll_concentration_in_sea_water"
    )
    # two samples in the Ross Sea: one on the row of five valid cells (value 0.800647 in the
    # file, `ncdump -v chlor_a`: row 2008, columns 4141-4145), one far from any valid cell
    samples = pd.DataFrame(
        {
            "station_id": ["ROSS", "NOWHERE"],
            "time": pd.to_datetime(["2008-01-01T09:00Z", "2008-01-01T09:00Z"]),
            "lon": [165.29, 168.0],
            "lat": [-77.375, -77.0],
            "parameter": ["chlorophyll_a", "chlorophyll_a"],
            "value": [0.9, 0.5],
        }
    )
    found = matchup.extract_gridded(cube, samples).set_index("station_id")
    ross = found.loc["ROSS"]
    assert ross["reason"] == "kept" and ross["variable"] == "chlor_a"
    assert ross["n_water"] == ross["n_valid"] == 3  # the row's three cells in the 3 x 3 box
    assert ross["sat_mean"] == pytest.approx(0.800647, rel=1e-6)
    assert found.loc["NOWHERE", "reason"] == "land"  # never a value there: not water


def test_bad_gridded_inputs_say_what_to_do(ocean) -> None:
    cube, table, _found = ocean
    with pytest.raises(lab.ConfigurationError, match="latitude/longitude"):
        matchup.extract_gridded(cube.rename({"lat": "row", "lon": "column"}), table)
    anonymous = cube.copy()
    for name in anonymous.data_vars:
        anonymous[name].attrs.pop("standard_name", None)
    with pytest.raises(lab.ConfigurationError, match=r"variables=\{'chlorophyll_a'"):
        matchup.extract_gridded(anonymous, table)
    with pytest.raises(lab.ConfigurationError, match="none of the variables"):
        matchup.extract_gridded(cube, table, variables={"turbidity": "TSM"})
    with pytest.raises(lab.ConfigurationError, match="odd number"):
        matchup.extract_gridded(cube, table, window=4)
