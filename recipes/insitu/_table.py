"""Reader of tables already in the tidy schema: the sample federation's Parquet and CSV files."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from recipes._errors import InSituFormatError
from recipes.insitu._core import (
    InSituTable,
    ReadOptions,
    Report,
    finalize,
    raw_text,
)
from recipes.insitu._schema import COLUMNS, REQUIRED
from recipes.insitu._source import PathLike, Source, as_source


def as_sources(
    path_or_paths: PathLike | Source | Iterable[PathLike | Source],
    storage_options: Mapping[str, Any] | None = None,
) -> list[Source]:
    """One path or URL or several, as a list of :class:`Source`."""
    if isinstance(path_or_paths, str | os.PathLike | Source):
        return [as_source(path_or_paths, storage_options)]
    return [as_source(p, storage_options) for p in path_or_paths]


def read_table(
    path_or_paths: PathLike | Iterable[PathLike],
    *,
    parameters: str | Iterable[str] | None = None,
    timezone: str | None = None,
    naive_time: str = "utc",
    storage_options: Mapping[str, Any] | None = None,
    encoding: str | None = None,
) -> InSituTable:
    """Read Parquet or CSV files that already follow the tidy schema (the sample's assets).

    Parameters
    ----------
    path_or_paths
        One file or several, paths or URLs (``http(s)://``, ``s3://``, ``file://``);
        ``.parquet``/``.pq`` (or content starting with ``PAR1``) as Parquet, anything else as
        CSV with a header row and ISO 8601 times.
    parameters
        Lab parameter name(s) to keep (default all); an unknown name raises
        :class:`UnknownParameterError` listing the known ones.
    timezone
        IANA zone in which times written without a zone were taken (e.g. ``"Europe/Paris"``).
    naive_time
        Without ``timezone``: ``"utc"`` reads zone-less times as UTC with a
        :class:`NaiveTimeWarning`; ``"error"`` raises :class:`~recipes.InSituFormatError`.
    storage_options
        fsspec options for URLs other than ``http(s)`` and ``file`` (e.g. S3 credentials).
    encoding
        Text encoding of the CSV files (``"latin-1"``, ``"cp1252"``...); default: UTF-8, or
        ISO-8859-1 if the bytes are not UTF-8, with a note. Parquet files ignore it.

    Returns
    -------
    InSituTable
        ``data`` in the tidy schema; ``rejected``, ``flagged`` and ``notes`` say what was not
        read as is, row by row.

    Raises
    ------
    recipes.InSituFormatError
        If a file is empty, unreadable, or lacks columns of the schema (named in the message).
    lab.AssetReadError
        If a remote file cannot be fetched (the message names the URL and the answer).
    """
    options = ReadOptions.make(parameters, timezone, naive_time)
    sources = as_sources(path_or_paths, storage_options)
    report = Report()
    frames = []
    for source in sources:
        frame, guessed = _load(source, encoding)
        frames.append(frame)
        if guessed:
            report.note(guessed)
    label = ", ".join(s.name for s in sources)
    return finalize(pd.concat(frames, ignore_index=True), report, options, label=label)


def _load(source: Source, encoding: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """The file's rows (with ``_row`` and ``_raw``), and a note if its encoding was guessed."""
    source.check_not_empty()
    parquet = source.suffix in (".parquet", ".pq") or source.head(4) == b"PAR1"
    text, guessed = ("", None) if parquet else source.decode(encoding)
    try:
        if parquet:
            df = pd.read_parquet(source.open())
            first_line, where = 0, "row"
        else:
            df = pd.read_csv(io.StringIO(text.lstrip("\ufeff")), dtype=str, keep_default_na=False)
            first_line, where = 2, "line"
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InSituFormatError(
            f"cannot read {source.label} as a tidy in-situ table: {exc}"
        ) from exc
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise InSituFormatError(
            f"{source.name} is not a tidy in-situ table: column(s) {missing} missing "
            f"(found {list(df.columns)}); pass format= to read it with another reader"
        )
    if not len(df):
        raise InSituFormatError(f"{source.name} has a header but no data rows")
    row = f"{source.name} {where} " + pd.Series(range(first_line, first_line + len(df))).astype(str)
    return df.assign(_row=row.to_numpy(), _raw=raw_text(df, COLUMNS).to_numpy()), guessed
