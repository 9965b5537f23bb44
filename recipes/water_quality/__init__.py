"""Water quality from Sentinel-2 reflectance: water masks, indices and published algorithms.

Every function accepts plain numbers, NumPy (or Dask) arrays, pandas Series and xarray
DataArrays, and gives back the same kind: numbers in, ``float`` out; arrays in, arrays out;
DataArrays in, DataArrays out with ``units``, ``long_name`` and ``references`` attributes,
still lazy when the input is Dask-backed. Values outside an algorithm's valid range are NaN,
never clipped or guessed. Coefficients are keyword arguments whose defaults are the published
values; replace them with a regional calibration (:mod:`recipes.validation`).

Quick start
-----------
>>> from recipes import water_quality as wq
>>> round(wq.nechad(0.05), 2)          # turbidity (FNU) of a pixel with ρw(665) = 0.05
19.91
>>> cube = wq.add_water_quality(cube)  # doctest: +SKIP
>>> cube.turbidity                     # doctest: +SKIP

Contents
--------
Water masks
    :func:`scl_water` (SCL class 6), :func:`mndwi` (Xu 2006), :func:`ndwi` (McFeeters 1996),
    :func:`water_mask` on a cube.
Indices
    :func:`ndti_turbidity` (Lacaux et al. 2007; *not* the tillage index also called NDTI),
    :func:`ndci` (Mishra & Mishra 2012).
Algorithms
    :func:`nechad` turbidity (FNU, Nechad et al. 2009) and its inverse :func:`nechad_inverse`,
    :func:`spm_nechad2010` (g/m³), :func:`turbidity_dogliotti2015` (red/NIR switching),
    :func:`chlorophyll_a_ndci` (µg/L).
Cube
    :func:`add_water_quality` adds all products, masked to water.
"""

from __future__ import annotations

from recipes.water_quality._algorithms import (
    chlorophyll_a_ndci,
    nechad,
    nechad_inverse,
    spm_nechad2010,
    turbidity_dogliotti2015,
)
from recipes.water_quality._cube import OUTPUT_VARIABLES, add_water_quality
from recipes.water_quality._indices import (
    DEFAULT_THRESHOLDS,
    INVALID_SCL_CLASSES,
    SCL_WATER,
    WATER_FLAGS,
    mndwi,
    ndci,
    ndti_turbidity,
    ndwi,
    scl_water,
    water_mask,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "INVALID_SCL_CLASSES",
    "OUTPUT_VARIABLES",
    "SCL_WATER",
    "WATER_FLAGS",
    "add_water_quality",
    "chlorophyll_a_ndci",
    "mndwi",
    "ndci",
    "ndti_turbidity",
    "ndwi",
    "nechad",
    "nechad_inverse",
    "scl_water",
    "spm_nechad2010",
    "turbidity_dogliotti2015",
    "water_mask",
]
