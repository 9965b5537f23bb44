"""Gridded NetCDF/Zarr/kerchunk products loaded as cubes (issue 18, item 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from datacubes import (
    BandNotFoundError,
    CurvilinearGridError,
    EmptyLoadError,
    GriddedFormatError,
    NoGriddedAssetError,
    load_gridded,
    write_references,
)
from lab import EarthLabError

LAT = np.array([45.0, 44.5, 44.0, 43.5])  # stored north -> south
LON = np.array([1.0, 1.25, 1.5, 1.75, 2.0])  # 0.25 x 0.5 degree pixels: not square


def _truth(day: int) -> np.ndarray:
    values = day * 100.0 + np.arange(20, dtype="float64").reshape(4, 5) * 0.5
    values[0, 0] = np.nan
    return values


def _daily(folder: Path, days: int = 30) -> list[Path]:
    paths = []
    for day in range(days):
        ds = xr.Dataset(
            {"chl": (("time", "lat", "lon"), _truth(day)[None])},
            coords={
                "time": [pd.Timestamp("2024-01-01") + pd.Timedelta(days=day)],
                "lat": LAT,
                "lon": LON,
            },
        )
        encoding = {
            "chl": {
                "dtype": "int16",
                "scale_factor": 0.5,
                "add_offset": 0.0,
                "_FillValue": -999,
                "chunksizes": (1, 4, 5),  # chunked + deflate: a tiny dataset is otherwise
                "zlib": True,  # "compact" in the HDF5 header, which kerchunk inlines
            },
            "time": {"units": "days since 2024-01-01", "calendar": "standard"},
        }
        path = folder / f"chl_{day:02d}.nc"
        ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
        paths.append(path)
    return paths


def _item(href: str, media: str = "application/x-netcdf") -> dict:
    return {"type": "Feature", "id": "x", "assets": {"data": {"href": href, "type": media}}}


def test_errors_belong_to_the_tree() -> None:
    for cls in (CurvilinearGridError, GriddedFormatError, NoGriddedAssetError):
        assert issubclass(cls, EarthLabError)


def test_one_netcdf_decoded_with_its_own_pixels(tmp_path: Path) -> None:
    path = _daily(tmp_path, days=1)[0]
    cube = load_gridded(_item(str(path)))
    chl = cube["chl"]
    assert chl.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(chl.values[0], _truth(0))
    assert chl.attrs["crs"] == "EPSG:4326"
    assert float(abs(np.diff(chl.lat)).max()) == 0.5 and float(np.diff(chl.lon).max()) == 0.25
    sub = load_gridded(_item(str(path)), bbox=(1.2, 43.9, 1.6, 44.6))
    assert list(sub.lat.values) == [44.5, 44.0] and list(sub.lon.values) == [1.25, 1.5]
    with pytest.raises(EmptyLoadError, match="outside the grid"):
        load_gridded(_item(str(path)), bbox=(10, 10, 11, 11))
    with pytest.raises(BandNotFoundError, match="available: \\['chl'\\]"):
        load_gridded(_item(str(path)), bands="sst")


def test_no_gridded_asset_and_not_netcdf(tmp_path: Path) -> None:
    with pytest.raises(NoGriddedAssetError, match=r"datacubes\.load"):
        load_gridded(_item("a.tif", "image/tiff; application=geotiff"))
    bad = tmp_path / "bad.nc"
    bad.write_text("<html>not found</html>")
    with pytest.raises(GriddedFormatError, match="cannot be opened"):
        load_gridded(_item(str(bad)))


def test_curvilinear_grid_is_refused(tmp_path: Path) -> None:
    lat2, lon2 = np.meshgrid(LAT, LON, indexing="ij")
    ds = xr.Dataset(
        {"v": (("y", "x"), np.ones((4, 5)))},
        coords={"lat": (("y", "x"), lat2), "lon": (("y", "x"), lon2)},
    )
    ds.to_netcdf(tmp_path / "c.nc", engine="h5netcdf")
    with pytest.raises(CurvilinearGridError, match="not supported yet"):
        load_gridded(_item(str(tmp_path / "c.nc")))


def test_thirty_daily_files_through_references(tmp_path: Path) -> None:
    (tmp_path / "daily").mkdir()
    files = _daily(tmp_path / "daily")
    collection = write_references(tmp_path / "daily", tmp_path / "refs" / "refs.json", "chl-daily")
    stac = json.loads(collection.read_text())
    assert stac["assets"]["references"]["roles"][0] == "references"
    assert stac["extent"]["temporal"]["interval"][0][0].startswith("2024-01-01")
    cube = load_gridded(stac, datetime="2024-01-03/2024-01-05")
    assert list(cube.time.dt.day.values) == [3, 4, 5]
    for i, day in enumerate((2, 3, 4)):
        np.testing.assert_array_equal(cube["chl"].values[i], _truth(day))
    full = load_gridded(stac)["chl"]
    assert full.sizes["time"] == len(files) == 30
    expected = xr.open_mfdataset(files, engine="h5netcdf")["chl"].values
    np.testing.assert_array_equal(full.values, expected)


DATA = Path(__file__).parent / "data" / "gridded"


def test_ncep_air_temperature_decoded_by_hand() -> None:
    # h5py: air[5, 3, 7] raw int16 26020, scale_factor 0.01 -> 260.20 K; lat[3] = 67.5,
    # lon[7] = 267.5, time[5] = 1882470 hours since 1800-01-01 (calendar standard).
    cube = load_gridded(_item(str(DATA / "kerchunk-tests_air.nc")))
    air = cube["air"]
    assert air.dims == ("time", "lat", "lon") and air.shape == (124, 11, 21)
    assert air.attrs["crs"] == "EPSG:4326"
    point = air.isel(time=5, lat=3, lon=7)
    assert float(point.lat) == 67.5 and float(point.lon) == 267.5
    assert float(point) == pytest.approx(260.20, abs=1e-6)
    assert pd.Timestamp(point.time.values) == pd.Timestamp("1800-01-01") + pd.Timedelta(
        hours=1882470
    )
    # latitude stored north -> south: the bbox is still (west, south, east, north)
    sub = load_gridded(_item(str(DATA / "kerchunk-tests_air.nc")), bbox=(265, 66, 270, 69))
    assert list(sub.lat.values) == [67.5] and list(sub.lon.values) == [265.0, 267.5, 270.0]


def test_non_square_pixels_of_a_real_subset_kept() -> None:
    # air_lon-every-2nd_8-steps.nc: kerchunk-tests_air.nc with every 2nd longitude (5 deg x 2.5 deg
    # pixels) and the first 8 times, raw values and attributes unchanged (see SOURCES.md).
    # h5py: air[5, 3, 2] raw 26400 (the original's lon index 4, 260.0 E) x 0.01 -> 264.00 K.
    air = load_gridded(_item(str(DATA / "air_lon-every-2nd_8-steps.nc")))["air"]
    assert set(np.diff(air.lon.values)) == {5.0} and set(np.diff(air.lat.values)) == {-2.5}
    assert float(air.isel(time=5, lat=3, lon=2)) == pytest.approx(264.00, abs=1e-6)
    assert float(air.lon[2]) == 260.0


def test_omi_no2_netcdf3_with_grid_mapping() -> None:
    # netCDF4 with auto mask/scale off: no2[0, 2, 3] = 7.8716035e15 (no scale), latitude[2] =
    # 50.375, longitude[3] = 19.375, time[0] = 18262 days since 1970-1-1 = 2020-01-01;
    # _FillValue -3.4e38 -> NaN; grid_mapping "crs" carries a proj4 string.
    cube = load_gridded(_item(str(DATA / "OMI-Aura_L3-OMNO2d_monthly_Romania-subset.nc")))
    no2 = cube["no2"]
    assert float(no2.isel(time=0, latitude=2, longitude=3)) == pytest.approx(7.8716035e15, rel=1e-7)
    assert pd.Timestamp(no2.time.values[0]) == pd.Timestamp("2020-01-01")
    assert "+proj=longlat" in no2.attrs["crs"]
    assert float(no2.min()) > 0  # the -3.4e38 fill never reaches the values


def test_obpg_chlorophyll_bbox_reads_only_needed_chunks() -> None:
    # h5py: chlor_a[1991, 4204] = 1.801773 mg m^-3 (scale 1, offset 0), lat[1991] = -75.958336,
    # lon[4204] = 170.37502; the file holds 9 valid pixels, the rest is _FillValue -32767.
    path = str(DATA / "S2008001.L3m_DAY_CHL_chlor_a_9km.nc")
    chl = load_gridded(_item(path), bbox=(170.3, -76.0, 170.7, -75.9))["chlor_a"]
    assert chl.sizes["lat"] == 1 and chl.sizes["lon"] == 4
    assert chl.dims == ("time", "lat", "lon") and chl.sizes["time"] == 1  # no time axis in the file
    assert float(chl.isel(time=0, lat=0, lon=0)) == pytest.approx(1.801773, rel=1e-6)
    assert chl.attrs["crs"] == "EPSG:4326"
    # 2160 x 4320 in 64 x 64 file chunks: the subset's dask graph holds one chunk, not 2295
    assert len(chl.data.dask.layers) >= 1 and chl.data.npartitions == 1
    full = load_gridded(_item(path))["chlor_a"]
    assert int(full.notnull().sum()) == 9


def test_references_cli_writes_a_collection_load_gridded_opens(tmp_path: Path) -> None:
    from lab._cli import main

    (tmp_path / "daily").mkdir()
    _daily(tmp_path / "daily", days=3)
    out = tmp_path / "refs.json"
    code = main(
        ["references", "build", str(tmp_path / "daily"), "--out", str(out), "--collection-id", "c"]
    )
    assert code == 0
    stac = json.loads((tmp_path / "collection.json").read_text())
    assert stac["id"] == "c" and stac["assets"]["references"]["href"] == "refs.json"
    cube = load_gridded(stac)
    np.testing.assert_array_equal(cube["chl"].values[2], _truth(2))
    import pystac  # the same Collection read by pystac: relative href resolved from its self link

    from_pystac = load_gridded(pystac.Collection.from_file(str(tmp_path / "collection.json")))
    np.testing.assert_array_equal(from_pystac["chl"].values, cube["chl"].values)


def test_references_read_only_the_files_and_chunks_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    from fsspec.implementations import local

    (tmp_path / "daily").mkdir()
    _daily(tmp_path / "daily")
    # inline_threshold=0: no chunk is copied into the JSON, every value comes from its file
    collection = write_references(tmp_path / "daily", tmp_path / "refs.json", inline_threshold=0)
    opened: list[str] = []

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(Path(path).name)  # fsspec's local files are opened with this name
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(local, "open", counting_open, raising=False)
    cube = load_gridded(json.loads(collection.read_text()), datetime="2024-01-10/2024-01-11")
    np.testing.assert_array_equal(cube["chl"].values[1], _truth(10))
    data_files = sorted({name for name in opened if name.endswith(".nc")})
    # the two days asked for, plus the first file holding the shared lat/lon coordinates;
    # none of the 27 other daily files is opened
    assert data_files == ["chl_00.nc", "chl_09.nc", "chl_10.nc"]


def test_zarr_asset_with_time_subset(tmp_path: Path) -> None:
    path = _daily(tmp_path, days=1)[0]
    ds = xr.open_dataset(path, engine="h5netcdf", decode_cf=False)
    xr.concat([ds, ds.assign_coords(time=[1])], dim="time").to_zarr(tmp_path / "c.zarr")
    cube = load_gridded(
        _item(str(tmp_path / "c.zarr"), "application/vnd+zarr"), datetime="2024-01-02"
    )
    assert cube.sizes["time"] == 1
    np.testing.assert_array_equal(cube["chl"].values[0], _truth(0))


def test_asset_choice_on_real_stac_documents() -> None:
    from datacubes._gridded import _pick

    cmems = json.loads((DATA / "copernicusmarine_mock_item_olci-300m_P1D.json").read_text())
    kind, asset = _pick(cmems, None) or ("", {})
    # Zarr before the native NetCDF, full resolution before downsampledN
    assert kind == "zarr" and asset is cmems["assets"]["timeChunked"]
    assert _pick(cmems, "native") == ("netcdf", cmems["assets"]["native"])
    daymet = json.loads((DATA / "pc_collection_daymet-daily-hi.json").read_text())
    assert _pick(daymet, None) == ("zarr", daymet["assets"]["zarr-https"])  # not abfs://
    with pytest.raises(NoGriddedAssetError, match=r"gridded assets: \['zarr-abfs', 'zarr-https'\]"):
        _pick(daymet, "thumbnail")


def test_noleap_calendar_decoded_with_cftime(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {"t": (("time", "lat", "lon"), np.arange(3 * 20, dtype="float32").reshape(3, 4, 5))},
        coords={"time": [58.0, 59.0, 60.0], "lat": LAT, "lon": LON},
    )
    ds.time.attrs.update(units="days since 2001-01-01", calendar="noleap")
    ds.to_netcdf(tmp_path / "noleap.nc", engine="h5netcdf")
    cube = load_gridded(_item(str(tmp_path / "noleap.nc")), datetime="2001-02-28/2001-03-01")
    # noleap: day 58 is 28 February, day 59 is 1 March (no 29 February)
    assert [str(t)[:10] for t in cube.time.values] == ["2001-02-28", "2001-03-01"]
    assert type(cube.time.values[0]).__module__.startswith("cftime")
    assert float(cube["t"].isel(time=1, lat=0, lon=0)) == 20.0


def test_references_refuse_a_file_that_is_not_netcdf4(tmp_path: Path) -> None:
    (tmp_path / "x.nc").write_text("CDF\x01 not really")
    with pytest.raises(GriddedFormatError, match="not a NetCDF4/HDF5 file"):
        write_references(tmp_path, tmp_path / "refs.json")
    with pytest.raises(NoGriddedAssetError, match="no NetCDF file"):
        write_references(tmp_path / "refs-dir-missing", tmp_path / "r.json")


def test_a_scalar_time_coordinate_is_the_step_when_the_item_has_no_date(tmp_path: Path) -> None:
    """A file without time axis but with a scalar ``time`` (CF, one instant): that instant."""
    ds = xr.Dataset(
        {"chl": (("lat", "lon"), _truth(3))},
        coords={"time": pd.Timestamp("2024-01-04T10:30"), "lat": LAT, "lon": LON},
        attrs={"time_coverage_start": "2024-01-04T00:00:00Z", "time_coverage_end": "2024-01-05"},
    )
    path = tmp_path / "one.nc"
    ds.to_netcdf(path, engine="h5netcdf", encoding={"time": {"units": "hours since 2024-01-01"}})
    chl = load_gridded(_item(str(path)))["chl"]
    assert chl.dims == ("time", "lat", "lon")
    assert pd.Timestamp(chl.time.values[0]) == pd.Timestamp("2024-01-04T10:30")  # not ACDD's noon
    np.testing.assert_array_equal(chl.values[0], _truth(3))
    # the item's own date still comes first
    dated = {**_item(str(path)), "properties": {"datetime": "2024-01-04T09:00:00Z"}}
    assert pd.Timestamp(load_gridded(dated)["chl"].time.values[0]) == pd.Timestamp(
        "2024-01-04T09:00"
    )
