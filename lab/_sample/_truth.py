"""``truth/truth.nc``: the truth fields on the scene grid, written with xarray (h5netcdf)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from lab._sample import _grid
from lab._sample._fields import TruthModel
from lab._sample._scenes import Acquisition, truth_fields


def write_truth(
    path: Path,
    grid: _grid.Grid,
    surf: np.ndarray,
    model: TruthModel,
    acqs: Sequence[Acquisition],
    scls: Sequence[np.ndarray],
) -> None:
    """Write turbidity, chlorophyll-a, SCL and surface classes to a compressed netCDF file.

    The continuous fields are recomputed date by date from the (deterministic) model while
    writing, so memory stays at one date whatever the number of dates.
    """
    shape = _grid.SHAPE
    # pure=True: keys from the arguments' hashes, so the write order (and the file) is reproducible
    fields = [dask.delayed(truth_fields, pure=True)(model, grid, surf, a.datetime) for a in acqs]
    stacks = [
        da.stack([da.from_delayed(f[k], shape, dtype=np.float32) for f in fields]) for k in (0, 1)
    ]
    dims = ("time", "y", "x")
    times = pd.DatetimeIndex([a.datetime.replace(tzinfo=None) for a in acqs], name="time")
    ds = xr.Dataset(
        {
            "turbidity": (dims, stacks[0], _attrs(None, "Turbidity", "FNU")),
            "chlorophyll_a": (
                dims,
                stacks[1],
                _attrs(
                    "mass_concentration_of_chlorophyll_a_in_sea_water",
                    "Chlorophyll-a concentration",
                    "ug L-1",
                ),
            ),
            "scl": (
                dims,
                np.stack(scls),
                {"long_name": "Sentinel-2 scene classification (as written in scl.tif)"},
            ),
            "surface": (
                ("y", "x"),
                surf,
                {
                    "long_name": "Surface class",
                    "flag_values": np.array([0, 1, 2], dtype=np.uint8),
                    "flag_meanings": "land lagoon sea",
                },
            ),
        },
        coords={
            "time": times,
            "y": ("y", grid.y, _attrs("projection_y_coordinate", "Northing", "m")),
            "x": ("x", grid.x, _attrs("projection_x_coordinate", "Easting", "m")),
        },
        attrs={
            "title": "Truth of the Earth Analytics Lab sample federation (Étang de Thau)",
            "Conventions": "CF-1.8",
            "source": "earthlab sample generator",
        },
    )
    ds = ds.rio.write_crs(_grid.CRS).rio.write_transform(grid.transform)
    encoding: dict[str, dict] = {
        name: {
            "compression": "gzip",
            "compression_opts": 4,
            "shuffle": True,
            "grid_mapping": "spatial_ref",
        }
        for name in ("turbidity", "chlorophyll_a", "scl", "surface")
    }
    for name in ("turbidity", "chlorophyll_a", "scl"):
        encoding[name]["chunksizes"] = (1, *shape)
    for name in ("turbidity", "chlorophyll_a"):
        encoding[name]["_FillValue"] = np.float32(np.nan)
    encoding["time"] = {"units": "seconds since 2021-01-01T00:00:00", "dtype": "int64"}
    with dask.config.set(scheduler="synchronous"):
        ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)


def _attrs(standard_name: str | None, long_name: str, units: str) -> dict[str, str]:
    attrs = {"long_name": long_name, "units": units}
    if standard_name:  # turbidity in FNU has no CF standard name
        attrs["standard_name"] = standard_name
    return attrs
