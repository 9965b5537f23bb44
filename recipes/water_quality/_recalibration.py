"""Regional recalibration of the Nechad turbidity model and of the NDCI chlorophyll polynomial."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

from lab import ConfigurationError
from recipes._stats import ValidationDataError, ValidationWarning, metrics, paired_arrays
from recipes.water_quality._algorithms import nechad
from recipes.water_quality._dispatch import apply_kernel

__all__ = [
    "NdciCalibration",
    "NechadCalibration",
    "RecalibrationError",
    "recalibrate_ndci",
    "recalibrate_nechad",
]


class RecalibrationError(ValidationDataError):
    """A regional fit is impossible with these matchups (too few, degenerate, no convergence)."""


def _ci95(value: float, se: float, dof: int) -> tuple[float, float]:
    half = float(stats.t.ppf(0.975, dof)) * se
    return (value - half, value + half)


def _residual_summary(m: dict[str, float]) -> str:
    return (
        f"  residuals: MdSA {m['mdsa']:.3g} %, SSPB {m['sspb']:+.3g} %, "
        f"bias {m['bias']:+.4g}, RMSE {m['rmse']:.4g}, r² {m['r2']:.4f}"
    )


@dataclass(frozen=True, repr=False)
class NechadCalibration:
    """Result of :func:`recalibrate_nechad`: Nechad coefficients fitted on matchups."""

    A: float
    """Fitted multiplicative coefficient (FNU)."""
    C: float
    """Saturation reflectance (fitted when ``fit_C``, else the value given)."""
    A_se: float
    """Standard error of A (from the least-squares covariance)."""
    A_ci95: tuple[float, float]
    """95 % confidence interval of A (Student t with n − p degrees of freedom)."""
    C_se: float | None
    """Standard error of C, or None when C was fixed."""
    C_ci95: tuple[float, float] | None
    """95 % confidence interval of C, or None when C was fixed."""
    n: int
    """Matchups used by the fit."""
    n_excluded: int
    """Matchups left out (NaN, ρw <= 0 or outside the valid range, turbidity <= 0)."""
    weighting: str
    """``"relative"`` or ``"absolute"`` least squares."""
    metrics: dict[str, float] = field(compare=False)
    """:func:`metrics` of the fitted model against the in-situ values."""
    B: float = 0.0
    """Additive offset (FNU), held fixed during the fit."""

    @property
    def fit_C(self) -> bool:  # noqa: N802
        """Whether C was fitted."""
        return self.C_se is not None

    @property
    def coefficients(self) -> dict[str, float]:
        """Keyword arguments for :func:`recipes.water_quality.nechad`."""
        return {"A": self.A, "C": self.C, "B": self.B}

    def apply(self, rho_w: Any) -> Any:
        """Turbidity (FNU) of ``rho_w`` with the fitted coefficients (see ``nechad``)."""
        return nechad(rho_w, **self.coefficients)

    def __repr__(self) -> str:
        lines = [
            f"NechadCalibration  n={self.n} ({self.n_excluded} excluded), "
            f"weighting={self.weighting!r}",
            f"  A = {self.A:.6g} ± {self.A_se:.3g} FNU   95% CI "
            f"[{self.A_ci95[0]:.6g}, {self.A_ci95[1]:.6g}]",
        ]
        if self.C_se is not None and self.C_ci95 is not None:
            lines.append(
                f"  C = {self.C:.5g} ± {self.C_se:.3g}   95% CI "
                f"[{self.C_ci95[0]:.5g}, {self.C_ci95[1]:.5g}]"
            )
        else:
            lines.append(f"  C = {self.C:.5g} (fixed)")
        lines.append(f"  B = {self.B:g} (fixed)")
        lines.append(_residual_summary(self.metrics))
        return "\n".join(lines)


@dataclass(frozen=True, repr=False)
class NdciCalibration:
    """Result of :func:`recalibrate_ndci`: chlorophyll-a polynomial of NDCI fitted on matchups."""

    a: tuple[float, ...]
    """Coefficients in increasing degree: Chl-a = a[0] + a[1] NDCI + a[2] NDCI² ..."""
    a_se: tuple[float, ...]
    """Standard errors of the coefficients."""
    a_ci95: tuple[tuple[float, float], ...]
    """95 % confidence intervals of the coefficients (Student t, n − p degrees of freedom)."""
    covariance: tuple[tuple[float, ...], ...]
    """Covariance matrix of the coefficients, s² (VᵀV)⁻¹ with s² = RSS / (n − p)."""
    ndci_range: tuple[float, float]
    """Smallest and largest NDCI of the calibration data; :meth:`apply` refuses to extrapolate."""
    n: int
    """Matchups used by the fit."""
    n_excluded: int
    """Matchups left out (NaN, |NDCI| > 1, chlorophyll-a <= 0)."""
    metrics: dict[str, float] = field(compare=False)
    """:func:`metrics` of the fitted polynomial against the in-situ values."""

    @property
    def degree(self) -> int:
        """Degree of the polynomial."""
        return len(self.a) - 1

    @property
    def coefficients(self) -> dict[str, float]:
        """``{"a0": ..., "a1": ..., ...}``; for degree 2, keyword arguments of chlorophyll_a_ndci."""
        return {f"a{i}": value for i, value in enumerate(self.a)}

    def apply(self, ndci: Any) -> Any:
        """Chl-a (µg/L) of ``ndci``; NaN outside :attr:`ndci_range` or where it is <= 0."""
        coefficients = np.asarray(self.a)
        low, high = self.ndci_range

        def kernel(x: Any) -> Any:
            value = sum(c * x**i for i, c in enumerate(coefficients))
            return np.where((x >= low) & (x <= high) & (value > 0), value, np.nan)

        attrs = {
            "units": "ug L-1",
            "long_name": "chlorophyll-a concentration (NDCI, regional calibration)",
            "coefficients": ", ".join(f"{k}={v:.6g}" for k, v in self.coefficients.items()),
            "references": "Mishra, S. and Mishra, D. R. (2012), doi:10.1016/j.rse.2011.10.016; "
            "coefficients refitted by recipes.validation.recalibrate_ndci",
        }
        return apply_kernel(kernel, ndci, name="chlorophyll_a", attrs=attrs)

    def __repr__(self) -> str:
        lines = [
            f"NdciCalibration  degree={self.degree}, n={self.n} ({self.n_excluded} excluded), "
            f"NDCI in [{self.ndci_range[0]:.3g}, {self.ndci_range[1]:.3g}]"
        ]
        for i, (value, se, ci) in enumerate(zip(self.a, self.a_se, self.a_ci95, strict=True)):
            lines.append(f"  a{i} = {value:.6g} ± {se:.3g}   95% CI [{ci[0]:.6g}, {ci[1]:.6g}]")
        lines.append(_residual_summary(self.metrics))
        return "\n".join(lines)


def _exclusion_warning(excluded: int, total: int, reasons: str) -> None:
    if excluded:
        warnings.warn(
            f"{excluded} of {total} matchup(s) left out of the fit ({reasons})",
            ValidationWarning,
            stacklevel=3,
        )


def _nechad_model(rho: np.ndarray, a: float, c: float, b: float) -> np.ndarray:
    return a * rho / (1 - rho / c) + b


def recalibrate_nechad(
    rho_w: Any,
    turbidity_in_situ: Any,
    C: float = 0.1728,  # noqa: N803
    fit_C: bool = False,  # noqa: N803
    *,
    B: float = 0.0,  # noqa: N803
    weighting: Literal["relative", "absolute"] = "relative",
) -> NechadCalibration:
    """Fit the Nechad coefficient A (and optionally C) on regional matchups.

    Model: ``T = A ρw / (1 - ρw / C) + B``, fitted by non-linear least squares
    (:func:`scipy.optimize.curve_fit`, Levenberg-Marquardt, or trust-region reflective when C
    is fitted under bounds).

    Parameters
    ----------
    rho_w, turbidity_in_situ
        Paired satellite ρw (665 nm) and in-situ turbidity (FNU): arrays, lists or Series.
    C
        Saturation reflectance: held fixed (default, the published 0.1728) or the starting
        value when ``fit_C``.
    fit_C
        Fit C too. C is then bounded below by twice the largest ρw, so that every calibration
        point stays inside the model's valid range (ρw < 0.5 C); a warning says when the bound
        is reached (the data then do not constrain C: keep it fixed).
    B
        Additive offset, held fixed (default 0, as :func:`recipes.water_quality.nechad`).
    weighting
        ``"relative"`` (default) minimises Σ((T_model − T)/T)²: turbidity errors are roughly
        multiplicative and matchups span orders of magnitude, so an absolute fit would be
        driven by the few most turbid points. ``"absolute"`` minimises Σ(T_model − T)².

    Returns
    -------
    NechadCalibration
        Coefficients, standard errors (square roots of the diagonal of the least-squares
        covariance, scaled by the residual variance), 95 % confidence intervals, counts and
        :func:`metrics` of the fitted model; ``.apply(rho_w)`` and ``.coefficients`` plug it
        back into the water-quality functions.

    Raises
    ------
    RecalibrationError
        Fewer than 3 usable matchups (4 with ``fit_C``), fewer than 3 distinct ρw with
        ``fit_C``, or a fit that does not converge or whose covariance is undefined.

    References
    ----------
    Nechad, B., Ruddick, K. G. and Park, Y. (2010). Calibration and validation of a generic
    multisensor algorithm for mapping of total suspended matter in turbid waters. Remote
    Sensing of Environment 114(4), 854-866. doi:10.1016/j.rse.2009.11.022
    """
    if weighting not in ("relative", "absolute"):
        raise ConfigurationError(f"weighting must be 'relative' or 'absolute', got {weighting!r}")
    c0, b = float(C), float(B)
    if not (math.isfinite(c0) and c0 > 0 and math.isfinite(b)):
        raise ConfigurationError(f"C must be a positive number and B finite, got C={C}, B={B}")
    rho, turb, removed = paired_arrays(rho_w, turbidity_in_situ, ("rho_w", "turbidity_in_situ"))
    total = rho.size + removed
    keep = (rho > 0) & (turb > 0)
    if not fit_C:
        keep &= rho < 0.5 * c0
    rho, turb = rho[keep], turb[keep]
    n_params = 2 if fit_C else 1
    minimum = max(3, n_params + 2)
    if rho.size < minimum:
        raise RecalibrationError(
            f"only {rho.size} usable matchup(s) of {total} (NaN, ρw <= 0, turbidity <= 0"
            f"{'' if fit_C else ' or ρw >= 0.5 C'} are left out); fitting "
            f"{'A and C' if fit_C else 'A'} needs at least {minimum}"
        )
    if fit_C and np.unique(rho).size < 3:
        raise RecalibrationError(
            "fit_C=True needs at least 3 distinct ρw values to separate A from C; "
            "collect matchups over a wider turbidity range or keep C fixed (fit_C=False)"
        )
    _exclusion_warning(total - rho.size, total, "NaN, ρw <= 0, turbidity <= 0 or ρw >= 0.5 C")
    sigma = turb if weighting == "relative" else None
    x = rho / (1 - rho / c0)
    a_start = float(np.dot(x, turb - b) / np.dot(x, x))
    try:
        if fit_C:
            c_low = 2 * float(rho.max())
            p0 = [a_start, max(c0, 1.05 * c_low)]
            popt, pcov = optimize.curve_fit(
                lambda r, a, c: _nechad_model(r, a, c, b),
                rho,
                turb,
                p0=p0,
                sigma=sigma,
                bounds=([0.0, c_low], [np.inf, np.inf]),
                xtol=1e-14,
                ftol=1e-14,
                gtol=1e-14,
            )
        else:
            popt, pcov = optimize.curve_fit(
                lambda r, a: _nechad_model(r, a, c0, b), rho, turb, p0=[a_start], sigma=sigma
            )
    except (RuntimeError, ValueError) as exc:
        raise RecalibrationError(f"the Nechad fit did not converge: {exc}") from exc
    se = np.sqrt(np.diag(pcov))
    if not np.all(np.isfinite(se)):
        raise RecalibrationError(
            "the Nechad fit is degenerate (undefined covariance): the matchups do not constrain "
            "the coefficients; add matchups over a wider turbidity range or keep C fixed"
        )
    dof = rho.size - n_params
    a_fit = float(popt[0])
    c_fit = float(popt[1]) if fit_C else c0
    if fit_C and math.isclose(c_fit, 2 * float(rho.max()), rel_tol=1e-6):
        warnings.warn(
            f"C reached its lower bound 2 max(ρw) = {c_fit:.4g}: the matchups do not constrain "
            "C; keep it fixed (fit_C=False)",
            ValidationWarning,
            stacklevel=2,
        )
    model = _nechad_model(rho, a_fit, c_fit, b)
    return NechadCalibration(
        A=a_fit,
        C=c_fit,
        A_se=float(se[0]),
        A_ci95=_ci95(a_fit, float(se[0]), dof),
        C_se=float(se[1]) if fit_C else None,
        C_ci95=_ci95(c_fit, float(se[1]), dof) if fit_C else None,
        n=int(rho.size),
        n_excluded=int(total - rho.size),
        weighting=weighting,
        metrics=metrics(model, turb),
        B=b,
    )


def recalibrate_ndci(ndci: Any, chl_in_situ: Any, degree: int = 2) -> NdciCalibration:
    """Refit the chlorophyll-a polynomial of NDCI on regional matchups.

    Ordinary least squares of in-situ Chl-a (µg/L) on the powers of NDCI, the form of Mishra &
    Mishra (2012): ``Chl-a = a0 + a1 NDCI + ... + a_d NDCI^d``.

    Parameters
    ----------
    ndci, chl_in_situ
        Paired satellite NDCI and in-situ chlorophyll-a (µg/L): arrays, lists or Series.
    degree
        Polynomial degree (2, the published form, by default).

    Returns
    -------
    NdciCalibration
        Coefficients with standard errors and 95 % confidence intervals from the covariance
        ``s² (VᵀV)⁻¹`` (V the Vandermonde matrix, s² = RSS / (n − p)), the calibration NDCI
        range, counts and :func:`metrics` of the fit. For degree 2, ``.coefficients`` are
        keyword arguments of :func:`recipes.water_quality.chlorophyll_a_ndci`.

    Raises
    ------
    RecalibrationError
        Fewer than ``degree + 2`` usable matchups (and at least 3), or fewer than ``degree + 1``
        distinct NDCI values.

    References
    ----------
    Mishra, S. and Mishra, D. R. (2012). Normalized difference chlorophyll index: a novel model
    for remote estimation of chlorophyll-a concentration in turbid productive waters. Remote
    Sensing of Environment 117, 394-406. doi:10.1016/j.rse.2011.10.016
    """
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ConfigurationError(f"degree must be an integer >= 1, got {degree!r}")
    p = int(degree) + 1
    x, y, removed = paired_arrays(ndci, chl_in_situ, ("ndci", "chl_in_situ"))
    total = x.size + removed
    keep = (np.abs(x) <= 1) & (y > 0)
    x, y = x[keep], y[keep]
    minimum = max(3, p + 1)
    if x.size < minimum:
        raise RecalibrationError(
            f"only {x.size} usable matchup(s) of {total} (NaN, |NDCI| > 1 and Chl-a <= 0 are "
            f"left out); a degree-{degree} polynomial needs at least {minimum}"
        )
    if np.unique(x).size < p:
        raise RecalibrationError(
            f"a degree-{degree} polynomial needs at least {p} distinct NDCI values, got "
            f"{np.unique(x).size}; collect matchups over a wider range or lower the degree"
        )
    _exclusion_warning(total - x.size, total, "NaN, |NDCI| > 1 or Chl-a <= 0")
    vander = np.vander(x, p, increasing=True)
    coef, _, rank, _ = np.linalg.lstsq(vander, y, rcond=None)
    if rank < p:
        raise RecalibrationError("the NDCI design matrix is rank-deficient; lower the degree")
    residuals = y - vander @ coef
    s2 = float(np.dot(residuals, residuals)) / (x.size - p)
    cov = s2 * np.linalg.inv(vander.T @ vander)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    dof = x.size - p
    return NdciCalibration(
        a=tuple(float(v) for v in coef),
        a_se=tuple(float(v) for v in se),
        a_ci95=tuple(_ci95(float(v), float(s), dof) for v, s in zip(coef, se, strict=True)),
        covariance=tuple(tuple(float(v) for v in row) for row in cov),
        ndci_range=(float(x.min()), float(x.max())),
        n=int(x.size),
        n_excluded=int(total - x.size),
        metrics=metrics(vander @ coef, y),
    )
