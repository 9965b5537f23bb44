"""Reader of SOMLIT hydrology CSV exports: one row per sample, one ``q<NAME>`` flag per value.

The export carries no units row: units are those of the SOMLIT parameter list (below), which
``units=`` can override column by column. Flags follow the SOMLIT quality codes, mapped to
SeaDataNet L20 in ``SOMLIT_FLAGS``; 999999 is SOMLIT's missing-value code.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from recipes._errors import InSituFormatError
from recipes.insitu._core import (
    InSituTable,
    ReadOptions,
    Report,
    finalize,
    split,
)
from recipes.insitu._source import PathLike, as_source
from recipes.insitu._units import SOMLIT_FLAG_MEANINGS, SOMLIT_FLAGS

SOURCE = "somlit"
#: SOMLIT column -> (lab parameter, unit of the SOMLIT export).
COLUMNS: Mapping[str, tuple[str, str]] = {
    "T": ("water_temperature", "degC"),
    "S": ("salinity", "PSU"),
    "O": ("dissolved_oxygen", "mL/L"),
    "PH": ("ph", "1"),
    "NH4": ("ammonium", "µmol/L"),
    "NO3": ("nitrate", "µmol/L"),
    "NO2": ("nitrite", "µmol/L"),
    "PO4": ("orthophosphate", "µmol/L"),
    "SIOH4": ("silicate", "µmol/L"),
    "COP": ("particulate_organic_carbon", "µg/L"),
    "NOP": ("particulate_organic_nitrogen", "µg/L"),
    "MES": ("suspended_matter", "mg/L"),
    "DN15": ("delta15n_particulate", "permil"),
    "DC13": ("delta13c_particulate", "permil"),
    "CHLA": ("chlorophyll_a", "µg/L"),
}
_SAMPLE = ("DATE", "HEURE", "NOMSITE", "GPSLAT", "GPSLONG", "PROF_NUM")
_MISSING = ("", "NA", "NaN", "999999", "999999.0", "999999.00")


def _columns(header: Iterable[str]) -> dict[str, str]:
    """SOMLIT column names (upper case, without the trailing ``*``) -> names in the file."""
    return {str(c).strip().rstrip("*").upper(): str(c) for c in header}


def looks_like_somlit(header: Iterable[str]) -> bool:
    """Whether a CSV header is a SOMLIT export's (sample columns and ``q`` flag columns)."""
    names = _columns(header)
    return set(_SAMPLE) <= set(names) and any(f"Q{c}" in names for c in COLUMNS)


def read_somlit(
    path: PathLike,
    *,
    units: Mapping[str, str] | None = None,
    parameters: str | Iterable[str] | None = None,
    timezone: str | None = None,
    naive_time: str = "utc",
    source: str = SOURCE,
    storage_options: Mapping[str, Any] | None = None,
    encoding: str | None = None,
) -> InSituTable:
    """Read a SOMLIT hydrology CSV export into the tidy table.

    Parameters
    ----------
    path
        CSV (``,`` or ``;``) with the sample columns ``DATE``, ``HEURE``, ``nomSite*``,
        ``gpsLat*``, ``gpsLong*``, ``PROF_NUM`` and value columns each followed by its ``q``
        flag column (``T``/``qT``, ``CHLA``/``qCHLA``...): a path or a URL (``http(s)://``,
        ``s3://``, ``file://``).
    units
        SOMLIT column -> unit, overriding the SOMLIT units of :data:`COLUMNS`.
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
        Text encoding of the file (``"latin-1"``, ``"cp1252"``...); default: UTF-8, or
        ISO-8859-1 if the bytes are not UTF-8 (site names such as ``Étang``), with a note.

    Returns
    -------
    InSituTable
        ``data`` in the tidy schema; ``rejected``, ``flagged`` and ``notes`` say what was not
        read as is, row by row. ``station_id`` is the site name, ``depth`` is ``PROF_NUM``.

    Raises
    ------
    recipes.InSituFormatError
        If the file is empty or lacks the sample columns.
    """
    options = ReadOptions.make(parameters, timezone, naive_time)
    src = as_source(path, storage_options)
    src.check_not_empty()
    text, guessed = src.decode(encoding)
    text = text.lstrip("\ufeff")
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL,
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise InSituFormatError(f"cannot read {src.name} as SOMLIT CSV: {exc}") from exc
    names = _columns(df.columns)
    missing = [c for c in _SAMPLE if c not in names]
    if missing:
        raise InSituFormatError(
            f"{src.name} is not a SOMLIT export: column(s) {missing} missing "
            f"(found {list(df.columns)})"
        )
    if not len(df):
        raise InSituFormatError(f"{src.name} has a header but no data rows")
    present = [c for c in COLUMNS if c in names and f"Q{c}" in names]
    used = set(_SAMPLE) | set(present) | {f"Q{c}" for c in present}
    other = [names[c] for c in names if c not in used]
    report = Report()
    if guessed:
        report.note(guessed)
    if other:
        report.note(f"{src.name}: column(s) not read: {other}")
    base = pd.DataFrame(
        {
            "station_id": df[names["NOMSITE"]].str.strip(),
            "time": df[names["DATE"]].str.strip() + "T" + df[names["HEURE"]].str.strip(),
            "lon": df[names["GPSLONG"]],
            "lat": df[names["GPSLAT"]],
            "depth": df[names["PROF_NUM"]],
            "source": source,
        }
    )
    line = f"{src.name} line " + (df.index + 2).astype(str)
    parts = []
    for column in present:
        parameter, unit = COLUMNS[column]
        value, flag = df[names[column]].str.strip(), df[names[f"Q{column}"]].str.strip()
        part = base.assign(
            parameter=parameter,
            value=value.where(~value.isin(_MISSING), ""),
            unit=(units or {}).get(column, unit),
            qc_flag=flag,
            _row=line + f" {column}",
            _raw=f"{column}=" + value + f", q{column}=" + flag,
        )
        parts.append(_flags(part, report))
    return finalize(pd.concat(parts, ignore_index=True), report, options, label=src.name)


def _flags(part: pd.DataFrame, report: Report) -> pd.DataFrame:
    """Map SOMLIT codes to L20; reject values whose code says there was no measurement."""
    code = pd.to_numeric(part["qc_flag"], errors="coerce")
    unknown = ~code.isin(list(SOMLIT_FLAGS))
    reason = "SOMLIT quality code '" + part["qc_flag"] + "' unknown (0 to 9)"
    part, code = split(part, unknown, report, reason), code[~unknown]
    l20 = code.map(SOMLIT_FLAGS)
    no_measure = l20.isna()
    empty = part["value"] == ""
    meaning = code.astype(int).map(SOMLIT_FLAG_MEANINGS)
    reason = (
        "missing value (SOMLIT code " + code.astype(int).astype(str) + ": " + meaning + ")"
    ).where(
        empty, "value given with SOMLIT code " + code.astype(int).astype(str) + " (" + meaning + ")"
    )
    part = split(part, no_measure | empty, report, reason)
    return part.assign(qc_flag=l20[part.index].astype(int))
