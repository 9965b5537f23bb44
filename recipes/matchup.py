"""Satellite / in-situ matchups following Bailey & Werdell (2006).

For each in-situ sample, every satellite acquisition within ``±max_dt`` is a *candidate*.
For each candidate, an N × N box centred on the station's pixel is read and:

1. pixels that are not water (land) are excluded from the denominator;
2. the valid fraction is the share of the box's water pixels that are clear water (SCL class
   6, or the water flag without clouds) with a finite retrieved value; below ``min_valid`` the
   candidate is rejected (``clouds``, or ``nodata`` when most non-clear pixels are outside the
   swath, or ``retrieval`` when pixels are clear but the algorithm gave no value);
3. the valid values are filtered to mean ± 1.5 σ; the filtered mean, median, standard
   deviation and count are reported, and the coefficient of variation (filtered std /
   filtered mean) must not exceed ``max_cv`` (``cv``).

Every candidate gives one row with the reason it was kept or rejected, in this order of
checks: ``outside`` (the station is not inside the cube with its whole box), ``time`` (no
acquisition within ``±max_dt``: one row naming the nearest acquisition), ``land`` (no water
pixel in the box), ``nodata``, ``clouds``, ``retrieval``, ``cv``, else ``kept``.

Water pixels are found from the cube's own time series of surface states: a pixel is water
when it is clear water in at least half of its clear observations. The states come from an
SCL band (clear: 2, 4, 5, 6, 7, 11; water: 6; no data: 0, 1), else from the product-independent
flags of ``datacubes.load(..., flags=["water", "clouds", "nodata"])`` (clear: neither clouds
nor no data; water: the water flag): the same matchups on Sen2Cor, THEIA MAJA or Landsat
items. Pass ``water=`` (a boolean ``(y, x)`` DataArray) to use another static mask.

On a lazy (dask-backed) cube only the chunks containing the boxes are read: each station's
box is selected once per variable (at the station's candidate dates; the surface states over
all dates for the water mask) and everything is computed in one call, so dask culls every
other chunk. Load the cube with chunks near the COGs' internal tiles (e.g. ``{"time": 1, "y": 256,
"x": 256}``) for matchups: with larger chunks each box costs a larger read
(docs/benchmarks.md, "Matchups").

References
----------
Bailey, S. W., & Werdell, P. J. (2006). A multi-sensor approach for the on-orbit validation
of ocean color satellite data products. Remote Sensing of Environment, 102, 12–23.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401 - registers the .rio accessor used for the CRS
import xarray as xr

from lab import ConfigurationError
from recipes.water_quality import WATER_FLAGS

__all__ = [
    "DEFAULT_VARIABLES",
    "REASONS",
    "STANDARD_NAMES",
    "MatchupProtocol",
    "extract",
    "extract_gridded",
]

REASONS = ("kept", "outside", "time", "land", "nodata", "clouds", "retrieval", "cv", "no-variable")
DEFAULT_VARIABLES: Mapping[str, str] = {
    "turbidity": "turbidity",
    "chlorophyll_a": "chlorophyll_a",
    "suspended_matter": "spm",
}
STANDARD_NAMES: Mapping[str, tuple[str, ...]] = {
    "turbidity": ("sea_water_turbidity",),
    "chlorophyll_a": (
        "mass_concentration_of_chlorophyll_a_in_sea_water",
        # NASA OBPG's L3 files (SeaWiFS, MODIS, VIIRS) write this non-CF name
        "mass_concentration_chlorophyll_concentration_in_sea_water",
    ),
    "suspended_matter": ("mass_concentration_of_suspended_matter_in_sea_water",),
}
"""CF standard names of each in-situ parameter: how :func:`extract_gridded` finds variables."""
SCL_WATER = 6
SCL_NODATA = (0, 1)
SCL_CLEAR = (2, 4, 5, 6, 7, 11)
# surface states of a pixel at one time, from the SCL or the flags
NODATA_STATE, CLOUDY_STATE, CLEAR_LAND_STATE, CLEAR_WATER_STATE = 0, 1, 2, 3
_INSITU_COLUMNS = ("station_id", "time", "lon", "lat", "parameter", "value")


@dataclass(frozen=True)
class MatchupProtocol:
    """The matchup protocol's parameters (Bailey & Werdell 2006 defaults)."""

    window: int = 5
    """Box size in pixels (odd, 3 to 11)."""
    max_dt: pd.Timedelta | str = "3h"
    """Largest allowed |in-situ time − acquisition time| (normalised to a Timedelta)."""
    min_valid: float = 0.5
    """Smallest share of the box's water pixels that must be valid."""
    max_cv: float = 0.15
    """Largest coefficient of variation of the filtered valid values."""
    n_sigma: float = 1.5
    """Values outside mean ± n_sigma × std are filtered out before the statistics."""

    def __post_init__(self) -> None:
        if not (isinstance(self.window, int) and self.window % 2 == 1 and 3 <= self.window <= 11):
            raise ConfigurationError(
                f"window must be an odd number of pixels from 3 to 11, got {self.window!r}"
            )
        object.__setattr__(self, "max_dt", _timedelta(self.max_dt))
        if self.max_dt < pd.Timedelta(0):
            raise ConfigurationError(f"max_dt must be positive, got {self.max_dt}")
        if not 0 < self.min_valid <= 1:
            raise ConfigurationError(f"min_valid is a fraction in (0, 1], got {self.min_valid!r}")
        if not self.max_cv > 0:
            raise ConfigurationError(f"max_cv must be > 0, got {self.max_cv!r}")
        if not self.n_sigma > 0:
            raise ConfigurationError(f"n_sigma must be > 0, got {self.n_sigma!r}")


def extract(
    cube: xr.Dataset,
    insitu: pd.DataFrame,
    window: int = 5,
    max_dt: str | dt.timedelta | pd.Timedelta = "3h",
    min_valid: float = 0.5,
    max_cv: float = 0.15,
    *,
    variables: Mapping[str, str] | None = None,
    water: xr.DataArray | None = None,
    scl: str = "scl",
    n_sigma: float = 1.5,
) -> pd.DataFrame:
    """Extract matchups between a satellite cube and in-situ samples.

    Parameters
    ----------
    cube
        Dataset with dims ``time, y, x``, a CRS readable by rioxarray (``spatial_ref``),
        the retrieved variables and the SCL band, or the flags of
        ``datacubes.load(..., flags=["water", "clouds", "nodata"])`` (any registered
        product). Lazy cubes stay lazy until the boxes are read. A ``source_items`` (and ``centre``) coordinate along ``time`` is reported.
    insitu
        Tidy in-situ table (``recipes.insitu`` schema): ``station_id``, ``time`` (UTC),
        ``lon``, ``lat``, ``parameter``, ``value`` (plus optional ``unit``, ``qc_flag``,
        ``source``).
    window, max_dt, min_valid, max_cv, n_sigma
        The protocol (see :class:`MatchupProtocol`); ``max_dt`` as ``"3h"``, ``"1D"`` or a
        timedelta.
    variables
        Which cube variable matches each in-situ parameter (default
        :data:`DEFAULT_VARIABLES`). Samples of a parameter without a variable in the cube
        get rows with reason ``no-variable``.
    water
        Static boolean water mask on the cube's ``(y, x)`` grid; default: from the SCL or
        the flags.
    scl
        Name of the scene-classification variable (used when the cube has it).

    Returns
    -------
    pandas.DataFrame
        One row per candidate (or per sample when no candidate exists), with the in-situ
        sample, the acquisition (``sat_time``, ``dt_hours``, ``item_ids``, ``centre``), the
        box counts (``n_water``, ``n_clear``, ``n_valid``, ``valid_fraction``), the filtered
        statistics (``sat_mean``, ``sat_median``, ``sat_std``, ``sat_n``, ``cv``), the pixel
        (``row``, ``col``), ``reason`` and ``kept``.

    Raises
    ------
    ConfigurationError
        If the protocol is invalid or the cube or the table lacks what is needed.
    """
    protocol = MatchupProtocol(window, max_dt, min_valid, max_cv, n_sigma)
    return _extract(cube, insitu, protocol, variables, water, scl, "retrieval")


def _extract(
    cube: xr.Dataset,
    insitu: pd.DataFrame,
    protocol: MatchupProtocol,
    variables: Mapping[str, str] | None,
    water: xr.DataArray | None,
    scl: str,
    missing: str,
) -> pd.DataFrame:
    """The matchups of :func:`extract`; ``missing`` names a box whose water lacks values."""
    surface = _check_cube(cube, scl, water)
    table = _check_insitu(insitu)
    variables = dict(DEFAULT_VARIABLES if variables is None else variables)
    sat_times = pd.DatetimeIndex(cube["time"].values)
    rows, cols = _station_pixels(cube, table, protocol.window // 2)

    candidates = []  # (sample index, time index)
    records: list[dict[str, Any]] = []
    for i, sample in enumerate(table.itertuples(index=False)):
        base = _base_record(sample, rows[i], cols[i])
        variable = variables.get(sample.parameter)
        if variable is None or variable not in cube.data_vars:
            records.append(
                base
                | _nearest(sat_times, sample.time)
                | {"reason": "no-variable", "variable": variable}
            )
            continue
        base["variable"] = variable
        if rows[i] < 0:
            records.append(base | _nearest(sat_times, sample.time) | {"reason": "outside"})
            continue
        offsets = np.abs(sat_times - sample.time)
        within = np.flatnonzero(offsets <= protocol.max_dt)
        if within.size == 0:
            records.append(base | _nearest(sat_times, sample.time) | {"reason": "time"})
            continue
        for t in within:
            candidates.append((i, int(t)))
            records.append(base | {"_t": int(t)})

    boxes = _read_boxes(cube, table, variables, candidates, rows, cols, protocol, surface, water)
    box_iter = iter(boxes)
    for record in records:
        if "_t" not in record:
            continue
        t_box = int(record.pop("_t"))
        record.update(_nearest(sat_times, pd.Timestamp(record["time"]), t_box))
        record.update(_judge(next(box_iter), protocol, missing))
    for record in records:
        t_sat = record.pop("_t_sat", None)
        record.update(_provenance(cube, None if t_sat is None else int(t_sat)))
    return _as_frame(records)


def extract_gridded(
    cube: xr.Dataset,
    insitu: pd.DataFrame,
    window: int = 3,
    max_dt: str | dt.timedelta | pd.Timedelta = "12h",
    min_valid: float = 0.5,
    max_cv: float = 0.15,
    *,
    variables: Mapping[str, str] | None = None,
    water: xr.DataArray | None = None,
    n_sigma: float = 1.5,
) -> pd.DataFrame:
    """Extract matchups between a gridded product and in-situ samples.

    The same protocol, checks and table as :func:`extract`, on a cube of a gridded product
    (daily or monthly L3/L4 files, as :func:`datacubes.load_gridded` returns them): the box is
    in grid cells, the time window typically in days, and there is no scene classification.
    A cell is water when the product has a value there at least once in the cube's time series
    (land and permanently masked cells never have one); a box whose water cells lack values is
    rejected as ``clouds`` (gaps of the product: clouds, glint, failed retrievals).

    Parameters
    ----------
    cube
        Dataset with dims ``time`` and latitude/longitude (``lat``/``lon``, ``latitude``/
        ``longitude``) or ``y``/``x``; its CRS from ``spatial_ref``, a variable's
        ``attrs["crs"]`` (as ``load_gridded`` writes it) or else WGS 84.
    insitu
        Tidy in-situ table (``recipes.insitu`` schema), as for :func:`extract`.
    window, max_dt, min_valid, max_cv, n_sigma
        The protocol (:class:`MatchupProtocol`): a ``window`` × ``window`` box of grid cells
        (default 3, about 1 km for a 300 m product); ``max_dt`` default ``"12h"``: the
        product's day of the sample for a daily product; ``"1D"``, ``"3D"`` widen it (each
        product time within it is a candidate row).
    variables
        Which cube variable matches each in-situ parameter; default: the variables whose CF
        ``standard_name`` is that of the parameter (:data:`STANDARD_NAMES`), e.g. ``CHL`` of a
        Copernicus Marine product for ``chlorophyll_a``.
    water
        Static boolean water mask on the cube's grid; default: cells with a value at least
        once (in any matched variable).

    Returns
    -------
    pandas.DataFrame
        As :func:`extract`; ``row``/``col`` are grid cells, ``n_clear`` counts the box's water
        cells.

    Raises
    ------
    ConfigurationError
        If the protocol is invalid, the cube has no latitude/longitude or time dimension, no
        variable matches a parameter, or the in-situ table lacks what is needed.
    """
    protocol = MatchupProtocol(window, max_dt, min_valid, max_cv, n_sigma)
    grid = _as_projected(cube)
    if variables is None:
        variables = {
            parameter: str(name)
            for parameter, standards in STANDARD_NAMES.items()
            for name, variable in grid.data_vars.items()
            if variable.attrs.get("standard_name") in standards
        }
        if not variables:
            names = {str(n): v.attrs.get("standard_name") for n, v in grid.data_vars.items()}
            raise ConfigurationError(
                f"no variable of the cube has the standard name of an in-situ parameter "
                f"({dict(STANDARD_NAMES)}); variables and their standard names: {names}; "
                "pass variables={'chlorophyll_a': 'CHL', ...}"
            )
    matched = [v for v in dict(variables).values() if v in grid.data_vars]
    if water is None:
        if not matched:
            raise ConfigurationError(
                f"none of the variables {sorted(dict(variables).values())} is in the cube; "
                f"variables: {sorted(map(str, grid.data_vars))}"
            )
        seen = [grid[v].notnull().any("time") for v in matched]
        water = seen[0]
        for more in seen[1:]:
            water = water | more
    else:
        water = _as_projected(water.to_dataset(name="water"))["water"]
    return _extract(grid, insitu, protocol, variables, water, "", "clouds")


def _as_projected(cube: xr.Dataset) -> xr.Dataset:
    """``cube`` with dims ``y``/``x`` and a CRS, from latitude/longitude names if need be."""
    if not isinstance(cube, xr.Dataset):
        raise ConfigurationError(f"cube must be an xarray.Dataset, got {type(cube).__name__}")
    renames = {}
    for names, to in ((("lat", "latitude"), "y"), (("lon", "longitude"), "x")):
        found = [n for n in names if n in cube.dims]
        if found and to not in cube.dims:
            renames[found[0]] = to
    grid = cube.rename(renames) if renames else cube
    missing = [d for d in ("y", "x") if d not in grid.dims]
    if missing:
        raise ConfigurationError(
            f"cube has no latitude/longitude (or y/x) dimensions: dims {list(cube.dims)}; "
            "load gridded products with datacubes.load_gridded"
        )
    if grid.rio.crs is None:
        crs = next(
            (v.attrs["crs"] for v in grid.data_vars.values() if "crs" in v.attrs), "EPSG:4326"
        )
        grid = grid.rio.write_crs(crs)
    return grid


def _check_cube(cube: xr.Dataset, scl: str, water: xr.DataArray | None) -> xr.DataArray | None:
    """Check what the matchups need of ``cube``; return its surface states (or None)."""
    if not isinstance(cube, xr.Dataset):
        raise ConfigurationError(f"cube must be an xarray.Dataset, got {type(cube).__name__}")
    missing = [d for d in ("time", "y", "x") if d not in cube.dims]
    if missing:
        raise ConfigurationError(
            f"cube lacks dimension(s) {missing}; expected (time, y, x) as returned by datacubes.load"
        )
    surface = surface_states(cube, scl)
    if water is None and surface is None:
        flags = ", ".join(f"flag_{name}" for name in WATER_FLAGS)
        raise ConfigurationError(
            f"cube has no {scl!r} variable and no flags {flags}: load the flags "
            f"(datacubes.load(..., flags={list(WATER_FLAGS)!r}), any product) or the SCL "
            "(bands=[..., 'scl']), or pass water= explicitly"
        )
    if cube.rio.crs is None:
        raise ConfigurationError("cube has no CRS: write one with cube.rio.write_crs(...)")
    return surface


def _check_insitu(insitu: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(insitu, pd.DataFrame):
        raise ConfigurationError(
            f"insitu must be a pandas DataFrame (recipes.insitu schema), got {type(insitu).__name__}"
        )
    missing = [c for c in _INSITU_COLUMNS if c not in insitu.columns]
    if missing:
        raise ConfigurationError(
            f"in-situ table lacks column(s) {missing}; read it with recipes.insitu"
        )
    if insitu.empty:
        raise ConfigurationError("in-situ table is empty: no sample to match")
    table = insitu.reset_index(drop=True).copy()
    times = pd.to_datetime(table["time"])
    if times.dt.tz is None:
        raise ConfigurationError(
            "in-situ times have no time zone; localise them (e.g. df['time'] = df['time'].dt.tz_localize('UTC'))"
        )
    table["time"] = times.dt.tz_convert("UTC").dt.tz_localize(None)
    for column in ("lon", "lat", "value"):
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise ConfigurationError(
                f"in-situ column {column!r} must be numeric; read the file with recipes.insitu"
            )
    return table


def _station_pixels(
    cube: xr.Dataset, table: pd.DataFrame, half: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row/column of each sample's pixel; -1 where the box does not fit inside the cube."""
    from pyproj import Transformer

    transformer = Transformer.from_crs("EPSG:4326", cube.rio.crs, always_xy=True)
    xs, ys = transformer.transform(table["lon"].to_numpy(), table["lat"].to_numpy())
    x = cube["x"].to_numpy()
    y = cube["y"].to_numpy()
    col = _index_on_axis(x, np.asarray(xs))
    row = _index_on_axis(y, np.asarray(ys))
    fits = (row >= half) & (row < y.size - half) & (col >= half) & (col < x.size - half)
    return np.where(fits, row, -1), np.where(fits, col, -1)


def _index_on_axis(centres: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the pixel containing each value on a regular axis of pixel centres (-1 outside)."""
    step = centres[1] - centres[0] if centres.size > 1 else 1.0
    index = np.floor((values - (centres[0] - step / 2)) / step).astype(int)
    index[~np.isfinite(values)] = -1
    return np.where((index >= 0) & (index < centres.size), index, -1)


def _read_boxes(
    cube: xr.Dataset,
    table: pd.DataFrame,
    variables: Mapping[str, str],
    candidates: list[tuple[int, int]],
    rows: np.ndarray,
    cols: np.ndarray,
    protocol: MatchupProtocol,
    surface: xr.DataArray | None,
    water: xr.DataArray | None,
) -> list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    """Slice the boxes lazily, one selection per station and variable, and compute them at once.

    Per station pixel, the surface-state box is taken over all times (the water mask needs its
    time series; a static ``water`` mask only the candidate times) and each variable's box over
    the station's candidate times, with one vectorised ``isel`` each. Dask then reads only the
    chunks that contain a box, at those times, and the graph stays small however many samples
    a station has.
    """
    import dask

    if not candidates:
        return []
    half = protocol.window // 2
    needs = [
        ((int(rows[i]), int(cols[i])), variables[table.at[i, "parameter"]], t)
        for i, t in candidates
    ]
    value_times: dict[tuple[tuple[int, int], str], set[int]] = {}
    state_times: dict[tuple[int, int], set[int]] = {}
    for pixel, variable, t in needs:
        value_times.setdefault((pixel, variable), set()).add(t)
        state_times.setdefault(pixel, set()).add(t)
    if water is None:  # the water mask from the states needs the box's whole time series
        every = frozenset(range(cube.sizes["time"]))
        state_times = {pixel: set(every) for pixel in state_times}

    def window(pixel: tuple[int, int]) -> dict[str, slice]:
        r, c = pixel
        return {"y": slice(r - half, r + half + 1), "x": slice(c - half, c + half + 1)}

    def box(
        array: xr.DataArray, pixel: tuple[int, int], times: set[int]
    ) -> tuple[dict[int, int], Any]:
        order = sorted(times)
        selected = array.isel({"time": order, **window(pixel)}).data
        return {t: k for k, t in enumerate(order)}, selected

    lazy_values = {key: box(cube[key[1]], key[0], times) for key, times in value_times.items()}
    lazy_states = {
        pixel: box(surface, pixel, times) if surface is not None else None
        for pixel, times in state_times.items()
    }
    lazy_water = (
        {pixel: water.isel(window(pixel)).data for pixel in state_times}
        if water is not None
        else {}
    )
    values, state_boxes, water_boxes = dask.compute(lazy_values, lazy_states, lazy_water)
    if water is None:
        water_boxes = {pixel: _water_from_states(state_boxes[pixel][1]) for pixel in state_boxes}

    boxes = []
    for pixel, variable, t in needs:
        position, stack = values[(pixel, variable)]
        state_box = None
        if state_boxes[pixel] is not None:
            state_position, state_stack = state_boxes[pixel]
            state_box = np.asarray(state_stack[state_position[t]])
        water_box = np.asarray(water_boxes[pixel], dtype=bool)
        boxes.append((np.asarray(stack[position[t]]), state_box, water_box))
    return boxes


def surface_states(cube: xr.Dataset, scl: str = "scl") -> xr.DataArray | None:
    """Surface state of each pixel and time (uint8, lazy like the cube), or None.

    :data:`NODATA_STATE`, :data:`CLOUDY_STATE` (clouds, shadows, cirrus: not clear),
    :data:`CLEAR_LAND_STATE` or :data:`CLEAR_WATER_STATE`, from the SCL variable ``scl``
    when the cube has it, else from the flags ``flag_water``, ``flag_clouds`` and
    ``flag_nodata`` of ``datacubes.load(flags=...)``; None when it has neither.
    """
    if scl in cube.data_vars:
        return xr.apply_ufunc(_scl_states, cube[scl], dask="parallelized", output_dtypes=[np.uint8])
    names = [f"flag_{name}" for name in WATER_FLAGS]
    if not all(name in cube.data_vars for name in names):
        return None
    return xr.apply_ufunc(
        _flag_states, *(cube[name] for name in names), dask="parallelized", output_dtypes=[np.uint8]
    )


def _scl_states(scl: np.ndarray) -> np.ndarray:
    out = np.full(scl.shape, CLOUDY_STATE, np.uint8)
    out[np.isin(scl, SCL_CLEAR)] = CLEAR_LAND_STATE
    out[scl == SCL_WATER] = CLEAR_WATER_STATE
    out[np.isin(scl, SCL_NODATA)] = NODATA_STATE
    return out


def _flag_states(water: np.ndarray, clouds: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    out = np.where(water, CLEAR_WATER_STATE, CLEAR_LAND_STATE).astype(np.uint8)
    out[clouds.astype(bool)] = CLOUDY_STATE
    out[nodata.astype(bool)] = NODATA_STATE
    return out


def _water_from_states(state_ts: np.ndarray) -> np.ndarray:
    """Water where the pixel is clear water in at least half of its clear observations.

    ``state_ts`` is the box's time series of surface states ``(time, y, x)``. A pixel never
    observed clear is not counted as water (nor in the denominator).
    """
    state_ts = np.asarray(state_ts)
    water_votes = (state_ts == CLEAR_WATER_STATE).sum(axis=0)
    clear_votes = (state_ts >= CLEAR_LAND_STATE).sum(axis=0)
    return (clear_votes > 0) & (water_votes * 2 >= clear_votes)


def _judge(
    box: tuple[np.ndarray, np.ndarray | None, np.ndarray],
    protocol: MatchupProtocol,
    missing: str = "retrieval",
) -> dict[str, Any]:
    values, state_box, water_box = box
    water_mask = np.asarray(water_box, dtype=bool)
    n_water = int(water_mask.sum())
    result: dict[str, Any] = {"n_pixels": int(values.size), "n_water": n_water}
    if n_water == 0:
        return result | {"n_clear": 0, "n_valid": 0, "valid_fraction": 0.0, "reason": "land"}
    if state_box is not None:  # surface states
        clear = water_mask & (state_box == CLEAR_WATER_STATE)
        nodata = water_mask & (state_box == NODATA_STATE)
    else:
        clear = water_mask.copy()
        nodata = np.zeros_like(water_mask)
    valid = clear & np.isfinite(values)
    n_clear, n_valid = int(clear.sum()), int(valid.sum())
    result |= {"n_clear": n_clear, "n_valid": n_valid, "valid_fraction": n_valid / n_water}
    if n_clear / n_water < protocol.min_valid:
        not_clear = n_water - n_clear
        reason = "nodata" if int(nodata.sum()) * 2 > not_clear else "clouds"
        return result | {"reason": reason}
    if n_valid / n_water < protocol.min_valid:
        return result | {"reason": missing}
    stats = _filtered_stats(values[valid].astype("float64"), protocol.n_sigma)
    result |= stats
    if not stats["cv"] <= protocol.max_cv:
        return result | {"reason": "cv"}
    return result | {"reason": "kept"}


def _filtered_stats(values: np.ndarray, n_sigma: float) -> dict[str, float | int]:
    mean, std = float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0
    kept = values[np.abs(values - mean) <= n_sigma * std] if std > 0 else values
    f_mean = float(kept.mean())
    f_std = float(kept.std(ddof=1)) if kept.size > 1 else 0.0
    cv = f_std / f_mean if f_mean > 0 else float("inf")
    return {
        "sat_mean": f_mean,
        "sat_median": float(np.median(kept)),
        "sat_std": f_std,
        "sat_n": int(kept.size),
        "cv": cv,
    }


def _base_record(sample: Any, row: int, col: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "station_id": sample.station_id,
        "time": sample.time,
        "lon": float(sample.lon),
        "lat": float(sample.lat),
        "parameter": sample.parameter,
        "insitu_value": float(sample.value),
        "row": int(row) if row >= 0 else None,
        "col": int(col) if col >= 0 else None,
    }
    for optional in ("unit", "qc_flag", "source"):
        if hasattr(sample, optional):
            record[optional] = getattr(sample, optional)
    return record


def _nearest(
    sat_times: pd.DatetimeIndex, when: pd.Timestamp, t: int | None = None
) -> dict[str, Any]:
    """The acquisition ``t`` (default: the nearest one) and its offset from the sample."""
    if len(sat_times) == 0:
        return {}
    if t is None:
        t = int(np.argmin(np.abs(sat_times - when)))
    return {
        "sat_time": sat_times[t],
        "dt_hours": (when - sat_times[t]).total_seconds() / 3600,
        "_t_sat": t,
    }


def _provenance(cube: xr.Dataset, t: int | None) -> dict[str, Any]:
    """Source item ids and centre of acquisition ``t``, from the cube's coordinates."""
    if t is None:
        return {}
    found: dict[str, Any] = {}
    for coordinate, column in (("source_items", "item_ids"), ("centre", "centre")):
        if coordinate in cube.coords and cube[coordinate].dims == ("time",):
            value = cube[coordinate].values[t]
            found[column] = value.item() if hasattr(value, "item") else value
    return found


def _as_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    columns = [
        "station_id",
        "time",
        "lon",
        "lat",
        "parameter",
        "insitu_value",
        "unit",
        "qc_flag",
        "source",
        "variable",
        "sat_time",
        "dt_hours",
        "item_ids",
        "centre",
        "row",
        "col",
        "n_pixels",
        "n_water",
        "n_clear",
        "n_valid",
        "valid_fraction",
        "sat_mean",
        "sat_median",
        "sat_std",
        "sat_n",
        "cv",
        "reason",
        "kept",
    ]
    frame = pd.DataFrame.from_records(records)
    for column in columns:
        if column not in frame.columns:
            frame[column] = np.nan
    frame["kept"] = frame["reason"] == "kept"
    return frame[columns + [c for c in frame.columns if c not in columns]]


def _timedelta(value: object) -> pd.Timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ConfigurationError(
            f"max_dt needs a unit: give '3h', '1D' or a timedelta, not {value!r}"
        )
    try:
        return pd.Timedelta(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"max_dt {value!r} is not a duration; give e.g. '3h' or '1D'"
        ) from exc
