"""``truth/truth.nc``: the truth fields on the scene grid, written with xarray (h5netcdf)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS

from lab.sample import _grid
from lab.sample._scenes import Acquisition, Scene


class Scratch:
    """Truth fields of every date, kept in memory-mapped files while the scenes are rendered.

    Whatever the number of dates, memory holds one date; the fields are written once, without
    a task scheduler, so the netCDF file is byte-for-byte reproducible.
    """

    def __init__(self, directory: Path, acqs: Sequence[Acquisition]) -> None:
        directory.mkdir(parents=True)
        self.directory = directory
        self.acqs = tuple(acqs)
        shape = (len(acqs), *_grid.SHAPE)
        self.fields = {
            name: np.lib.format.open_memmap(directory / f"{name}.npy", "w+", dtype, shape)
            for name, dtype in (
                ("turbidity", np.float32),
                ("chlorophyll_a", np.float32),
                ("scl", np.uint8),
            )
        }

    def add(self, scene: Scene) -> None:
        """Keep the truth and SCL of one rendered scene."""
        i = scene.acquisition.index
        self.fields["turbidity"][i] = scene.turbidity
        self.fields["chlorophyll_a"][i] = scene.chlorophyll_a
        self.fields["scl"][i] = scene.scl

    @property
    def scl(self) -> np.ndarray:
        """SCL of every date (time, y, x)."""
        return self.fields["scl"]

    def write(self, path: Path, grid: _grid.Grid, surf: np.ndarray) -> None:
        """Write ``truth.nc`` (compressed, CF attributes, grid mapping) and drop the scratch."""
        dims = ("time", "y", "x")
        times = pd.DatetimeIndex([a.datetime.replace(tzinfo=None) for a in self.acqs], name="time")
        chl_attrs = _attrs(
            "mass_concentration_of_chlorophyll_a_in_sea_water",
            "Chlorophyll-a concentration",
            "ug L-1",
        )
        ds = xr.Dataset(
            {
                "turbidity": (dims, self.fields["turbidity"], _attrs(None, "Turbidity", "FNU")),
                "chlorophyll_a": (dims, self.fields["chlorophyll_a"], chl_attrs),
                "scl": (
                    dims,
                    self.fields["scl"],
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
        # the CF grid mapping as rioxarray writes it (its write_crs would copy every array)
        ds = ds.assign_coords(spatial_ref=((), np.int64(0), _grid_mapping(grid)))
        encoding: dict[str, dict] = {}
        for name in ("turbidity", "chlorophyll_a", "scl", "surface"):
            encoding[name] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
            encoding[name]["grid_mapping"] = "spatial_ref"
            if name != "surface":
                encoding[name]["chunksizes"] = (1, *_grid.SHAPE)
        for name in ("turbidity", "chlorophyll_a"):
            encoding[name]["_FillValue"] = np.float32(np.nan)
        encoding["time"] = {"units": "seconds since 2021-01-01T00:00:00", "dtype": "int64"}
        ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
        ds.close()
        for name in list(self.fields):
            del self.fields[name]
        for npy in self.directory.glob("*.npy"):
            npy.unlink()
        self.directory.rmdir()


def _grid_mapping(grid: _grid.Grid) -> dict:
    attrs = CRS.from_user_input(_grid.CRS).to_cf()
    attrs["spatial_ref"] = attrs["crs_wkt"]
    t = grid.transform
    attrs["GeoTransform"] = " ".join(str(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    return attrs


def _attrs(standard_name: str | None, long_name: str, units: str) -> dict[str, str]:
    attrs = {"long_name": long_name, "units": units}
    if standard_name:  # turbidity in FNU has no CF standard name
        attrs["standard_name"] = standard_name
    return attrs
