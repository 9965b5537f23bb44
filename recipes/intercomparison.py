"""Inter-comparison of a gridded product with a finer satellite retrieval on its grid.

A daily ocean-colour product (about 300 m) and a Sentinel-2 retrieval (10–20 m) of the same
quantity are compared cell by cell: the fine retrieval is averaged over each product cell
(:func:`aggregate_to_grid`: the valid fine pixels whose centre falls in the cell, kept when they
cover at least ``min_coverage`` of the cell), then paired with the product on the same day
(:func:`compare`), with the validation statistics of :func:`recipes.validation.metrics` (the
product as "satellite", the aggregated retrieval as reference).

Quick start
-----------
>>> from recipes import intercomparison
>>> fine = intercomparison.aggregate_to_grid(s2_cube, product, ["turbidity"])  # doctest: +SKIP
>>> table, stats = intercomparison.compare(                                    # doctest: +SKIP
...     product, fine, {"tur": "turbidity"})
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401 - registers the .rio accessor used for the CRS
import xarray as xr

from lab import ConfigurationError
from recipes import validation
from recipes.matchup import _index_on_axis, _timedelta

__all__ = ["aggregate_to_grid", "compare"]

_LAT = ("lat", "latitude")
_LON = ("lon", "longitude")


def _axis(grid: xr.Dataset | xr.DataArray, names: Sequence[str]) -> str:
    for name in names:
        if name in grid.dims:
            return name
    raise ConfigurationError(
        f"the product's grid has no {' or '.join(names)} dimension (dims {list(grid.dims)}); "
        "load it with datacubes.load_gridded"
    )


def aggregate_to_grid(
    cube: xr.Dataset,
    grid: xr.Dataset | xr.DataArray,
    variables: Sequence[str],
    min_coverage: float = 0.5,
) -> xr.Dataset:
    """Average a projected ``(time, y, x)`` cube over the cells of a latitude/longitude grid.

    Parameters
    ----------
    cube
        Fine-resolution retrieval (as ``datacubes.load`` and ``recipes.water_quality`` give
        it), with a CRS readable by rioxarray; masked pixels (clouds, land) are NaN.
    grid
        The product (its 1-D ``lat``/``lon`` or ``latitude``/``longitude`` cell centres,
        regular, either order) whose cells receive the averages.
    variables
        Variables of ``cube`` to average.
    min_coverage
        Smallest share of a cell's fine pixels that must be valid for its average to be kept.

    Returns
    -------
    xarray.Dataset
        ``(time, lat, lon)`` on the grid's coordinates: each variable's cell mean (NaN where
        the coverage is too small or the cell outside the cube) and ``<variable>_count``, the
        valid fine pixels averaged.

    Raises
    ------
    ConfigurationError
        If the cube has no CRS or lacks a variable, the grid has no latitude/longitude, or
        ``min_coverage`` is not in (0, 1].
    """
    from pyproj import Transformer

    if not 0 < min_coverage <= 1:
        raise ConfigurationError(f"min_coverage is a fraction in (0, 1], got {min_coverage!r}")
    missing = [v for v in variables if v not in cube.data_vars]
    if missing:
        raise ConfigurationError(
            f"variable(s) {missing} not in the cube; variables: {sorted(map(str, cube.data_vars))}"
        )
    if cube.rio.crs is None:
        raise ConfigurationError("cube has no CRS: write one with cube.rio.write_crs(...)")
    lat_name, lon_name = _axis(grid, _LAT), _axis(grid, _LON)
    lats, lons = grid[lat_name].to_numpy(), grid[lon_name].to_numpy()
    xs, ys = np.meshgrid(cube["x"].to_numpy(), cube["y"].to_numpy())
    to_lonlat = Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(xs, ys)
    rows = _index_on_axis(lats, np.asarray(lat).ravel())
    cols = _index_on_axis(lons, np.asarray(lon).ravel())
    inside = (rows >= 0) & (cols >= 0)
    cells = rows * lons.size + cols
    n_cells = lats.size * lons.size
    per_cell = np.bincount(cells[inside], minlength=n_cells)
    shape = (cube.sizes["time"], lats.size, lons.size)
    out: dict[str, Any] = {}
    for name in variables:
        means = np.full(shape, np.nan)
        counts = np.zeros(shape, dtype="int32")
        for t in range(cube.sizes["time"]):
            values = np.asarray(cube[name].isel(time=t).to_numpy(), dtype="float64").ravel()
            valid = inside & np.isfinite(values)
            n = np.bincount(cells[valid], minlength=n_cells)
            sums = np.bincount(cells[valid], weights=values[valid], minlength=n_cells)
            enough = (n > 0) & (n >= min_coverage * per_cell)
            mean = np.full(n_cells, np.nan)
            mean[enough] = sums[enough] / n[enough]
            means[t] = mean.reshape(lats.size, lons.size)
            counts[t] = n.reshape(lats.size, lons.size)
        out[name] = (("time", lat_name, lon_name), means, dict(cube[name].attrs))
        out[f"{name}_count"] = (("time", lat_name, lon_name), counts)
    return xr.Dataset(
        out,
        coords={"time": cube["time"].to_numpy(), lat_name: lats, lon_name: lons},
        attrs={"aggregated_from": str(cube.rio.crs), "min_coverage": min_coverage},
    )


def compare(
    product: xr.Dataset,
    aggregated: xr.Dataset,
    variables: Mapping[str, str],
    max_dt: str | dt.timedelta | pd.Timedelta = "12h",
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Pair the product's cells with the aggregated retrieval on the same day.

    Parameters
    ----------
    product
        The gridded product (``datacubes.load_gridded``).
    aggregated
        :func:`aggregate_to_grid` of the fine retrieval on the product's grid.
    variables
        ``{product variable: aggregated variable}``, e.g. ``{"tur": "turbidity"}``.
    max_dt
        Largest |product time − fine acquisition time| for a pair (default the same day of a
        daily product).

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per cell and date where both have a value (``time`` of the fine acquisition,
        ``product_time``, ``lat``, ``lon``, ``variable``, ``product``, ``aggregated``,
        ``count``), and :func:`recipes.validation.metrics` per product variable (the product
        as satellite, the aggregated retrieval as reference).
    """
    lat_name, lon_name = _axis(product, _LAT), _axis(product, _LON)
    window = _timedelta(max_dt)
    product_times = pd.DatetimeIndex(product["time"].to_numpy())
    records: list[pd.DataFrame] = []
    for name, fine in variables.items():
        if name not in product.data_vars or fine not in aggregated.data_vars:
            raise ConfigurationError(
                f"cannot pair {name!r} with {fine!r}: product variables "
                f"{sorted(map(str, product.data_vars))}, aggregated "
                f"{sorted(map(str, aggregated.data_vars))}"
            )
        for t, when in enumerate(pd.DatetimeIndex(aggregated["time"].to_numpy())):
            offsets = np.abs(product_times - when)
            if len(offsets) == 0 or offsets.min() > window:
                continue
            p = int(np.argmin(offsets))
            ours = np.asarray(product[name].isel(time=p).to_numpy(), dtype="float64")
            theirs = aggregated[fine].isel(time=t).to_numpy()
            count = aggregated[f"{fine}_count"].isel(time=t).to_numpy()
            both = np.isfinite(ours) & np.isfinite(theirs)
            r, c = np.nonzero(both)
            records.append(
                pd.DataFrame(
                    {
                        "time": when,
                        "product_time": product_times[p],
                        "lat": product[lat_name].to_numpy()[r],
                        "lon": product[lon_name].to_numpy()[c],
                        "variable": name,
                        "product": ours[both],
                        "aggregated": theirs[both],
                        "count": count[both],
                    }
                )
            )
    columns = ["time", "product_time", "lat", "lon", "variable", "product", "aggregated", "count"]
    table = pd.concat(records, ignore_index=True) if records else pd.DataFrame(columns=columns)
    stats = {}
    for name in variables:
        rows = table[table["variable"] == name]
        if len(rows) >= validation.MIN_PAIRS:
            stats[name] = validation.metrics(
                rows["product"].to_numpy(), rows["aggregated"].to_numpy()
            )
    return table, stats
