"""Reading assets: early checks of local files and a reader that names the item and asset.

odc-stac reads pixels inside Dask tasks with rasterio; when a read fails it raises rasterio's
error (naming only the file) or, with ``fail_on_error=False``, logs and leaves a gap. The
driver below wraps odc-stac's rasterio driver so that a failure names the STAC item and the
asset key (:class:`~lab.AssetReadError`) or issues an :class:`AssetReadWarning`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import rasterio.errors
from odc.geo.geobox import GeoBox
from odc.loader import RasterLoadParams, RasterSource, RioDriver, RioReader

from lab import AssetReadError, EarthLabWarning

GDAL_DEFAULTS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
}
"""GDAL settings for COG reads, added unless the user's rasterio/odc configuration sets them."""

READ_ERRORS = (
    rasterio.errors.RasterioError,
    rasterio.errors.RasterioIOError,
    rasterio.errors.RasterBlockError,
    rasterio.errors.WarpOperationError,
    rasterio.errors.WindowEvaluationError,
)
"""rasterio errors that mean an asset could not be read (named, retried or left as a gap)."""


class AssetReadWarning(EarthLabWarning):
    """An asset could not be read and ``fail_on_error=False``: its pixels are left as NaN."""


@dataclass(frozen=True)
class AssetRef:
    """Where a URI comes from, for messages."""

    item_id: str
    """STAC item id."""
    asset_key: str
    """Asset key in the original item."""
    missing: bool = False
    """Known missing when the cube was set up (already reported): read as a gap."""


def local_path(href: str) -> str | None:
    """Filesystem path of a local href (plain path or ``file://``), ``None`` for remote ones."""
    parsed = urlparse(href)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return href
    return None


def missing_local(href: str) -> bool:
    """Whether ``href`` is a local file that does not exist (remote hrefs are not checked)."""
    path = local_path(href)
    return path is not None and not os.path.isfile(path)


def read_failure(ref: AssetRef | None, uri: str, error: Exception) -> str:
    """Message for an asset that could not be read."""
    where = f"item {ref.item_id!r} asset {ref.asset_key!r}" if ref else "an asset"
    return (
        f"could not read {where} at {uri}: {error}. Check that the file exists and is a "
        "readable raster (and your credentials for remote data), or pass "
        "fail_on_error=False to leave its pixels as NaN."
    )


class _NamingReader(RioReader):
    """odc-stac rasterio reader that turns read failures into lab errors or warnings."""

    def __init__(self, src: RasterSource, ctx: Any, ref: AssetRef | None) -> None:
        super().__init__(src, ctx)
        self._ref = ref

    def read(
        self,
        cfg: RasterLoadParams,
        dst_geobox: GeoBox,
        *,
        dst: np.ndarray | None = None,
        selection: Any = None,
    ) -> tuple[tuple[slice, slice], np.ndarray]:
        if self._ref is not None and self._ref.missing:
            return self._gap(cfg, dst)
        strict = cfg.patch(fail_on_error=True)
        try:
            return super().read(strict, dst_geobox, dst=dst, selection=selection)
        except READ_ERRORS as error:
            message = read_failure(self._ref, self._src.uri, error)
            if cfg.fail_on_error:
                raise AssetReadError(message) from error
            warnings.warn(message, AssetReadWarning, stacklevel=2)
        return self._gap(cfg, dst)

    @staticmethod
    def _gap(
        cfg: RasterLoadParams, dst: np.ndarray | None
    ) -> tuple[tuple[slice, slice], np.ndarray]:
        """Nothing read: odc-stac leaves the output at its fill value (nodata, then NaN)."""
        empty = dst[0:0, 0:0] if dst is not None else np.ndarray((0, 0), dtype=cfg.dtype)
        return np.s_[0:0, 0:0], empty


class NamingRioDriver(RioDriver):
    """odc-stac reader driver: rasterio reads, failures named by item id and asset key."""

    def __init__(self, refs: Mapping[str, AssetRef]) -> None:
        super().__init__()
        self._refs = dict(refs)

    def capture_env(self) -> dict[str, Any]:
        """GDAL environment for the reads: odc-stac's, plus the COG defaults not set there."""
        env = super().capture_env()
        for key, value in GDAL_DEFAULTS.items():
            env.setdefault(key, os.environ.get(key, value))
        return env

    def open(self, src: RasterSource, ctx: Any) -> _NamingReader:
        """Reader for one source, remembering which item and asset it belongs to."""
        return _NamingReader(src, ctx, self._refs.get(src.uri))
