"""Validation of satellite water-quality products against in-situ data, and recalibration.

Quick start
-----------
>>> from recipes import validation
>>> stats = validation.metrics(satellite=[1.0, 2.0, 4.0], in_situ=[1.0, 2.5, 3.5])
>>> stats["n"], round(stats["bias"], 3)
(3, 0.0)
>>> cal = validation.recalibrate_nechad(rho_w, turbidity)  # doctest: +SKIP
>>> cal                                                     # doctest: +SKIP
NechadCalibration  n=42 (3 excluded), weighting='relative'
  A = 351.2 ± 4.1 FNU   95% CI [342.9, 359.5]
  ...
>>> wq.add_water_quality(cube, turbidity_coefficients=cal.coefficients)  # doctest: +SKIP

Contents
--------
:func:`metrics`
    N, bias, MAE, RMSE, MAPE, log-space bias and MAE, MdSA, SSPB, linear and log10 regression
    lines, r and r² (Seegers et al. 2018).
:func:`recalibrate_nechad`, :class:`NechadCalibration`
    Regional A (and C) of the Nechad turbidity model, with standard errors and 95 % intervals.
:func:`recalibrate_ndci`, :class:`NdciCalibration`
    Regional NDCI → chlorophyll-a polynomial with the coefficients' covariance.
"""

from __future__ import annotations

from recipes._stats import (
    METRIC_KEYS,
    MIN_PAIRS,
    ValidationDataError,
    ValidationWarning,
    metrics,
)
from recipes.water_quality._recalibration import (
    NdciCalibration,
    NechadCalibration,
    RecalibrationError,
    recalibrate_ndci,
    recalibrate_nechad,
)

__all__ = [
    "METRIC_KEYS",
    "MIN_PAIRS",
    "NdciCalibration",
    "NechadCalibration",
    "RecalibrationError",
    "ValidationDataError",
    "ValidationWarning",
    "metrics",
    "recalibrate_ndci",
    "recalibrate_nechad",
]
