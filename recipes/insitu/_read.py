"""Format sniffing and the ``read`` dispatcher of :mod:`recipes.insitu`."""

from __future__ import annotations

import csv
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lab import ConfigurationError
from recipes._errors import InSituFormatError
from recipes.insitu._core import InSituTable, concat
from recipes.insitu._dsg import read_dsg
from recipes.insitu._erddap import is_units_row, nccsv_error, read_erddap, split_header
from recipes.insitu._hubeau import read_hubeau
from recipes.insitu._odv import looks_like_odv, read_odv
from recipes.insitu._schema import REQUIRED
from recipes.insitu._somlit import looks_like_somlit, read_somlit
from recipes.insitu._source import PathLike, Source, as_source
from recipes.insitu._table import as_sources, read_table

#: Format name -> reader; ``table`` and ``hubeau`` readers take several files at once.
READERS: dict[str, Callable[..., InSituTable]] = {
    "table": read_table,
    "hubeau": read_hubeau,
    "erddap": read_erddap,
    "dsg": read_dsg,
    "somlit": read_somlit,
    "odv": read_odv,
}
_MULTI = ("table", "hubeau")
_NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")


def sniff(path: PathLike | Source, storage_options: Mapping[str, Any] | None = None) -> str:
    """Name the format of an in-situ file from its extension and its first lines.

    Parameters
    ----------
    path
        The file: a path or a URL (``http(s)://``, ``s3://``, ``file://``).
    storage_options
        fsspec options for URLs other than ``http(s)`` and ``file`` (e.g. S3 credentials).

    Returns
    -------
    str
        One of the keys of ``READERS``: ``table``, ``hubeau``, ``erddap``, ``dsg``, ``somlit``,
        ``odv``.

    Raises
    ------
    InSituFormatError
        If the file is empty or its format is not recognised.
    lab.AssetReadError
        If a remote file cannot be fetched (the message names the URL and the answer).
    """
    source = as_source(path, storage_options)
    source.check_not_empty()
    suffix = source.suffix
    head = source.head(65536)
    if suffix in (".parquet", ".pq") or head.startswith(b"PAR1"):
        return "table"
    if suffix in (".nc", ".nc4", ".cdf", ".netcdf", ".h5") or head.startswith(_NETCDF_MAGIC):
        return "dsg"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    if suffix == ".json" or text.lstrip().startswith("{"):
        return _sniff_json(source)
    if suffix == ".csvp":
        return "erddap"
    if text.lstrip().startswith("Error {"):
        raise InSituFormatError(
            f"{source.name} is an ERDDAP error response, not data: {' '.join(text.split())[:300]}"
        )
    nccsv = nccsv_error(text, source.name)
    if nccsv is not None:
        raise nccsv
    found = _sniff_text(text)
    if found is None:
        raise InSituFormatError(
            f"cannot tell the in-situ format of {source.label}: it is not a tidy table, Hub'Eau "
            "JSON, ERDDAP CSV, CF-DSG netCDF, SOMLIT CSV nor SeaDataNet ODV; pass "
            f"format= with one of {sorted(READERS)}"
        )
    return found


def _sniff_json(source: Source) -> str:
    try:
        page = json.loads(source.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InSituFormatError(f"{source.label} is not valid JSON: {exc}") from exc
    if isinstance(page, dict) and isinstance(page.get("data"), list):
        return "hubeau"
    raise InSituFormatError(
        f"{source.name} is JSON but not a Hub'Eau response (no 'data' list); "
        f"pass format= with one of {sorted(READERS)} if it is another format"
    )


def _sniff_text(text: str) -> str | None:
    lines = text.splitlines()
    if looks_like_odv(lines):
        return "odv"
    if not lines:
        return None
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    rows = list(csv.reader(lines[:2], delimiter=delimiter))
    header = [c.strip() for c in rows[0]]
    if set(REQUIRED) <= set(header):
        return "table"
    if looks_like_somlit(header):
        return "somlit"
    if split_header(header) is not None and any(c.casefold().startswith("time") for c in header):
        return "erddap"
    if len(rows) > 1 and "time" in map(str.casefold, header) and is_units_row(rows[1], header):
        return "erddap"
    return None


def read(
    path_or_paths: PathLike | Iterable[PathLike],
    format: str | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> InSituTable:
    """Read in-situ files of any supported format into one tidy table.

    Parameters
    ----------
    path_or_paths
        One file or several, of one format or mixed: paths or URLs (``http(s)://``, fetched
        with the lab's HTTP session; ``s3://`` and other fsspec URLs; ``file://``). Hub'Eau
        ``analyse_pc`` and ``station_pc`` files given together are joined.
    format
        ``"table"``, ``"hubeau"``, ``"erddap"``, ``"dsg"``, ``"somlit"`` or ``"odv"``; default:
        sniffed per file from its extension and first lines (:func:`sniff`).
    storage_options
        fsspec options for URLs other than ``http(s)`` and ``file`` (e.g. S3 credentials).
    **kwargs
        Options of the readers (``parameters``, ``timezone``, ``naive_time``, ``station_id``...);
        each reader gets those it takes.

    Returns
    -------
    InSituTable
        The tables of all files stacked (:func:`concat`).

    Raises
    ------
    recipes.InSituFormatError
        If a file is empty, a local file does not exist, or a format cannot be told (pass
        ``format=``).
    lab.AssetReadError
        If a remote file cannot be fetched (the message names the URL and the answer).
    lab.ConfigurationError
        If ``format`` or an option is not valid.
    """
    paths = as_sources(path_or_paths, storage_options)
    if not paths:
        raise ConfigurationError("read() needs at least one path")
    if format is not None and format not in READERS:
        raise ConfigurationError(f"format={format!r} is not known: use one of {sorted(READERS)}")
    groups: dict[str, list[Source]] = {}
    for path in paths:
        groups.setdefault(format or sniff(path), []).append(path)
    accepted = {name: set(inspect.signature(READERS[name]).parameters) for name in groups}
    unused = set(kwargs) - set().union(*accepted.values())
    if unused:
        raise ConfigurationError(
            f"option(s) {sorted(unused)} are not options of the {sorted(groups)} reader(s)"
        )
    tables = []
    for name, group in groups.items():
        reader = READERS[name]
        options = {k: v for k, v in kwargs.items() if k in accepted[name]}
        if name in _MULTI:
            tables.append(reader(group, **options))
        else:
            tables.extend(reader(path, **options) for path in group)
    return concat(tables)
