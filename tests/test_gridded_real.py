"""A climate model's native lat/lon grid loaded as it is (issue 18 item 5: non-square pixels).

CanESM2 (CCCma, CMIP5) monthly near-surface air temperature on its T63 Gaussian grid: 128
longitudes every 2.8125 deg and 64 Gaussian latitudes 2.77-2.79 deg apart, so pixels are neither
square nor evenly spaced in latitude; a 365-day calendar. ``load_gridded`` must keep the file's
own coordinates (no resampling to square pixels), decode the no-leap times and fill values, and
cut a bbox by label. Values checked by hand with netCDF4 (auto mask/scale off).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datacubes import load_gridded

FILE = (
    Path(__file__).parent
    / "data"
    / "gridded"
    / "xclim-testdata_tas_Amon_CanESM2_rcp85_r1i1p1_200701-200712.nc"
)


def item() -> dict:
    href = str(FILE)
    return {
        "type": "Feature",
        "id": "canesm2",
        "assets": {"tas": {"href": href, "type": "application/x-netcdf"}},
    }


def test_gaussian_grid_kept_with_its_own_pixels() -> None:
    tas = load_gridded(item())["tas"]
    assert tas.dims == ("time", "lat", "lon") and tas.shape == (12, 64, 128)
    # netCDF4: lon every 2.8125 deg; lat[0] = -87.8638013437108, lat[63] = +87.8638013437108
    assert set(np.round(np.diff(tas.lon.values), 10)) == {2.8125}
    steps = np.diff(tas.lat.values)
    assert steps.min() == pytest.approx(2.76727185, abs=1e-8) and steps.max() < 2.8125
    assert float(tas.lat[0]) == -87.8638013437108 and float(tas.lat[63]) == 87.8638013437108
    assert tas.attrs["crs"] == "EPSG:4326"


def test_values_and_no_leap_times_as_in_the_file() -> None:
    tas = load_gridded(item())["tas"]
    # netCDF4: tas[0, 32, 0] = 301.57953 K at lat 1.3953, lon 0; tas[5, 50, 100] = 282.9901 K
    # at lat 51.6257, lon 281.25; time[0] = 57289.5 days since 1850-01-01 (365_day)
    assert float(tas.isel(time=0, lat=32, lon=0)) == pytest.approx(301.57953, abs=1e-4)
    assert float(tas.isel(time=5, lat=50, lon=100)) == pytest.approx(282.9901, abs=1e-4)
    assert float(tas.lat[50]) == pytest.approx(51.62573617941642) and float(tas.lon[100]) == 281.25
    first = tas.time.values[0]
    assert type(first).__name__ == "DatetimeNoLeap"  # cftime's, for the 365-day calendar
    assert (first.year, first.month, first.day, first.hour) == (2006, 12, 16, 12)
    assert not bool(tas.isnull().any())  # 1e20 fill values never reach the cube


def test_bbox_cuts_by_label_on_the_uneven_latitudes() -> None:
    cube = load_gridded(item(), bbox=(0, 40, 10, 50))
    assert dict(cube.sizes) == {"time": 12, "lat": 4, "lon": 4}
    assert np.allclose(cube.lat.values, [40.46365068, 43.25419717, 46.04472914, 48.83524347])
    assert list(cube.lon.values) == [0.0, 2.8125, 5.625, 8.4375]
