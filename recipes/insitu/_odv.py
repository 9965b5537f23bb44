"""Reader of SeaDataNet ODV spreadsheet text (tab-separated, ``//`` comment header).

Columns ``Cruise``, ``Station``, ``Type``, ``yyyy-mm-ddThh:mm:ss.sss``, ``Longitude
[degrees_east]``, ``Latitude [degrees_north]``, ... then each variable ``NAME [units]`` followed by
its ``QV:SEADATANET`` column (SeaDataNet L20 flags; ``Q``, below the limit of quantification, is
read as 6). Station metadata written only on the first row of a station carry on to the next
rows. SeaDataNet times are UT by definition of the format. The time column is matched ignoring
case; the depth column is the one mapped to a P01 depth code (``ADEPZZ01``, ``DEPHPR01``...) in
``SDN_parameter_mapping`` or named ``Depth``/``DEPH``/a P01 depth code; a variable's P01 code
decides its parameter, and its P06 unit code its unit. ODV files of other projects (flags
``QV:ODV``, ``QV:WOD``...) are read with qc_flag 0; ``MissingValueIndicators`` are honoured.

Only the P01 codes in :data:`P01` are mapped: each was checked against its NERC Vocabulary Server
definition. A variable whose code is not there is not read, and the table's notes list it
(``variable(s) not read: [...]``); pass ``variables={"<name>": "<parameter>"}`` after checking
the code's meaning yourself. Codes seen in real files and left unmapped because their definition
could not be confirmed: ``ACIDZZXX`` (a pH column, P06 ``UUPH``), ``DOXYSE01`` (a dissolved
oxygen column, ``UMGL``) and ``CPHLSPPC`` (a chlorophyll-a column, ``UGPL``) of the DIVAnd ODV
samples, and the nutrients there as N/P/Si (``NTRAZZXX``, ``NTRIZZXX``, ``AMONZZXX``,
``PHOSAAZX``, ``SLCAAAZX``, ``UPOX``).
"""

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
)
from recipes.insitu._source import PathLike, as_source
from recipes.insitu._units import DEFAULT_VARIABLES, as_udunits

SOURCE = "seadatanet-odv"
_QV = "QV:SEADATANET"
_TIME = "yyyy-mm-ddThh:mm:ss.sss"
_META = ("Cruise", "Station", "Type", _TIME, "LOCAL_CDI_ID", "EDMO_code")
_HEADER = re.compile(r"^(?P<name>.*?)\s*\[(?P<unit>[^\]]*)\]$")
_MAPPING = re.compile(
    r"<subject>SDN:LOCAL:(?P<local>[^<]+)</subject><object>SDN:P01::(?P<p01>\w+)</object>"
    r"(?:<units>SDN:P06::(?P<p06>\w+)</units>)?"
)
_P01_CODE = re.compile(r"^[A-Z0-9]{8}$")
#: BODC P01 codes of depth below the sea surface (SeaDataNet vertical coordinates).
DEPTH_P01 = ("ADEPZZ01", "DEPHPR01", "DEPHZZ01", "DEPHCV01", "DEPHPS01")
#: BODC P01 codes -> lab parameter (the common water-quality ones; codes not listed are not
#: read, see the module docstring for those seen and left unmapped).
P01: Mapping[str, str] = {
    "TEMPPR01": "water_temperature",
    "TEMPST01": "water_temperature",
    "TEMPS901": "water_temperature",
    "PSALPR01": "salinity",
    "PSALST01": "salinity",
    "PSLTZZ01": "salinity",
    "CPHLZZXX": "chlorophyll_a",
    "CPHLPR01": "chlorophyll_a",
    "CPHLHPP1": "chlorophyll_a",
    "TURBXXXX": "turbidity",
    "DOXYZZXX": "dissolved_oxygen",
    "PHXXZZXX": "ph",
    "PSSTTS01": "water_temperature",  # temperature of the water body by in-situ thermometer
    "ODSDM021": "salinity",  # salinity of the water body
}
#: EMODnet Chemistry aggregated-product variable labels (NERC vocabulary P35, preferred labels)
#: -> lab parameter: these files name their columns by P35 label, without a P01 mapping.
P35_LABELS: Mapping[str, str] = {
    "its-90 water temperature": "water_temperature",
    "water body salinity": "salinity",
    "water body dissolved oxygen concentration": "dissolved_oxygen",
    "water body dissolved oxygen saturation": "oxygen_saturation",
    "water body nitrate": "nitrate",
    "water body nitrite": "nitrite",
    "water body ammonium": "ammonium",
    "water body phosphate": "orthophosphate",
    "water body silicate": "silicate",
    "water body chlorophyll-a": "chlorophyll_a",
    "water body ph": "ph",
}
#: SeaDataNet P06 unit labels seen in ODV headers -> the spelling of the lab's unit tables.
P06_LABELS: Mapping[str, str] = {
    "degrees celsius": "degC",
    "milligrams per cubic metre": "mg/m3",
    "micrograms per litre": "µg/L",
    "milligrams per litre": "mg/L",
    "micromoles per litre": "µmol/L",
    "nephelometric turbidity units": "NTU",
    "formazin nephelometric units": "FNU",
    "dimensionless": "1",
    "metres": "m",
}


def looks_like_odv(lines: list[str]) -> bool:
    """Whether text lines are an ODV spreadsheet (``//`` header, then Cruise, Station...)."""
    header = next((line for line in lines if not line.startswith("//") and line.strip()), "")
    return header.startswith("Cruise\t") and ("\tStation\t" in header)


def read_odv(
    path: PathLike,
    *,
    variables: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    parameters: str | Iterable[str] | None = None,
    timezone: str | None = None,
    naive_time: str = "utc",
    source: str = SOURCE,
    storage_options: Mapping[str, Any] | None = None,
    encoding: str | None = None,
) -> InSituTable:
    """Read a SeaDataNet ODV spreadsheet text file into the tidy table.

    Parameters
    ----------
    path
        Tab-separated ODV text with its ``//`` header: a path or a URL (``http(s)://``,
        ``s3://``, ``file://``).
    variables
        Variable name (header without its ``[units]``) -> lab parameter. Default: names or
        BODC P01 codes (through ``SDN_parameter_mapping``) of the common parameters (``P01``);
        a variable whose P01 code is not mapped (``ACIDZZXX``, ``DOXYSE01``, ``CPHLSPPC``:
        meaning unconfirmed) is listed in the notes and read only when named here. Naming
        variables reads those only.
    units
        Variable name -> unit, overriding the header's.
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
        Text encoding of the file; default: UTF-8, or ISO-8859-1 if the bytes are not UTF-8
        (with a note).

    Returns
    -------
    InSituTable
        ``data`` in the tidy schema; ``rejected``, ``flagged`` and ``notes`` say what was not
        read as is, row by row.

    Raises
    ------
    recipes.InSituFormatError
        If the file is empty or not ODV text, or lacks positions or times.
    """
    options = ReadOptions.make(parameters, timezone, naive_time)
    src = as_source(path, storage_options)
    src.check_not_empty()
    report = Report()
    text, guessed = src.decode(encoding)
    if guessed:
        report.note(guessed)
    lines = text.lstrip("\ufeff").splitlines()
    if not looks_like_odv(lines):
        raise InSituFormatError(
            f"{src.name} is not ODV spreadsheet text: expected '//' comments then a tab-separated "
            "header starting with Cruise, Station, Type"
        )
    comments = [line.rstrip("\t") for line in lines if line.startswith("//")]
    body = [line for line in lines if not line.startswith("//") and line.strip()]
    first_line = len(lines) - len(body) + 2
    df = pd.read_csv(io.StringIO("\n".join(body)), sep="\t", dtype=str, keep_default_na=False)
    if not len(df):
        raise InSituFormatError(f"{src.name} has a header but no data rows")
    time_column = next((c for c in df if c.casefold() == _TIME.casefold()), None)
    meta = [c for c in (*_META, time_column) if c in df]
    mapping = [m for m in map(_MAPPING.search, comments) if m]
    local_p01 = {m["local"]: m["p01"] for m in mapping}
    local_p06 = {m["local"]: m["p06"] for m in mapping if m["p06"]}
    columns = _variables(df.columns)
    lon, lat = _column(columns, "Longitude"), _column(columns, "Latitude")
    if lon is None or lat is None:
        raise InSituFormatError(f"{src.name}: no Longitude/Latitude column")
    # station metadata are written on the first row of each station only
    for column in (*meta, lon, lat):
        df[column] = df[column].replace("", pd.NA).ffill().fillna("")
    iso = next((c for c in df if c.split(" [")[0].casefold() == "time_iso8601"), None)
    if iso is not None and (df[iso].str.strip() != "").any():
        time_column = iso  # one time per sample (time series), not per station
    if time_column is None or time_column not in df:
        raise InSituFormatError(f"{src.name}: no '{_TIME}' (or time_ISO8601) column")
    meaning = {
        n: local_p01.get(n) or (n if _P01_CODE.match(n) else None) for n, _, _ in columns.values()
    }
    depth = next(
        (
            c
            for c, (n, _, _) in columns.items()
            if meaning[n] in DEPTH_P01 or n.casefold() in ("depth", "deph")
        ),
        None,
    )
    if depth is not None:
        report.note(f"{src.name}: depth read from column {depth!r}")
    skip = {lon, lat, depth, time_column, _column(columns, "Bot. Depth")}
    by_name = {n: c for c, (n, _, _) in columns.items() if c not in skip}
    available = {n: meaning[n] for n in by_name}
    hints = {**DEFAULT_VARIABLES, **P35_LABELS}
    chosen, ignored = choose_variables(available, variables, src.name, hints, P01)
    if ignored:
        report.note(f"{src.name}: variable(s) not read: {ignored}")
    if not any(c.startswith(_QV) for c in df):
        report.note(
            f"{src.name}: no {_QV} flag columns (not a SeaDataNet file): qc_flag 0 (no quality "
            "control) for every value"
        )
    missing = re.search(r"<MissingValueIndicators>([^<]*)<", "\n".join(comments))
    indicators = set(missing.group(1).split()) if missing else set()
    times = df[time_column].str.strip()
    base = pd.DataFrame(
        {
            "station_id": df["Station"] if "Station" in df else df.get("LOCAL_CDI_ID", ""),
            "time": times.where(times.str.endswith("Z") | (times == ""), times + "Z"),
            "lon": df[lon],
            "lat": df[lat],
            "depth": df[depth] if depth else None,
            "source": source,
            "_row": f"{src.name} line " + (df.index + first_line).astype(str),
        }
    )
    parts = []
    for name, parameter in chosen.items():
        column = by_name[name]
        _, unit, qv = columns[column]
        flag = df[qv].str.strip().replace({"Q": "6"}) if qv and qv.startswith(_QV) else 0
        unit = (units or {}).get(name, local_p06.get(name) or unit)
        values = df[column].where(~df[column].str.strip().isin(indicators), "")
        raw = name + "=" + df[column] + (", QV=" + df[qv] if qv else "")
        parts.append(
            base.assign(
                parameter=parameter, value=values, unit=as_udunits(unit), qc_flag=flag, _raw=raw
            )
        )
    return finalize(pd.concat(parts, ignore_index=True), report, options, label=src.name)


def _variables(columns: Iterable[str]) -> dict[str, tuple[str, str, str | None]]:
    """Column -> (name, unit, its QV column or None), for columns with a ``[unit]``."""
    columns = list(columns)
    out = {}
    for i, column in enumerate(columns):
        found = _HEADER.match(column)
        if found is None:
            continue
        following = columns[i + 1] if i + 1 < len(columns) else ""
        qv = following if following.startswith(_QV) else None
        out[column] = (found["name"], found["unit"], qv)
    return out


def _column(columns: Mapping[str, tuple[str, str, str | None]], name: str) -> str | None:
    return next((c for c, (n, _, _) in columns.items() if n == name), None)
