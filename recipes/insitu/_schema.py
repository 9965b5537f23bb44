"""The tidy in-situ schema (its columns and parameters) and the check that a table follows it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recipes._errors import InSituFormatError
from recipes.insitu._units import L20_FLAGS, PARAMETERS, SANDRE_UNMAPPED

if TYPE_CHECKING:
    from recipes.insitu._core import InSituTable

COLUMNS = (
    "station_id",
    "time",
    "lon",
    "lat",
    "depth",
    "parameter",
    "value",
    "unit",
    "qc_flag",
    "source",
)
REQUIRED = tuple(c for c in COLUMNS if c != "depth")
STRING_COLUMNS = ("station_id", "parameter", "unit", "source")


def known_parameters() -> str:
    """Comma-separated names of the known parameters (for messages)."""
    return ", ".join(PARAMETERS)


def is_known_parameter(parameter: pd.Series) -> pd.Series:
    """Whether each name is a lab parameter or an unmapped SANDRE code (``sandre_<code>``)."""
    as_text = parameter.astype("str")
    return parameter.isin(PARAMETERS) | as_text.str.match(SANDRE_UNMAPPED.pattern)


class InSituSchemaError(InSituFormatError):
    """A table does not follow the tidy in-situ schema; the message names every column at fault."""


def validate(table: pd.DataFrame | InSituTable) -> None:
    """Check a DataFrame against the tidy in-situ schema.

    Parameters
    ----------
    table
        A DataFrame (or an :class:`InSituTable`, whose ``data`` is checked).

    Raises
    ------
    InSituSchemaError
        Listing every problem found, each naming its column.
    """
    df = table if isinstance(table, pd.DataFrame) else getattr(table, "data", table)
    if not isinstance(df, pd.DataFrame):
        raise InSituSchemaError(f"expected a pandas DataFrame, got {type(df).__name__}")
    problems = [f"column '{c}' is missing" for c in REQUIRED if c not in df]
    for column in COLUMNS:
        if column in df:
            problems += _column_problems(df, column)
    if not problems:
        problems += _unit_problems(df)
    if problems:
        raise InSituSchemaError(
            "table does not follow the tidy in-situ schema:\n  - "
            + "\n  - ".join(problems)
            + "\n(read files with recipes.insitu.read(), which produces this schema)"
        )


def _unit_problems(df: pd.DataFrame) -> list[str]:
    """Units that are not the canonical ones of their parameter."""
    problems = []
    for (parameter, unit), n in df.groupby(["parameter", "unit"]).size().items():
        spec = PARAMETERS.get(parameter)
        if spec is not None and unit not in spec.accepted:
            problems.append(
                f"column 'unit' has {n} {parameter} value(s) in {unit!r}, not in "
                f"{' or '.join(spec.accepted)} (the readers convert units)"
            )
    return problems


def _column_problems(df: pd.DataFrame, column: str) -> list[str]:
    series = df[column]
    if column in STRING_COLUMNS:
        if not pd.api.types.is_string_dtype(series.dtype):
            return [f"column '{column}' must hold strings, not {series.dtype}"]
        problems = [
            f"column '{column}' has {n} missing value(s)" for n in [series.isna().sum()] if n
        ]
        if column == "parameter":
            unknown = sorted(set(series.dropna()[~is_known_parameter(series.dropna())]))
            if unknown:
                problems.append(
                    f"column 'parameter' has unknown parameter(s) {unknown[:10]}; "
                    f"known: {known_parameters()} (or sandre_<code>)"
                )
        return problems
    if column == "time":
        dtype = series.dtype
        if not isinstance(dtype, pd.DatetimeTZDtype):
            return [f"column 'time' must be timezone-aware UTC datetimes, not {dtype}"]
        if str(dtype.tz) != "UTC":
            return [f"column 'time' must be in UTC, not {dtype.tz} (use .dt.tz_convert('UTC'))"]
        return [f"column 'time' has {n} missing value(s)" for n in [series.isna().sum()] if n]
    if column == "qc_flag":
        if series.dtype != np.int8:
            return [f"column 'qc_flag' must be int8, not {series.dtype} (use .astype('int8'))"]
        bad = sorted(set(series) - set(L20_FLAGS))
        return (
            [f"column 'qc_flag' has codes {bad} that are not SeaDataNet L20 (0-9)"] if bad else []
        )
    if series.dtype != np.float64:
        return [f"column '{column}' must be float64, not {series.dtype}"]
    limit = {"lon": 180.0, "lat": 90.0}.get(column)
    problems = []
    if limit is not None and (series.abs() > limit).any():
        problems.append(f"column '{column}' has values outside [-{limit:g}, {limit:g}]")
    if column in ("lon", "lat") and series.isna().any():
        problems.append(f"column '{column}' has {int(series.isna().sum())} missing value(s)")
    if column == "value" and "qc_flag" in df:
        n = int((series.isna() & (df["qc_flag"] != 9)).sum())
        if n:
            problems.append(f"column 'value' has {n} missing value(s) not flagged 9 (missing)")
    return problems
