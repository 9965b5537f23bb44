"""Apply one NumPy kernel to numbers, NumPy/Dask arrays, pandas Series or xarray objects.

Every water-quality formula is written once as a *kernel*: a function of NumPy arrays that
only uses arithmetic, comparisons and ``np.where``. :func:`apply_kernel` runs it on whatever
the user passed and gives back the same kind of object:

- numbers in, a Python ``float`` (or ``bool``) out;
- NumPy arrays (or lists) in, a NumPy array out;
- Dask arrays in, a lazy Dask array out (NumPy dispatches ``np.where`` to Dask);
- pandas Series in, a Series on the same index out;
- xarray DataArrays in, a DataArray out with ``name`` and ``attrs`` set, lazy when the input is
  Dask-backed (``xr.apply_ufunc(..., dask="allowed")`` hands the Dask arrays to the kernel).

Integer inputs (Sentinel-2 DN, booleans) are promoted to float64 before the kernel runs, so
that differences never wrap around; float32 stays float32 (NumPy 2 keeps the array's precision
when it meets a Python float).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from lab import ConfigurationError

__all__ = ["apply_kernel", "as_float", "is_lazy"]


def is_lazy(value: Any) -> bool:
    """Whether ``value`` is a Dask collection (or an xarray object backed by one)."""
    if isinstance(value, xr.DataArray):
        return value.chunks is not None
    return hasattr(value, "__dask_graph__")


def as_float(value: Any) -> Any:
    """Return ``value`` as a floating-point array (NumPy or Dask), promoting integers."""
    if not hasattr(value, "dtype"):
        value = np.asarray(value)
    kind = value.dtype.kind
    if kind in "biu":
        return value.astype(np.float64)
    if kind != "f":
        raise ConfigurationError(
            f"expected numbers (reflectance, index values), got an array of dtype {value.dtype}; "
            "convert it with .astype(float) first"
        )
    return value


def _as_mask(value: Any, name: str) -> Any:
    if not hasattr(value, "dtype"):
        value = np.asarray(value)
    if value.dtype.kind == "b":
        return value
    if value.dtype.kind in "iu":
        return value != 0
    raise ConfigurationError(
        f"{name}: water must be a boolean (or 0/1 integer) mask, got dtype {value.dtype}; "
        "pass for example ds['water'] or ds['scl'] == 6"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.number, np.bool_))


def apply_kernel(
    kernel: Callable[..., Any],
    *inputs: Any,
    name: str,
    attrs: Mapping[str, Any],
    to_float: bool = True,
    water: Any = None,
) -> Any:
    """Run ``kernel(*inputs)`` and return an object of the inputs' kind.

    Parameters
    ----------
    kernel
        Function of NumPy (or Dask) arrays; must be element-wise.
    *inputs
        Numbers, sequences, NumPy/Dask arrays, pandas Series or xarray DataArrays.
    name
        Name of the output DataArray or Series.
    attrs
        Attributes of the output DataArray (``units``, ``long_name``, ``references``...).
    to_float
        Promote integer inputs to float64 before calling the kernel.
    water
        Optional boolean (or integer, non-zero = water) mask of the same kind: the output is
        NaN where it is False.

    Returns
    -------
    float, bool, numpy.ndarray, dask.array.Array, pandas.Series or xarray.DataArray
        Same kind as the inputs (xarray wins over pandas, pandas over arrays).
    """
    if any(isinstance(x, xr.Dataset) for x in inputs):
        raise ConfigurationError(
            f"{name}: got an xarray Dataset where a band was expected; pass one variable "
            "(for example ds['red']) or use add_water_quality(ds) for a whole cube"
        )

    n_bands = len(inputs)
    if water is not None:
        inputs = (*inputs, water)

    def run(*arrays: Any) -> Any:
        bands = arrays[:n_bands]
        if to_float:
            bands = tuple(as_float(a) for a in bands)
        value = kernel(*bands)
        if water is None:
            return value
        return np.where(_as_mask(arrays[n_bands], name), value, np.nan)

    if any(isinstance(x, xr.DataArray) for x in inputs):
        out = xr.apply_ufunc(run, *inputs, dask="allowed", keep_attrs="drop")
        out.name = name
        out.attrs = dict(attrs)
        return out

    series = [x for x in inputs if isinstance(x, pd.Series)]
    if series:
        index = series[0].index
        for other in series[1:]:
            if not other.index.equals(index):
                raise ConfigurationError(
                    f"{name}: the pandas Series passed have different indexes; align them "
                    "first (for example with a.align(b, join='inner'))"
                )
        arrays = [x.to_numpy() if isinstance(x, pd.Series) else x for x in inputs]
        return pd.Series(np.asarray(run(*arrays)), index=index, name=name)

    if all(_is_number(x) for x in inputs):
        result = run(*(np.asarray(x) for x in inputs))
        result = np.asarray(result)
        return bool(result) if result.dtype == bool else float(result)

    arrays = [x if hasattr(x, "__dask_graph__") else np.asarray(x) for x in inputs]
    return run(*arrays)
