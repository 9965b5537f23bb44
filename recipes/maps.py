"""Water-quality maps: a composite of Sentinel-2 turbidity, chlorophyll-a and SPM as COGs.

:func:`water_quality_maps` is the map half of the crossing without the in-situ half: search
the satellite collection across all data centres, load the cube lazily with clouds masked,
compute the products of :func:`recipes.water_quality.add_water_quality` on water pixels, make
one composite over the dates found, and write one Cloud-Optimised GeoTIFF per product.

Composites (per pixel, over the dates where it is clear water):

``median``
    the median (robust to the odd unflagged cloud edge);
``mean``
    the mean;
``max``
    the maximum (turbidity plumes, blooms);
``latest``
    the latest date whose water is at least 90 % clear (else the clearest date), as the
    crossing's "latest" maps.

Each COG is float32 with NaN as nodata outside water and where no date is clear, in the
scenes' CRS and grid; its tags say the product, units, composite, dates and scenes.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import datacubes
import lab
from recipes import _report
from recipes import water_quality as wq
from recipes.crossing import SATELLITE_COLLECTION

__all__ = ["COMPOSITES", "MAP_PRODUCTS", "MapsResult", "find_scenes", "water_quality_maps"]

MAP_PRODUCTS = {
    "turbidity": "Turbidity (FNU)",
    "chlorophyll_a": "Chlorophyll-a (µg/L)",
    "spm": "Suspended particulate matter (g/m³)",
}
"""Products a map can be made of, with their long names."""
COMPOSITES = ("median", "mean", "max", "latest")
"""Composites over time (see the module's docstring)."""
BANDS = ("green", "red", "rededge1")


@dataclass(frozen=True)
class MapsResult:
    """What :func:`water_quality_maps` wrote."""

    out: Path
    """Output directory."""
    files: dict[str, Path]
    """One COG per product (``turbidity``, ``chlorophyll_a``, ``spm``)."""
    units: dict[str, str]
    """Units of each product's values (``FNU``, ``µg/L``, ``g/m³``)."""
    composite: str
    """The composite over time."""
    dates: tuple[str, ...]
    """Dates of the scenes composed (``YYYY-MM-DD``; for ``latest``, the one date used)."""
    scenes: tuple[str, ...]
    """Ids of the items the cube was loaded from."""
    items: tuple[Any, ...]
    """Those items (pystac Items, tagged with their centre)."""
    seconds: float
    """Wall time."""


def find_scenes(
    *,
    centres: lab.CentreSet | str | os.PathLike[str] | None = None,
    bbox: Sequence[float] | None = None,
    datetime: str | None = None,
    collection: str = SATELLITE_COLLECTION,
) -> lab.SearchResult:
    """The Sentinel-2 L2A scenes of every centre the maps are made of.

    ``collection`` is ``sentinel-2-l2a`` (Sen2Cor) or THEIA's ``sentinel2-l2a-theia`` (MAJA).

    Raises
    ------
    lab.NoItemsError
        The search finds no scene (the message gives each centre's answer).
    """
    scenes = lab.catalog(centres).search(collections=collection, bbox=bbox, datetime=datetime)
    if len(scenes) == 0:
        raise lab.NoItemsError(
            f"no satellite scene found for {scenes.query.describe()}; federation report:\n"
            f"{scenes.describe()}"
        )
    return scenes


def water_quality_maps(
    out: str | os.PathLike[str],
    *,
    centres: lab.CentreSet | str | os.PathLike[str] | None = None,
    bbox: Sequence[float] | None = None,
    datetime: str | None = None,
    scenes: Sequence[Any] | None = None,
    collection: str = SATELLITE_COLLECTION,
    products: Sequence[str] = tuple(MAP_PRODUCTS),
    composite: str = "median",
    progress: Callable[[str], None] | None = print,
) -> MapsResult:
    """Write one composite COG per water-quality product of the Sentinel-2 scenes found.

    Parameters
    ----------
    out
        Output directory (created); ``<product>_<composite>.tif`` files there are replaced.
    centres
        Centres file or set (default: ``$EARTHLAB_CENTRES`` or the embedded sample).
    bbox, datetime
        Restrict the search and the cube (WGS84 degrees; RFC 3339 instant or interval).
    scenes
        The scenes, already found (:func:`find_scenes`): no search. Computations go to the
        current Dask client, if any (``lab.cluster(near=scenes)`` puts one next to them).
    collection
        The collection searched when ``scenes`` is not given: ``sentinel-2-l2a`` (Sen2Cor)
        or THEIA's ``sentinel2-l2a-theia`` (MAJA). Clear water comes from each product's own
        masks (``datacubes.load(flags=...)``), so scenes of either work.
    products
        Among ``turbidity`` (Nechad 2009, FNU), ``chlorophyll_a`` (NDCI, µg/L) and ``spm``
        (Nechad 2010, g/m³).
    composite
        ``median``, ``mean``, ``max`` or ``latest`` (see the module's docstring).
    progress
        Called with one line per step (default ``print``; None for silence).

    Returns
    -------
    MapsResult
        The files, the dates composed and the scenes read.

    Raises
    ------
    lab.ConfigurationError
        An unknown product or composite (the message lists the valid ones), or no product.
    lab.NoItemsError
        The search finds no scene.
    """
    started = time.monotonic()
    wanted = list(dict.fromkeys(products))
    unknown = [p for p in wanted if p not in MAP_PRODUCTS]
    if unknown or not wanted:
        raise lab.ConfigurationError(
            f"products must be among {', '.join(MAP_PRODUCTS)}"
            + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else "; none given")
        )
    if composite not in COMPOSITES:
        raise lab.ConfigurationError(
            f"unknown composite {composite!r}; use one of {', '.join(COMPOSITES)}"
        )
    say: Callable[[str], None] = progress or (lambda _: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    if scenes is None:
        say("1/3 searching the data centres")
        scenes = list(
            find_scenes(centres=centres, bbox=bbox, datetime=datetime, collection=collection)
        )
    else:
        say("1/3 scenes given")
        scenes = list(scenes)
    if not scenes:
        raise lab.NoItemsError("no scene given: search first (find_scenes)")
    say(f"    {len(scenes)} scenes")

    say("2/3 loading the cube (lazy), masking clouds, computing the products")
    cube = datacubes.load(
        scenes, bands=list(BANDS), mask="clouds", flags=list(wq.WATER_FLAGS), bbox=bbox
    )
    computed = wq.add_water_quality(cube, water="flags")[[*wanted, "water"]]

    say(f"3/3 {composite} composite and COGs")
    dates = [pd.Timestamp(t).strftime("%Y-%m-%d") for t in computed["time"].values]
    if composite == "latest":
        computed = computed.compute()
        index = _report.latest_clear_index(
            computed, "turbidity" if "turbidity" in wanted else wanted[0]
        )
        layers = computed[wanted].isel(time=index)
        dates = [dates[index]]
    else:
        layers = _compose(computed[wanted], composite)
    files: dict[str, Path] = {}
    units = {p: str(computed[p].attrs.get("units", "")) for p in wanted}
    tags = {
        "composite": composite,
        "dates": ",".join(dates),
        "scenes": ",".join(str(item.id) for item in scenes),
    }
    for product in wanted:
        path = out / f"{product}_{composite}.tif"
        _report.write_cog(
            layers[product],
            path,
            crs=cube.rio.crs,
            units=units[product],
            long_name=MAP_PRODUCTS[product],
            tags={"product": product, **tags},
        )
        files[product] = path
    seconds = time.monotonic() - started
    say(f"done in {seconds:.0f} s: {', '.join(p.name for p in files.values())}")
    return MapsResult(
        out,
        files,
        units,
        composite,
        tuple(dates),
        tuple(str(i.id) for i in scenes),
        tuple(scenes),
        seconds,
    )


def _compose(values: xr.Dataset, composite: str) -> xr.Dataset:
    """The composite over time; pixels never clear water stay NaN, without a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        reduce = {"median": values.median, "mean": values.mean, "max": values.max}[composite]
        return reduce("time", skipna=True).astype(np.float32).compute()
