"""Matchup protocol on a hand-built cube where every outcome is known by construction.

Grid: 40 x 40 pixels of 20 m in EPSG:32631, x from 548000, y from 4806000 (north-up).
Columns 0-19 are land (SCL 4), columns 20-39 water (SCL 6). Three acquisitions, at
2022-03-01, 2022-03-16 and 2022-03-31, 10:40 UTC. The 'turbidity' variable is 10 everywhere
on water except where a station's box is given a pattern below.
"""

from __future__ import annotations

import dask
import dask.array
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from pyproj import Transformer

import lab
from recipes import matchup

X0, Y0, RES, N = 548000.0, 4806000.0, 20.0, 40
TIMES = pd.to_datetime(["2022-03-01T10:40", "2022-03-16T10:40", "2022-03-31T10:40"])
TO_LONLAT = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)


def lonlat(row: int, col: int) -> tuple[float, float]:
    x = X0 + (col + 0.5) * RES
    y = Y0 - (row + 0.5) * RES
    return TO_LONLAT.transform(x, y)


def make_cube(chunks: dict | None = None) -> xr.Dataset:
    scl = np.full((3, N, N), 6, dtype="uint8")
    scl[:, :, :20] = 4
    turbidity = np.full((3, N, N), 10.0, dtype="float32")
    turbidity[:, :, :20] = np.nan
    # station C (row 10, col 30): clouds over 60 % of its box on the first date
    scl[0, 8:13, 28:31] = 9
    turbidity[0, 8:13, 28:31] = np.nan
    # station D (row 30, col 30): one outlier in its box on the first date -> filtered out
    turbidity[0, 28, 28] = 100.0
    # station E (row 20, col 35): checkerboard 5/15 -> CV = 0.5 on the first date
    box = np.indices((5, 5)).sum(axis=0) % 2
    turbidity[0, 18:23, 33:38] = np.where(box == 0, 5.0, 15.0)
    # station F (row 30, col 24): clear water but the algorithm gave no value on the first date
    turbidity[0, 28:33, 22:27] = np.nan
    cube = xr.Dataset(
        {
            "turbidity": (("time", "y", "x"), turbidity),
            "scl": (("time", "y", "x"), scl),
        },
        coords={
            "time": TIMES,
            "y": Y0 - (np.arange(N) + 0.5) * RES,
            "x": X0 + (np.arange(N) + 0.5) * RES,
            "source_items": ("time", ["S2A_1", "S2B_2", "S2A_3"]),
            "centre": ("time", ["theia"] * 3),
        },
    )
    cube = cube.rio.write_crs("EPSG:32631")
    return cube.chunk(chunks) if chunks else cube


def station(
    name: str, row: int, col: int, when: str, value: float = 11.0, parameter: str = "turbidity"
) -> dict:
    lon, lat = lonlat(row, col)
    return {
        "station_id": name,
        "time": pd.Timestamp(when, tz="UTC"),
        "lon": lon,
        "lat": lat,
        "parameter": parameter,
        "value": value,
        "unit": "FNU",
    }


@pytest.fixture()
def insitu() -> pd.DataFrame:
    return pd.DataFrame(
        [
            station("A", 20, 30, "2022-03-01T11:40"),  # kept: uniform 10, dt = +1 h
            station("B", 20, 5, "2022-03-01T10:00"),  # land
            station("C", 10, 30, "2022-03-01T09:00"),  # clouds: 15 of 25 water px clouded
            station("D", 30, 30, "2022-03-01T10:40"),  # kept after filtering the outlier
            station("E", 20, 35, "2022-03-01T10:40"),  # cv
            station("F", 30, 24, "2022-03-01T10:40"),  # retrieval
            station("G", 20, 30, "2022-03-03T10:40"),  # time: 2 days off
            station("H", 1, 30, "2022-03-01T10:40"),  # outside: the 5x5 box does not fit
            station("A", 20, 30, "2022-03-16T12:00", value=9.0),  # kept on the second date
            station("A", 20, 30, "2022-03-16T12:00", parameter="nitrate"),  # no variable
        ]
    )


def test_every_reason_is_the_expected_one(insitu: pd.DataFrame) -> None:
    result = matchup.extract(make_cube(), insitu)
    assert list(result["reason"]) == [
        "kept",
        "land",
        "clouds",
        "kept",
        "cv",
        "retrieval",
        "time",
        "outside",
        "kept",
        "no-variable",
    ]
    assert result["kept"].sum() == 3


def test_statistics_follow_the_protocol(insitu: pd.DataFrame) -> None:
    result = matchup.extract(make_cube(), insitu).set_index(
        ["station_id", "parameter", "sat_time"], drop=False
    )
    a = result.iloc[0]
    assert a["sat_mean"] == 10.0 and a["sat_median"] == 10.0 and a["sat_std"] == 0.0
    assert a["sat_n"] == 25 and a["n_water"] == 25 and a["valid_fraction"] == 1.0
    assert a["dt_hours"] == pytest.approx(1.0)
    assert a["item_ids"] == "S2A_1" and a["centre"] == "theia"
    assert (a["row"], a["col"]) == (20, 30)
    # C: the box is rows 8-12, cols 28-32; 5 x 3 = 15 clouded of 25 water -> 0.4 < 0.5
    c = result.iloc[2]
    assert (c["n_water"], c["n_clear"], c["valid_fraction"]) == (25, 10, 0.4)
    # D: 24 values of 10 and one of 100: mean 13.6, std 18.0 (ddof 1), 100 > 13.6 + 1.5 * 18
    d = result.iloc[3]
    values = np.array([10.0] * 24 + [100.0])
    assert values.mean() == pytest.approx(13.6) and values.std(ddof=1) == pytest.approx(18.0)
    assert d["sat_n"] == 24 and d["sat_mean"] == 10.0 and d["n_valid"] == 25
    # E: 13 fives and 12 fifteens, none filtered (|15 - 9.8| < 1.5 sigma):
    e = result.iloc[4]
    checker = np.array([5.0] * 13 + [15.0] * 12)
    assert e["sat_mean"] == pytest.approx(checker.mean())
    assert e["cv"] == pytest.approx(checker.std(ddof=1) / checker.mean())
    assert e["cv"] > 0.15
    # G: nearest acquisition 2 days before
    g = result.iloc[6]
    assert g["dt_hours"] == pytest.approx(48.0) and g["sat_time"] == TIMES[0]
    second = result.iloc[8]
    assert second["sat_time"] == TIMES[1] and second["item_ids"] == "S2B_2"
    assert second["insitu_value"] == 9.0


def test_a_wider_time_window_makes_more_candidates(insitu: pd.DataFrame) -> None:
    result = matchup.extract(make_cube(), insitu, max_dt="3D")
    g = result[result["station_id"] == "G"]
    assert list(g["reason"]) == ["kept"] and g["dt_hours"].iloc[0] == pytest.approx(48.0)


class CountingReader:
    """An array-like that counts the chunk reads dask makes from it, like a file would."""

    def __init__(self, array: np.ndarray, reads: list) -> None:
        self.array, self.reads = array, reads
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, index):
        if self.array[index].size:  # not dask's 0-size probes for the dtype
            self.reads.append(index)
        return self.array[index]


def counted_cube(reads: list) -> tuple[xr.Dataset, xr.Dataset]:
    eager = make_cube()
    lazy = eager.copy()
    for name in ("turbidity", "scl"):
        reader = CountingReader(eager[name].values, reads)
        lazy[name] = (
            ("time", "y", "x"),
            dask.array.from_array(reader, chunks=(1, 10, 10), asarray=False, name=f"read-{name}"),
        )
    return eager, lazy


def test_one_station_reads_exactly_the_chunks_under_its_box() -> None:
    reads: list = []
    _, lazy = counted_cube(reads)
    one = pd.DataFrame([station("A", 20, 30, "2022-03-01T11:40")])
    with dask.config.set(scheduler="sync"):
        result = matchup.extract(lazy, one)
    assert list(result["reason"]) == ["kept"]
    # box rows 18-22, cols 28-32 straddles 2 x 2 chunks of 10 x 10: SCL on the 3 dates for the
    # water mask (12 reads) and turbidity on the matched date (4 reads)
    assert len(reads) == 16
    # every read lies in a chunk that intersects the box (dask even trims value reads to it)
    for _, rows, cols in reads:
        assert rows.start < 23 and rows.stop > 18 and cols.start < 33 and cols.stop > 28
        assert (
            rows.start // 10 == (rows.stop - 1) // 10 and cols.start // 10 == (cols.stop - 1) // 10
        )


def test_a_static_water_mask_needs_the_scl_at_the_matched_date_only(
    insitu: pd.DataFrame,
) -> None:
    reads: list = []
    eager, lazy = counted_cube(reads)
    water = xr.DataArray(
        np.broadcast_to(np.arange(N) >= 20, (N, N)),  # columns 20-39 are water
        dims=("y", "x"),
        coords={"y": eager["y"], "x": eager["x"]},
    )
    assert list(matchup.extract(eager, insitu, water=water)["reason"]) == list(
        matchup.extract(eager, insitu)["reason"]
    )
    one = pd.DataFrame([station("A", 20, 30, "2022-03-01T11:40")])
    with dask.config.set(scheduler="sync"):
        result = matchup.extract(lazy, one, water=water)
    assert list(result["reason"]) == ["kept"] and result["n_water"].iloc[0] == 25
    # 2 x 2 chunks under the box, on the matched date only: 4 SCL reads and 4 turbidity reads
    assert len(reads) == 8


def test_only_the_chunks_holding_boxes_are_read(insitu: pd.DataFrame) -> None:
    reads: list = []
    eager, lazy = counted_cube(reads)
    total = sum(lazy[v].data.npartitions for v in ("turbidity", "scl"))  # 2 x 3 x 4 x 4 = 96
    with dask.config.set(scheduler="sync"):
        result = matchup.extract(lazy, insitu)
    assert list(result["reason"]) == list(matchup.extract(eager, insitu)["reason"])
    # 6 station boxes, each within at most 2 x 2 chunks: the SCL over 3 dates and one value
    # chunk set per candidate -- far fewer than the 96 chunks of the cube.
    assert 0 < len(reads) <= 0.5 * total, (len(reads), total)


def test_protocol_and_input_errors(insitu: pd.DataFrame) -> None:
    cube = make_cube()
    with pytest.raises(lab.ConfigurationError, match="odd number"):
        matchup.extract(cube, insitu, window=4)
    with pytest.raises(lab.ConfigurationError, match="needs a unit"):
        matchup.extract(cube, insitu, max_dt=3)
    with pytest.raises(lab.ConfigurationError, match="min_valid"):
        matchup.extract(cube, insitu, min_valid=0)
    naive = insitu.assign(time=insitu["time"].dt.tz_localize(None))
    with pytest.raises(lab.ConfigurationError, match="no time zone"):
        matchup.extract(cube, naive)
    with pytest.raises(lab.ConfigurationError, match="lacks column"):
        matchup.extract(cube, insitu.drop(columns="lat"))
    with pytest.raises(lab.ConfigurationError, match="empty"):
        matchup.extract(cube, insitu.iloc[0:0])
    with pytest.raises(lab.ConfigurationError, match="no 'scl' variable"):
        matchup.extract(cube.drop_vars("scl"), insitu)
    with pytest.raises(lab.ConfigurationError, match="must be numeric"):
        matchup.extract(cube, insitu.assign(value=insitu["value"].astype(str)))
