"""Water masks and normalised-difference indices (MNDWI, NDWI, NDTI turbidity, NDCI)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from datacubes import BandNotFoundError
from lab import ConfigurationError
from recipes.water_quality._dispatch import apply_kernel

__all__ = [
    "DEFAULT_THRESHOLDS",
    "INVALID_SCL_CLASSES",
    "REFERENCES",
    "SCL_WATER",
    "WATER_FLAGS",
    "mndwi",
    "ndci",
    "ndti_turbidity",
    "ndwi",
    "require_bands",
    "scl_water",
    "water_mask",
]

#: Scene-classification class of water in Sentinel-2 L2A (Sen2Cor).
SCL_WATER = 6

#: SCL classes never counted as water by the index methods: no data (0), saturated or
#: defective (1), cloud shadow (3), cloud medium (8) and high (9) probability, thin cirrus (10)
#: and snow or ice (11, which has a high MNDWI, Xu 2006).
INVALID_SCL_CLASSES: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)

#: The flags of ``datacubes.load(..., flags=WATER_FLAGS)`` that clear water is read from on
#: any registered product (variables ``flag_water``, ``flag_clouds``, ``flag_nodata``): the
#: ``"flags"`` water mask and the matchups' surface states.
WATER_FLAGS: tuple[str, ...] = ("water", "clouds", "nodata")

#: Default thresholds of the index methods: index > threshold is water.
DEFAULT_THRESHOLDS: dict[str, float] = {"mndwi": 0.0, "ndwi": 0.0}

#: Short references written into the ``references`` attribute of every output.
REFERENCES: dict[str, str] = {
    "scl": "ESA Sentinel-2 Level-2A scene classification (Sen2Cor), class 6 = water",
    "ndwi": (
        "McFeeters, S. K. (1996), Int. J. Remote Sens. 17(7), 1425-1432, "
        "doi:10.1080/01431169608948714"
    ),
    "mndwi": "Xu, H. (2006), Int. J. Remote Sens. 27(14), 3025-3033, doi:10.1080/01431160600589179",
    "ndti": "Lacaux, J. P. et al. (2007), Remote Sens. Environ. 106(1), 66-74, "
    "doi:10.1016/j.rse.2006.07.012",
    "ndci": "Mishra, S. and Mishra, D. R. (2012), Remote Sens. Environ. 117, 394-406, "
    "doi:10.1016/j.rse.2011.10.016",
}


def _normalised_difference(a: Any, b: Any) -> Any:
    total = a + b
    index = (a - b) / np.where(total != 0, total, np.nan)
    # |index| > 1 only happens when one reflectance is negative (over-corrected atmosphere).
    return np.where(np.abs(index) <= 1, index, np.nan)


def _index_attrs(long_name: str, formula: str, reference: str) -> dict[str, str]:
    return {
        "units": "1",
        "long_name": long_name,
        "formula": formula,
        "references": reference,
        "valid_range_note": "NaN where a+b == 0 or where |index| > 1 (negative reflectance)",
    }


def ndwi(green: Any, nir: Any) -> Any:
    """Normalised Difference Water Index of McFeeters (1996).

    ``NDWI = (green - nir) / (green + nir)``; water is positive (it reflects more green than
    near infrared), vegetation and soil are negative or near zero.

    Parameters
    ----------
    green, nir
        Reflectance of Sentinel-2 B03 (560 nm) and B08 (842 nm): numbers, arrays, pandas Series
        or xarray DataArrays.

    Returns
    -------
    float, numpy.ndarray, pandas.Series or xarray.DataArray
        The index, of the same kind as the inputs; NaN where ``green + nir == 0`` or where the
        index falls outside [-1, 1] (which only a negative reflectance can cause).

    References
    ----------
    McFeeters, S. K. (1996). The use of the Normalized Difference Water Index (NDWI) in the
    delineation of open water features. International Journal of Remote Sensing 17(7),
    1425-1432. doi:10.1080/01431169608948714
    """
    attrs = _index_attrs(
        "normalised difference water index", "(green-nir)/(green+nir)", REFERENCES["ndwi"]
    )
    return apply_kernel(_normalised_difference, green, nir, name="ndwi", attrs=attrs)


def mndwi(green: Any, swir16: Any) -> Any:
    """Compute the Modified Normalised Difference Water Index of Xu (2006).

    ``MNDWI = (green - swir16) / (green + swir16)``. Short-wave infrared is absorbed by water
    even when it is turbid, and built-up land reflects it strongly, so MNDWI separates water
    from built-up areas better than NDWI.

    Parameters
    ----------
    green, swir16
        Reflectance of Sentinel-2 B03 (560 nm) and B11 (1610 nm).

    Returns
    -------
    float, numpy.ndarray, pandas.Series or xarray.DataArray
        The index, of the same kind as the inputs (NaN as for :func:`ndwi`).

    References
    ----------
    Xu, H. (2006). Modification of normalised difference water index (NDWI) to enhance open
    water features in remotely sensed imagery. International Journal of Remote Sensing 27(14),
    3025-3033. doi:10.1080/01431160600589179
    """
    attrs = _index_attrs(
        "modified normalised difference water index",
        "(green-swir16)/(green+swir16)",
        REFERENCES["mndwi"],
    )
    return apply_kernel(_normalised_difference, green, swir16, name="mndwi", attrs=attrs)


def ndti_turbidity(red: Any, green: Any, *, water: Any = None) -> Any:
    """Normalised Difference *Turbidity* Index of Lacaux et al. (2007).

    ``NDTI = (red - green) / (red + green)``: suspended sediments raise red reflectance more
    than green, so the index grows with turbidity. It is a relative indicator without units;
    use :func:`nechad` for turbidity in FNU.

    The name says *turbidity* on purpose: in agronomy "NDTI" is the Normalised Difference
    *Tillage* Index, (swir16 - swir22) / (swir16 + swir22), and tool packages disagree on which
    one the bare name means.

    Parameters
    ----------
    red, green
        Reflectance of Sentinel-2 B04 (665 nm) and B03 (560 nm).
    water
        Optional boolean water mask: the index is NaN where it is False.

    Returns
    -------
    float, numpy.ndarray, pandas.Series or xarray.DataArray
        The index, of the same kind as the inputs (NaN as for :func:`ndwi`).

    References
    ----------
    Lacaux, J. P., Tourre, Y. M., Vignolles, C., Ndione, J. A. and Lafaye, M. (2007).
    Classification of ponds from high-spatial resolution remote sensing: application to Rift
    Valley Fever epidemics in Senegal. Remote Sensing of Environment 106(1), 66-74.
    doi:10.1016/j.rse.2006.07.012
    """
    attrs = _index_attrs(
        "normalised difference turbidity index", "(red-green)/(red+green)", REFERENCES["ndti"]
    )
    return apply_kernel(
        _normalised_difference, red, green, name="ndti_turbidity", attrs=attrs, water=water
    )


def ndci(rededge1: Any, red: Any, *, water: Any = None) -> Any:
    """Normalised Difference Chlorophyll Index of Mishra & Mishra (2012).

    ``NDCI = (rededge1 - red) / (rededge1 + red)``: chlorophyll-a absorbs near 665 nm while the
    reflectance peak near 705 nm grows with it. Turn it into µg/L with
    :func:`chlorophyll_a_ndci`.

    Parameters
    ----------
    rededge1, red
        Reflectance of Sentinel-2 B05 (705 nm) and B04 (665 nm).
    water
        Optional boolean water mask: the index is NaN where it is False.

    Returns
    -------
    float, numpy.ndarray, pandas.Series or xarray.DataArray
        The index, of the same kind as the inputs (NaN as for :func:`ndwi`).

    References
    ----------
    Mishra, S. and Mishra, D. R. (2012). Normalized difference chlorophyll index: a novel model
    for remote estimation of chlorophyll-a concentration in turbid productive waters. Remote
    Sensing of Environment 117, 394-406. doi:10.1016/j.rse.2011.10.016
    """
    attrs = _index_attrs(
        "normalised difference chlorophyll index",
        "(rededge1-red)/(rededge1+red)",
        REFERENCES["ndci"],
    )
    return apply_kernel(
        _normalised_difference, rededge1, red, name="ndci", attrs=attrs, water=water
    )


def scl_water(scl: Any) -> Any:
    """Water pixels of the Sentinel-2 L2A scene classification (SCL class 6).

    Parameters
    ----------
    scl
        SCL values (integers; NaN, if the loader turned nodata into NaN, is not water).

    Returns
    -------
    bool, numpy.ndarray, pandas.Series or xarray.DataArray
        True where ``scl == 6``.

    References
    ----------
    ESA, Sentinel-2 MSI Level-2A product (Sen2Cor scene classification): 0 no data,
    1 saturated or defective, 2 dark area, 3 cloud shadow, 4 vegetation, 5 bare soil, 6 water,
    7 unclassified, 8 and 9 cloud medium and high probability, 10 thin cirrus, 11 snow or ice.
    """
    attrs = {"long_name": "water (SCL class 6)", "references": REFERENCES["scl"]}
    return apply_kernel(lambda s: s == SCL_WATER, scl, name="water", attrs=attrs, to_float=False)


def require_bands(ds: xr.Dataset, names: Iterable[str], purpose: str) -> None:
    """Raise :class:`datacubes.BandNotFoundError` unless every band of ``names`` is in ``ds``."""
    if not isinstance(ds, xr.Dataset):
        raise ConfigurationError(
            f"{purpose} needs an xarray Dataset of bands (as returned by datacubes.load), "
            f"got {type(ds).__name__}"
        )
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        bands = [n for n in names if not n.startswith("flag_")]
        flags = [n.removeprefix("flag_") for n in names if n.startswith("flag_")]
        how = [f"bands=[{', '.join(map(repr, bands))}]"] if bands else []
        how += [f"flags=[{', '.join(map(repr, flags))}]"] if flags else []
        raise BandNotFoundError(
            f"{purpose} needs the band(s) {missing}, which the cube does not have; it has "
            f"{sorted(map(str, ds.data_vars))}. Load them with common names (for example "
            f"datacubes.load(items, {', '.join(how)}))"
        )


def water_mask(
    ds: xr.Dataset,
    method: Literal["scl", "flags", "mndwi", "ndwi"] = "scl",
    threshold: float | None = None,
    *,
    exclude_scl: Sequence[int] | None = INVALID_SCL_CLASSES,
) -> xr.DataArray:
    """Boolean water mask of a reflectance cube.

    Parameters
    ----------
    ds
        Cube with common band names (``green``, ``nir``, ``swir16``, ``scl``...).
    method
        ``"scl"``: SCL class 6 (needs ``scl``; the default, as the L2A classification already
        removes clouds and shadows). ``"flags"``: clear water of any registered product,
        ``flag_water`` and neither ``flag_clouds`` nor ``flag_nodata`` (load them with
        ``datacubes.load(..., flags=WATER_FLAGS)``: SCL 6 on Sen2Cor items, MG2 water bit
        without CLM clouds or EDG on THEIA MAJA ones). ``"mndwi"``: MNDWI > threshold (needs
        ``green`` and ``swir16``). ``"ndwi"``: NDWI > threshold (needs ``green`` and ``nir``).
    threshold
        Index value above which a pixel is water. Default 0 for both indices: Xu (2006) and
        McFeeters (1996) define water as the positive values of their index, since water
        reflects more green than near- or short-wave infrared while vegetation, soil and
        built-up land do the opposite. A scene-specific threshold (Otsu, or a value tuned on
        known water) often does better on mixed or turbid shores. Must be None for ``"scl"``
        and ``"flags"``.
    exclude_scl
        SCL classes never counted as water by the index methods, when the cube has ``scl``
        (default: no data, defective, cloud shadow, clouds, cirrus, snow). ``None`` to ignore SCL.

    Returns
    -------
    xarray.DataArray
        Boolean ``water``, lazy when the cube is; NaN index values are not water.

    Raises
    ------
    datacubes.BandNotFoundError
        The cube lacks a band the method needs.
    lab.ConfigurationError
        Unknown method, or a threshold given for ``"scl"``.

    References
    ----------
    McFeeters, S. K. (1996), doi:10.1080/01431169608948714.
    Xu, H. (2006), doi:10.1080/01431160600589179.
    """
    if method == "scl":
        if threshold is not None:
            raise ConfigurationError(
                "water_mask(method='scl') takes no threshold (SCL is a class); "
                "use method='mndwi' or 'ndwi' to threshold an index"
            )
        require_bands(ds, ["scl"], "water_mask(method='scl')")
        return scl_water(ds["scl"])
    if method == "flags":
        if threshold is not None:
            raise ConfigurationError(
                "water_mask(method='flags') takes no threshold (flags are booleans); "
                "use method='mndwi' or 'ndwi' to threshold an index"
            )
        require_bands(ds, [f"flag_{n}" for n in WATER_FLAGS], "water_mask(method='flags')")
        water = ds["flag_water"] & ~ds["flag_clouds"] & ~ds["flag_nodata"]
        water.name = "water"
        water.attrs = {
            "long_name": "water (water flag, no clouds, data)",
            "method": method,
            "flag_test": ds["flag_water"].attrs.get("flag_test", ""),
        }
        return water
    if method not in DEFAULT_THRESHOLDS:
        raise ConfigurationError(
            f"unknown water_mask method {method!r}; use one of 'scl', 'flags', 'mndwi', 'ndwi'"
        )
    threshold = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    if not -1.0 <= threshold < 1.0:
        raise ConfigurationError(f"threshold must be in [-1, 1) for {method}, got {threshold}")
    other = "swir16" if method == "mndwi" else "nir"
    require_bands(ds, ["green", other], f"water_mask(method={method!r})")
    index = mndwi(ds["green"], ds[other]) if method == "mndwi" else ndwi(ds["green"], ds[other])
    water = index > threshold
    if exclude_scl is not None and "scl" in ds.data_vars:
        water = water & ~ds["scl"].isin(list(exclude_scl))
    water.name = "water"
    water.attrs = {
        "long_name": f"water ({method.upper()} > {threshold:g})",
        "method": method,
        "threshold": threshold,
        "references": REFERENCES[method],
    }
    if exclude_scl is not None and "scl" in ds.data_vars:
        water.attrs["excluded_scl_classes"] = [int(c) for c in exclude_scl]
    return water
