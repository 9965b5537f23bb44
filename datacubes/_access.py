"""Finding and opening built cubes: by URL, in a store, or from their STAC Item."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pystac
import xarray as xr

from datacubes._stac_meta import describe
from datacubes._store import ITEM, MANIFEST, META_SUFFIX, CubeLocation, resolve_location
from lab import ConfigurationError


def open_cube(
    target: str | pystac.Item,
    *,
    centres: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    chunks: Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Open a built cube lazily.

    Parameters
    ----------
    target : str or pystac.Item
        URL (``s3://``, ``http(s)://``, ``file://``) or path of the Zarr store, or the cube's
        STAC Item (from :func:`list_cubes` or ``lab.catalog().search(...)``).
    centres : lab.CentreSet or str, optional
        The federation whose storage credentials to use for ``s3://`` URLs (default:
        ``$EARTHLAB_CENTRES`` when set).
    storage_options : mapping, optional
        fsspec options overriding the centre's.
    chunks : mapping, optional
        Dask chunks (default: the store's chunks).

    Returns
    -------
    xarray.Dataset
        The cube, Dask-backed, with its CF attributes.
    """
    url = target.assets["zarr"].href if isinstance(target, pystac.Item) else str(target)
    location = _location(url, centres, storage_options)
    if not _zarr_found(location):
        raise ConfigurationError(f"no cube at {location.url}: check the URL or build it first")
    return xr.open_zarr(
        location.url,
        storage_options=dict(location.storage_options) or None,
        consolidated=True,
        chunks=dict(chunks) if chunks is not None else {},
    )


def list_cubes(
    store: str | None = None,
    *,
    centre: str | None = None,
    centres: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[pystac.Item]:
    """List the cubes built in a store (a directory or an ``s3://`` prefix).

    Parameters
    ----------
    store : str, optional
        Directory or URL holding cubes (``<name>.zarr`` with ``<name>.meta/item.json``).
    centre : str, optional
        A centre of the federation: list its ``storage`` instead of ``store``.
    centres : lab.CentreSet or str, optional
        The federation (for ``centre`` and for credentials).
    storage_options : mapping, optional
        fsspec options overriding the centre's.

    Returns
    -------
    list of pystac.Item
        The cubes' STAC Items (datacube extension), sorted by id; complete or not
        (``item.properties["earthlab:complete"]``).
    """
    if (store is None) == (centre is None):
        raise ConfigurationError("give a store URL or a centre name (one of them)")
    if centre is not None:
        from datacubes._store import _centres

        found = _centres(centres, required=True)[centre]
        if found.storage is None:
            raise ConfigurationError(f"centre {centre!r} has no storage in the centres file")
        store = found.storage.url
        storage_options = storage_options or found.storage.storage_options()
    assert store is not None
    probe = _location(store.rstrip("/") + "/probe.zarr", centres, storage_options)
    fs = probe.fs
    root = probe.path(store.rstrip("/"))
    items = []
    for path in sorted(fs.glob(f"{root}/*{META_SUFFIX}/{ITEM}")):
        with fs.open(path, "rb") as stream:
            items.append(pystac.Item.from_dict(json.loads(stream.read()), preserve_dict=False))
    return sorted(items, key=lambda item: item.id)


def cube_info(
    target: str, *, centres: Any = None, storage_options: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """The STAC Item, the manifest and a readable summary of a built cube.

    Parameters
    ----------
    target : str
        URL or path of the Zarr store.
    centres : lab.CentreSet or str, optional
        The federation, for S3 credentials.
    storage_options : mapping, optional
        fsspec options overriding the centre's.

    Returns
    -------
    tuple
        ``(item, manifest, text)``; ``manifest`` is None if it is missing.
    """
    location = _location(target, centres, storage_options)
    item = location.read_meta(ITEM)
    if item is None:
        raise ConfigurationError(
            f"{location.url} has no STAC item at {location.meta_url}/{ITEM}: it is not an "
            "earthlab cube, or its first build did not get that far (run the build again)"
        )
    manifest = location.read_meta(MANIFEST)
    return item, manifest, describe(item, manifest)


_ZARR_METADATA = ("zarr.json", ".zmetadata", ".zgroup")


def _zarr_found(location: CubeLocation) -> bool:
    """Whether a cube is stored at ``location``.

    Over HTTP, its metadata files say so: a file server need not answer for the directory.
    """
    if location.zarr_exists():
        return True
    if not location.url.startswith(("http://", "https://")):
        return False
    fs = location.fs
    return any(fs.exists(f"{location.url}/{name}") for name in _ZARR_METADATA)


def _location(url: str, centres: Any, storage_options: Mapping[str, Any] | None) -> CubeLocation:
    url = url.rstrip("/")
    if not url.endswith(".zarr"):
        raise ConfigurationError(f"{url!r} is not a cube URL (it must end with .zarr)")
    return resolve_location(url, name="cube", centres=centres, storage_options=storage_options)
