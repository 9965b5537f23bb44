"""Reading assets: early checks of local files and a reader that names the item and asset.

odc-stac reads pixels inside Dask tasks with rasterio; when a read fails it raises rasterio's
error (naming only the file) or, with ``fail_on_error=False``, logs and leaves a gap. The
driver below wraps odc-stac's rasterio driver so that a failure names the STAC item and the
asset key (:class:`~lab.AssetReadError`) or issues an :class:`AssetReadWarning`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse, urlsplit

import numpy as np
import rasterio.errors
from odc.geo.geobox import GeoBox
from odc.loader import RasterLoadParams, RasterSource, RioDriver, RioReader

from datacubes._errors import AssetMetadataError
from lab import AssetReadError, EarthLabWarning

GDAL_DEFAULTS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MAX_RETRY": "3",  # retries of a 429/502/503/504, delay doubling: 0.5+1+2 s
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",  # an unreachable server fails in seconds, not minutes
    "GDAL_HTTP_TIMEOUT": "60",
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
    crs: str | None = None
    """CRS the metadata declares, checked against the file's when it is first read."""
    data_type: str | None = None
    """Data type the metadata declares, checked against the file's."""
    shape: tuple[int, int] | None = None
    """``proj:shape`` the metadata declares, checked against the file's."""


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
    if "range downloading not supported" in str(error).lower():
        host = urlsplit(uri).netloc or uri
        return (
            f"could not read {where} at {uri}: the server {host} does not answer HTTP range "
            "requests (it sends the whole file to a request for a few bytes), and reading "
            "remote rasters needs them: GDAL reads only the parts of a file it needs. Serve "
            "the files from a server that supports Range (object storage such as S3, nginx, "
            "Apache, the lab's asset server), or download them and use local paths."
        )
    refused = _REFUSED.search(str(error))
    if refused and urlsplit(uri).scheme in ("http", "https"):
        reason = server_refusal(uri)
        if reason:
            return (
                f"could not read {where}: the server refused it (HTTP {refused.group(1)}): {reason}"
            )
    return (
        f"could not read {where} at {uri}: {error}. Check that the file exists and is a "
        "readable raster (and your credentials for remote data), or pass "
        "fail_on_error=False to leave its pixels as NaN."
    )


_REFUSED = re.compile(r"HTTP response code:\s*(401|403)")


def server_refusal(uri: str) -> str:
    """What a server says when it refuses a file (401/403): its explanation, or ''.

    GDAL reports only the status of a refused request; data services explain why in the body
    (the lab's restricted-data service: ``{"code", "description"}``, e.g. a quota exceeded,
    an expired signature, a missing group membership). One more small request fetches it.
    """
    import lab

    try:
        with lab.http_session(timeout=10) as session:
            answer = session.get(uri, headers={"Range": "bytes=0-0"})
    except Exception:  # the read's own error says the rest
        return ""
    if answer.status_code not in (401, 403):
        return ""
    try:
        document = answer.json()
    except ValueError:
        return answer.text.strip()[:300]
    if isinstance(document, dict):
        for key in ("description", "detail", "message"):
            if isinstance(document.get(key), str):
                return str(document[key])
    return ""


@dataclass(frozen=True)
class FileHeader:
    """What a raster file itself says of its first band and grid."""

    dtype: str
    """Data type of band 1."""
    nodata: float | None
    """Nodata value of band 1 (GeoTIFF tag), if any."""
    crs: Any
    """rasterio CRS, ``None`` when the file has no georeferencing."""
    shape: tuple[int, int]
    """(rows, columns)."""
    transform: tuple[float, ...]
    """First six terms of the affine transform."""


_HEADERS: dict[tuple[str, int, int], FileHeader] = {}
_CHECKED: set[tuple[str, str | None, str | None, tuple[int, int] | None]] = set()
"""(href, crs, data type, shape) combinations the reader has checked in this process: the file's
header is cached by href, but every item's metadata is compared with it (two items may name one
file and say different things of it)."""


def file_header(href: str) -> FileHeader:
    """Header of a raster, cached (local files by path, size and modification time)."""
    path = local_path(href)
    if path is not None:
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
    else:
        key = (href, 0, 0)
    found = _HEADERS.get(key)
    if found is None:
        gdal = {k: os.environ.get(k, v) for k, v in GDAL_DEFAULTS.items()}  # GDAL options
        with rasterio.Env(**gdal), rasterio.open(path or href, sharing=False) as src:
            found = FileHeader(
                dtype=str(src.dtypes[0]),
                nodata=src.nodatavals[0],
                crs=src.crs,
                shape=(src.height, src.width),
                transform=tuple(src.transform)[:6],
            )
        if len(_HEADERS) > 4096:
            _HEADERS.clear()
        _HEADERS[key] = found
    return found


def check_file(
    item_id: str,
    asset_key: str,
    href: str,
    *,
    crs: str | None,
    data_type: str | None,
    shape: tuple[int, int] | None,
) -> None:
    """Check that a file holds what its STAC metadata says, before its pixels are read.

    Only the header is read (once per file and process, :func:`file_header`); the metadata of
    every item naming the file is compared with it. :func:`datacubes.load_values` checks every
    file up front; lazy loads when each file is first read (and up front when several items
    name one file with different metadata).

    Raises
    ------
    AssetMetadataError
        The file has no CRS, or its CRS, data type or shape contradict the metadata: the load
        would give nodata, garbage pixels or a truncated grid.
    """
    path = local_path(href)
    if path is not None and not os.path.isfile(path):
        return
    where = f"item {item_id!r} asset {asset_key!r} ({href})"
    try:
        header = file_header(href)
    except READ_ERRORS:
        return  # unreadable: the read reports it (an error, or a gap with fail_on_error=False)
    fix = "fix the item's metadata or the file, or leave the item out"
    if header.crs is None:
        raise AssetMetadataError(
            f"{where}: the file has no CRS (a raster without georeferencing), so its pixels "
            f"cannot be placed; {fix} (write the CRS into the file, e.g. rio edit-info --crs)"
        )
    if crs is not None:
        try:
            declared = rasterio.crs.CRS.from_user_input(crs)
        except rasterio.errors.CRSError:
            raise AssetMetadataError(f"{where}: proj:code {crs!r} is not a CRS; {fix}") from None
        if declared != header.crs:
            raise AssetMetadataError(
                f"{where}: the metadata says CRS {crs} but the file is in "
                f"{header.crs.to_string()}; {fix}"
            )
    if data_type is not None and np.dtype(data_type) != np.dtype(header.dtype):
        raise AssetMetadataError(
            f"{where}: the metadata (raster:bands data_type) says {data_type} but the file "
            f"holds {header.dtype} pixels, which would load as garbage or nodata; {fix}"
        )
    if shape is not None and tuple(shape) != header.shape:
        raise AssetMetadataError(
            f"{where}: proj:shape says {list(shape)} (rows, columns) but the file has "
            f"{list(header.shape)}; the load would cover the wrong part of the scene; {fix}"
        )
    # A transform off the metadata's is not an error: the reader places the file by its own
    # georeferencing (resampling it onto the output grid when needed).


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
        ref = self._ref
        checked = (self._src.uri, ref.crs, ref.data_type, ref.shape) if ref else None
        if ref is not None and checked is not None and checked not in _CHECKED:
            check_file(
                ref.item_id,
                ref.asset_key,
                self._src.uri,
                crs=ref.crs,
                data_type=ref.data_type,
                shape=ref.shape,
            )
            if len(_CHECKED) > 4096:
                _CHECKED.clear()
            _CHECKED.add(checked)
        try:
            return super().read(strict, dst_geobox, dst=dst, selection=selection)
        except READ_ERRORS as error:
            message = read_failure(self._ref, self._src.uri, error)
            if cfg.fail_on_error:
                raise AssetReadError(message) from error
            warnings.warn(message, AssetReadWarning, stacklevel=2)
        except (AssertionError, AttributeError) as error:  # odc-loader on a file without CRS,
            where = (  # or whose CRS contradicts its metadata
                f"item {self._ref.item_id!r} asset {self._ref.asset_key!r}" if self._ref else ""
            )
            raise AssetMetadataError(
                f"could not place {where} at {self._src.uri}: the file's georeferencing (CRS, "
                f"transform) is missing or contradicts its STAC metadata ({error!r}); fix the "
                "item's proj: fields or the file, or leave the item out"
            ) from error
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
