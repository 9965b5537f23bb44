"""Water-quality algorithms: Nechad turbidity and SPM, Dogliotti turbidity, NDCI chlorophyll-a.

Each public function validates its coefficients, then runs a NumPy kernel through
:func:`recipes.water_quality._dispatch.apply_kernel` (numbers, arrays, Series and DataArrays alike).
Kernels never divide by zero: invalid pixels get a harmless denominator and are replaced by NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lab import ConfigurationError
from recipes.water_quality._dispatch import apply_kernel

__all__ = [
    "REFERENCES",
    "chlorophyll_a_ndci",
    "nechad",
    "nechad_inverse",
    "spm_nechad2010",
    "turbidity_dogliotti2015",
]

REFERENCES: dict[str, str] = {
    "nechad2009": "Nechad, B., Ruddick, K. G. and Neukermans, G. (2009), Proc. SPIE 7473, "
    "74730H, doi:10.1117/12.830700",
    "nechad2010": "Nechad, B., Ruddick, K. G. and Park, Y. (2010), Remote Sens. Environ. "
    "114(4), 854-866, doi:10.1016/j.rse.2009.11.022",
    "dogliotti2015": "Dogliotti, A. I., Ruddick, K. G., Nechad, B., Doxaran, D. and Knaeps, E. "
    "(2015), Remote Sens. Environ. 156, 157-168, doi:10.1016/j.rse.2014.09.020",
    "ndci": "Mishra, S. and Mishra, D. R. (2012), Remote Sens. Environ. 117, 394-406, "
    "doi:10.1016/j.rse.2011.10.016",
}


def _positive(name: str, value: float, function: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"{function}: coefficient {name} must be a positive number, got {value}"
        )
    return value


def _finite(name: str, value: float, function: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ConfigurationError(f"{function}: coefficient {name} must be finite, got {value}")
    return value


def nechad_kernel(rho: Any, A: float, C: float, B: float) -> Any:  # noqa: N803
    """Return ``A rho / (1 - rho / C) + B`` where ``0 < rho < C / 2`` and the result is >= 0, else NaN."""
    valid = (rho > 0) & (rho < 0.5 * C)
    value = A * rho / np.where(valid, 1 - rho / C, 1.0) + B
    return np.where(valid & (value >= 0), value, np.nan)


def _nechad_inverse_kernel(value: Any, A: float, C: float, B: float) -> Any:  # noqa: N803
    signal = value - B
    valid = (signal > 0) & (signal < A * C)
    rho = signal / np.where(valid, A + signal / C, 1.0)
    return np.where(valid, rho, np.nan)


def _coefficients_attr(**coefficients: float) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in coefficients.items())


def nechad(
    rho_w: Any,
    A: float = 282.95,  # noqa: N803
    C: float = 0.1728,  # noqa: N803
    B: float = 0.0,  # noqa: N803
    *,
    water: Any = None,
) -> Any:
    """Turbidity (FNU) from red water-leaving reflectance, Nechad et al. (2009).

    ``T = A ρw / (1 - ρw / C) + B`` with the 665 nm calibration (``A = 282.95`` FNU,
    ``C = 0.1728``), i.e. Sentinel-2 B04 (``red``).

    Parameters
    ----------
    rho_w
        Water-leaving reflectance ρw = π Rrs (dimensionless) at 665 nm: a number, a sequence,
        a NumPy or Dask array, a pandas Series or an xarray DataArray. Sentinel-2 L2A surface
        reflectance over water is used as ρw: this is exact on the lab's sample (no atmosphere)
        and an approximation on real scenes (Sen2Cor is not a water-specific correction).
    A
        Multiplicative coefficient (FNU).
    C
        Saturation reflectance: T grows without bound as ρw approaches C.
    B
        Additive offset (FNU), default 0. Nechad et al. fitted ``A ρw / (1 - ρw/C) + B`` and some
        published tables list B (0.23 FNU at 665 nm); the 2016 calibration tables and ACOLITE use
        A and C only, and so does the lab's sample federation, hence the default. Pass
        ``B=0.23`` to reproduce the three-coefficient form.
    water
        Optional boolean water mask (same kind and shape as the reflectance, or broadcastable):
        the result is NaN where it is False.

    Returns
    -------
    float, numpy.ndarray, dask.array.Array, pandas.Series or xarray.DataArray
        Turbidity in FNU, of the kind of ``rho_w`` (DataArrays carry ``units``, ``long_name``,
        ``references`` and ``coefficients`` attributes and stay lazy). NaN outside the valid
        range: ``ρw <= 0`` (no signal, or over-corrected atmosphere), ``ρw >= 0.5 C``
        (near saturation the slope ``A / (1 - ρw/C)²`` is four times its clear-water value or
        more, so a small reflectance error becomes a large turbidity error), a negative result,
        or a NaN input.

    See Also
    --------
    nechad_inverse : ρw from turbidity (the same model solved for ρw).
    recipes.validation.recalibrate_nechad : regional A (and C) from matchups.

    References
    ----------
    Nechad, B., Ruddick, K. G. and Neukermans, G. (2009). Calibration and validation of a
    generic multisensor algorithm for mapping of turbidity in coastal waters. Proc. SPIE 7473,
    Remote Sensing of the Ocean, Sea Ice, and Large Water Regions 2009, 74730H.
    doi:10.1117/12.830700

    Examples
    --------
    >>> round(nechad(0.05), 3)  # 282.95 * 0.05 / (1 - 0.05 / 0.1728)
    19.908
    """
    return _nechad_model(
        rho_w,
        A,
        C,
        B,
        water,
        caller="nechad",
        name="turbidity",
        units="FNU",
        long_name="turbidity (Nechad et al. 2009, 665 nm)",
        reference="nechad2009",
    )


def nechad_inverse(value: Any, A: float = 282.95, C: float = 0.1728, B: float = 0.0) -> Any:  # noqa: N803
    """Water-leaving reflectance from a Nechad-model value: ``ρw = V' / (A + V' / C)``, V' = V - B.

    The exact inverse of :func:`nechad` (and of :func:`spm_nechad2010` with its coefficients):
    useful to simulate reflectance from known turbidity, or to check a calibration.

    Parameters
    ----------
    value
        Turbidity (FNU) or SPM (g/m³), any array kind accepted by :func:`nechad`.
    A, C, B
        The coefficients of the forward model.

    Returns
    -------
    float, numpy.ndarray, dask.array.Array, pandas.Series or xarray.DataArray
        ρw (dimensionless); NaN where ``V - B <= 0`` or ``V - B >= A C``, the images of the
        forward model's invalid ρw (``ρw <= 0`` and ``ρw >= 0.5 C``), so that a round trip
        never leaves the valid range.

    References
    ----------
    Nechad, B., Ruddick, K. G. and Neukermans, G. (2009). doi:10.1117/12.830700
    """
    a = _positive("A", A, "nechad_inverse")
    c = _positive("C", C, "nechad_inverse")
    b = _finite("B", B, "nechad_inverse")
    attrs = {
        "units": "1",
        "long_name": "water-leaving reflectance from the inverted Nechad model",
        "references": REFERENCES["nechad2009"],
        "coefficients": _coefficients_attr(A=a, C=c, B=b),
    }
    return apply_kernel(
        lambda v: _nechad_inverse_kernel(v, a, c, b), value, name="rho_w", attrs=attrs
    )


def spm_nechad2010(
    rho_w: Any,
    A: float = 355.85,  # noqa: N803
    C: float = 0.1728,  # noqa: N803
    B: float = 0.0,  # noqa: N803
    *,
    water: Any = None,
) -> Any:
    """Suspended particulate matter (g/m³) from red reflectance, Nechad et al. (2010).

    ``SPM = A ρw / (1 - ρw / C) + B`` with the 665 nm calibration (``A = 355.85`` g/m³,
    ``C = 0.1728``). Same valid range as :func:`nechad`.

    Parameters
    ----------
    rho_w
        Water-leaving reflectance at 665 nm (Sentinel-2 ``red``), any array kind.
    A, C
        Published 665 nm coefficients.
    B
        Additive offset (g/m³), default 0: the published table lists B = 1.74 g/m³ at 665 nm,
        while later uses (Nechad 2016 tables, ACOLITE) drop it; pass ``B=1.74`` to keep it.
    water
        Optional boolean water mask (same kind and shape as the reflectance, or broadcastable):
        the result is NaN where it is False.

    Returns
    -------
    float, numpy.ndarray, dask.array.Array, pandas.Series or xarray.DataArray
        SPM in g/m³ (``units = "g m-3"``); NaN where ``ρw <= 0``, ``ρw >= 0.5 C`` or the result
        is negative.

    References
    ----------
    Nechad, B., Ruddick, K. G. and Park, Y. (2010). Calibration and validation of a generic
    multisensor algorithm for mapping of total suspended matter in turbid waters. Remote
    Sensing of Environment 114(4), 854-866. doi:10.1016/j.rse.2009.11.022
    """
    return _nechad_model(
        rho_w,
        A,
        C,
        B,
        water,
        caller="spm_nechad2010",
        name="spm",
        units="g m-3",
        long_name="suspended particulate matter (Nechad et al. 2010, 665 nm)",
        reference="nechad2010",
    )


def _nechad_model(
    rho_w: Any,
    coef_a: float,
    coef_c: float,
    coef_b: float,
    water: Any,
    *,
    caller: str,
    name: str,
    units: str,
    long_name: str,
    reference: str,
) -> Any:
    """The Nechad model T = A ρw / (1 - ρw / C) + B, shared by turbidity and SPM."""
    a = _positive("A", coef_a, caller)
    c = _positive("C", coef_c, caller)
    b = _finite("B", coef_b, caller)
    attrs = {
        "units": units,
        "long_name": long_name,
        "references": REFERENCES[reference],
        "coefficients": _coefficients_attr(A=a, C=c, B=b),
        "valid_range_note": "NaN where rho_w <= 0 or rho_w >= 0.5 C",
    }
    return apply_kernel(
        lambda r: nechad_kernel(r, a, c, b), rho_w, name=name, attrs=attrs, water=water
    )


def turbidity_dogliotti2015(
    rho_red: Any,
    rho_nir: Any,
    *,
    A_red: float = 228.1,  # noqa: N803
    C_red: float = 0.1641,  # noqa: N803
    A_nir: float = 3078.9,  # noqa: N803
    C_nir: float = 0.2112,  # noqa: N803
    lower: float = 0.05,
    upper: float = 0.07,
    water: Any = None,
) -> Any:
    """Turbidity (FNU) of Dogliotti et al. (2015): red in clear, NIR in turbid, blended between.

    Both bands use the Nechad form ``T = A ρw / (1 - ρw / C)``: the red band (645 nm,
    ``A = 228.1``, ``C = 0.1641``) is sensitive at low turbidity, the NIR band (859 nm,
    ``A = 3078.9``, ``C = 0.2112``) keeps its sensitivity where red saturates. Switching on the
    red reflectance:

    - ``ρw(red) <= 0.05``: ``T = T_red``;
    - ``ρw(red) >= 0.07``: ``T = T_nir``;
    - in between, a linear blend ``T = (1 - w) T_red + w T_nir`` with
      ``w = (ρw(red) - 0.05) / (0.07 - 0.05)`` (Dogliotti et al. 2015), so that T is
      continuous at both ends: ``w = 0`` at 0.05 and ``w = 1`` at 0.07.

    Parameters
    ----------
    rho_red, rho_nir
        Water-leaving reflectance in the red and NIR bands, any array kind. The published
        coefficients are for 645 and 859 nm (MODIS); on Sentinel-2 the nearest bands are B04
        (``red``, 665 nm) and B8A (``nir08``, 865 nm), an approximation that a regional
        recalibration removes.
    A_red, C_red, A_nir, C_nir
        Nechad-form coefficients of each band.
    lower, upper
        ρw(red) limits of the blending interval.
    water
        Optional boolean water mask (same kind and shape as the reflectance, or broadcastable):
        the result is NaN where it is False.

    Returns
    -------
    float, numpy.ndarray, dask.array.Array, pandas.Series or xarray.DataArray
        Turbidity in FNU; NaN where the band(s) used fall outside their Nechad valid range
        (``ρw <= 0`` or ``ρw >= 0.5 C``), including either band inside the blending interval.

    References
    ----------
    Dogliotti, A. I., Ruddick, K. G., Nechad, B., Doxaran, D. and Knaeps, E. (2015). A single
    algorithm to retrieve turbidity from remotely-sensed data in all coastal and estuarine
    waters. Remote Sensing of Environment 156, 157-168. doi:10.1016/j.rse.2014.09.020
    """
    name = "turbidity_dogliotti2015"
    a_red, c_red = _positive("A_red", A_red, name), _positive("C_red", C_red, name)
    a_nir, c_nir = _positive("A_nir", A_nir, name), _positive("C_nir", C_nir, name)
    lower, upper = float(lower), float(upper)
    if not 0 < lower < upper < 1:
        raise ConfigurationError(
            f"{name}: need 0 < lower < upper < 1 for the blending interval, got {lower}, {upper}"
        )

    def kernel(red: Any, nir: Any) -> Any:
        t_red = nechad_kernel(red, a_red, c_red, 0.0)
        t_nir = nechad_kernel(nir, a_nir, c_nir, 0.0)
        w = (red - lower) / (upper - lower)
        blend = (1 - w) * t_red + w * t_nir
        return np.where(red <= lower, t_red, np.where(red >= upper, t_nir, blend))

    attrs = {
        "units": "FNU",
        "long_name": "turbidity (Dogliotti et al. 2015, red/NIR switching)",
        "references": REFERENCES["dogliotti2015"],
        "coefficients": _coefficients_attr(
            A_red=a_red, C_red=c_red, A_nir=a_nir, C_nir=c_nir, lower=lower, upper=upper
        ),
    }
    return apply_kernel(kernel, rho_red, rho_nir, name="turbidity", attrs=attrs, water=water)


def _ndci_bounds(
    a1: float, a2: float, ndci_min: float | None, ndci_max: float
) -> tuple[float, float]:
    """Default NDCI interval: up to the parabola's vertex, so that chl-a is monotonic."""
    low, high = -1.0, float(ndci_max)
    if a2 > 0:
        low = -a1 / (2 * a2)
    elif a2 < 0:
        high = min(high, -a1 / (2 * a2))
    if ndci_min is not None:
        low = float(ndci_min)
    return low, high


def chlorophyll_a_ndci(
    ndci: Any,
    a0: float = 14.039,
    a1: float = 86.115,
    a2: float = 194.325,
    *,
    ndci_min: float | None = None,
    ndci_max: float = 0.5,
    water: Any = None,
) -> Any:
    """Chlorophyll-a (µg/L) from NDCI with the quadratic of Mishra & Mishra (2012).

    ``Chl-a = a0 + a1 NDCI + a2 NDCI²``. The published coefficients were fitted on one set of
    turbid, productive waters with MERIS bands; a regional recalibration (:func:`recipes.validation.recalibrate_ndci`) is expected before any
    quantitative use.

    Parameters
    ----------
    ndci
        NDCI values (:func:`ndci`), any array kind.
    a0, a1, a2
        Polynomial coefficients (µg/L).
    ndci_min
        Lowest NDCI accepted. Default: the parabola's vertex ``-a1 / (2 a2)`` (−0.2216 for the
        published coefficients, where Chl-a = 4.50 µg/L): below it the quadratic turns back up,
        so one Chl-a would map to two NDCI values and low NDCI would give *higher* Chl-a.
    ndci_max
        Highest NDCI accepted (default 0.5, where the published quadratic already gives
        105.7 µg/L): beyond it the quadratic extrapolates far outside the range it was fitted
        on. When ``a2 < 0`` the vertex caps it instead.
    water
        Optional boolean water mask (same kind and shape as the NDCI, or broadcastable):
        the result is NaN where it is False.

    Returns
    -------
    float, numpy.ndarray, dask.array.Array, pandas.Series or xarray.DataArray
        Chl-a in µg/L (``units = "ug L-1"``); NaN outside ``[ndci_min, ndci_max]``, where the
        polynomial is not positive, or where NDCI is NaN.

    References
    ----------
    Mishra, S. and Mishra, D. R. (2012). Normalized difference chlorophyll index: a novel model
    for remote estimation of chlorophyll-a concentration in turbid productive waters. Remote
    Sensing of Environment 117, 394-406. doi:10.1016/j.rse.2011.10.016
    """
    name = "chlorophyll_a_ndci"
    a0, a1, a2 = _finite("a0", a0, name), _finite("a1", a1, name), _finite("a2", a2, name)
    low, high = _ndci_bounds(a1, a2, ndci_min, _finite("ndci_max", ndci_max, name))
    if not low < high:
        raise ConfigurationError(
            f"{name}: empty NDCI interval [{low:g}, {high:g}]; check ndci_min / ndci_max"
        )

    def kernel(x: Any) -> Any:
        value = a0 + a1 * x + a2 * x * x
        return np.where((x >= low) & (x <= high) & (value > 0), value, np.nan)

    attrs = {
        "units": "ug L-1",
        "long_name": "chlorophyll-a concentration (NDCI, Mishra & Mishra 2012)",
        "references": REFERENCES["ndci"],
        "coefficients": _coefficients_attr(a0=a0, a1=a1, a2=a2),
        "ndci_interval": [low, high],
        "valid_range_note": "NaN where NDCI is outside ndci_interval or chl-a <= 0",
    }
    return apply_kernel(kernel, ndci, name="chlorophyll_a", attrs=attrs, water=water)
