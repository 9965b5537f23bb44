"""Reader of tables already in the tidy schema: the sample federation's Parquet and CSV files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from recipes._errors import InSituFormatError
from recipes.insitu._core import (
    InSituTable,
    ReadOptions,
    Report,
    check_not_empty,
    finalize,
    raw_text,
)
from recipes.insitu._schema import COLUMNS, REQUIRED

PathLike = str | Path


def as_paths(path_or_paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """One path or several, as a list of paths."""
    if isinstance(path_or_paths, str | Path):
        return [Path(path_or_paths)]
    return [Path(p) for p in path_or_paths]


def read_table(
    path_or_paths: PathLike | Iterable[PathLike],
    *,
    parameters: str | Iterable[str] | None = None,
    timezone: str | None = None,
    naive_time: str = "utc",
) -> InSituTable:
    """Read Parquet or CSV files that already follow the tidy schema (the sample's assets).

    Parameters
    ----------
    path_or_paths
        One file or several (``.parquet``/``.pq`` as Parquet, anything else as CSV with a
        header row and ISO 8601 times).
    parameters
        Lab parameter name(s) to keep (default all); an unknown name raises
        :class:`UnknownParameterError` listing the known ones.
    timezone
        IANA zone in which times written without a zone were taken (e.g. ``"Europe/Paris"``).
    naive_time
        Without ``timezone``: ``"utc"`` reads zone-less times as UTC with a
        :class:`NaiveTimeWarning`; ``"error"`` raises :class:`~recipes.InSituFormatError`.

    Returns
    -------
    InSituTable
        ``data`` in the tidy schema; ``rejected``, ``flagged`` and ``notes`` say what was not
        read as is, row by row.

    Raises
    ------
    recipes.InSituFormatError
        If a file is empty, unreadable, or lacks columns of the schema (named in the message).
    """
    options = ReadOptions.make(parameters, timezone, naive_time)
    paths = as_paths(path_or_paths)
    report = Report()
    frames = [_load(path) for path in paths]
    label = ", ".join(p.name for p in paths)
    return finalize(pd.concat(frames, ignore_index=True), report, options, label=label)


def _load(path: Path) -> pd.DataFrame:
    check_not_empty(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            first_line, where = 0, "row"
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
            first_line, where = 2, "line"
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InSituFormatError(f"cannot read {path} as a tidy in-situ table: {exc}") from exc
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise InSituFormatError(
            f"{path.name} is not a tidy in-situ table: column(s) {missing} missing "
            f"(found {list(df.columns)}); pass format= to read it with another reader"
        )
    if not len(df):
        raise InSituFormatError(f"{path.name} has a header but no data rows")
    row = f"{path.name} {where} " + pd.Series(range(first_line, first_line + len(df))).astype(str)
    return df.assign(_row=row.to_numpy(), _raw=raw_text(df, COLUMNS).to_numpy())
