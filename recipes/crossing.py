"""The water-quality crossing: Sentinel-2 against in-situ stations, end to end.

:func:`water_quality_crossing` is the lab's flagship job (``earthlab demo`` runs it on the
embedded sample federation):

1. search the satellite and in-situ collections across all data centres;
2. load the Sentinel-2 cube lazily, mask clouds, add water-quality products;
3. write the cube as Zarr and reopen it (everything after reads the written cube);
4. read the in-situ tables, extract matchups (Bailey & Werdell 2006);
5. validation statistics per parameter, regional recalibration of Nechad and NDCI;
6. turbidity and chlorophyll-a maps as COG (latest clear date and median composite),
   ``matchups.parquet``, ``validation.json`` and ``report.html`` with PNG figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

import datacubes
import lab
from recipes import insitu as insitu_readers
from recipes import matchup, validation
from recipes import water_quality as wq

__all__ = ["CrossingResult", "ocean_colour_crossing", "water_quality_crossing"]

SATELLITE_COLLECTION = "sentinel-2-l2a"
INSITU_COLLECTION = "insitu-water-quality"
BANDS = ("green", "red", "rededge1", "nir", "swir16")
# clouds and water from the product's own quality band through the mask registry: the same
# crossing on Sen2Cor (SCL), THEIA MAJA (CLM/MG2/EDG) or Landsat (QA_PIXEL) items
FLAG_VARIABLES = tuple(f"flag_{name}" for name in wq.WATER_FLAGS)
PRODUCTS = ("turbidity", "chlorophyll_a", "spm", "ndci", "ndti_turbidity")
PARAMETERS = {"turbidity": "turbidity", "chlorophyll_a": "chlorophyll_a"}
# Band-level matchups feed the recalibration: red reflectance for Nechad, NDCI for chl-a.
CALIBRATION_VARIABLES = {"turbidity": "red", "chlorophyll_a": "ndci"}
CLEAR_WATER_FRACTION = 0.9
OCEAN_COLOUR_COLLECTION = "ocean-colour-daily"
# the sample product's variables by in-situ parameter (other products: by standard name)
OCEAN_COLOUR_VARIABLES = {"turbidity": "tur", "chlorophyll_a": "chl"}


@dataclass(frozen=True)
class CrossingResult:
    """What :func:`water_quality_crossing` or :func:`ocean_colour_crossing` wrote and computed."""

    out: Path
    """Output directory."""
    files: dict[str, Path]
    """Written files by role (``cube``, ``matchups``, ``validation``, ``report``, maps...)."""
    validation: dict[str, Any]
    """Content of ``validation.json``."""
    matchups: pd.DataFrame
    """Every matchup candidate with its reason."""
    federation: dict[str, str]
    """Status of each centre in the satellite (or gridded product) search."""
    seconds: float
    """Wall time of the whole job."""
    items: tuple[Any, ...] = ()
    """The items read: satellite scenes or product days, then in-situ stations, then any
    Sentinel-2 scenes compared (pystac Items)."""

    def __repr__(self) -> str:
        kept = int(self.matchups["kept"].sum())
        lines = [f"CrossingResult in {self.out} ({self.seconds:.0f} s, {kept} matchups kept)"]
        for parameter in PARAMETERS:
            m = self.validation.get(parameter, {})
            if m:
                lines.append(
                    f"  {parameter:<14} n={m['n']:<4} log_bias={m['log_bias']:.3f} "
                    f"MdSA={m['mdsa']:.1f}% r2={m['r2']:.3f}"
                )
        return "\n".join(lines)


def water_quality_crossing(
    out: str | os.PathLike[str],
    *,
    centres: lab.CentreSet | str | os.PathLike[str] | None = None,
    bbox: Sequence[float] | None = None,
    datetime: str | None = None,
    collection: str = SATELLITE_COLLECTION,
    max_dt: str = "3h",
    window: int = 5,
    progress: Callable[[str], None] | None = print,
) -> CrossingResult:
    """Cross Sentinel-2 water quality with in-situ stations and write every product.

    Parameters
    ----------
    out
        Output directory (created; existing outputs of a previous run are replaced).
    centres
        Centres file or set (default: ``$EARTHLAB_CENTRES`` or the embedded sample).
    bbox, datetime
        Restrict both searches (WGS84 degrees; RFC 3339 interval).
    collection
        The Sentinel-2 L2A collection: ``sentinel-2-l2a`` (Sen2Cor, scene classification) or
        THEIA's ``sentinel2-l2a-theia`` (MAJA, CLM/MG2 bit masks), or any product with a
        registered mask. Clouds and water come from the product's own quality band through
        ``datacubes.load(mask="clouds", flags=["water", "clouds", "nodata"])``.
    max_dt, window
        Matchup protocol time window and box size (see :func:`recipes.matchup.extract`).
    progress
        Called with one line per step (default ``print``; None for silence).

    Returns
    -------
    CrossingResult
        Paths of the outputs, the validation figures and the matchups table.

    Raises
    ------
    lab.NoItemsError
        If a search finds no satellite scene or no in-situ station.
    """
    started = time.monotonic()
    say: Callable[[str], None] = progress or (lambda _: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    say("1/6 searching the data centres")
    federation = lab.catalog(centres)
    scenes = federation.search(collections=collection, bbox=bbox, datetime=datetime)
    stations = federation.search(collections=INSITU_COLLECTION, bbox=bbox, datetime=datetime)
    _found(("satellite scenes", scenes), ("in-situ stations", stations))
    say(f"    {len(scenes)} scenes, {len(stations)} stations\n" + _indent(scenes.describe()))

    say("2/6 loading the cube (lazy), masking clouds, computing water-quality products")
    cube = _water_quality_cube(scenes, bbox)
    products = cube[[*PRODUCTS, "red", *FLAG_VARIABLES, "water"]]

    say("3/6 writing the cube as Zarr")
    cube_path = out / "cube.zarr"
    _write_zarr(products, cube_path)
    files["cube"] = cube_path
    written = xr.open_zarr(cube_path, consolidated=False)
    written = written.rio.write_crs(cube.rio.crs)

    # the rest reads the cube just written here: local threads, even when a Dask cluster
    # (elsewhere: a gateway next to the data) computed it
    with dask.config.set(scheduler="threads"):
        return _cross(
            out, files, written, stations, federation, scenes, window, max_dt, say, started
        )


def _cross(
    out: Path,
    files: dict[str, Path],
    written: xr.Dataset,
    stations: lab.SearchResult,
    federation: lab.FederatedCatalog,
    scenes: lab.SearchResult,
    window: int,
    max_dt: str,
    say: Callable[[str], None],
    started: float,
) -> CrossingResult:
    """Steps 4 to 6 of :func:`water_quality_crossing`, on the written cube."""
    say("4/6 reading in-situ data and extracting matchups")
    table = _read_insitu(stations, federation.centres)
    products_mu = matchup.extract(
        written, table, window=window, max_dt=max_dt, variables=PARAMETERS
    )
    bands_mu = matchup.extract(
        written, table, window=window, max_dt=max_dt, variables=CALIBRATION_VARIABLES
    )
    matchups = _join_calibration(products_mu, bands_mu)
    files["matchups"] = out / "matchups.parquet"
    matchups.to_parquet(files["matchups"], index=False)
    say("    " + ", ".join(f"{k}: {v}" for k, v in matchups["reason"].value_counts().items()))

    say("5/6 validation statistics and regional recalibration")
    report = _validate(matchups)
    files["validation"] = out / "validation.json"
    files["validation"].write_text(
        json.dumps(_strict(report), indent=2, default=_json_default, allow_nan=False) + "\n"
    )

    say("6/6 maps (COG) and report")
    from recipes import _report

    files |= _report.write_maps(written, out)
    files |= _report.write_figures(written, matchups, out)
    files["report"] = _report.write_html(
        out,
        report,
        matchups,
        files,
        scenes.describe(),
        sample=_report.sample_record(federation.centres),
        protocol=matchup.MatchupProtocol(window=window, max_dt=max_dt),
        map_date=_report.latest_clear_date(written),
        crs=str(written.rio.crs),
    )
    seconds = time.monotonic() - started
    say(f"done in {seconds:.0f} s: open {files['report']}")
    federation_status = {name: r.status for name, r in scenes.federation.items()}
    return CrossingResult(
        out, files, report, matchups, federation_status, seconds, (*scenes, *stations)
    )


def ocean_colour_crossing(
    out: str | os.PathLike[str],
    *,
    centres: lab.CentreSet | str | os.PathLike[str] | None = None,
    bbox: Sequence[float] | None = None,
    datetime: str | None = None,
    collection: str = OCEAN_COLOUR_COLLECTION,
    max_dt: str = "12h",
    window: int = 3,
    compare_sentinel2: bool = True,
    progress: Callable[[str], None] | None = print,
) -> CrossingResult:
    """Cross a gridded ocean-colour product with the in-situ stations and with Sentinel-2.

    1. search the product, the stations and (``compare_sentinel2``) the Sentinel-2 scenes;
    2. open the product lazily: through its collection's kerchunk ``references`` asset when
       it has one (one read, whatever the number of daily files), else item by item;
    3. matchups with the stations (:func:`recipes.matchup.extract_gridded`: a box of grid
       cells, a time window of ``max_dt``) and their validation statistics;
    4. the Sentinel-2 retrieval (cloud-masked, Nechad and NDCI) averaged over the product's
       cells and compared with it on the same days (:mod:`recipes.intercomparison`);
    5. ``matchups.parquet``, ``intercomparison.parquet``, ``validation.json``, figures and
       ``report.html``.

    Parameters
    ----------
    out
        Output directory (created; outputs of a previous run are replaced).
    centres
        Centres file or set (default: ``$EARTHLAB_CENTRES`` or the embedded sample).
    bbox, datetime
        Restrict the searches (WGS84 degrees; RFC 3339 interval); default: everything the
        product covers.
    collection
        The gridded product's collection id.
    max_dt, window
        Matchup time window and box size in grid cells.
    compare_sentinel2
        Also compare the product with Sentinel-2 on its grid (step 4).
    progress
        Called with one line per step (default ``print``; None for silence).

    Returns
    -------
    CrossingResult
        Paths of the outputs, the validation figures (``report["intercomparison"]`` by
        product variable) and the matchups table.

    Raises
    ------
    lab.NoItemsError
        If a search finds no product day or no in-situ station.
    """
    from recipes import _report, intercomparison

    started = time.monotonic()
    say: Callable[[str], None] = progress or (lambda _: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    steps = 5 if compare_sentinel2 else 4

    say(f"1/{steps} searching the data centres")
    federation = lab.catalog(centres)
    days = federation.search(collections=collection, bbox=bbox, datetime=datetime)
    stations = federation.search(collections=INSITU_COLLECTION, bbox=bbox, datetime=datetime)
    _found(("gridded product days", days), ("in-situ stations", stations))
    say(f"    {len(days)} days of {collection}, {len(stations)} stations")

    say(f"2/{steps} opening the gridded product (lazy)")
    described = [c for c in federation.collections(q=collection) if c.id == collection]
    source: Any = days
    if described and "references" in described[0].assets:
        source = described[0]
        say("    through the collection's kerchunk references (one file read)")
    span = datetime or _span(days)
    product = datacubes.load_gridded(source, bbox=bbox, datetime=span)

    say(f"3/{steps} reading in-situ data and extracting matchups")
    table = _read_insitu(stations, federation.centres)
    # samples beyond the product's days (± max_dt) cannot match: left out, and counted
    times = pd.DatetimeIndex(product["time"].to_numpy())
    window_dt = pd.Timedelta(max_dt)
    sampled = pd.to_datetime(table["time"], utc=True).dt.tz_localize(None)
    within = (sampled >= times.min() - window_dt) & (sampled <= times.max() + window_dt)
    outside_period = int((~within).sum())
    table = table[within.to_numpy()].reset_index(drop=True)
    if table.empty:
        raise lab.NoItemsError(
            f"no in-situ sample within the product's days ({times.min():%Y-%m-%d} to "
            f"{times.max():%Y-%m-%d}); widen datetime= or choose other stations"
        )
    say(f"    {len(table)} samples in the product's days, {outside_period} outside them")
    variables = {k: v for k, v in OCEAN_COLOUR_VARIABLES.items() if v in product.data_vars}
    with dask.config.set(scheduler="threads"):
        matchups = matchup.extract_gridded(
            product, table, window=window, max_dt=max_dt, variables=variables or None
        )
    files["matchups"] = out / "matchups.parquet"
    matchups.to_parquet(files["matchups"], index=False)
    say("    " + ", ".join(f"{k}: {v}" for k, v in matchups["reason"].value_counts().items()))
    kept = matchups[matchups["kept"]]
    report: dict[str, Any] = {
        "protocol": "Bailey & Werdell (2006), on the product's grid",
        "n_candidates": len(matchups),
        "n_samples_outside_product_days": outside_period,
        "reasons": {str(k): int(v) for k, v in matchups["reason"].value_counts().items()},
    }
    for parameter in PARAMETERS:
        rows = kept[kept["parameter"] == parameter]
        report[parameter] = validation.metrics(
            rows["sat_mean"].to_numpy(), rows["insitu_value"].to_numpy()
        )
    files["figure_scatter"] = _report._save(
        _report.scatter_figure(matchups), out / "matchup_scatter.png"
    )

    scenes = None
    if compare_sentinel2:
        say(f"4/{steps} Sentinel-2 on the product's grid, day by day")
        scenes = federation.search(collections=SATELLITE_COLLECTION, bbox=bbox, datetime=span)
        if len(scenes) == 0:
            say("    no Sentinel-2 scene over the product's days: no inter-comparison")
        else:
            cube = _water_quality_cube(scenes, bbox)
            pairs = {v: p for p, v in variables.items()}
            with dask.config.set(scheduler="threads"):
                fine = intercomparison.aggregate_to_grid(cube, product, list(pairs.values()))
                compared, stats = intercomparison.compare(product, fine, pairs)
            files["intercomparison"] = out / "intercomparison.parquet"
            compared.to_parquet(files["intercomparison"], index=False)
            report["intercomparison"] = stats
            labels = {v: _report.MAPPED[p] for p, v in variables.items()}
            files["figure_intercomparison"] = _report._save(
                _report.intercomparison_figure(compared, labels), out / "intercomparison.png"
            )
            say(f"    {len(compared)} cell-days compared, {len(scenes)} scenes")

    say(f"{steps}/{steps} validation.json and report")
    files["validation"] = out / "validation.json"
    files["validation"].write_text(
        json.dumps(_strict(report), indent=2, default=_json_default, allow_nan=False) + "\n"
    )
    searched = days.describe() + ("\n" + scenes.describe() if scenes is not None else "")
    files["report"] = _report.write_ocean_colour_html(
        out,
        report,
        matchups,
        files,
        searched,
        sample=_report.sample_record(federation.centres),
        protocol=matchup.MatchupProtocol(window=window, max_dt=max_dt),
    )
    seconds = time.monotonic() - started
    say(f"done in {seconds:.0f} s: open {files['report']}")
    status = {name: r.status for name, r in days.federation.items()}
    return CrossingResult(
        out, files, report, matchups, status, seconds, (*days, *stations, *(scenes or ()))
    )


def _water_quality_cube(scenes: lab.SearchResult, bbox: Sequence[float] | None) -> xr.Dataset:
    """The scenes' lazy cube, cloud-masked, with flags and water-quality products."""
    cube = datacubes.load(
        scenes, bands=list(BANDS), mask="clouds", flags=list(wq.WATER_FLAGS), bbox=bbox
    )
    return wq.add_water_quality(cube, water="flags")


def _found(*searches: tuple[str, lab.SearchResult]) -> None:
    """Refuse a search that found nothing, with the query and the federation's report."""
    for name, result in searches:
        if len(result) == 0:
            raise lab.NoItemsError(
                f"no {name} found for {result.query.describe()}; federation report:\n"
                f"{result.describe()}"
            )


def _span(items: lab.SearchResult) -> str:
    """The RFC 3339 interval from the first to the last item's time, whole days."""
    times = [i.datetime or i.common_metadata.start_datetime for i in items]
    found = sorted(t for t in times if t is not None)
    return f"{found[0]:%Y-%m-%d}T00:00:00Z/{found[-1]:%Y-%m-%d}T23:59:59Z"


def _write_zarr(dataset: xr.Dataset, path: Path) -> None:
    """Write the cube here; with a Dask cluster as the default client, block by block.

    A cluster's workers may run elsewhere (a gateway next to the data) and cannot write
    this machine's files: they compute each block of dates, this process writes it.
    """
    import shutil

    from dask.diagnostics import ProgressBar

    if path.exists():
        shutil.rmtree(path)
    encoded = dataset.copy()
    encoded["water"] = encoded["water"].astype("uint8")
    for name in encoded.variables:
        encoded[name].encoding = {}
    for name in ("source_items", "centre"):
        if (
            name in encoded.coords
        ):  # variable-length strings have a Zarr v3 spec; fixed-width do not
            encoded = encoded.assign_coords({name: encoded[name].astype(object)})
    client = _cluster_client()
    if client is None:
        with ProgressBar(minimum=2, dt=1.0):
            encoded.to_zarr(path, mode="w", consolidated=False)
        return
    timeless = [str(name) for name in encoded.data_vars if "time" not in encoded[name].dims]
    encoded.to_zarr(path, mode="w", consolidated=False, compute=False)
    step = (encoded.chunks.get("time") or (encoded.sizes["time"],))[0] or 1
    for start in range(0, encoded.sizes["time"], step):
        block = encoded.isel(time=slice(start, start + step)).compute()  # on the cluster
        with dask.config.set(scheduler="threads"):
            block.drop_vars([*timeless, *_static_coords(block)]).to_zarr(
                path, region={"time": slice(start, start + step)}, consolidated=False
            )
    if timeless:
        with dask.config.set(scheduler="threads"):
            encoded[timeless].compute().to_zarr(path, mode="a", consolidated=False)


def _static_coords(dataset: xr.Dataset) -> list[str]:
    """Coordinates without a time dimension (written with the store's metadata)."""
    return [str(name) for name in dataset.coords if "time" not in dataset[name].dims]


def _cluster_client() -> Any:
    """The default Dask distributed client, if computations go to one."""
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a core dependency
        return None
    try:
        client = default_client()
    except ValueError:
        return None
    return client if dask.config.get("scheduler", None) in (None, "dask.distributed") else None


def _read_insitu(stations: lab.SearchResult, centres: lab.CentreSet) -> pd.DataFrame:
    """Read each station's asset (a path or a URL: the hub serves them over ``http://``)."""
    tables = []
    for item in stations:
        asset = item.assets.get("parquet") or item.assets.get("csv")
        if asset is None:
            raise lab.AssetReadError(
                f"in-situ item {item.id} has no 'parquet' or 'csv' asset; assets: {list(item.assets)}"
            )
        href = asset.get_absolute_href() or asset.href
        tables.append(
            insitu_readers.read(href, storage_options=_storage_options(item, href, centres)).data
        )
    return pd.concat(tables, ignore_index=True)


def _storage_options(item: Any, href: str, centres: lab.CentreSet) -> dict[str, Any] | None:
    """The fsspec options of the centre holding an ``s3://`` asset (its storage credentials)."""
    if not href.startswith("s3://"):
        return None
    name = item.properties.get("earthlab:centre")
    centre = centres.get(name) if isinstance(name, str) else None
    if centre is None or centre.storage is None:
        return None
    return centre.storage.storage_options()


def _join_calibration(products_mu: pd.DataFrame, bands_mu: pd.DataFrame) -> pd.DataFrame:
    keys = ["station_id", "time", "parameter", "sat_time"]
    band_values = bands_mu[[*keys, "sat_mean"]].drop_duplicates(keys)
    band_values = band_values.rename(columns={"sat_mean": "band_mean"})
    joined = products_mu.merge(band_values, on=keys, how="left", validate="many_to_one")
    joined["band_variable"] = joined["parameter"].map(CALIBRATION_VARIABLES)
    return joined


def _validate(matchups: pd.DataFrame) -> dict[str, Any]:
    kept = matchups[matchups["kept"]]
    report: dict[str, Any] = {"protocol": "Bailey & Werdell (2006)", "n_candidates": len(matchups)}
    report["reasons"] = {str(k): int(v) for k, v in matchups["reason"].value_counts().items()}
    for parameter in PARAMETERS:
        rows = kept[kept["parameter"] == parameter]
        report[parameter] = validation.metrics(
            rows["sat_mean"].to_numpy(), rows["insitu_value"].to_numpy()
        )
    turbidity = kept[kept["parameter"] == "turbidity"]
    chl = kept[kept["parameter"] == "chlorophyll_a"]
    nechad = validation.recalibrate_nechad(
        turbidity["band_mean"].to_numpy(), turbidity["insitu_value"].to_numpy()
    )
    ndci = validation.recalibrate_ndci(chl["band_mean"].to_numpy(), chl["insitu_value"].to_numpy())
    report["recalibration"] = {
        "nechad": _calibration_dict(nechad, published={"A": 282.95, "C": 0.1728}),
        "ndci": _calibration_dict(ndci, published={"a": [14.039, 86.115, 194.325]}),
    }
    return report


def _calibration_dict(calibration: Any, published: dict[str, Any]) -> dict[str, Any]:
    document = dataclasses.asdict(calibration)
    document["published"] = published
    return document


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | np.ndarray):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _strict(value: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) by null, recursively."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return value


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
