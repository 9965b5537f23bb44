"""Maps, figures and the HTML report of the water-quality crossing (offline-readable)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

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


def write_maps(cube: xr.Dataset, out: Path) -> dict[str, Path]:
    """Write turbidity and chl-a maps as COG: latest clear date and median composite."""
    import rioxarray  # noqa: F401 - .rio accessor

    files: dict[str, Path] = {}
    t = latest_clear_index(cube)
    date = pd.Timestamp(cube["time"].values[t]).strftime("%Y-%m-%d")
    for variable in MAPPED:
        latest = cube[variable].isel(time=t).astype("float32")
        median = _median(cube[variable])
        for label, layer in ((f"latest_{date}", latest), ("median", median)):
            path = out / f"{variable}_{label}.tif"
            layer = layer.drop_vars([c for c in layer.coords if c not in ("x", "y", "spatial_ref")])
            layer = layer.rio.write_crs(cube.rio.crs).rio.write_nodata(np.nan, encoded=False)
            layer.attrs = {
                "units": cube[variable].attrs.get("units", ""),
                "long_name": MAPPED[variable],
            }
            layer.rio.to_raster(path, driver="COG", compress="DEFLATE")
            files[f"{variable}_{label.split('_')[0]}"] = path
    return files


def _median(values: xr.DataArray) -> xr.DataArray:
    """Median over time; land pixels are all-NaN and stay NaN without a warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        return values.median("time").astype("float32").compute()


def write_figures(cube: xr.Dataset, matchups: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Draw the matchup scatter plots, station time series and maps as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    files: dict[str, Path] = {}
    kept = matchups[matchups["kept"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (parameter, label) in zip(axes, MAPPED.items(), strict=True):
        rows = kept[kept["parameter"] == parameter]
        ax.scatter(rows["insitu_value"], rows["sat_mean"], s=18, alpha=0.8)
        values = pd.concat([rows["insitu_value"], rows["sat_mean"]])
        lo, hi = (values.min() * 0.8, values.max() * 1.2) if len(values) else (0.1, 10)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
        ax.set(
            xscale="log",
            yscale="log",
            xlim=(lo, hi),
            ylim=(lo, hi),
            xlabel=f"in situ {label}",
            ylabel=f"satellite {label}",
        )
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers on log axes, no crowded minor labels
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{parameter} (n={len(rows)})")
        ax.legend(loc="upper left")
    files["figure_scatter"] = _save(fig, out / "matchup_scatter.png")

    stations = sorted(matchups["station_id"].unique())
    fig, axes = plt.subplots(
        len(stations), 1, figsize=(10, 1.8 * len(stations)), sharex=True, squeeze=False
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
    files["figure_timeseries"] = _save(fig, out / "station_timeseries.png")

    t = latest_clear_index(cube)
    fig, axes = plt.subplots(2, 2, figsize=(10, 9))
    for row, (variable, label) in enumerate(MAPPED.items()):
        latest = cube[variable].isel(time=t)
        median = _median(cube[variable])
        vmax = float(np.nanpercentile(median.to_numpy(), 98)) if np.isfinite(median).any() else 1.0
        for col, (title, layer) in enumerate(
            (("latest clear date", latest), ("median composite", median))
        ):
            layer.plot.imshow(
                ax=axes[row, col], vmin=0, vmax=vmax, cmap="viridis", cbar_kwargs={"label": label}
            )
            axes[row, col].set_title(f"{variable}: {title}")
            axes[row, col].set_aspect("equal")
    files["figure_maps"] = _save(fig, out / "maps.png")
    return files


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_html(
    out: Path,
    report: dict[str, Any],
    matchups: pd.DataFrame,
    files: dict[str, Path],
    federation: str,
) -> Path:
    """Write ``report.html`` referencing the PNG figures by relative path."""
    rows = []
    for parameter in MAPPED:
        m = report[parameter]
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    parameter,
                    m["n"],
                    f"{m['bias']:.3f}",
                    f"{m['mae']:.3f}",
                    f"{m['rmse']:.3f}",
                    f"{m['log_bias']:.3f}",
                    f"{m['log_mae']:.3f}",
                    f"{m['mdsa']:.1f}",
                    f"{m['sspb']:.1f}",
                    f"{m['slope']:.3f}",
                    f"{m['intercept']:.3f}",
                    f"{m['r2']:.3f}",
                )
            )
            + "</tr>"
        )
    nechad = report["recalibration"]["nechad"]
    ndci = report["recalibration"]["ndci"]
    reasons = ", ".join(f"{k}: {v}" for k, v in report["reasons"].items())
    figures = "".join(
        f'<figure><img src="{files[k].name}" alt="{k}"><figcaption>{k.replace("figure_", "")}</figcaption></figure>'
        for k in ("figure_scatter", "figure_timeseries", "figure_maps")
    )
    outputs = "".join(
        f"<li><code>{html.escape(p.name)}</code> ({html.escape(k)})</li>"
        for k, p in sorted(files.items())
    )
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Water-quality crossing report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:3px 6px;text-align:right}}img{{max-width:100%}}</style></head>
<body>
<h1>Water-quality crossing: Sentinel-2 vs in situ</h1>
<h2>Federated search</h2><pre>{html.escape(federation)}</pre>
<h2>Matchups</h2>
<p>Protocol: Bailey &amp; Werdell (2006). {len(matchups)} candidates; {html.escape(reasons)}.</p>
<h2>Validation (kept matchups)</h2>
<table><tr><th>parameter</th><th>N</th><th>bias</th><th>MAE</th><th>RMSE</th><th>log bias</th>
<th>log MAE</th><th>MdSA %</th><th>SSPB %</th><th>slope</th><th>intercept</th><th>r²</th></tr>
{"".join(rows)}</table>
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
