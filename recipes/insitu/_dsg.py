"""Reader of CF discrete-sampling-geometry ``timeSeries`` netCDF files (CF 1.6+, chapter 9).

Layouts: one station (no instance dimension), orthogonal and incomplete multidimensional arrays,
contiguous ragged arrays (``sample_dimension``) and indexed ragged arrays
(``instance_dimension``). Times follow CF: a reference time without a zone is UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recipes._errors import InSituFormatError
from recipes.insitu._core import (
    InSituTable,
    ReadOptions,
    Report,
    choose_variables,
    finalize,
)
from recipes.insitu._source import PathLike, as_source

if TYPE_CHECKING:
    import xarray as xr

SOURCE = "cf-dsg"
_METRES = ("m", "meter", "meters", "metre", "metres")


def _open(path: Path, label: str) -> xr.Dataset:
    import xarray as xr  # imported on first use: ``import recipes.insitu`` stays light

    _check_whole(path, label)
    errors = []
    for engine in ("h5netcdf", "netcdf4", "scipy"):
        try:
            # times are decoded here (CF rules, offsets in the reference time), not by xarray
            return xr.open_dataset(path, engine=engine, decode_times=False)
        except Exception as exc:  # each engine fails its own way on files it cannot read
            errors.append(f"{engine}: {exc}")
    raise InSituFormatError(
        f"cannot open {label} as netCDF ({'; '.join(errors)}); if it was downloaded, the copy "
        "may be incomplete: download it again"
    )


def _check_whole(path: Path, label: str) -> None:
    """Raise if a netCDF file is shorter than its header says (an interrupted download).

    netCDF-3 libraries read the missing part of a truncated file as zeros (rows at the time
    origin), so the size the header announces is checked here; HDF5 (netCDF-4) files carry
    their size, which h5py checks on opening.
    """
    with path.open("rb") as stream:
        head = stream.read(8)
    if head[:4] not in (b"CDF\x01", b"CDF\x02"):
        return
    from scipy.io import netcdf_file

    try:
        with netcdf_file(path, "r", mmap=False) as nc:
            del nc  # reading the header reads every variable: a short file fails here
    except ValueError as exc:  # numpy: "cannot reshape array of size 30 into shape (100,)"
        if any(word in str(exc) for word in ("reshape", "smaller", "size")):
            raise InSituFormatError(
                f"{label} is truncated or corrupt: its variables are shorter than its netCDF "
                f"header says ({exc}; file of {path.stat().st_size} bytes). Was the download "
                "interrupted? Download it again"
            ) from exc
    except Exception:  # a header scipy does not read: the netCDF engines decide
        return


def _find(ds: xr.Dataset, standard_names: tuple[str, ...], axis: str) -> str | None:
    for name, var in ds.variables.items():
        if var.attrs.get("standard_name") in standard_names or var.attrs.get("axis") == axis:
            return str(name)
    return None


def _with_attr(ds: xr.Dataset, attr: str, value: str | None = None) -> str | None:
    for name, var in ds.variables.items():
        if attr in var.attrs and (value is None or var.attrs[attr] == value):
            return str(name)
    return None


def _strings(values: np.ndarray) -> np.ndarray:
    """Station identifiers as text (char arrays joined along their last axis)."""
    if values.dtype.kind == "S" and values.dtype.itemsize == 1 and values.ndim >= 1:
        rows = values.reshape(-1, values.shape[-1])
        return np.array([b"".join(r).decode("utf-8", "replace").strip("\0 ") for r in rows])
    if values.dtype.kind == "S":
        return np.array([v.decode("utf-8", "replace").strip() for v in values.ravel()])
    return np.array([str(v).strip() for v in np.atleast_1d(values).ravel()])


class _Layout:
    """Where each observation sits: its station index, and how to flatten variables onto it."""

    def __init__(self, ds: xr.Dataset, time: str, station: str | None, label: str):
        self.ds, self.label = ds, label
        ragged = _with_attr(ds, "sample_dimension")
        indexed = _with_attr(ds, "instance_dimension")
        time_dims = ds[time].dims
        if ragged is not None:
            self.kind, self.obs = "contiguous ragged", ds[ragged].attrs["sample_dimension"]
            self.instance = ds[ragged].dims[0]
            sizes = ds[ragged].values.astype(int)
            if sizes.sum() != ds.sizes[self.obs]:
                raise InSituFormatError(
                    f"{label}: {ragged} sums to {sizes.sum()} but dimension {self.obs} has "
                    f"{ds.sizes[self.obs]} observations"
                )
            self.index = np.repeat(np.arange(sizes.size), sizes)
        elif indexed is not None:
            self.kind, self.obs = "indexed ragged", ds[indexed].dims[0]
            self.instance = ds[indexed].attrs["instance_dimension"]
            self.index = ds[indexed].values.astype(int)
        else:
            self.instance = self._instance_dim(station)
            if len(time_dims) == 2:
                self.kind = "incomplete multidimensional"
                self.obs = next(d for d in time_dims if d != self.instance)
            elif len(time_dims) == 1:
                self.kind = "orthogonal multidimensional" if self.instance else "single station"
                self.obs = time_dims[0]
            else:
                raise InSituFormatError(f"{label}: time has dimensions {time_dims}")
            n_instances = ds.sizes[self.instance] if self.instance else 1
            self.index = np.repeat(np.arange(n_instances), ds.sizes[self.obs])
        self.grid = self.kind.endswith("multidimensional")

    def _instance_dim(self, station: str | None) -> str | None:
        if station is None:
            return None
        var = self.ds[station]
        dims = var.dims[:-1] if var.dtype.kind == "S" and var.dtype.itemsize == 1 else var.dims
        if len(dims) > 1:
            raise InSituFormatError(f"{self.label}: station variable {station} has dims {dims}")
        return str(dims[0]) if dims else None

    def fits(self, var: xr.DataArray) -> bool:
        """Whether a variable holds one value per observation (possibly per station)."""
        allowed = {self.obs, self.instance} - {None}
        return self.obs in var.dims and set(var.dims) <= allowed

    def flat(self, var: xr.DataArray) -> np.ndarray:
        """Values of a variable, one per observation."""
        n = self.index.size
        if var.ndim == 0:
            return np.full(n, var.values[()])
        if var.dims == (self.instance,):
            return var.values[self.index]
        if self.grid and var.dims == (self.obs,):
            return np.tile(var.values, n // var.size)
        if var.dims == (self.obs,):
            return var.values
        if self.grid and set(var.dims) == {self.instance, self.obs}:
            return var.transpose(self.instance, self.obs).values.ravel()
        raise InSituFormatError(
            f"{self.label}: variable {var.name} has dims {var.dims}, which do not fit the "
            f"{self.kind} layout (instance {self.instance}, observation {self.obs})"
        )


def read_dsg(
    path: PathLike,
    *,
    variables: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    station_id: str | None = None,
    parameters: str | Iterable[str] | None = None,
    timezone: str | None = None,
    naive_time: str = "utc",
    source: str = SOURCE,
    storage_options: Mapping[str, Any] | None = None,
) -> InSituTable:
    """Read a CF discrete-sampling-geometry ``timeSeries`` netCDF file into the tidy table.

    Parameters
    ----------
    path
        netCDF-4 or netCDF-3 file with ``featureType = "timeSeries"``: a path or a URL
        (``http(s)://``, ``s3://``, ``file://``; a remote file is copied to a temporary file).
    variables
        Variable name -> lab parameter. Default: among the variables that name their
        ``coordinates`` (all observed variables if none does), those with a common name or CF
        standard name; the variables left out are listed in ``notes``.
    units
        Variable name -> unit, overriding the ``units`` attribute.
    station_id
        Station name when no variable has ``cf_role = "timeseries_id"``.
    parameters
        Lab parameter name(s) to keep (default all); an unknown name raises
        :class:`UnknownParameterError` listing the known ones.
    timezone
        IANA zone in which times written without a zone were taken (e.g. ``"Europe/Paris"``).
    naive_time
        Without ``timezone``: ``"utc"`` reads zone-less times as UTC with a
        :class:`NaiveTimeWarning`; ``"error"`` raises :class:`~recipes.InSituFormatError`.
    source
        Value of the ``source`` column.
    storage_options
        fsspec options for URLs other than ``http(s)`` and ``file`` (e.g. S3 credentials).

    Returns
    -------
    InSituTable
        ``data`` in the tidy schema; ``rejected``, ``flagged`` and ``notes`` say what was not
        read as is, row by row. Times are UTC (CF); ``depth`` comes from the vertical coordinate (altitudes are negated).

    Raises
    ------
    recipes.InSituFormatError
        If the file cannot be opened, is not a ``timeSeries``, or its layout is not one of the
        CF ones (single station, orthogonal or incomplete multidimensional, contiguous or
        indexed ragged).
    """
    options = ReadOptions.make(parameters, timezone, naive_time)
    where = as_source(path, storage_options)
    where.check_not_empty()
    report = Report()
    with where.local_path() as local, _open(local, where.label) as ds:
        long = _long(ds, where.name, variables, units or {}, station_id, source, report)
    return finalize(long, report, options, label=where.name)


def _long(
    ds: xr.Dataset,
    label: str,
    variables: Mapping[str, str] | None,
    units: Mapping[str, str],
    station_id: str | None,
    source: str,
    report: Report,
) -> pd.DataFrame:
    feature = str(ds.attrs.get("featureType", ""))
    has_stations = _with_attr(ds, "cf_role", "timeseries_id") is not None
    if not feature and has_stations:
        report.note(
            f"{label}: no global featureType attribute; read as a timeSeries because a variable "
            "has cf_role = 'timeseries_id'"
        )
    elif not feature:
        raise InSituFormatError(
            f"{label} has no global featureType attribute (and no variable with cf_role = "
            "'timeseries_id'), so it is not a CF discrete-sampling-geometry file and stations "
            "cannot be told from observations. If it holds time series, set the attribute "
            "featureType = 'timeSeries' and cf_role = 'timeseries_id' on the station variable "
            "(or pass station_id= for one station); otherwise read it with xarray and give "
            "insitu.read_table a tidy table"
        )
    elif feature.casefold() != "timeseries":
        raise InSituFormatError(
            f"{label}: featureType is {feature!r}; only CF-DSG 'timeSeries' files are read "
            "(profiles, trajectories and timeSeriesProfile are not supported yet): read it with "
            "xarray and give insitu.read_table a tidy table"
        )
    time = _find(ds, ("time",), "T")
    lat, lon = _find(ds, ("latitude",), "Y"), _find(ds, ("longitude",), "X")
    if time is None or lat is None or lon is None:
        raise InSituFormatError(
            f"{label}: time, latitude or longitude variable not found (by standard_name or axis)"
        )
    station = _with_attr(ds, "cf_role", "timeseries_id")
    if station is None and station_id is None:
        raise InSituFormatError(
            f"{label}: no variable with cf_role=timeseries_id; pass station_id="
        )
    layout = _Layout(ds, time, station, label)
    names = _strings(ds[station].values) if station else np.array([station_id])
    times = _decode_times(layout.flat(_masked(ds[time])), ds[time], label)
    depth = _depth(ds, layout, report, label)
    special = {time, lat, lon, station, _find(ds, ("depth", "altitude", "height"), "Z")}
    special |= {_with_attr(ds, "sample_dimension"), _with_attr(ds, "instance_dimension")}
    candidates = {
        str(n): v.attrs.get("standard_name")
        for n, v in ds.data_vars.items()
        if n not in special and v.dtype.kind in "fiu" and layout.fits(v) and not _is_flag(v)
    }
    with_coordinates = {n: s for n, s in candidates.items() if _has_coordinates(ds[n])}
    chosen, ignored = choose_variables(with_coordinates or candidates, variables, label)
    if ignored:
        report.note(f"{label}: variable(s) not read: {ignored}")
    base = pd.DataFrame(
        {
            "station_id": names[0] if names.size == 1 else names[layout.index],
            "time": pd.to_datetime(times).tz_localize("UTC"),
            "lon": layout.flat(_masked(ds[lon])),
            "lat": layout.flat(_masked(ds[lat])),
            "depth": depth,
            "source": source,
        }
    )
    base["_row"] = f"{label} obs " + pd.Series(range(len(base))).astype(str)
    parts = []
    for name, parameter in chosen.items():
        values = layout.flat(_masked(ds[name]))
        part = base.assign(
            parameter=parameter,
            value=values,
            unit=units.get(name, str(ds[name].attrs.get("units", ""))),
            _raw=f"{name}=" + pd.Series(values).astype(str) + ", time=" + base["time"].astype(str),
        )
        padding = part["time"].isna() & part["value"].isna()
        parts.append(part[~padding])
    return pd.concat(parts, ignore_index=True)


def _has_coordinates(var: xr.DataArray) -> bool:
    """Whether a variable names its coordinates (xarray moves the attribute to ``encoding``)."""
    return "coordinates" in var.attrs or "coordinates" in var.encoding


def _is_flag(var: xr.DataArray) -> bool:
    return "flag_values" in var.attrs or "flag_masks" in var.attrs


def _depth(ds: xr.Dataset, layout: _Layout, report: Report, label: str) -> np.ndarray:
    name = _find(ds, ("depth", "altitude", "height"), "Z")
    if name is None:
        return np.full(layout.index.size, np.nan)
    var = ds[name]
    if str(var.attrs.get("units", "m")) not in _METRES:
        report.note(f"{label}: {name} is in {var.attrs.get('units')!r}, not metres: depth not read")
        return np.full(layout.index.size, np.nan)
    up = var.attrs.get("positive") == "up" or var.attrs.get("standard_name") in (
        "altitude",
        "height",
    )
    values = layout.flat(_masked(var))
    return -values if up else values


#: netCDF default fill values (netcdf.h ``NC_FILL_*``), by numpy dtype kind and size: what a
#: netCDF library writes in unwritten cells (padding) of a variable without ``_FillValue``.
_DEFAULT_FILL = {
    ("i", 1): -127,
    ("u", 1): 255,
    ("i", 2): -32767,
    ("u", 2): 65535,
    ("i", 4): -2147483647,
    ("u", 4): 4294967295,
    ("i", 8): -9223372036854775806,
    ("u", 8): 18446744073709551614,
    ("f", 4): 9.9692099683868690e36,
    ("f", 8): 9.9692099683868690e36,
}


def _masked(var: xr.DataArray) -> xr.DataArray:
    """A variable's values as floats, NaN where CF says there is no value.

    xarray applies ``_FillValue``, ``missing_value``, ``scale_factor`` and ``add_offset``; this
    adds the netCDF default fill value when the variable has no ``_FillValue`` (padding of
    incomplete multidimensional files) and ``valid_min``/``valid_max``/``valid_range``.
    """
    values = var.astype(float)
    dtype = np.dtype(var.encoding.get("dtype", var.dtype))
    if "_FillValue" not in var.encoding and "_FillValue" not in var.attrs:
        fill = _DEFAULT_FILL.get((dtype.kind, dtype.itemsize))
        if fill is not None and dtype.kind == "f":
            values = values.where(~(np.abs(values) >= 9.9e36))
        elif fill is not None:
            values = values.where(values != float(fill))
    low, high = var.attrs.get("valid_min"), var.attrs.get("valid_max")
    if "valid_range" in var.attrs:
        low, high = np.ravel(var.attrs["valid_range"])[:2]
    if low is not None:
        values = values.where(~(values < float(low)))
    if high is not None:
        values = values.where(~(values > float(high)))
    return values


_SINCE = re.compile(r"^\s*(?P<unit>\w+)\s+since\s+(?P<origin>.+?)\s*$", re.IGNORECASE)
_OFFSET = re.compile(r"\s*(?:UTC|GMT|Z)?\s*(?P<sign>[+-])(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?$")
_SECONDS = {
    **dict.fromkeys(("seconds", "second", "secs", "sec", "s"), 1.0),
    **dict.fromkeys(("minutes", "minute", "mins", "min"), 60.0),
    **dict.fromkeys(("hours", "hour", "hrs", "hr", "h"), 3600.0),
    **dict.fromkeys(("days", "day", "d"), 86400.0),
    **dict.fromkeys(("milliseconds", "millisecond", "msec", "ms"), 1e-3),
    **dict.fromkeys(("microseconds", "microsecond", "usec", "us"), 1e-6),
}
_CALENDARS = ("standard", "gregorian", "proleptic_gregorian")


def _decode_times(values: np.ndarray, var: xr.DataArray, label: str) -> np.ndarray:
    """CF times (``<unit> since <origin>[ offset]``) as UTC ``datetime64[ns]``, NaT if missing.

    The origin may carry a UTC offset (``days since 1858-11-17 00:00:00 +0:00``); an origin
    without one is UTC (CF).
    """
    units = str(var.attrs.get("units", ""))
    found = _SINCE.match(units)
    if found is None or found["unit"].casefold() not in _SECONDS:
        raise InSituFormatError(
            f"{label}: time variable {var.name} has units {units!r}, not CF '<unit> since "
            "<date>' (e.g. 'seconds since 1970-01-01'); fix the units attribute"
        )
    calendar = str(var.attrs.get("calendar", "standard")).casefold()
    if calendar not in _CALENDARS:
        raise InSituFormatError(
            f"{label}: time variable {var.name} uses calendar {calendar!r}; only the standard "
            f"(Gregorian) calendars {_CALENDARS} are read, in-situ times are real dates"
        )
    origin_text = found["origin"].replace("UTC", "").strip()
    offset = (
        _OFFSET.search(origin_text) if re.search(r"\d[ T]\d|\d\s*[+-]\d", origin_text) else None
    )
    minutes = 0
    if offset is not None:
        minutes = int(offset["h"]) * 60 + int(offset["m"] or 0)
        minutes = -minutes if offset["sign"] == "-" else minutes
        origin_text = origin_text[: offset.start()]
    try:
        origin = pd.Timestamp(origin_text.strip().rstrip("Z"))
    except ValueError as exc:
        raise InSituFormatError(
            f"{label}: time variable {var.name}: origin {found['origin']!r} of units {units!r} "
            "is not a date"
        ) from exc
    if origin.tzinfo is not None:
        origin = origin.tz_convert("UTC").tz_localize(None)
    origin = origin - pd.Timedelta(minutes=minutes)
    seconds = values * _SECONDS[found["unit"].casefold()]
    finite = np.isfinite(seconds)
    out = np.full(values.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    ns = np.round(seconds[finite] * 1e9).astype("int64")
    out[finite] = np.datetime64(origin.to_datetime64(), "ns") + ns.astype("timedelta64[ns]")
    return out
