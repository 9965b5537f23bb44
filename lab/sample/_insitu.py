"""In-situ samples of the ODATIS sample centre and the matchups the generator expects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lab.sample import _grid
from lab.sample._fields import TruthModel, days
from lab.sample._scenes import SCL_WATER, Acquisition

LN_SIGMA = 0.08
SAMPLING_PROBABILITIES = {"same_day": 0.70, "days_off": 0.15, "none": 0.15}
SAME_DAY_MINUTES = 120  # samples are taken within ±2 h of the overpass time
PARAMETERS = (("turbidity", "FNU"), ("chlorophyll_a", "µg/L"))
SOURCE = "odatis-sample"
PROTOCOL = {"box_size": _grid.BOX, "max_time_difference_hours": 3.0, "min_valid_fraction": 0.5}

SCHEMA = pa.schema(
    [
        ("station_id", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("lon", pa.float64()),
        ("lat", pa.float64()),
        ("parameter", pa.string()),
        ("value", pa.float64()),
        ("unit", pa.string()),
        ("qc_flag", pa.int8()),
        ("source", pa.string()),
    ]
)


@dataclass(frozen=True)
class Event:
    """One sampling event: a station visited at a time (both parameters measured)."""

    station: _grid.Station
    time: datetime


def sampling_events(
    stations: Sequence[_grid.Station], acqs: Sequence[Acquisition], rng: np.random.Generator
) -> list[Event]:
    """For each station and overpass: a sample the same day (±2 h), 1-3 days off, or none."""
    kinds = list(SAMPLING_PROBABILITIES)
    probabilities = list(SAMPLING_PROBABILITIES.values())
    events: list[Event] = []
    for station in stations:
        times: set[datetime] = set()
        for acq in acqs:
            kind = kinds[rng.choice(len(kinds), p=probabilities)]
            minutes = int(rng.integers(-SAME_DAY_MINUTES, SAME_DAY_MINUTES + 1))
            days_off = int(rng.integers(1, 4)) * int(rng.choice((-1, 1)))
            if kind == "none":
                continue
            when = acq.datetime + timedelta(minutes=minutes)
            times.add(when + timedelta(days=days_off) if kind == "days_off" else when)
        events.extend(Event(station, t) for t in sorted(times))
    return events


def station_table(
    events: Sequence[Event],
    point: tuple[float, float],
    model: TruthModel,
    rng: np.random.Generator,
) -> pa.Table:
    """Tidy table of one station's samples: truth at ``point`` times log-normal noise."""
    x, y = np.array([point[0]]), np.array([point[1]])
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    for event in events:
        t = days(event.time)
        truths = (model.turbidity(t, x, y)[0], model.chlorophyll_a(t, x, y)[0])
        for (parameter, unit), truth in zip(PARAMETERS, truths, strict=True):
            value = round(float(truth * np.exp(rng.normal(0.0, LN_SIGMA))), 2)
            columns["station_id"].append(event.station.station_id)
            columns["time"].append(event.time)
            columns["lon"].append(event.station.lon)
            columns["lat"].append(event.station.lat)
            columns["parameter"].append(parameter)
            columns["value"].append(value)
            columns["unit"].append(unit)
            columns["qc_flag"].append(1)
            columns["source"].append(SOURCE)
    return pa.table(columns, schema=SCHEMA)


def write_table(table: pa.Table, directory: Path, station_id: str) -> dict[str, Path]:
    """Write the table as Parquet and CSV (ISO 8601 times with ``Z``); return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": directory / f"{station_id}.parquet", "csv": directory / f"{station_id}.csv"}
    pq.write_table(table, paths["parquet"], compression="zstd")
    frame = table.to_pandas()
    frame["time"] = frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.to_csv(paths["csv"], index=False, lineterminator="\n", encoding="utf-8")
    return paths


def expected_matchups(
    events: Sequence[Event],
    acqs: Sequence[Acquisition],
    scls: np.ndarray,
    surf: np.ndarray,
) -> list[dict]:
    """Outcome of each sampling event under the default protocol (time, land, clouds, kept)."""
    times = np.array([days(a.datetime) for a in acqs])
    rows = []
    for event in events:
        dt_hours = (days(event.time) - times) * 24
        i = int(np.argmin(np.abs(dt_hours)))
        box = event.station.box()
        water = surf[box] != _grid.LAND
        clear = water & (scls[i][box] == SCL_WATER)
        n_water, n_clear = int(water.sum()), int(clear.sum())
        if abs(dt_hours[i]) > PROTOCOL["max_time_difference_hours"]:
            expected = "time"
        elif n_water == 0:
            expected = "land"
        elif n_clear / n_water < PROTOCOL["min_valid_fraction"]:
            expected = "clouds"
        else:
            expected = "kept"
        rows.append(
            {
                "station_id": event.station.station_id,
                "time": f"{event.time:%Y-%m-%dT%H:%M:%SZ}",
                "item_id": acqs[i].item_id,
                "dt_hours": round(float(dt_hours[i]), 3),
                "water_pixels": n_water,
                "clear_water_pixels": n_clear,
                "expected": expected,
            }
        )
    return rows
