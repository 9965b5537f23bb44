"""Validation statistics of satellite retrievals against in-situ measurements.

Formulas follow Seegers et al. (2018), who recommend log-space bias and error (and MdSA /
SSPB, after Morley et al. 2018) over r² for the skewed, multiplicative-error data of water
quality. Pairs are cleaned once, loudly: a pair with NaN or ±inf on either side is removed
and counted; a pair with a non-positive value is kept for the linear statistics and left out
of the log-space ones with a :class:`ValidationWarning` that says how many.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd

from lab import ConfigurationError, EarthLabError, EarthLabWarning

__all__ = [
    "METRIC_KEYS",
    "MIN_PAIRS",
    "ValidationDataError",
    "ValidationWarning",
    "metrics",
    "paired_arrays",
]

#: The statistics of :func:`metrics`, in order (the dict also has ``slope_log10``,
#: ``intercept_log10``, ``n_removed`` and ``n_log``).
METRIC_KEYS: tuple[str, ...] = (
    "n",
    "bias",
    "mae",
    "rmse",
    "mape",
    "log_bias",
    "log_mae",
    "mdsa",
    "sspb",
    "slope",
    "intercept",
    "r",
    "r2",
)

#: Fewest valid pairs any statistic is computed from.
MIN_PAIRS = 3


class ValidationDataError(EarthLabError, ValueError):
    """The satellite / in-situ pairs cannot give the statistic or fit asked; the message says why."""


class ValidationWarning(EarthLabWarning):
    """Pairs were left out of some statistics, or a statistic is undefined for these data."""


def _as_vector(value: Any, label: str) -> tuple[np.ndarray, pd.Index | None]:
    index = value.index if isinstance(value, pd.Series) else None
    try:
        if index is not None:
            array = value.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationDataError(
            f"{label} must hold numbers (array, list or pandas Series): {exc}"
        ) from exc
    return array.ravel(), index


def paired_arrays(
    first: Any, second: Any, labels: tuple[str, str] = ("satellite", "in_situ")
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return the finite pairs of two equally long inputs, and how many pairs were removed.

    Parameters
    ----------
    first, second
        Arrays, lists or pandas Series of the same length (Series must share their index).
    labels
        Names of the two inputs, for error messages.

    Returns
    -------
    tuple of numpy.ndarray, numpy.ndarray, int
        The two float64 vectors without the pairs where either is NaN or ±inf, and the number
        of pairs removed.
    """
    a, index_a = _as_vector(first, labels[0])
    b, index_b = _as_vector(second, labels[1])
    if a.shape != b.shape:
        raise ValidationDataError(
            f"{labels[0]} has {a.size} values and {labels[1]} has {b.size}: they must be pairs "
            "of the same length (one value of each per matchup)"
        )
    if index_a is not None and index_b is not None and not index_a.equals(index_b):
        raise ValidationDataError(
            f"the pandas Series {labels[0]} and {labels[1]} have different indexes; align them "
            "first (a, b = a.align(b, join='inner')) so that pairs are not matched by position"
        )
    finite = np.isfinite(a) & np.isfinite(b)
    return a[finite], b[finite], int(a.size - finite.sum())


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    dx = x - x.mean()
    sxx = float(np.dot(dx, dx))
    if sxx == 0:
        return float("nan"), float("nan")
    slope = float(np.dot(dx, y - y.mean()) / sxx)
    return slope, float(y.mean() - slope * x.mean())


def _rma(x: np.ndarray, y: np.ndarray, r: float) -> tuple[float, float]:
    sx, sy = float(np.std(x)), float(np.std(y))
    if sx == 0 or not np.isfinite(r):
        return float("nan"), float("nan")
    slope = float(np.sign(r) * sy / sx)
    return slope, float(y.mean() - slope * x.mean())


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt(np.dot(dx, dx) * np.dot(dy, dy)))
    if denominator == 0:
        return float("nan")
    return float(np.clip(np.dot(dx, dy) / denominator, -1.0, 1.0))


def _log_metrics(sat: np.ndarray, ref: np.ndarray, regression: str) -> dict[str, float]:
    d10 = np.log10(sat) - np.log10(ref)
    ln_ratio = np.log(sat / ref)
    m = float(np.median(ln_ratio))
    fit = _ols if regression == "ols" else _type2
    slope, intercept = fit(np.log10(ref), np.log10(sat))
    return {
        "log_bias": float(10 ** np.mean(d10)),
        "log_mae": float(10 ** np.mean(np.abs(d10))),
        "mdsa": float(100 * (np.exp(np.median(np.abs(ln_ratio))) - 1)),
        "sspb": float(100 * np.sign(m) * (np.exp(abs(m)) - 1)),
        "slope_log10": slope,
        "intercept_log10": intercept,
    }


def _type2(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return _rma(x, y, _pearson(x, y))


def metrics(
    satellite: Any,
    in_situ: Any,
    *,
    regression: Literal["ols", "rma"] = "ols",
) -> dict[str, float]:
    """Validation statistics of satellite retrievals against in-situ values.

    Parameters
    ----------
    satellite, in_situ
        Paired values (arrays, lists or pandas Series of the same length; Series must share
        their index). Pairs with NaN or ±inf on either side are removed and counted.
    regression
        ``"ols"`` (default): ordinary least squares of satellite on in situ, the usual
        "satellite = slope × in situ + intercept" line. ``"rma"``: reduced major axis (type II,
        slope = sign(r) σ_sat / σ_in_situ), symmetric in the two variables, for when in situ
        carries comparable error. Applies to both the linear and the log10 line.

    Returns
    -------
    dict
        ``n`` (valid pairs), ``bias`` = mean(sat − ref), ``mae`` = mean|sat − ref|,
        ``rmse`` = √mean(sat − ref)², ``mape`` = 100 mean(|sat − ref| / |ref|) (%, pairs with
        ref = 0 left out), ``log_bias`` = 10^mean(log10 sat − log10 ref) (a ratio, 1 is
        unbiased), ``log_mae`` = 10^mean|log10 sat − log10 ref| (a ratio, ≥ 1),
        ``mdsa`` = 100 (e^median|ln(sat/ref)| − 1) (%), ``sspb`` = 100 sign(M) (e^|M| − 1) with
        M = median ln(sat/ref) (%, signed), ``slope`` and ``intercept`` of the linear line,
        ``r`` (Pearson) and ``r2`` = r², then ``slope_log10`` and ``intercept_log10`` of the
        line in log10 space, ``n_removed`` (pairs removed for NaN / inf) and ``n_log`` (pairs
        used by the log-space statistics: both values > 0).
        Statistics undefined for the data (zero variance, fewer than 3 positive pairs) are NaN,
        with a :class:`ValidationWarning`.

    Raises
    ------
    ValidationDataError
        Inputs of different lengths or not numeric, Series not aligned, or fewer than 3 valid
        pairs.

    References
    ----------
    Seegers, B. N., Stumpf, R. P., Schaeffer, B. A., Loftin, K. A. and Werdell, P. J. (2018).
    Performance metrics for the assessment of satellite data products: an ocean color case
    study. Optics Express 26(6), 7404-7422. doi:10.1364/OE.26.007404

    Morley, S. K., Brito, T. V. and Welling, D. T. (2018). Measures of model performance based
    on the log accuracy ratio. Space Weather 16(1), 69-88. doi:10.1002/2017SW001669
    """
    if regression not in ("ols", "rma"):
        raise ConfigurationError(f"regression must be 'ols' or 'rma', got {regression!r}")
    sat, ref, removed = paired_arrays(satellite, in_situ)
    n = int(sat.size)
    if n < MIN_PAIRS:
        raise ValidationDataError(
            f"only {n} valid satellite / in-situ pair(s) ({removed} removed for NaN or inf); "
            f"at least {MIN_PAIRS} are needed for validation statistics"
        )
    diff = sat - ref
    nonzero = ref != 0
    if not nonzero.all():
        warnings.warn(
            f"{int((~nonzero).sum())} pair(s) with in-situ value 0 left out of MAPE",
            ValidationWarning,
            stacklevel=2,
        )
    r = _pearson(ref, sat)
    slope, intercept = _ols(ref, sat) if regression == "ols" else _rma(ref, sat, r)
    if not np.isfinite(r):
        warnings.warn(
            "satellite or in-situ values are all equal: slope, intercept, r and r2 are NaN",
            ValidationWarning,
            stacklevel=2,
        )
    out: dict[str, float] = {
        "n": n,
        "bias": float(diff.mean()),
        "mae": float(np.abs(diff).mean()),
        "rmse": float(np.sqrt(np.mean(diff * diff))),
        "mape": float(100 * np.mean(np.abs(diff[nonzero]) / np.abs(ref[nonzero])))
        if nonzero.any()
        else float("nan"),
    }
    positive = (sat > 0) & (ref > 0)
    n_log = int(positive.sum())
    if n_log < n:
        warnings.warn(
            f"{n - n_log} of {n} pair(s) have a satellite or in-situ value <= 0 and are left "
            f"out of the log-space statistics (computed on {n_log} pairs)",
            ValidationWarning,
            stacklevel=2,
        )
    if n_log >= MIN_PAIRS:
        log = _log_metrics(sat[positive], ref[positive], regression)
    else:
        warnings.warn(
            f"only {n_log} pair(s) with both values > 0: the log-space statistics are NaN",
            ValidationWarning,
            stacklevel=2,
        )
        log = dict.fromkeys(
            ("log_bias", "log_mae", "mdsa", "sspb", "slope_log10", "intercept_log10"),
            float("nan"),
        )
    out.update({k: log[k] for k in ("log_bias", "log_mae", "mdsa", "sspb")})
    out.update({"slope": slope, "intercept": intercept, "r": r, "r2": r * r})
    out.update(
        {
            "slope_log10": log["slope_log10"],
            "intercept_log10": log["intercept_log10"],
            "n_removed": removed,
            "n_log": n_log,
        }
    )
    return out
