"""Cube-level water quality: every product of a reflectance cube at once, masked to water."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import xarray as xr

from lab import ConfigurationError
from recipes.water_quality._algorithms import (
    chlorophyll_a_ndci,
    nechad,
    spm_nechad2010,
    turbidity_dogliotti2015,
)
from recipes.water_quality._indices import (
    INVALID_SCL_CLASSES,
    WATER_FLAGS,
    ndci,
    ndti_turbidity,
    require_bands,
    water_mask,
)

__all__ = ["OUTPUT_VARIABLES", "add_water_quality"]

#: Variables that :func:`add_water_quality` adds to the cube.
OUTPUT_VARIABLES = ("water", "ndti_turbidity", "ndci", "turbidity", "chlorophyll_a", "spm")

_TURBIDITY_BANDS = {"nechad2009": ["red"], "dogliotti2015": ["red", "nir08"]}
_WATER_BANDS = {
    "scl": ["scl"],
    "flags": [f"flag_{name}" for name in WATER_FLAGS],
    "mndwi": ["green", "swir16"],
    "ndwi": ["green", "nir"],
}


def _masked(value: xr.DataArray, water: xr.DataArray) -> xr.DataArray:
    out = value.where(water)
    out.attrs = dict(value.attrs)
    return out


def add_water_quality(
    ds: xr.Dataset,
    *,
    water: Literal["scl", "flags", "mndwi", "ndwi"] = "scl",
    threshold: float | None = None,
    exclude_scl: Sequence[int] | None = INVALID_SCL_CLASSES,
    turbidity: Literal["nechad2009", "dogliotti2015"] = "nechad2009",
    turbidity_coefficients: Mapping[str, float] | None = None,
    spm_coefficients: Mapping[str, float] | None = None,
    chlorophyll_coefficients: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Add water mask, indices, turbidity, chlorophyll-a and SPM to a reflectance cube.

    Everything stays lazy on a Dask-backed cube: nothing is read until you ``.compute()``,
    plot or write the result.

    Parameters
    ----------
    ds
        Reflectance cube with common band names (``datacubes.load``): ``green``, ``red``,
        ``rededge1`` always; ``scl`` (or the flags, or ``swir16`` / ``nir``) for the water
        mask; ``nir08`` for ``turbidity="dogliotti2015"``. Reflectances must already be scaled and offset
        (ρ = (DN + offset) / 10000).
    water
        Water-mask method of :func:`water_mask`: ``"scl"`` (SCL class 6), ``"flags"`` (the
        water flag of ``datacubes.load(flags=...)`` without clouds: any registered product),
        ``"mndwi"`` or ``"ndwi"``.
    threshold
        Index threshold for ``"mndwi"`` / ``"ndwi"`` (default 0, see :func:`water_mask`).
    exclude_scl
        SCL classes never counted as water by the index methods (see :func:`water_mask`).
    turbidity
        ``"nechad2009"`` (:func:`nechad` on ``red``) or ``"dogliotti2015"``
        (:func:`turbidity_dogliotti2015` on ``red`` and ``nir08``).
    turbidity_coefficients, spm_coefficients, chlorophyll_coefficients
        Keyword arguments passed to the turbidity algorithm, to :func:`spm_nechad2010` and to
        :func:`chlorophyll_a_ndci` (for example the ``coefficients`` of a
        :func:`recipes.validation.recalibrate_nechad` result); default: published values.

    Returns
    -------
    xarray.Dataset
        A new dataset: the input variables plus ``water`` (bool), ``ndti_turbidity``,
        ``ndci`` (dimensionless), ``turbidity`` (FNU), ``chlorophyll_a`` (µg/L) and ``spm``
        (g/m³). Every product is NaN outside water and outside its algorithm's valid range,
        and carries ``units``, ``long_name`` and ``references`` attributes.

    Raises
    ------
    datacubes.BandNotFoundError
        A band needed is missing; the message lists the bands the cube has.
    lab.ConfigurationError
        Unknown method, or the cube already has one of the output variables.

    References
    ----------
    See :func:`nechad`, :func:`turbidity_dogliotti2015`, :func:`spm_nechad2010`,
    :func:`chlorophyll_a_ndci`, :func:`ndti_turbidity`, :func:`ndci` and :func:`water_mask`.

    Examples
    --------
    >>> cube = datacubes.load(items, bands=["green", "red", "rededge1", "scl"])  # doctest: +SKIP
    >>> wq = add_water_quality(cube)  # doctest: +SKIP
    >>> wq.turbidity.median(["x", "y"]).plot()  # doctest: +SKIP
    """
    if turbidity not in _TURBIDITY_BANDS:
        raise ConfigurationError(
            f"unknown turbidity algorithm {turbidity!r}; use 'nechad2009' or 'dogliotti2015'"
        )
    if water not in _WATER_BANDS:
        raise ConfigurationError(
            f"unknown water method {water!r}; use 'scl', 'flags', 'mndwi' or 'ndwi'"
        )
    needed = ["green", "red", "rededge1", *_TURBIDITY_BANDS[turbidity], *_WATER_BANDS[water]]
    require_bands(ds, list(dict.fromkeys(needed)), "add_water_quality")
    clash = [name for name in OUTPUT_VARIABLES if name in ds.variables]
    if clash:
        raise ConfigurationError(
            f"add_water_quality: the cube already has {clash}; drop them first "
            f"(ds.drop_vars({clash})) or work on the original cube"
        )

    mask = water_mask(ds, water, threshold, exclude_scl=exclude_scl)
    turbidity_kw = dict(turbidity_coefficients or {})
    if turbidity == "nechad2009":
        turb = nechad(ds["red"], **turbidity_kw)
    else:
        turb = turbidity_dogliotti2015(ds["red"], ds["nir08"], **turbidity_kw)
    ndci_value = ndci(ds["rededge1"], ds["red"])
    products = {
        "ndti_turbidity": ndti_turbidity(ds["red"], ds["green"]),
        "ndci": ndci_value,
        "turbidity": turb,
        "chlorophyll_a": chlorophyll_a_ndci(ndci_value, **dict(chlorophyll_coefficients or {})),
        "spm": spm_nechad2010(ds["red"], **dict(spm_coefficients or {})),
    }
    out = ds.assign(water=mask)
    return out.assign({name: _masked(value, mask) for name, value in products.items()})
