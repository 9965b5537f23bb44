"""A year of daily gridded files: opened through kerchunk references vs ``xarray.open_mfdataset``.

Writes 365 daily NetCDF4 files of a lat/lon ocean-colour-like product (chlorophyll-a packed as
int16 with scale_factor/add_offset and _FillValue, chunked 64 x 64, non-square pixels), then:

1. builds the references once (``datacubes.write_references``; its time is reported apart);
2. opens the year through the references (``datacubes.load_gridded`` on the Collection) and
   through ``xarray.open_mfdataset`` of the same files, each ``--repeat`` times (best time);
   ratio = open_mfdataset / references (issue 18 goal: >= 10);
3. checks that both give identical values (every pixel of every day, NaN where filled);
4. extracts matchups (``recipes.matchup.extract_gridded``: 3 x 3 cells around 5 stations, a
   sample every day) from the references cube while counting the byte ranges read from the
   files: it must read the chunks under the stations only (at most 2 x 2 chunks per station
   and day, its water mask included), not the files' other chunks.

Usage::

    python benchmarks/bench_gridded.py [--days 365] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dask
import fsspec.implementations.local as fs_local
import numpy as np
import pandas as pd
import pystac
import xarray as xr

import datacubes
from recipes import matchup

NLAT, NLON = 256, 384
CHUNK = 64
STATIONS = [(43.42, 3.71), (43.35, 3.55), (43.20, 4.10), (43.05, 3.30), (43.50, 4.60)]
"""(lat, lon) of the stations the matchup extracts (Gulf of Lion)."""


def write_year(folder: Path, days: int) -> list[Path]:
    """Daily files of a deterministic chlorophyll-a field with cloud gaps; return their paths."""
    lat = np.linspace(43.6, 42.8, NLAT)  # north to south, 0.0031 deg
    lon = np.linspace(3.0, 5.0, NLON)  # 0.0052 deg: non-square pixels
    rng = np.random.default_rng(18)
    base = 1.5 + np.sin(lat[:, None] * 7.0) * np.cos(lon[None, :] * 5.0)
    paths = []
    for day in range(days):
        date = pd.Timestamp("2023-01-01") + pd.Timedelta(days=day)
        field = base * (1.2 + 0.5 * np.sin(2 * np.pi * day / 365.0))
        cloudy = rng.random((NLAT, NLON)) < (0.3 if day % 3 else 0.7)
        chl = np.where(cloudy, np.nan, field).astype("float32")
        ds = xr.Dataset(
            {"chlor_a": (("time", "lat", "lon"), chl[None])},
            coords={"time": [date], "lat": lat, "lon": lon},
        )
        ds["chlor_a"].attrs = {"units": "mg m-3", "long_name": "chlorophyll-a concentration"}
        path = folder / f"chl_{date:%Y%m%d}.nc"
        ds.to_netcdf(
            path,
            engine="h5netcdf",
            encoding={
                "chlor_a": {
                    "dtype": "int16",
                    "scale_factor": 0.001,
                    "add_offset": 0.0,
                    "_FillValue": -32767,
                    "chunksizes": (1, CHUNK, CHUNK),
                },
                "time": {"units": "days since 1970-01-01", "dtype": "int32"},
            },
        )
        paths.append(path)
    return paths


def best(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


class CountReads:
    """Count the distinct byte offsets read from local files meanwhile (fsspec's local opener).

    Every chunk a reference points to is read by seeking to its offset in its file; the
    class-level patch also sees the file systems fsspec has cached.
    """

    def __enter__(self) -> CountReads:
        self.ranges: set[tuple[str, int]] = set()
        self._seek = fs_local.LocalFileOpener.seek
        ranges, seek = self.ranges, self._seek

        def counting_seek(opener, loc, whence=0):  # type: ignore[no-untyped-def]
            if whence == 0 and loc:
                ranges.add((str(opener.path), int(loc)))
            return seek(opener, loc, whence)

        fs_local.LocalFileOpener.seek = counting_seek
        return self

    def __exit__(self, *exc: object) -> None:
        fs_local.LocalFileOpener.seek = self._seek


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "daily"
        folder.mkdir()
        start = time.perf_counter()
        files = write_year(folder, args.days)
        written = time.perf_counter() - start
        start = time.perf_counter()
        collection_path = datacubes.write_references(folder, Path(tmp) / "chl.json", "chl-daily")
        referenced = time.perf_counter() - start
        collection = pystac.Collection.from_file(str(collection_path))

        t_refs, cube = best(args.repeat, lambda: datacubes.load_gridded(collection))
        t_mf, mf = best(
            args.repeat,
            lambda: xr.open_mfdataset(
                files, engine="h5netcdf", combine="nested", concat_dim="time", chunks={}
            ),
        )
        assert isinstance(cube, xr.Dataset) and isinstance(mf, xr.Dataset)
        values_refs = cube["chlor_a"].values
        values_mf = mf["chlor_a"].values
        identical = values_refs.shape == values_mf.shape and bool(
            np.array_equal(values_refs, values_mf, equal_nan=True)
        )
        assert identical, "references and open_mfdataset differ"
        mf.close()

        lats, lons = cube["lat"].values, cube["lon"].values
        cells = [
            (int(np.abs(lats - lat).argmin()), int(np.abs(lons - lon).argmin()))
            for lat, lon in STATIONS
        ]
        # one sample a day at each station, matched by recipes.matchup.extract_gridded
        times = pd.DatetimeIndex(cube["time"].values)
        samples = pd.DataFrame(
            [
                {
                    "station_id": f"S{k}",
                    "time": (when + pd.Timedelta("1h")).tz_localize("UTC"),
                    "lon": float(lons[j]),
                    "lat": float(lats[i]),
                    "parameter": "chlorophyll_a",
                    "value": 1.0,
                }
                for k, (i, j) in enumerate(cells)
                for when in times
            ]
        )
        with CountReads() as reads, dask.config.set(scheduler="threads"):
            found = matchup.extract_gridded(
                cube, samples, window=3, max_dt="12h", variables={"chlorophyll_a": "chlor_a"}
            )
        matchups = [found[found["station_id"] == f"S{k}"] for k in range(len(cells))]
        chunk_reads = len(reads.ranges)
        chunks_per_day = (NLAT // CHUNK) * (NLON // CHUNK)
        under_stations = {  # the chunks the 3 x 3 boxes cover, per day
            (row // CHUNK, col // CHUNK)
            for i, j in cells
            for row in (i - 1, i, i + 1)
            for col in (j - 1, j, j + 1)
        }
        assert all(len(m) == args.days for m in matchups), found["reason"].value_counts()
        assert chunk_reads == len(under_stations) * args.days, (chunk_reads, under_stations)

    print(f"machine: {platform.machine()}, {platform.python_version()}, {args.days} daily files")
    print(f"writing the files: {written:.1f} s; building the references once: {referenced:.1f} s")
    print("| open a year of daily files | best of", args.repeat, "(s) | ratio |")
    print("|---|---|---|")
    print(f"| xarray.open_mfdataset | {t_mf:.3f} | 1 |")
    print(f"| datacubes.load_gridded (references) | {t_refs:.3f} | {t_mf / t_refs:.1f}x faster |")
    print(f"identical values (every pixel, every day): {identical}")
    print(
        f"matchup of {len(STATIONS)} stations x {args.days} days: {chunk_reads} chunk reads, "
        f"exactly the {len(under_stations)} chunks per day under the stations' boxes, of "
        f"{chunks_per_day} per day ({chunk_reads / (chunks_per_day * args.days):.1%} of the "
        "year's chunks)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
