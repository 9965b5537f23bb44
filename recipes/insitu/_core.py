"""The tidy in-situ table, the report of rows not read, and the normalisation every reader shares.

A reader turns its format into a *long* frame (one row per value, columns of :data:`COLUMNS` plus
``_row``, where the value came from, and ``_raw``, the source text) and hands it to
:func:`finalize`, which checks parameters, values, units, times, coordinates, flags and
duplicates the same way for every format.
"""

from __future__ import annotations

import sys
import warnings
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import FrameType

import numpy as np
import pandas as pd

from lab import ConfigurationError, EarthLabWarning
from recipes._errors import InSituFormatError
from recipes.insitu._schema import (
    COLUMNS,
    STRING_COLUMNS,
    is_known_parameter,
    known_parameters,
    validate,
)
from recipes.insitu._units import (
    DEFAULT_VARIABLES,
    L20_FLAGS,
    PARAMETERS,
    SANDRE_UNMAPPED,
    STANDARD_NAMES,
)

REPORT_COLUMNS = ("row", "reason", "raw")
TIME_DTYPE = "datetime64[us, UTC]"
FLOAT_COLUMNS = ("lon", "lat", "depth", "value")
_MISSING = frozenset({"", "na", "nan", "null", "none", "n/a"})
_AWARE = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


class UnknownParameterError(ConfigurationError, KeyError):
    """A parameter asked for is not known to the lab; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InSituWarning(EarthLabWarning):
    """Base class of the warnings of the in-situ readers."""


class NaiveTimeWarning(InSituWarning):
    """Times without a time zone were read as UTC (pass ``timezone=`` if they are local)."""


class PagingLimitWarning(InSituWarning):
    """A paged download stopped at ``max_pages`` although the server had more pages."""


def warn(message: str, category: type[Warning]) -> None:
    """Issue a warning attributed to the first caller outside ``recipes``."""
    frame: FrameType | None = sys._getframe(1)
    level = 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("recipes"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@dataclass(frozen=True)
class ReadOptions:
    """Options every reader takes, validated once."""

    parameters: frozenset[str] | None = None
    """Lab parameters to keep (None: all)."""
    timezone: str | None = None
    """IANA zone of times written without a zone (None: see ``naive_time``)."""
    naive_time: str = "utc"
    """``"utc"``: read zone-less times as UTC with a warning; ``"error"``: refuse them."""

    def __post_init__(self) -> None:
        if self.naive_time not in ("utc", "error"):
            raise ConfigurationError(
                f"naive_time={self.naive_time!r} is not valid: use 'utc' or 'error'"
            )
        if self.timezone is not None:
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ConfigurationError(
                    f"timezone={self.timezone!r} is not an IANA time zone "
                    "(examples: 'UTC', 'Europe/Paris')"
                ) from exc
        unknown = sorted((self.parameters or set()) - set(PARAMETERS))
        if unknown:
            raise UnknownParameterError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"known parameters: {known_parameters()}"
            )

    @classmethod
    def make(
        cls, parameters: str | Iterable[str] | None, timezone: str | None, naive_time: str
    ) -> ReadOptions:
        """Build options from reader keyword arguments."""
        if isinstance(parameters, str):
            parameters = [parameters]
        chosen = None if parameters is None else frozenset(parameters)
        return cls(chosen, timezone, naive_time)


def choose_variables(
    available: Mapping[str, str | None],
    variables: Mapping[str, str] | None,
    label: str,
    defaults: Mapping[str, str] = DEFAULT_VARIABLES,
    meanings: Mapping[str, str] = STANDARD_NAMES,
) -> tuple[dict[str, str], list[str]]:
    """Map source variables (name -> standard name or None) to lab parameters.

    With ``variables`` (source name -> lab parameter) only those are read. Otherwise a variable
    with a standard name (CF ``standard_name``, SeaDataNet P01 code) is read only if ``meanings``
    maps it (as written, then case-folded): ``temperature`` with ``standard_name =
    air_temperature`` is not read. A variable without one is read if ``defaults`` maps its name.
    Returns the mapping and the names of the variables left out.
    """
    if variables is not None:
        unknown = sorted(set(variables.values()) - set(PARAMETERS))
        if unknown:
            raise UnknownParameterError(
                f"variables= maps to unknown parameter(s) {unknown}; "
                f"known parameters: {known_parameters()}"
            )
        missing = [name for name in variables if name not in available]
        if missing:
            raise InSituFormatError(
                f"{label} has no variable(s) {missing}; its variables are {list(available)}"
            )
        chosen = dict(variables)
    else:
        chosen = {}
        for name, meaning in available.items():
            # a standard name (CF standard_name, SeaDataNet P01 code) decides; the variable's
            # name is only a hint, used when nothing says what it means
            if meaning:
                found = meanings.get(str(meaning), meanings.get(str(meaning).casefold()))
            else:
                found = defaults.get(name, defaults.get(name.casefold()))
            if found:
                chosen[name] = found
    if not chosen:
        described = [f"{n} ({m})" if m else n for n, m in available.items()]
        raise InSituFormatError(
            f"no variable of {label} is a known parameter by default (variables, with their "
            f"standard name: {described}); pass variables={{'<variable>': '<parameter>'}} with "
            f"parameters among: {known_parameters()}"
        )
    return chosen, [name for name in available if name not in chosen]


@dataclass(frozen=True, eq=False)
class InSituTable:
    """In-situ values in the tidy schema, with the report of everything not read as is.

    ``data`` holds one row per station, time, depth and parameter; ``rejected`` the source rows
    that are not in ``data`` and ``flagged`` the rows of ``data`` whose flag the reader set
    (both with columns ``row``, ``reason``, ``raw``); ``notes`` what else the reader decided.
    """

    data: pd.DataFrame
    """The tidy table (columns of :data:`COLUMNS`)."""
    rejected: pd.DataFrame
    """Source rows not in ``data``: ``row`` (where), ``reason`` (why), ``raw`` (source text)."""
    flagged: pd.DataFrame
    """Rows kept in ``data`` with a flag set by the reader (e.g. negative turbidity -> 4)."""
    source: str
    """What was read (file names or URL)."""
    notes: tuple[str, ...] = field(default=())
    """Decisions worth knowing: conversions, columns not read, assumptions."""

    def __post_init__(self) -> None:
        validate(self.data)
        for name in ("rejected", "flagged"):
            frame = getattr(self, name)
            if tuple(frame.columns) != REPORT_COLUMNS:
                raise ConfigurationError(
                    f"InSituTable.{name} must have columns {REPORT_COLUMNS}, "
                    f"got {tuple(frame.columns)}"
                )

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return self.summary()

    def summary(self, max_reasons: int = 10) -> str:
        """Describe the table and count the rejected and flagged rows by reason."""
        data = self.data
        lines = [f"InSituTable from {self.source}: {len(data)} rows"]
        if len(data):
            lines[0] += (
                f", {data['station_id'].nunique()} station(s), "
                f"{data['time'].min():%Y-%m-%d %H:%M} to {data['time'].max():%Y-%m-%d %H:%M} UTC"
            )
            counts = data["parameter"].value_counts(sort=False)
            lines.append("  parameters: " + ", ".join(f"{p} ({n})" for p, n in counts.items()))
        for name in ("rejected", "flagged"):
            frame = getattr(self, name)
            lines.append(f"  {name}: {len(frame)} row(s)")
            reasons = frame["reason"].value_counts()
            for reason, n in reasons.head(max_reasons).items():
                lines.append(f"    {n} x {reason}")
            if len(reasons) > max_reasons:
                lines.append(f"    ... and {len(reasons) - max_reasons} other reason(s)")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def empty_report() -> pd.DataFrame:
    """A report frame with no rows."""
    return pd.DataFrame({c: pd.Series(dtype="str") for c in REPORT_COLUMNS})


class Report:
    """Collects rejected rows, flagged rows and notes while a reader works."""

    def __init__(self) -> None:
        self._rejected: list[pd.DataFrame] = []
        self._flagged: list[pd.DataFrame] = []
        self.notes: list[str] = []

    @staticmethod
    def _entries(frame: pd.DataFrame, reason: str | pd.Series) -> pd.DataFrame:
        return pd.DataFrame(
            {"row": frame["_row"].astype(str), "reason": reason, "raw": frame["_raw"].astype(str)},
            index=frame.index,
        )

    def reject(self, frame: pd.DataFrame, reason: str | pd.Series) -> None:
        """Record the rows of ``frame`` (which has ``_row`` and ``_raw``) as not read."""
        if len(frame):
            self._rejected.append(self._entries(frame, reason))

    def reject_one(self, row: str, reason: str, raw: str) -> None:
        """Record one source row as not read."""
        self._rejected.append(pd.DataFrame({"row": [row], "reason": [reason], "raw": [raw]}))

    def flag(self, frame: pd.DataFrame, reason: str | pd.Series) -> None:
        """Record rows kept in the table whose flag the reader set."""
        if len(frame):
            self._flagged.append(self._entries(frame, reason))

    def note(self, message: str) -> None:
        """Record a decision worth knowing."""
        self.notes.append(message)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rejected and flagged frames (``row``, ``reason``, ``raw`` as strings)."""
        out = []
        for parts in (self._rejected, self._flagged):
            frame = pd.concat(parts, ignore_index=True) if parts else empty_report()
            out.append(frame.astype("str").reset_index(drop=True))
        return out[0], out[1]


def raw_text(df: pd.DataFrame, columns: Iterable[str]) -> pd.Series:
    """``name=value`` text of some columns of each row (the ``raw`` of the report)."""
    columns = [c for c in columns if c in df]
    if not columns:
        return pd.Series("", index=df.index)
    parts = [c + "=" + df[c].astype("str") for c in columns]
    return parts[0].str.cat(parts[1:], sep=", ") if len(parts) > 1 else parts[0]


def split(
    df: pd.DataFrame, bad: pd.Series, report: Report, reason: str | pd.Series
) -> pd.DataFrame:
    """Reject the rows where ``bad`` is true and return the others."""
    bad = bad.fillna(True).astype(bool)
    if bad.any():
        report.reject(df[bad], reason[bad] if isinstance(reason, pd.Series) else reason)
        return df[~bad]
    return df


def finalize(
    long: pd.DataFrame, report: Report, options: ReadOptions, *, label: str
) -> InSituTable:
    """Check and normalise a reader's long frame into an :class:`InSituTable`."""
    df = long.reset_index(drop=True)
    for column, default in (("depth", np.nan), ("qc_flag", 0)):
        if column not in df:
            df[column] = default
    if options.parameters is not None:
        keep = df["parameter"].isin(options.parameters)
        if (~keep).any():
            report.note(f"{int((~keep).sum())} value(s) of parameters not asked for were skipped")
        df = df[keep]
    for step in (_parameters, _values, _units, _flags, _coordinates):
        df = step(df, report)
    df = _times(df, report, options, label)
    df = _negatives(df, report)
    df = _implausible(df, report)
    df = _duplicates(df, report)
    rejected, flagged = report.frames()
    return InSituTable(_typed(df), rejected, flagged, label, tuple(report.notes))


def _parameters(df: pd.DataFrame, report: Report) -> pd.DataFrame:
    df = split(df, df["parameter"].isna(), report, "no parameter name")
    bad = ~is_known_parameter(df["parameter"])
    reason = (
        "unknown parameter '" + df["parameter"].astype(str) + "' (known ones: insitu.PARAMETERS)"
    )
    return split(df, bad, report, reason)


def _text(series: pd.Series) -> pd.Series:
    return series.astype("str").str.strip()


def _values(df: pd.DataFrame, report: Report) -> pd.DataFrame:
    raw = df["value"]
    if pd.api.types.is_numeric_dtype(raw.dtype):
        number = raw.astype("float64")
        missing = number.isna()
    else:
        text = _text(raw)
        missing = raw.isna() | text.str.casefold().isin(_MISSING)
        number = pd.to_numeric(text.where(~missing), errors="coerce").astype("float64")
    df = split(df.assign(value=number), missing, report, "missing value")
    number = df["value"]
    not_number = number.isna() | np.isinf(number)
    reason = "value '" + raw.loc[df.index].astype(str) + "' is not a finite number"
    return split(df, not_number, report, reason)


def _units(df: pd.DataFrame, report: Report) -> pd.DataFrame:
    units = df["unit"].astype("object").where(df["unit"].notna(), "")
    units = units.map(lambda u: str(u).strip())
    df = df.assign(unit=units)
    pairs = df[["parameter", "unit"]].drop_duplicates()
    table: dict[tuple[str, str], tuple[str, float, float] | None] = {}
    for parameter, unit in pairs.itertuples(index=False):
        if SANDRE_UNMAPPED.match(parameter):
            table[parameter, unit] = (unit, 1.0, 0.0)
            continue
        spec = PARAMETERS[parameter]
        found = spec.normalise(unit)
        table[parameter, unit] = found
        if found is not None and (found[1] != 1.0 or found[2] != 0.0):
            change = f"x {found[1]:.6g}" if found[2] == 0.0 else f"{found[2]:+g}"
            report.note(f"{parameter}: values in {unit!r} converted to {found[0]} ({change})")
    keys = list(zip(df["parameter"], df["unit"], strict=True))
    found = pd.Series([table[k] for k in keys], index=df.index, dtype="object")
    unknown = found.isna()
    reason = (
        "unit '"
        + df["unit"]
        + "' not understood for "
        + df["parameter"]
        + df["parameter"].map(lambda p: f" (accepted: {', '.join(_accepted(p))})")
    )
    df = split(df, unknown, report, reason)
    found = found[df.index]
    factor = found.map(lambda f: f[1]).astype("float64")
    offset = found.map(lambda f: f[2]).astype("float64")
    df = df.assign(value=df["value"] * factor + offset, unit=found.map(lambda f: f[0]))
    ntu = (df["parameter"] == "turbidity") & (df["unit"] == "NTU")
    if ntu.any():
        report.note(
            f"turbidity: {int(ntu.sum())} value(s) in NTU kept in NTU (NTU and FNU are "
            "different methods and are not converted into each other)"
        )
    return df


def _accepted(parameter: str) -> list[str]:
    spec = PARAMETERS.get(parameter)
    return spec.accepted if spec else []


def _flags(df: pd.DataFrame, report: Report) -> pd.DataFrame:
    raw = df["qc_flag"]
    flag = pd.to_numeric(raw, errors="coerce")
    bad = flag.isna() | ~flag.isin(list(L20_FLAGS))
    reason = "qc_flag '" + raw.astype(str) + "' is not a SeaDataNet L20 code (0 to 9)"
    df = split(df.assign(qc_flag=flag), bad, report, reason)
    return df.assign(qc_flag=df["qc_flag"].astype("int8"))


def _coordinates(df: pd.DataFrame, report: Report) -> pd.DataFrame:
    df = split(df, df["station_id"].isna() | (_text(df["station_id"]) == ""), report, "no station")
    lon = pd.to_numeric(df["lon"], errors="coerce")
    lat = pd.to_numeric(df["lat"], errors="coerce")
    df = df.assign(lon=lon, lat=lat, depth=pd.to_numeric(df["depth"], errors="coerce"))
    df = split(df, lon.isna() | lat.isna(), report, "missing coordinates (lon/lat)")
    east = (df["lon"] > 180) & (df["lon"] <= 360)
    if east.any():  # CF allows 0..360 and ERDDAP serves it: the table uses -180..180
        report.note(f"{int(east.sum())} longitude(s) in 0..360 moved to -180..180")
        df = df.assign(lon=df["lon"].where(~east, df["lon"] - 360.0))
    outside = (df["lon"].abs() > 180) | (df["lat"].abs() > 90)
    reason = (
        "coordinates outside WGS84 range: lon "
        + df["lon"].astype(str)
        + ", lat "
        + df["lat"].astype(str)
    )
    return split(df, outside, report, reason)


def _times(df: pd.DataFrame, report: Report, options: ReadOptions, label: str) -> pd.DataFrame:
    utc, naive, unreadable = _parse_times(df["time"])
    reason = "time '" + _text(df["time"]) + "' is not an ISO 8601 date-time"
    report.reject(df[unreadable], reason[unreadable])
    df, utc, naive = df[~unreadable], utc[~unreadable], naive[~unreadable]
    is_naive = naive.notna()
    if is_naive.any():
        local = _localise(naive[is_naive], df[is_naive], report, options, label)
        utc = utc.mask(is_naive, local.reindex(utc.index).astype(TIME_DTYPE))
    missing = utc.isna()
    reason = pd.Series("missing time", index=df.index, dtype="object")
    reason[is_naive] = f"local time that does not exist or is ambiguous in {options.timezone}"
    report.reject(df[missing], reason[missing])
    return df[~missing].assign(time=utc[~missing])


def _parse_times(raw: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Split times into UTC ones, zone-less ones and unreadable text (three aligned series)."""
    nat_naive = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
    nothing = pd.Series(False, index=raw.index)
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype(TIME_DTYPE), nat_naive, nothing
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return pd.Series(pd.NaT, index=raw.index, dtype=TIME_DTYPE), raw, nothing
    text = _text(raw).where(raw.notna(), "")
    aware = text.str.contains(_AWARE, regex=True)
    utc = pd.to_datetime(text.where(aware), format="ISO8601", utc=True, errors="coerce")
    naive = pd.to_datetime(text.where(~aware & (text != "")), format="ISO8601", errors="coerce")
    unreadable = (text != "") & utc.isna() & naive.isna()
    return utc.astype(TIME_DTYPE), naive.astype("datetime64[us]"), unreadable


def _localise(
    naive: pd.Series, rows: pd.DataFrame, report: Report, options: ReadOptions, label: str
) -> pd.Series:
    n, example = len(naive), naive.iloc[0]
    if options.timezone is not None:
        local = naive.dt.tz_localize(options.timezone, ambiguous="NaT", nonexistent="NaT")
        report.note(f"{n} time(s) without a time zone read in {options.timezone}")
        return local.dt.tz_convert("UTC")
    message = f"{label}: {n} time(s) have no time zone (first: {example}, {rows['_row'].iloc[0]})"
    if options.naive_time == "error":
        raise InSituFormatError(
            f"{message}; pass timezone='Europe/Paris' (or the producer's zone) if they are local "
            "times, or naive_time='utc' to read them as UTC"
        )
    warn(
        f"{message}; they were read as UTC. Pass timezone= if they are local times, or "
        "naive_time='error' to refuse them.",
        NaiveTimeWarning,
    )
    report.note(f"{n} time(s) without a time zone assumed UTC")
    return naive.dt.tz_localize("UTC")


def _negatives(df: pd.DataFrame, report: Report) -> pd.DataFrame:
    non_negative = df["parameter"].map(
        lambda p: PARAMETERS[p].non_negative if p in PARAMETERS else False
    )
    bad = non_negative.astype(bool) & (df["value"] < 0)
    if bad.any():
        reason = "negative " + df["parameter"][bad] + " is impossible: qc_flag set to 4 (bad)"
        report.flag(df[bad], reason)
        df = df.assign(qc_flag=df["qc_flag"].where(~bad, 4).astype("int8"))
    return df


DEPTH_RANGE: tuple[float, float] = (0.0, 11000.0)
"""Plausible depths, metres below the surface (the deepest ocean point is about 10 935 m): a
value outside (a negative depth) gets flag 4 (bad), as values outside their parameter's range."""


def now() -> pd.Timestamp:
    """The present time, UTC: a sampling time more than a day after it is flagged 4.

    (A function of its own so that tests can set the present.)
    """
    return pd.Timestamp.now(tz="UTC")


def _implausible(df: pd.DataFrame, report: Report) -> pd.DataFrame:
    """Flag 4 (bad) implausible values, depths and times.

    Values outside their parameter's plausible range, depths outside :data:`DEPTH_RANGE` and
    times more than a day in the future.
    """
    if df.empty:
        return df
    low = df["parameter"].map(
        lambda p: PARAMETERS[p].valid_range[0] if p in PARAMETERS else -np.inf
    )
    high = df["parameter"].map(
        lambda p: PARAMETERS[p].valid_range[1] if p in PARAMETERS else np.inf
    )
    outside = ((df["value"] < low) | (df["value"] > high)) & (df["qc_flag"] != 4)
    if outside.any():
        reason = (
            df["parameter"][outside]
            + " "
            + df["value"][outside].astype(str)
            + " "
            + df["unit"][outside]
            + " is outside the plausible range ["
            + low[outside].astype(str)
            + ", "
            + high[outside].astype(str)
            + "] (insitu.PARAMETERS[...].valid_range): qc_flag set to 4 (bad)"
        )
        report.flag(df[outside], reason)
        df = df.assign(qc_flag=df["qc_flag"].where(~outside, 4).astype("int8"))
    low_depth, high_depth = DEPTH_RANGE
    deep = ((df["depth"] < low_depth) | (df["depth"] > high_depth)) & (df["qc_flag"] != 4)
    if deep.any():
        reason = (
            "depth "
            + df["depth"][deep].astype(str)
            + f" m is outside the plausible range [{low_depth:g}, {high_depth:g}] m below the "
            "surface (insitu.DEPTH_RANGE; a height above the surface or a depth with the wrong "
            "sign): qc_flag set to 4 (bad)"
        )
        report.flag(df[deep], reason)
        df = df.assign(qc_flag=df["qc_flag"].where(~deep, 4).astype("int8"))
    future = (df["time"] > now() + pd.Timedelta(days=1)) & (df["qc_flag"] != 4)
    if future.any():
        reason = "time " + df["time"][future].astype(str) + " is in the future: qc_flag set to 4"
        report.flag(df[future], reason)
        df = df.assign(qc_flag=df["qc_flag"].where(~future, 4).astype("int8"))
    return df


def _duplicates(df: pd.DataFrame, report: Report) -> pd.DataFrame:
    key = ["station_id", "time", "depth", "parameter", "value", "unit"]
    dup = df.duplicated(key, keep="first")
    if dup.any():
        first = df.groupby(key, dropna=False, sort=False)["_row"].transform("first")
        copies = df[dup].assign(_raw=df["_raw"][dup] + " [same as " + first[dup] + "]")
        report.reject(copies, "duplicate of an earlier row (kept once)")
        df = df[~dup]
    clash = df.duplicated(key[:-2], keep=False)
    if clash.any():
        report.note(
            f"{int(clash.sum())} rows share station, time, depth and parameter with different "
            "values; all are kept (e.g. a profile read without its depth)"
        )
    return df


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    for column in COLUMNS:
        out[column] = df.get(column, np.nan)
    for column in STRING_COLUMNS:
        out[column] = out[column].astype("str")
    for column in FLOAT_COLUMNS:
        out[column] = out[column].astype("float64")
    out["qc_flag"] = out["qc_flag"].astype("int8")
    out["time"] = pd.to_datetime(out["time"], utc=True).astype(TIME_DTYPE)
    return out


def empty_table(label: str, notes: Iterable[str] = ()) -> InSituTable:
    """A table with no rows (e.g. a query that matched nothing)."""
    return InSituTable(
        _typed(pd.DataFrame(columns=list(COLUMNS))),
        empty_report(),
        empty_report(),
        label,
        tuple(notes),
    )


def concat(tables: Iterable[InSituTable]) -> InSituTable:
    """Stack tables read from several sources.

    Parameters
    ----------
    tables
        Tables from the readers.

    Returns
    -------
    InSituTable
        Their data one after the other, with the reports and notes of all; rows repeated
        across tables are kept once and their copies added to ``rejected``.
    """
    tables = list(tables)
    if not tables:
        raise ConfigurationError("concat() needs at least one InSituTable")
    if len(tables) == 1:
        return tables[0]
    data = pd.concat([t.data for t in tables], ignore_index=True)
    report = Report()
    for t in tables:
        report._rejected.append(t.rejected)
        report._flagged.append(t.flagged)
        report.notes.extend(t.notes)
    data = data.assign(
        _row="row " + pd.Series(range(len(data))).astype(str) + " of the stacked tables",
        _raw=raw_text(data, COLUMNS),
    )
    data = _duplicates(data, report)
    rejected, flagged = report.frames()
    label = " + ".join(t.source for t in tables)
    return InSituTable(_typed(data), rejected, flagged, label, tuple(report.notes))
