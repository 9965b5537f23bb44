"""COG export: one Cloud-Optimised GeoTIFF per band and time step, beside the Zarr store.

Files are ``<name>.cog/<band>/<name>_<band>_<YYYYmmddTHHMMSS>.tif``: DEFLATE, 512 x 512
tiles, overviews; measurement bands as float32 with NaN for no data, class bands in their
integer type. They are read back from the finished store, so they match it exactly.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from datacubes._manifest import Manifest, add_range, covers
from datacubes._store import CubeLocation


def cog_name(location: CubeLocation, band: str, time: str) -> str:
    """URL of the COG of one band and time step."""
    stamp = pd.Timestamp(time).strftime("%Y%m%dT%H%M%S")
    return f"{location.cog_url}/{band}/{location.name}_{band}_{stamp}.tif"


def pending_cog_steps(manifest: Manifest) -> list[int]:
    """Steps whose COGs are not exported yet."""
    return [t for t in range(len(manifest.steps)) if not covers(manifest.cog_steps, t)]


def export_cogs(
    location: CubeLocation,
    manifest: Manifest,
    steps: Sequence[int],
    bands: Sequence[str],
    workers: int = 1,
) -> int:
    """Write the COGs of ``steps`` for every band; record them in the manifest.

    One band of one step is in memory per worker at a time.

    Returns
    -------
    int
        Number of files written.
    """
    import concurrent.futures as cf

    import rioxarray  # noqa: F401  (registers .rio)

    cube = xr.open_zarr(
        location.url, storage_options=dict(location.storage_options) or None, consolidated=True
    )

    def one(index: int, band: str, folder: str) -> None:
        plane = cube[band].isel(time=index).load(scheduler="synchronous")
        local = os.path.join(folder, f"{band}_{index}.tif")
        _write(plane, local)
        location.upload(local, cog_name(location, band, manifest.steps[index].time))
        os.remove(local)

    with (
        tempfile.TemporaryDirectory(prefix="earthlab-cog-") as tmp,
        cf.ThreadPoolExecutor(max(1, workers), thread_name_prefix="cube-cog") as pool,
    ):
        for index in steps:  # a step is recorded once all its bands are written
            for future in [pool.submit(one, index, band, tmp) for band in bands]:
                future.result()
            manifest.cog_steps = add_range(manifest.cog_steps, index, index + 1)
    return len(steps) * len(bands)


def _write(plane: xr.DataArray, path: str) -> None:
    plane = plane.drop_vars([c for c in ("time", "source_items") if c in plane.coords])
    if np.issubdtype(plane.dtype, np.floating):
        plane = plane.astype("float32").rio.write_nodata(np.nan, encoded=False)
    else:
        plane = plane.rio.write_nodata(0, encoded=False)
    plane.attrs = {k: v for k, v in plane.attrs.items() if isinstance(v, str | int | float)}
    plane.rio.to_raster(
        path, driver="COG", compress="DEFLATE", blocksize=512, overview_resampling="nearest"
    )


def cog_assets(location: CubeLocation, manifest: Manifest, bands: Sequence[str]) -> dict[str, str]:
    """STAC asset keys and URLs of the exported COGs."""
    assets = {}
    for index, step in enumerate(manifest.steps):
        if covers(manifest.cog_steps, index):
            stamp = pd.Timestamp(step.time).strftime("%Y%m%dT%H%M%S")
            for band in bands:
                assets[f"{band}_{stamp}"] = cog_name(location, band, step.time)
    return assets
