"""Gridded products (NetCDF, Zarr, kerchunk references) loaded as lazy ``(time, lat, lon)`` cubes.

:func:`load_gridded` is the sibling of :func:`datacubes.load` for STAC assets that are whole
gridded files rather than rasters; :func:`write_references` combines many daily NetCDF files
into one kerchunk reference file (read once, never re-opening each file) and a STAC Collection
whose reference asset :func:`load_gridded` opens.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from datacubes._errors import BandNotFoundError, EmptyLoadError
from lab import AssetReadError, EarthLabError

__all__ = [
    "CurvilinearGridError",
    "GriddedFormatError",
    "NoGriddedAssetError",
    "load_gridded",
    "write_references",
]

NETCDF_TYPES = ("application/netcdf", "application/x-netcdf")
ZARR_TYPES = ("application/vnd+zarr", "application/vnd.zarr")
LAT_NAMES = ("lat", "latitude", "y", "nav_lat")
LON_NAMES = ("lon", "longitude", "x", "nav_lon")


class NoGriddedAssetError(EarthLabError, ValueError):
    """No asset of the items is NetCDF, Zarr or a kerchunk reference."""


class GriddedFormatError(AssetReadError):
    """An asset announced as NetCDF/Zarr cannot be opened as such."""


class CurvilinearGridError(EarthLabError, NotImplementedError):
    """The product's latitude/longitude are 2-D (a curvilinear or swath grid)."""


def _as_dicts(items_or_collection: Any) -> list[dict[str, Any]]:
    obj = items_or_collection
    if hasattr(obj, "to_dict") and not isinstance(obj, Mapping):
        if hasattr(obj, "items") and not hasattr(obj, "assets") and callable(obj.items):
            pass
        obj = obj.to_dict()
    if isinstance(obj, Mapping):
        if obj.get("type") == "FeatureCollection":
            return [dict(f) for f in obj.get("features", [])]
        return [dict(obj)]
    out: list[dict[str, Any]] = []
    for one in obj:
        out.extend(_as_dicts(one))
    return out


def _kind(asset: Mapping[str, Any]) -> str | None:
    media = str(asset.get("type", "")).lower()
    href = str(asset.get("href", "")).lower().rstrip("/")
    roles = [str(r) for r in asset.get("roles", [])]
    if "reference" in media or "references" in roles or "kerchunk" in media:
        return "references"
    if any(media.startswith(t) for t in ZARR_TYPES) or href.endswith(".zarr"):
        return "zarr"
    if media in NETCDF_TYPES or href.endswith((".nc", ".nc4", ".netcdf")):
        return "netcdf"
    return None


def _pick(stac: Mapping[str, Any], key: str | None) -> tuple[str, Mapping[str, Any]] | None:
    """The gridded asset of one item: ``key`` if given, else the best by kind, resolution, URL."""
    assets: Mapping[str, Any] = stac.get("assets", {})
    if key is not None:
        if key not in assets or _kind(assets[key]) is None:
            gridded = sorted(k for k, a in assets.items() if _kind(a))
            raise NoGriddedAssetError(
                f"item {stac.get('id')!r} has no gridded asset {key!r}; gridded assets: {gridded}"
            )
        return str(_kind(assets[key])), assets[key]
    order = {"references": 0, "zarr": 1, "netcdf": 2}

    def rank(asset: Mapping[str, Any]) -> tuple[int, bool, bool]:
        roles = set(asset.get("roles", []))
        href = str(asset.get("href", ""))
        remote_other = "://" in href and not href.startswith(("http://", "https://", "file://"))
        return order[str(_kind(asset))], bool(roles & {"downsampled", "overview"}), remote_other

    candidates = [a for a in assets.values() if _kind(a)]
    if not candidates:
        return None
    best = min(candidates, key=rank)
    return str(_kind(best)), best


def _resolve(href: str, base: str | None) -> str:
    if "://" in href or href.startswith("/") or base is None:
        return href
    return str(Path(base).parent / href)


def _open(kind: str, href: str, asset: Mapping[str, Any], chunks: Any) -> xr.Dataset:
    open_kwargs = dict(asset.get("xarray:open_kwargs", {}))
    open_kwargs.pop("engine", None)
    open_kwargs.pop("chunks", None)
    storage = asset.get("xarray:storage_options", {})
    try:
        if kind == "netcdf":
            # h5netcdf reads NetCDF4/HDF5; NetCDF3 (classic, 64-bit offset) needs netCDF4-python
            engine = "h5netcdf" if _is_hdf5(href) else "netcdf4"
            return xr.open_dataset(href, engine=engine, chunks=chunks, decode_times=_times())
        if kind == "zarr":
            return xr.open_dataset(
                href, engine="zarr", chunks=chunks, decode_times=_times(), **open_kwargs
            )
        try:
            fo, protocol = _references(href, storage)
        except (OSError, ValueError, TypeError):
            raise  # not found, not JSON: said below as for the other formats
        except Exception as exc:  # e.g. botocore's NoCredentialsError: not an OSError
            raise AssetReadError(
                f"cannot read the references {href} ({type(exc).__name__}: {exc}); for a "
                "private bucket give the asset 'xarray:storage_options' (key, secret, "
                "endpoint) or the provider's credentials in the environment"
            ) from exc
        return xr.open_dataset(
            _reference_store(fo, protocol, storage),
            engine="zarr",
            chunks=chunks,
            consolidated=False,
            zarr_format=2,
            decode_times=_times(),
        )
    except AssetReadError:
        raise  # already says what to do
    except (OSError, ValueError, TypeError) as exc:
        raise GriddedFormatError(
            f"{href} announced as {kind} cannot be opened as {kind} ({exc}); check the asset's "
            "media type and that the file is not truncated or an HTML error page"
        ) from exc


def _references(href: str, storage: Mapping[str, Any]) -> tuple[str | dict[str, Any], str | None]:
    """What fsspec's reference filesystem opens for ``href``, and its targets' protocol.

    Reference files that name their data files relative to themselves can be moved or served
    with them (the sample's are); fsspec alone would resolve such targets against the working
    directory, so they are made absolute against ``href`` and the references handed over in
    memory. Other reference files are handed over by ``href``: fsspec then passes the file's
    address between threads rather than the whole (possibly large) mapping, several times
    faster to open.
    """
    import fsspec

    with fsspec.open(href, "rt", encoding="utf-8", **dict(storage)) as handle:
        document = json.load(handle)
    refs = document.get("refs", document)
    base = href.rsplit("/", 1)[0] if "/" in href else "."
    relative = False
    protocol = None
    for key, ref in refs.items():
        if isinstance(ref, list) and ref and isinstance(ref[0], str) and ref[0]:
            target = ref[0]
            if "://" not in target and not target.startswith(("/", "{{")):
                refs[key] = [f"{base}/{target}", *ref[1:]]
                relative = True
            if protocol is None:
                protocol = fsspec.core.split_protocol(refs[key][0])[0] or "file"
    return (dict(document) if relative else href), protocol


def _reference_store(
    fo: str | dict[str, Any], protocol: str | None, storage: Mapping[str, Any]
) -> Any:
    """A Zarr store reading the references' chunks from their files, local or remote.

    Zarr 3 reads through an asynchronous filesystem; fsspec's reference filesystem then needs
    a target filesystem of its own that is asynchronous too (HTTP, S3: a shared synchronous
    instance fails with "target filesystem must have same value of asynchronous"). Local
    targets are wrapped by fsspec itself.
    """
    import fsspec

    if protocol not in (None, "file", "local") and fsspec.get_filesystem_class(protocol).async_impl:
        from zarr.storage import FsspecStore

        fs = fsspec.filesystem(
            "reference",
            fo=fo,
            remote_protocol=protocol,
            remote_options={**dict(storage), "asynchronous": True},
            target_options=dict(storage),  # the reference file itself, when fo is its address
            asynchronous=True,
            skip_instance_cache=True,
        )
        return FsspecStore(fs, read_only=True, path="")
    options = {"remote_options": dict(storage), "target_options": dict(storage)} if storage else {}
    return fsspec.filesystem("reference", fo=fo, **options).get_mapper("")


def _with_time(ds: xr.Dataset, stac: Mapping[str, Any]) -> xr.Dataset:
    """``ds`` with a ``time`` dimension of one step when its file has none.

    Many L3 files hold one day or month without a time axis (NASA OBPG's ``L3m`` files): the
    step is the item's ``datetime``, else the middle of its ``start_datetime``/``end_datetime``,
    else the file's own scalar ``time`` coordinate, else the middle of the file's
    ``time_coverage_start``/``time_coverage_end`` (ACDD).
    """
    if "time" in ds.dims:
        return ds
    properties = stac.get("properties", {}) or {}
    when = properties.get("datetime")
    span = [properties.get("start_datetime"), properties.get("end_datetime")]
    if not when and not all(span) and "time" in ds.coords and ds["time"].ndim == 0:
        return ds.expand_dims("time")  # the file's own instant, decoded like a time axis
    if not when and not all(span):
        span = [ds.attrs.get("time_coverage_start"), ds.attrs.get("time_coverage_end")]
    if not when and all(span):
        start, end = (pd.Timestamp(str(t)) for t in span)
        when = start + (end - start) / 2
    elif not when and span[0]:
        when = span[0]
    if not when:
        return ds
    stamp = pd.Timestamp(str(when) if not isinstance(when, pd.Timestamp) else when)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    if "time" in ds.coords:  # a scalar time coordinate
        ds = ds.drop_vars("time")
    return ds.expand_dims(time=[stamp.to_datetime64()])


def _is_hdf5(href: str) -> bool:
    if "://" in href:
        return True
    try:
        with open(href, "rb") as handle:
            return handle.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return True


def _times() -> xr.coders.CFDatetimeCoder:
    # cftime for calendars numpy cannot hold (noleap, 360_day, dates before 1678)
    return xr.coders.CFDatetimeCoder(use_cftime=None)


def _axes(ds: xr.Dataset) -> tuple[str, str]:
    lat = next((n for n in LAT_NAMES if n in ds.variables), None)
    lon = next((n for n in LON_NAMES if n in ds.variables), None)
    if lat is None or lon is None:
        raise CurvilinearGridError(
            f"no latitude/longitude axis found among {sorted(map(str, ds.variables))}; "
            "load_gridded reads regular lat/lon or projected x/y grids"
        )
    if ds[lat].ndim != 1 or ds[lon].ndim != 1:
        raise CurvilinearGridError(
            f"{lat}/{lon} are 2-D (a curvilinear grid): not supported yet. Open the file with "
            "xarray.open_dataset and regrid it (e.g. xESMF) or use its pixel indices"
        )
    return lat, lon


def _crs(ds: xr.Dataset, var: xr.DataArray, lat: str) -> str:
    gm = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
    if gm and gm in ds.variables:
        attrs = ds[gm].attrs
        wkt = attrs.get("crs_wkt") or attrs.get("spatial_ref")
        if wkt:
            return str(wkt)
        code = attrs.get("epsg_code") or attrs.get("proj4")
        if code:
            return str(code)
    if lat in ("lat", "latitude"):
        return "EPSG:4326"
    return ""


def _subset(ds: xr.Dataset, lat: str, lon: str, bbox: Sequence[float] | None) -> xr.Dataset:
    if bbox is None:
        return ds
    west, south, east, north = (float(v) for v in bbox)
    lats = ds[lat].values
    ascending = lats.size < 2 or lats[-1] >= lats[0]
    lat_slice = slice(south, north) if ascending else slice(north, south)
    out = ds.sel({lat: lat_slice, lon: slice(west, east)})
    if out.sizes[lat] == 0 or out.sizes[lon] == 0:
        raise EmptyLoadError(
            f"bbox {list(bbox)} is outside the grid (lat {float(lats.min())}..{float(lats.max())}"
            f", lon {float(ds[lon].min())}..{float(ds[lon].max())}); pass a bbox inside it"
        )
    return out


def load_gridded(
    items_or_collection: Any,
    bands: Sequence[str] | str | None = None,
    bbox: Sequence[float] | None = None,
    datetime: str | None = None,
    chunks: Mapping[str, int] | None = None,
    asset: str | None = None,
) -> xr.Dataset:
    """Load the gridded (NetCDF, Zarr, kerchunk reference) assets of STAC items as a lazy cube.

    Parameters
    ----------
    items_or_collection
        STAC Item(s), ItemCollection or Collection (pystac objects or dicts); their first
        gridded asset is opened (reference assets first, then Zarr, then NetCDF).
    bands
        Variables to keep (default: every variable on the lat/lon grid).
    bbox
        ``(west, south, east, north)`` in the grid's coordinates; selected by label, lazily.
    datetime
        ``"start/end"`` (either side may be ``..``) or one date.
    chunks
        Dask chunks (default: the file's own chunks).
    asset
        Key of the asset to open; default: references first, then Zarr, then NetCDF, full
        resolution before ``downsampled``/``overview`` roles, http(s) or local before other
        protocols (``abfs://`` ...).

    Returns
    -------
    xarray.Dataset
        CF-decoded, lazy; dims ``(time, lat, lon)`` as the file names them, pixel sizes kept;
        each variable's ``attrs["crs"]`` holds the CRS (EPSG:4326 for lat/lon).

    Raises
    ------
    NoGriddedAssetError
        No item has a NetCDF, Zarr or reference asset (or not the ``asset`` asked for).
    BandNotFoundError
        A variable asked for is missing; the message lists the available ones.
    EmptyLoadError
        The bbox is outside the grid, or no time step falls in ``datetime``.
    GriddedFormatError
        An asset cannot be opened as the format it announces.
    CurvilinearGridError
        Latitude/longitude are 2-D (not supported yet).
    """
    dicts = _as_dicts(items_or_collection)
    datasets = []
    for stac in dicts:
        picked = _pick(stac, asset)
        if picked is None:
            continue
        kind, found = picked
        base = next(
            (lk.get("href") for lk in stac.get("links", []) if lk.get("rel") == "self"), None
        )
        href = _resolve(str(found["href"]), base)
        datasets.append(_with_time(_open(kind, href, found, dict(chunks or {})), stac))
    if not datasets:
        raise NoGriddedAssetError(
            "no NetCDF, Zarr or reference asset in the items (media types "
            f"{', '.join(NETCDF_TYPES + ZARR_TYPES)} or role 'references'); use datacubes.load "
            "for COG/GeoTIFF assets"
        )
    ds = datasets[0] if len(datasets) == 1 else xr.concat(datasets, dim="time")
    lat, lon = _axes(ds)
    gridded = [str(n) for n, v in ds.data_vars.items() if lat in v.dims and lon in v.dims]
    wanted = [bands] if isinstance(bands, str) else list(bands or gridded)
    missing = [b for b in wanted if b not in ds.data_vars]
    if missing:
        raise BandNotFoundError(
            f"variable(s) {missing} not found; available: {sorted(map(str, ds.data_vars))}"
        )
    out = _subset(ds[wanted], lat, lon, bbox)
    if datetime and "time" in out.dims:
        start, _, end = datetime.partition("/")
        if not end:
            out = out.sel(time=slice(_bound(start), _bound(start)))
        else:
            out = out.sel(time=slice(_bound(start), _bound(end)))
        if out.sizes["time"] == 0:
            raise EmptyLoadError(f"no time step in {datetime}; widen the datetime range")
    for name in wanted:
        out[name].attrs["crs"] = _crs(ds, ds[name], lat)
    return out


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Collect garbage now, and not while kerchunk reads HDF5 files.

    kerchunk translates a file inside h5py's ``visititems`` (holding h5py's global lock) and
    creates its Zarr arrays there, which waits on Zarr's event-loop thread. A cyclic garbage
    collection in that thread that closes an h5py file left open elsewhere (a lazily opened
    NetCDF dataset no longer used) waits for the same lock: both threads hang. Collecting
    first, here, and pausing the collector during the translation avoids it.
    """
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _bound(text: str) -> Any:
    """One end of an RFC 3339 interval as the (UTC, naive) time axis compares it.

    Instants with a time zone (``2021-11-01T00:00:00Z``) become naive UTC timestamps; dates
    and partial dates (``2021-11``) stay strings, which select whole days or months.
    """
    if text in ("", ".."):
        return None
    if "T" not in text.upper():
        return text
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise EmptyLoadError(
            f"{text!r} is not an RFC 3339 date or date-time; write e.g. 2021-11-01 or "
            "2021-11-01T10:30:00Z"
        ) from exc
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def _files(files_or_folder: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(files_or_folder, (str, Path)):
        path = Path(files_or_folder)
        if not path.exists():
            raise NoGriddedAssetError(f"no NetCDF file at {path}: it does not exist")
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".nc", ".nc4", ".h5"))
        else:
            found = [path]
    else:
        found = sorted(Path(p) for p in files_or_folder)
    if not found:
        raise NoGriddedAssetError(
            f"no NetCDF file (.nc, .nc4, .h5) in {files_or_folder}; pass a folder holding them"
        )
    return found


def write_references(
    files_or_folder: str | Path | Iterable[str | Path],
    out: str | Path,
    collection_id: str | None = None,
    concat_dim: str = "time",
    inline_threshold: int = 500,
) -> Path:
    """Combine NetCDF4/HDF5 files into one kerchunk reference file and a STAC Collection.

    Each file's chunk offsets are read once (``kerchunk.hdf``) and combined along
    ``concat_dim`` (``kerchunk.combine.MultiZarrToZarr``); opening the result reads only the
    chunks asked for. The Collection ``collection.json`` written next to ``out`` has one asset
    ``references`` (role ``references``, ``xarray-assets`` open hints) that
    :func:`load_gridded` opens.

    Parameters
    ----------
    files_or_folder
        A folder (its ``.nc``, ``.nc4``, ``.h5`` files, sorted by name) or the files.
    out
        The reference JSON to write.
    collection_id
        Id of the Collection (default: ``out``'s stem).
    concat_dim
        The dimension the files follow each other along.
    inline_threshold
        Chunks smaller than this many bytes are copied into the JSON (no file read for them).

    Returns
    -------
    pathlib.Path
        The Collection written.
    """
    from kerchunk.combine import MultiZarrToZarr
    from kerchunk.hdf import SingleHdf5ToZarr

    singles = []
    with _without_cyclic_gc():
        for path in _files(files_or_folder):
            try:
                with path.open("rb") as handle:
                    singles.append(
                        SingleHdf5ToZarr(
                            handle, str(path.resolve()), inline_threshold=inline_threshold
                        ).translate()
                    )
            except (OSError, ValueError) as exc:
                raise GriddedFormatError(
                    f"{path} is not a NetCDF4/HDF5 file ({exc}); convert NetCDF-3 files to "
                    "NetCDF-4 first (nccopy -k nc4 IN OUT) or leave other files out of the "
                    "folder"
                ) from exc
        combined = MultiZarrToZarr(
            singles, concat_dims=[concat_dim], inline_threshold=inline_threshold
        ).translate()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(combined))
    ds = xr.open_dataset(
        __import__("fsspec").filesystem("reference", fo=str(out)).get_mapper(""),
        engine="zarr",
        consolidated=False,
        zarr_format=2,
    )
    lat, lon = _axes(ds)
    times = ds[concat_dim].values if concat_dim in ds else np.array([])
    cid = collection_id or out.stem
    collection: dict[str, Any] = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json"],
        "id": cid,
        "description": f"{len(singles)} files combined along {concat_dim} by kerchunk",
        "license": "other",
        "extent": {
            "spatial": {
                "bbox": [
                    [
                        float(ds[lon].min()),
                        float(ds[lat].min()),
                        float(ds[lon].max()),
                        float(ds[lat].max()),
                    ]
                ]
            },
            "temporal": {
                "interval": [
                    [str(times.min())[:19] + "Z", str(times.max())[:19] + "Z"]
                    if times.size
                    else [None, None]
                ]
            },
        },
        "links": [],
        "assets": {
            "references": {
                "href": out.name,
                "type": "application/json",
                "roles": ["references", "index"],
                "title": "kerchunk references",
                "xarray:open_kwargs": {"engine": "kerchunk", "consolidated": False},
            }
        },
    }
    ds.close()
    target = out.parent / "collection.json"
    collection["links"] = [{"rel": "self", "href": str(target.resolve())}]
    target.write_text(json.dumps(collection, indent=2))
    return target
