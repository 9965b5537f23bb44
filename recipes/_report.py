"""Maps, figures and the HTML report of the water-quality crossing (offline-readable).

The report explains itself: it says when its data are the embedded sample federation (and
from which truth they were generated), gives one sentence per statistic of its table and per
rejection reason of its matchups, and a caption under every figure. The figures are built by
functions that return them (:func:`scatter_figure`, :func:`timeseries_figure`,
:func:`map_figure`), so that their axes can be checked.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

import lab
from recipes.matchup import REASONS, MatchupProtocol

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAPPED = {"turbidity": "Turbidity (FNU)", "chlorophyll_a": "Chlorophyll-a (µg/L)"}
CLEAR_WATER_FRACTION = 0.9


def latest_clear_index(cube: xr.Dataset, variable: str = "turbidity") -> int:
    """Index of the latest date whose water is at least 90 % valid (else the clearest date)."""
    static_water = cube["water"].astype(bool).any("time")
    n_water = int(static_water.sum())
    valid = cube[variable].notnull() & static_water
    fractions = (valid.sum(["y", "x"]) / max(n_water, 1)).to_numpy()
    clear = np.flatnonzero(fractions >= CLEAR_WATER_FRACTION)
    return int(clear[-1]) if clear.size else int(np.argmax(fractions))


def latest_clear_date(cube: xr.Dataset) -> str:
    """Date (``YYYY-MM-DD``) of :func:`latest_clear_index`, the "latest" maps' date."""
    return pd.Timestamp(cube["time"].values[latest_clear_index(cube)]).strftime("%Y-%m-%d")


def write_maps(cube: xr.Dataset, out: Path) -> dict[str, Path]:
    """Write turbidity and chl-a maps as COG: latest clear date and median composite."""
    files: dict[str, Path] = {}
    t = latest_clear_index(cube)
    date = latest_clear_date(cube)
    for variable in MAPPED:
        latest = cube[variable].isel(time=t).astype("float32")
        median = _median(cube[variable])
        for label, layer in ((f"latest_{date}", latest), ("median", median)):
            path = out / f"{variable}_{label}.tif"
            write_cog(
                layer,
                path,
                crs=cube.rio.crs,
                units=cube[variable].attrs.get("units", ""),
                long_name=MAPPED[variable],
            )
            files[f"{variable}_{label.split('_')[0]}"] = path
    return files


def write_cog(
    layer: xr.DataArray,
    path: Path,
    *,
    crs: Any,
    units: str,
    long_name: str,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write one float32 map as a COG (DEFLATE, NaN nodata), with units and tags."""
    import rioxarray  # noqa: F401 - .rio accessor

    layer = layer.astype("float32")
    layer = layer.drop_vars([c for c in layer.coords if c not in ("x", "y", "spatial_ref")])
    layer = layer.rio.write_crs(crs).rio.write_nodata(np.nan, encoded=False)
    layer.attrs = {"units": units, "long_name": long_name, **dict(tags or {})}
    layer.rio.to_raster(path, driver="COG", compress="DEFLATE")


def _median(values: xr.DataArray) -> xr.DataArray:
    """Median over time; land pixels are all-NaN and stay NaN without a warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        return values.median("time").astype("float32").compute()


# --- What the report says about its data ---------------------------------------------------


def _adds_data(centre: lab.Centre, origin: lab.CentreSet) -> bool:
    """Whether a centre may hold a collection of ``origin`` (unknown collections: it may)."""
    held = {c for other in origin.values() for c in other.collections}
    return not centre.collections or bool(set(centre.collections) & held)


SAMPLE_GENERATOR = "earthlab sample"
"""The ``generator`` field of the sample federation's ``truth/generator.json``."""


def sample_record(centres: lab.CentreSet | None) -> dict[str, Any] | None:
    """The generator's record when ``centres`` is the embedded sample federation, else None.

    A centre set is the sample when its centres file sits next to ``truth/generator.json``
    written by ``earthlab sample`` and every centre's catalogue is a file of that same
    directory: a copy of the sample's files under another centres file, or a centres file
    next to a sample that searches other catalogues, is not the sample. A centres file
    ``derived_from`` the sample's, with the same centres (the local lab's, whose catalogues
    are the sample's served as STAC APIs), is the sample too; it may add centres that hold
    none of the sample's collections (the lab's own services, such as users' processing
    results): they add no data to the sample's.

    Parameters
    ----------
    centres
        The centres searched (``lab.catalog(...).centres``).

    Returns
    -------
    dict or None
        The content of ``truth/generator.json``, or None.
    """
    source = getattr(centres, "source", None)
    if centres is None or source is None:
        return None
    derived_from = getattr(centres, "derived_from", None)
    if derived_from is not None:  # e.g. the local lab serving the sample as STAC APIs
        try:
            origin = lab.read_centres_file(Path(derived_from))
        except lab.EarthLabError:
            return None
        if not set(origin) <= set(centres) or any(
            _adds_data(centres[name], origin) for name in set(centres) - set(origin)
        ):
            return None
        return sample_record(origin)
    root = Path(source).resolve().parent
    try:
        record = json.loads((root / "truth" / "generator.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("generator") != SAMPLE_GENERATOR:
        return None
    for centre in centres.values():
        href = centre.catalog.href
        if "://" in href or not Path(href).resolve().is_relative_to(root):
            return None
    return record


def _synthetic_notice(record: Mapping[str, Any]) -> str:
    """The statement, at the top of the report, that the data are synthetic, and their truth."""
    algorithms = record.get("algorithms", {})
    nechad = algorithms.get("nechad2009_turbidity", {})
    ndci = algorithms.get("ndci_mishra2012", {})
    noise = record.get("noise", {})
    dates = [a.get("datetime", "")[:10] for a in record.get("acquisitions", [])]
    span = f" from {dates[0]} to {dates[-1]}" if dates else ""
    coefficients = ", ".join(f"{c:g}" for c in ndci.get("coefficients", []))
    return (
        '<div class="notice" id="synthetic-data"><p><strong>Synthetic data.</strong> '
        "These results come from the embedded sample federation "
        f"(<code>{html.escape(SAMPLE_GENERATOR)}</code>, seed {record.get('seed')}, "
        f"{record.get('n_dates', len(dates))} Sentinel-2-like dates{span}, "
        f"{len(record.get('stations', []))} stations), not from measurements: "
        "the statistics below measure how well this pipeline recovers the truth the sample "
        "was generated from, not how accurate Sentinel-2 is over a real lagoon.</p>"
        "<p>The truth: turbidity (FNU) and chlorophyll-a (µg/L) fields that are analytic "
        "functions of place and time (seasonal, shore-dependent backgrounds with slow plane "
        "waves, plus drifting plumes) on the lagoon of the sample's grid. Water reflectance is "
        "derived from them by inverting the very algorithms the crossing applies: red from "
        f"turbidity through Nechad et al. (2009) with A = {nechad.get('A')} and "
        f"C = {nechad.get('C')}, red-edge from chlorophyll-a through the NDCI polynomial of "
        f"Mishra &amp; Mishra (2012) with coefficients {coefficients}; then Gaussian noise "
        f"(σ = {noise.get('reflectance_sigma')} in reflectance) and clouds are added. "
        "In-situ values are the truth at the sampling time times log-normal noise "
        f"(σ = {noise.get('insitu_ln_sigma')} in ln). Near-perfect agreement (log bias ≈ 1, "
        "high r²) is therefore expected; see <code>truth/generator.json</code> and "
        "<code>truth/truth.nc</code> in the sample directory.</p></div>"
    )


SYNTHETIC_CAPTION = (
    " Synthetic data: generated by the embedded sample federation from its truth model, "
    "not measured."
)

# --- Statistics and rejection reasons, one sentence each -----------------------------------

METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("n", "N", "{:d}", "number of kept matchups (satellite / in-situ pairs) used."),
    (
        "bias",
        "bias",
        "{:.3f}",
        "mean of satellite − in situ, in the parameter's unit; positive when the satellite "
        "reads high.",
    ),
    ("mae", "MAE", "{:.3f}", "mean absolute error: mean of |satellite − in situ|, in the unit."),
    (
        "rmse",
        "RMSE",
        "{:.3f}",
        "root mean square error: √mean((satellite − in situ)²), in the unit; weighs large "
        "errors more than MAE.",
    ),
    (
        "mape",
        "MAPE %",
        "{:.1f}",
        "mean absolute percentage error: 100 × mean(|satellite − in situ| / in situ).",
    ),
    (
        "log_bias",
        "log bias",
        "{:.3f}",
        "10^mean(log10 satellite − log10 in situ): the typical multiplicative bias, a ratio; "
        "1 is unbiased, 1.10 means the satellite reads 10 % high (Seegers et al. 2018).",
    ),
    (
        "log_mae",
        "log MAE",
        "{:.3f}",
        "10^mean|log10 satellite − log10 in situ|: the typical multiplicative error, a "
        "ratio ≥ 1; 1.20 means off by a factor of 1.2 either way.",
    ),
    (
        "mdsa",
        "MdSA %",
        "{:.1f}",
        "median symmetric accuracy: 100 × (e^median|ln(satellite / in situ)| − 1), the "
        "typical percentage error, robust to outliers (Morley et al. 2018).",
    ),
    (
        "sspb",
        "SSPB %",
        "{:.1f}",
        "symmetric signed percentage bias: 100 × sign(M) (e^|M| − 1) with "
        "M = median ln(satellite / in situ); the median bias in percent, positive when the "
        "satellite reads high.",
    ),
    (
        "slope",
        "slope",
        "{:.3f}",
        "slope of the least-squares line satellite = slope × in situ + intercept; 1 on the "
        "1:1 line.",
    ),
    (
        "intercept",
        "intercept",
        "{:.3f}",
        "intercept of that line, in the unit; 0 on the 1:1 line.",
    ),
    (
        "r2",
        "r²",
        "{:.3f}",
        "square of Pearson's correlation: the share of the satellite values' variance the "
        "line explains; it says that both vary together, not that they agree (a satellite "
        "reading twice the in-situ value has r² = 1).",
    ),
)
"""The validation table's columns: key of :func:`recipes.validation.metrics`, header, format,
and the sentence explaining it."""


def reason_rules(protocol: MatchupProtocol) -> dict[str, str]:
    """One sentence per matchup ``reason``: the Bailey & Werdell (2006) rule it stands for.

    Parameters
    ----------
    protocol
        The protocol the matchups were extracted with (box size, time window, thresholds).

    Returns
    -------
    dict
        Sentence by reason, for every value of :data:`recipes.matchup.REASONS`.
    """
    box = f"{protocol.window} × {protocol.window}"
    hours = pd.Timedelta(protocol.max_dt).total_seconds() / 3600
    window = f"±{hours:g} h"
    valid = f"{protocol.min_valid:.0%}"
    return {
        "kept": (
            f"passed every test: an acquisition within {window} of the sample, at least "
            f"{valid} of the {box}-pixel box's water pixels valid, and a coefficient of "
            f"variation of at most {protocol.max_cv:g} after filtering to mean ± "
            f"{protocol.n_sigma:g} σ; its filtered box mean is compared with the sample."
        ),
        "outside": (
            f"the {box}-pixel box centred on the station does not fit inside the satellite "
            "cube (Bailey & Werdell compare a box centred on the station's pixel)."
        ),
        "time": (
            f"no acquisition within {window} of the sample (the time window of Bailey & "
            "Werdell: the water changes between the two measurements)."
        ),
        "land": (
            f"no water pixel in the {box}-pixel box: the station is on land or mislocated "
            "(water is where the product says clear water, SCL 6 or its water flag without "
            "clouds, on at least half of the pixel's clear dates)."
        ),
        "nodata": (
            f"fewer than {valid} of the box's water pixels are clear, mostly because they are "
            "outside the swath (no data); Bailey & Werdell require at least half of the box "
            "valid."
        ),
        "clouds": (
            f"fewer than {valid} of the box's water pixels are clear water: clouds, cirrus or "
            "cloud shadows (the product's own masks) cover the rest; Bailey & Werdell require "
            "at least half of the box valid."
        ),
        "retrieval": (
            f"the box's water pixels are clear but the algorithm gave a value for fewer than "
            f"{valid} of them."
        ),
        "cv": (
            f"the box is not homogeneous: the coefficient of variation (standard deviation / "
            f"mean of the valid values within mean ± {protocol.n_sigma:g} σ) exceeds "
            f"{protocol.max_cv:g}, the threshold of Bailey & Werdell."
        ),
        "no-variable": "the satellite cube has no variable for this in-situ parameter.",
    }


# --- Figures ---------------------------------------------------------------------------------

SCATTER_CAPTION = (
    "Satellite against in situ for every kept matchup, one panel per parameter: the "
    "satellite value is the filtered mean of the box around the station, the in-situ value "
    "the sample. Both axes are logarithmic (labelled decades, minor ticks at 2–9); the "
    "dashed line is 1:1 (points above it are satellite over-estimates)."
)
TIMESERIES_CAPTION = (
    "Turbidity at each station by date (UTC): in-situ samples (circles) and the satellite "
    "box mean of the kept matchups (squares). A sample without a square was rejected (see "
    "the rejection reasons above)."
)


def _maps_caption(date: str, crs: str) -> str:
    return (
        f"Turbidity (top, FNU) and chlorophyll-a (bottom, µg/L): left, the latest date with at "
        f"least {CLEAR_WATER_FRACTION:.0%} of the water clear ({date}); right, the per-pixel "
        f"median over all dates. Axes are easting and northing in km ({crs}); triangles mark "
        "the in-situ stations, with their codes; the black line is the water outline (pixels "
        "classified water on at least half of their clear dates). Colour scale from 0 to the "
        "98th percentile of the median."
    )


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _decade_label(value: float, _position: int) -> str:
    return f"{value:g}"


def _decades(values: pd.Series) -> tuple[float, float]:
    """Whole decades around the positive values (1 to 100 when there are none)."""
    positive = values[values > 0]
    if positive.empty:
        return 1.0, 100.0
    lo = 10.0 ** np.floor(np.log10(float(positive.min())))
    hi = 10.0 ** np.ceil(np.log10(float(positive.max())))
    return (lo, hi * 10) if hi <= lo else (lo, hi)


def scatter_figure(matchups: pd.DataFrame) -> Figure:
    """Satellite against in situ per parameter, log–log, labelled decades, with the 1:1 line.

    Parameters
    ----------
    matchups
        The matchups table (:func:`recipes.matchup.extract`); only kept rows are drawn.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per parameter of :data:`MAPPED`.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plt = _pyplot()
    kept = matchups[matchups["kept"]]
    fig, axes = plt.subplots(1, len(MAPPED), figsize=(10, 4.8))
    for ax, (parameter, label) in zip(axes, MAPPED.items(), strict=True):
        rows = kept[kept["parameter"] == parameter]
        lo, hi = _decades(pd.concat([rows["insitu_value"], rows["sat_mean"]]))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
        ax.scatter(rows["insitu_value"], rows["sat_mean"], s=18, alpha=0.8, label="matchup")
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
        ax.set_xlabel(f"in situ {label}")
        ax.set_ylabel(f"satellite {label}")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(base=10))
            axis.set_major_formatter(FuncFormatter(_decade_label))
            axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10))))
            axis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", lw=0.5, alpha=0.5)
        ax.set_title(f"{parameter} (n = {len(rows)})")
        ax.legend(loc="upper left")
    return fig


def timeseries_figure(matchups: pd.DataFrame) -> Figure:
    """Turbidity per station over time: in-situ samples and the kept satellite matchups.

    Parameters
    ----------
    matchups
        The matchups table.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per station.
    """
    plt = _pyplot()
    stations = sorted(matchups["station_id"].unique())
    fig, axes = plt.subplots(
        len(stations), 1, figsize=(10, 1.8 * len(stations) + 0.6), sharex=True, squeeze=False
    )
    for ax, station in zip(axes[:, 0], stations, strict=True):
        rows = matchups[
            (matchups["station_id"] == station) & (matchups["parameter"] == "turbidity")
        ]
        ax.plot(rows["time"], rows["insitu_value"], "o", ms=4, label="in situ")
        ok = rows[rows["kept"]]
        ax.plot(ok["sat_time"], ok["sat_mean"], "s", ms=4, label="Sentinel-2 (kept)")
        ax.set_ylabel(f"{station}\nFNU", fontsize=8)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[0, 0].set_title("Turbidity: satellite vs in situ by station")
    axes[-1, 0].set_xlabel("date (UTC)")
    return fig


def _km_axis(ax: Axes, crs_name: str) -> None:
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):  # whole km, written in full: no "1e6", no offset
        axis.set_major_locator(MaxNLocator(steps=[1, 2, 5, 10], integer=True))
        formatter = ScalarFormatter(useOffset=False)
        formatter.set_scientific(False)
        axis.set_major_formatter(formatter)
    ax.set_xlabel(f"easting (km, {crs_name})")
    ax.set_ylabel("northing (km)")


def _water_outline(cube: xr.Dataset) -> np.ndarray | None:
    """Share of each pixel's clear dates that are clear water (NaN where never clear)."""
    from recipes.matchup import CLEAR_LAND_STATE, CLEAR_WATER_STATE, surface_states

    state = surface_states(cube)
    if state is None:
        return None
    votes = (state == CLEAR_WATER_STATE).sum("time")
    clear = (state >= CLEAR_LAND_STATE).sum("time")
    share = (votes / clear.where(clear > 0)).compute()
    return np.asarray(share.to_numpy(), dtype="float64")


def _stations(matchups: pd.DataFrame, crs: Any) -> pd.DataFrame:
    """One row per station with its position in the cube's CRS, in km."""
    from pyproj import Transformer

    stations = matchups.groupby("station_id")[["lon", "lat"]].first().reset_index()
    transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = transformer.transform(stations["lon"].to_numpy(), stations["lat"].to_numpy())
    return stations.assign(x_km=np.asarray(x) / 1000, y_km=np.asarray(y) / 1000)


def map_figure(cube: xr.Dataset, matchups: pd.DataFrame) -> Figure:
    """Turbidity and chlorophyll-a maps (latest clear date, median) in km, with the stations.

    Parameters
    ----------
    cube
        The crossing's cube (``time, y, x`` in a projected CRS in metres, with a CRS readable
        by rioxarray, the mapped variables and ``scl`` or the flags of ``datacubes.load``).
    matchups
        The matchups table (station positions).

    Returns
    -------
    matplotlib.figure.Figure
        Four map axes, labelled ``map:<variable>:<latest|median>``, and their colour bars.
    """
    import matplotlib.patheffects as effects

    plt = _pyplot()
    crs = cube.rio.crs
    epsg = crs.to_epsg() if crs is not None else None
    crs_name = f"EPSG:{epsg}" if epsg else "projected CRS"
    x = cube["x"].to_numpy() / 1000
    y = cube["y"].to_numpy() / 1000
    dx = float(x[1] - x[0]) if x.size > 1 else 0.02
    dy = float(y[1] - y[0]) if y.size > 1 else -0.02
    extent = (x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2)
    origin = "upper" if dy < 0 else "lower"
    if origin == "lower":
        extent = (x[0] - dx / 2, x[-1] + dx / 2, y[0] - dy / 2, y[-1] + dy / 2)
    outline = _water_outline(cube)
    stations = _stations(matchups, crs) if crs is not None else None

    t = latest_clear_index(cube)
    fig, axes = plt.subplots(2, 2, figsize=(11, 10))
    halo = [effects.withStroke(linewidth=2.5, foreground="white")]
    for row, (variable, label) in enumerate(MAPPED.items()):
        latest = cube[variable].isel(time=t).to_numpy()
        median = _median(cube[variable]).to_numpy()
        vmax = float(np.nanpercentile(median, 98)) if np.isfinite(median).any() else 1.0
        for col, (kind, title, layer) in enumerate(
            (("latest", "latest clear date", latest), ("median", "median composite", median))
        ):
            ax = axes[row, col]
            ax.set_label(f"map:{variable}:{kind}")
            image = ax.imshow(
                layer, extent=extent, origin=origin, vmin=0, vmax=vmax, cmap="viridis"
            )
            fig.colorbar(image, ax=ax, label=label, shrink=0.8)
            if outline is not None:
                ax.contour(
                    x, y, np.nan_to_num(outline, nan=0.0), levels=[0.5], colors="black",
                    linewidths=0.8,
                )  # fmt: skip
            if stations is not None:
                ax.plot(stations["x_km"], stations["y_km"], "^", color="red", mec="white", ms=7)
                for station in stations.itertuples():
                    ax.annotate(
                        station.station_id, (station.x_km, station.y_km), xytext=(5, 4),
                        textcoords="offset points", fontsize=7, path_effects=halo,
                    )  # fmt: skip
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(min(extent[2], extent[3]), max(extent[2], extent[3]))
            ax.set_aspect("equal")
            ax.set_title(f"{variable}: {title}")
            _km_axis(ax, crs_name)
    return fig


def write_figures(cube: xr.Dataset, matchups: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Draw the matchup scatter plots, station time series and maps as PNG files."""
    return {
        "figure_scatter": _save(scatter_figure(matchups), out / "matchup_scatter.png"),
        "figure_timeseries": _save(timeseries_figure(matchups), out / "station_timeseries.png"),
        "figure_maps": _save(map_figure(cube, matchups), out / "maps.png"),
    }


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --- The HTML page ---------------------------------------------------------------------------


def _metric_cell(value: Any, fmt: str) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    if not np.isfinite(number):
        return "–"
    return fmt.format(int(number) if fmt == "{:d}" else number)


_STYLE = """<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}
td,th{border:1px solid #999;padding:3px 6px;text-align:right}td.rule{text-align:left}
img{max-width:100%}figcaption{font-size:90%;color:#333;margin-top:4px}
.notice{border:2px solid #c60;background:#fff4e5;padding:4px 12px;margin:12px 0}
dt{font-weight:bold;float:left;clear:left;width:7em}dd{margin-left:8em;margin-bottom:4px}</style></head>"""


def _head(title: str) -> str:
    """The reports' ``<html>`` opening: title and style sheet."""
    return (
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
        + _STYLE
    )


def _figures_and_outputs(
    files: Mapping[str, Path], captions: Mapping[str, str], tail: str
) -> tuple[str, str]:
    """The ``<figure>`` of each captioned file written, and the list of every output."""
    figures = "".join(
        f'<figure id="{k.replace("_", "-")}"><img src="{html.escape(files[k].name)}" '
        f'alt="{html.escape(k.replace("figure_", ""))}">'
        f"<figcaption>{html.escape(captions[k] + tail)}</figcaption></figure>"
        for k in captions
        if k in files
    )
    outputs = "".join(
        f"<li><code>{html.escape(p.name)}</code> ({html.escape(k)})</li>"
        for k, p in sorted(files.items())
    )
    return figures, outputs


def _metric_rows(by_row: Mapping[str, Mapping[str, Any]]) -> tuple[str, str, str]:
    """The metrics table's header, its rows (one per key of ``by_row``) and the notes."""
    header = "".join(f"<th>{html.escape(h)}</th>" for _, h, _, _ in METRICS)
    rows = []
    for name, m in by_row.items():
        cells = "".join(f"<td>{_metric_cell(m.get(k), fmt)}</td>" for k, _, fmt, _ in METRICS)
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    notes = "".join(
        f'<dt data-metric="{k}">{html.escape(h)}</dt><dd>{html.escape(text)}</dd>'
        for k, h, _, text in METRICS
    )
    return header, "".join(rows), notes


def _reason_rows(matchups: pd.DataFrame, rules: Mapping[str, str]) -> str:
    """One row per rejection reason found (in the protocol's order) with its rule."""
    counts = matchups["reason"].value_counts()
    order = [r for r in REASONS if r in counts.index] + [
        r for r in counts.index if r not in REASONS
    ]
    counts = counts.reindex(order)
    return "".join(
        f'<tr data-reason="{html.escape(str(reason))}"><th>{html.escape(str(reason))}</th>'
        f"<td>{int(count)}</td><td class=rule>{html.escape(rules.get(str(reason), ''))}</td></tr>"
        for reason, count in counts.items()
    )


def write_html(
    out: Path,
    report: dict[str, Any],
    matchups: pd.DataFrame,
    files: dict[str, Path],
    federation: str,
    *,
    sample: Mapping[str, Any] | None = None,
    protocol: MatchupProtocol | None = None,
    map_date: str | None = None,
    crs: str | None = None,
) -> Path:
    """Write ``report.html`` referencing the PNG figures by relative path.

    Parameters
    ----------
    out
        Output directory.
    report
        The validation document (``validation.json``).
    matchups
        The matchups table.
    files
        Written files by role (the figures are ``figure_scatter``, ``figure_timeseries``,
        ``figure_maps``).
    federation
        The federated search's report.
    sample
        The sample generator's record (:func:`sample_record`) when the data are the embedded
        sample federation: the report then says so at the top and in every caption.
    protocol
        The matchup protocol used (default: Bailey & Werdell's defaults).
    map_date, crs
        Date of the "latest clear" maps and the cube's CRS, for the maps' caption.

    Returns
    -------
    pathlib.Path
        Path of ``report.html``.
    """
    protocol = protocol or MatchupProtocol()
    synthetic = _synthetic_notice(sample) if sample is not None else ""
    caption_tail = SYNTHETIC_CAPTION if sample is not None else ""

    header, rows, metric_notes = _metric_rows({p: report[p] for p in MAPPED})
    reason_rows = _reason_rows(matchups, reason_rules(protocol))
    nechad = report["recalibration"]["nechad"]
    ndci = report["recalibration"]["ndci"]
    captions = {
        "figure_scatter": SCATTER_CAPTION,
        "figure_timeseries": TIMESERIES_CAPTION,
        "figure_maps": _maps_caption(map_date or "see the file names", crs or "projected CRS"),
    }
    figures, outputs = _figures_and_outputs(files, captions, caption_tail)
    hours = pd.Timedelta(protocol.max_dt).total_seconds() / 3600
    document = f"""<!DOCTYPE html>
{_head("Water-quality crossing report")}
<body>
<h1>Water-quality crossing: Sentinel-2 vs in situ</h1>
{synthetic}
<h2>Federated search</h2><pre>{html.escape(federation)}</pre>
<h2>Matchups</h2>
<p>Protocol: Bailey &amp; Werdell (2006): for each in-situ sample, every acquisition within
±{hours:g} h is a candidate; a {protocol.window} × {protocol.window}-pixel box centred on the
station is read and judged by the tests below, in this order. {len(matchups)} candidates.</p>
<table id="reasons"><tr><th>reason</th><th>candidates</th><th>rule</th></tr>
{reason_rows}</table>
<h2>Validation (kept matchups)</h2>
<table id="metrics"><tr><th>parameter</th>{header}</tr>
{rows}</table>
<p>What each column says (satellite = the filtered box mean, in situ = the sample):</p>
<dl id="metric-notes">{metric_notes}</dl>
<h2>Regional recalibration</h2>
<p>Nechad (2009): A = {nechad["A"]:.2f} ± {nechad["A_se"]:.2f} FNU (published 282.95), C = {nechad["C"]:.4f}, n = {nechad["n"]}.</p>
<p>NDCI polynomial: a = {", ".join(f"{a:.3f}" for a in ndci["a"])} (published 14.039, 86.115, 194.325), n = {ndci["n"]}.</p>
<h2>Figures</h2>{figures}
<h2>Outputs</h2><ul>{outputs}</ul>
</body></html>
"""
    path = out / "report.html"
    path.write_text(document, encoding="utf-8")
    return path


# --- The ocean-colour crossing (gridded product against in situ and Sentinel-2) -------------

INTERCOMPARISON_CAPTION = (
    "The gridded product against the Sentinel-2 retrieval averaged over each of its cells "
    "(the cells with at least half of their Sentinel-2 pixels valid), on the days of both, one "
    "panel per parameter; logarithmic axes, the dashed line is 1:1."
)
GRIDDED_SCATTER_CAPTION = (
    "Gridded product against in situ for every kept matchup, one panel per parameter: the "
    "product value is the filtered mean of the box of cells around the station. Both axes are "
    "logarithmic; the dashed line is 1:1."
)


def gridded_reason_rules(protocol: MatchupProtocol) -> dict[str, str]:
    """One sentence per matchup ``reason`` of :func:`recipes.matchup.extract_gridded`."""
    box = f"{protocol.window} × {protocol.window}"
    hours = pd.Timedelta(protocol.max_dt).total_seconds() / 3600
    valid = f"{protocol.min_valid:.0%}"
    rules = reason_rules(protocol)
    return rules | {
        "kept": (
            f"passed every test: a product time within ±{hours:g} h of the sample, at least "
            f"{valid} of the {box}-cell box's water cells with a value, and a coefficient of "
            f"variation of at most {protocol.max_cv:g} after filtering to mean ± "
            f"{protocol.n_sigma:g} σ."
        ),
        "time": f"no product time within ±{hours:g} h of the sample.",
        "land": (
            f"no water cell in the {box}-cell box: the product never has a value there (land "
            "or a permanent mask), the station is on land or mislocated."
        ),
        "clouds": (
            f"fewer than {valid} of the box's water cells have a value that day: the product's "
            "gaps (clouds, glint, failed retrievals)."
        ),
    }


def intercomparison_figure(table: pd.DataFrame, names: Mapping[str, str]) -> Figure:
    """The product against the aggregated retrieval, per variable, log–log with the 1:1 line.

    Parameters
    ----------
    table
        The pairs of :func:`recipes.intercomparison.compare`.
    names
        ``{product variable: axis label}``, one panel each.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(10, 4.8), squeeze=False)
    for ax, (variable, label) in zip(axes[0], names.items(), strict=True):
        rows = table[table["variable"] == variable]
        lo, hi = _decades(pd.concat([rows["product"], rows["aggregated"]]))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
        ax.scatter(rows["aggregated"], rows["product"], s=4, alpha=0.4, label="cell, day")
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
        ax.set_xlabel(f"Sentinel-2 on the product's grid, {label}")
        ax.set_ylabel(f"gridded product, {label}")
        ax.set_title(f"{variable} (n = {len(rows)})")
        ax.legend(loc="upper left")
    return fig


def write_ocean_colour_html(
    out: Path,
    report: dict[str, Any],
    matchups: pd.DataFrame,
    files: dict[str, Path],
    federation: str,
    *,
    sample: Mapping[str, Any] | None = None,
    protocol: MatchupProtocol | None = None,
) -> Path:
    """Write ``report.html`` of the ocean-colour crossing (figures by relative path)."""
    protocol = protocol or MatchupProtocol(window=3, max_dt="12h")
    synthetic = _synthetic_notice(sample) if sample is not None else ""
    tail = SYNTHETIC_CAPTION if sample is not None else ""
    header, rows, notes = _metric_rows({p: report[p] for p in MAPPED if p in report})
    reason_rows = _reason_rows(matchups, gridded_reason_rules(protocol))
    compared = report.get("intercomparison", {})
    _, compared_rows, _ = _metric_rows(compared)
    captions = {
        "figure_scatter": GRIDDED_SCATTER_CAPTION,
        "figure_intercomparison": INTERCOMPARISON_CAPTION,
    }
    figures, outputs = _figures_and_outputs(files, captions, tail)
    hours = pd.Timedelta(protocol.max_dt).total_seconds() / 3600
    document = f"""<!DOCTYPE html>
{_head("Ocean-colour crossing report")}
<body>
<h1>Ocean colour and in situ: a gridded product vs stations and Sentinel-2</h1>
{synthetic}
<h2>Federated search</h2><pre>{html.escape(federation)}</pre>
<h2>Matchups with the stations</h2>
<p>Protocol: Bailey &amp; Werdell (2006) on a grid: for each in-situ sample, every product
time within ±{hours:g} h is a candidate; a {protocol.window} × {protocol.window}-cell box centred
on the station's cell is judged by the tests below, in this order. {len(matchups)} candidates.</p>
<table id="reasons"><tr><th>reason</th><th>candidates</th><th>rule</th></tr>
{reason_rows}</table>
<h2>Validation against the stations (kept matchups)</h2>
<table id="metrics"><tr><th>parameter</th>{header}</tr>
{rows}</table>
<h2>Inter-comparison with Sentinel-2</h2>
<p>The Sentinel-2 retrieval averaged over each product cell, on the same day (the product
as "satellite", Sentinel-2 as reference).</p>
<table id="intercomparison"><tr><th>variable</th>{header}</tr>
{compared_rows}</table>
<p>What each column says:</p>
<dl id="metric-notes">{notes}</dl>
<h2>Figures</h2>{figures}
<h2>Outputs</h2><ul>{outputs}</ul>
</body></html>
"""
    path = out / "report.html"
    path.write_text(document, encoding="utf-8")
    return path
