"""Reader of ERDDAP tabledap CSV: ``.csv`` (units on line 2) and ``.csvp`` (``name (units)``)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from recipes._errors import InSituFormatError
from recipes.insitu._core import (
    InSituTable,
    ReadOptions,
    Report,
    choose_variables,
    finalize,
    raw_text,
)
from recipes.insitu._source import PathLike, Source, as_source
from recipes.insitu._units import QARTOD_FLAGS

SOURCE = "erddap"
_HEADER_UNITS = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)$")
_LON = ("longitude", "lon")
_LAT = ("latitude", "lat")
_STATIONS = ("station", "station_id", "station_name", "platform", "platform_id", "timeseries_id")


def split_header(header: Iterable[str]) -> tuple[list[str], list[str]] | None:
    """Names and units of a ``.csvp`` header, or None if no column has ``(units)``.

    ERDDAP writes no parentheses after a column without units (``station,time (UTC),...``):
    its unit is ``""``.
    """
    names, units, with_units = [], [], 0
    for cell in header:
        found = _HEADER_UNITS.match(cell.strip())
        if found is None:
            names.append(cell.strip())
            units.append("")
            continue
        with_units += 1
        names.append(found["name"])
        units.append(found["unit"])
    return (names, units) if with_units else None


def nccsv_error(text: str, name: str) -> InSituFormatError | None:
    """The error for an ERDDAP NCCSV file (``.nccsv``), or None if ``text`` is not one.

    NCCSV puts the attributes of the file before its data (``*GLOBAL*,Conventions,...`` rows up
    to ``*END_METADATA*``); the lab reads the same data as ERDDAP ``.csvp`` or ``.csv``.
    """
    if not text.lstrip("\ufeff").lstrip().startswith("*GLOBAL*,"):
        return None
    return InSituFormatError(
        f"{name} is ERDDAP NCCSV (attribute rows before '*END_METADATA*'), which the lab does not "
        "read: download the same request as .csvp or .csv (replace '.nccsv' by '.csvp' in the "
        "ERDDAP URL) and read that file"
    )


def is_units_row(cells: Iterable[str], names: list[str]) -> bool:
    """Whether the row under an ERDDAP ``.csv`` header holds units rather than data."""
    cells = [str(c).strip() for c in cells]
    times = [c for n, c in zip(names, cells, strict=False) if n.casefold() == "time"]
    if times:  # ERDDAP writes the units of time as "UTC"
        return times[0] == "UTC"
    return not any(_is_number(c) and c != "1" for c in cells)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.casefold() not in ("nan", "inf", "-inf")


def _find(names: list[str], candidates: Iterable[str]) -> str | None:
    lower = {n.casefold(): n for n in names}
    return next((lower[c] for c in candidates if c in lower), None)


def read_erddap(
    path: PathLike,
    *,
    variables: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    station_id: str | None = None,
    lon: float | None = None,
    lat: float | None = None,
    station_column: str | None = None,
    parameters: str | Iterable[str] | None = None,
    timezone: str | None = None,
    naive_time: str = "utc",
    source: str = SOURCE,
    storage_options: Mapping[str, Any] | None = None,
    encoding: str | None = None,
) -> InSituTable:
    """Read an ERDDAP tabledap ``.csv`` or ``.csvp`` response into the tidy table.

    Parameters
    ----------
    path
        A ``.csvp`` file (``name (units)`` headers) or ``.csv`` file (units on line 2): a path
        or a URL (``http(s)://``, ``s3://``, ``file://``).
    variables
        Column name -> lab parameter. Default: the columns whose name is a common one
        (``turbidity``, ``chlorophyll``, ``temperature``, ``sea_water_temperature``...); the
        columns left out are listed in ``notes``.
    units
        Column name -> unit, overriding the units of the file.
    station_id, lon, lat
        Station and position of every row, when the file has no such columns.
    station_column
        Column holding the station (default: the first of ``station``, ``station_id``,
        ``station_name``, ``platform``, ``platform_id``, ``timeseries_id``).
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
    encoding
        Text encoding; default: UTF-8, or ISO-8859-1 (what ERDDAP serves CSV in) if the bytes
        are not UTF-8, with a note.

    Returns
    -------
    InSituTable
        ``data`` in the tidy schema; ``rejected``, ``flagged`` and ``notes`` say what was not
        read as is, row by row. ``<column>_qc`` columns are read as IOOS QARTOD flags.

    Raises
    ------
    recipes.InSituFormatError
        If the file is empty, has no ``time`` column, no position or station (and none given),
        or no column that maps to a lab parameter.
    """
    options = ReadOptions.make(parameters, timezone, naive_time)
    src = as_source(path, storage_options)
    df, column_units, first_line, guessed = _load(src, encoding)
    names = list(df.columns)
    time = _find(names, ("time",))
    if time is None:
        raise InSituFormatError(f"{src.name} has no 'time' column (columns: {names})")
    lon_col, lat_col = _find(names, _LON), _find(names, _LAT)
    if (lon_col is None or lat_col is None) and (lon is None or lat is None):
        raise InSituFormatError(
            f"{src.name} has no longitude/latitude columns (columns: {names}): ask ERDDAP for "
            "them, or pass lon= and lat= if every row was taken at one fixed place"
        )
    station_col = station_column or _find(names, _STATIONS)
    if station_col is not None and station_col not in names:
        raise InSituFormatError(f"{src.name} has no column {station_col!r} (columns: {names})")
    if station_col is None and station_id is None:
        raise InSituFormatError(
            f"{src.name} has no station column (one of {_STATIONS}): pass station_id= "
            "(e.g. the ERDDAP dataset id) or station_column="
        )
    depth = _find(names, ("depth",))
    qc = {n for n in names if n.casefold().endswith("_qc")}
    used = {time, lon_col, lat_col, station_col, depth, *qc}
    candidates = {n: None for n in names if n not in used}
    chosen, ignored = choose_variables(candidates, variables, src.name)
    report = Report()
    if guessed:
        report.note(guessed)
    if ignored:
        report.note(f"{src.name}: column(s) not read: {ignored}")
    base = pd.DataFrame(
        {
            "station_id": df[station_col] if station_col else station_id,
            "time": df[time],
            "lon": df[lon_col] if lon_col else lon,
            "lat": df[lat_col] if lat_col else lat,
            "depth": df[depth] if depth else None,
            "source": source,
            "_row": f"{src.name} line " + (df.index + first_line).astype(str),
        },
        index=df.index,
    )
    parts = []
    for column, parameter in chosen.items():
        unit = (units or {}).get(column, column_units.get(column, ""))
        flag = _qc(df, column, qc)
        raw = raw_text(df, [time, column, *(c for c in qc if c.casefold() == f"{column}_qc")])
        parts.append(
            base.assign(parameter=parameter, value=df[column], unit=unit, qc_flag=flag, _raw=raw)
        )
    long = pd.concat(parts, ignore_index=True)
    return finalize(long, report, options, label=src.name)


def _load(
    path: Source, encoding: str | None = None
) -> tuple[pd.DataFrame, dict[str, str], int, str | None]:
    """Data rows as text, units per column, the first data row's line, the encoding note."""
    path.check_not_empty()
    text, guessed = path.decode(encoding)
    nccsv = nccsv_error(text, path.name)
    if nccsv is not None:
        raise nccsv
    try:
        df = pd.read_csv(io.StringIO(text.lstrip("\ufeff")), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise InSituFormatError(f"cannot read {path.name} as ERDDAP CSV: {exc}") from exc
    split = split_header(df.columns)
    if split is not None:
        names, units = split
        df.columns = names
        first_line = 2
    elif len(df) and is_units_row(df.iloc[0], list(df.columns)):
        names, units = list(df.columns), [str(u).strip() for u in df.iloc[0]]
        df = df.iloc[1:]
        first_line = 3
    else:
        raise InSituFormatError(
            f"{path.name} is not ERDDAP tabledap CSV: neither 'name (units)' headers (.csvp) nor "
            "a units row under the header (.csv)"
        )
    if not len(df):
        raise InSituFormatError(f"{path.name} has a header but no data rows")
    df = df.reset_index(drop=True)
    return df, dict(zip(names, units, strict=True)), first_line, guessed


def _qc(df: pd.DataFrame, column: str, qc: set[str]) -> pd.Series | int:
    """L20 flags from an IOOS QARTOD ``<column>_qc`` column, 0 (no QC) without one."""
    name = next((c for c in qc if c.casefold() == f"{column.casefold()}_qc"), None)
    if name is None:
        return 0
    codes = pd.to_numeric(df[name], errors="coerce")
    mapped = codes.map(QARTOD_FLAGS)
    return mapped.where(mapped.notna(), "QARTOD " + df[name].astype(str))
