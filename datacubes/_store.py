"""Where a cube lives: local directory or object storage (S3) through fsspec.

A cube at ``<parent>/<name>.zarr`` has two siblings::

    <parent>/<name>.zarr          the cube (Zarr 3 or 2)
    <parent>/<name>.meta/         manifest.json (build state), item.json and collection.json
                                  (STAC, datacube extension)
    <parent>/<name>.cog/          optional COGs: <band>/<name>_<band>_<time>.tif

They sit beside the Zarr store, not inside it, so that Zarr readers see a clean hierarchy.
Credentials for S3 come from the centre's ``storage`` (environment variables it names) and
live only in memory.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec

from lab import ConfigurationError

META_SUFFIX = ".meta"
COG_SUFFIX = ".cog"
MANIFEST = "manifest.json"
ITEM = "item.json"
COLLECTION = "collection.json"


@dataclass(frozen=True)
class CubeLocation:
    """A cube's URL and the storage options to reach it (never printed)."""

    url: str
    """Absolute path or ``s3://`` URL of the Zarr store (ends with ``.zarr``)."""
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """fsspec options (endpoint, credentials): kept in memory, never written."""

    def __post_init__(self) -> None:
        if not self.url.endswith(".zarr"):
            raise ConfigurationError(f"cube URL {self.url!r} must end with .zarr")

    @property
    def remote(self) -> bool:
        """Whether the cube is on object storage."""
        return "://" in self.url and not self.url.startswith("file://")

    @property
    def stem(self) -> str:
        """URL without ``.zarr``."""
        return self.url[: -len(".zarr")]

    @property
    def name(self) -> str:
        """File name of the cube without ``.zarr``."""
        return posixpath.basename(self.stem)

    @property
    def meta_url(self) -> str:
        """Directory of the manifest and STAC documents."""
        return self.stem + META_SUFFIX

    @property
    def cog_url(self) -> str:
        """Directory of the COG exports."""
        return self.stem + COG_SUFFIX

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem of the cube."""
        return fsspec.core.url_to_fs(self.url, **dict(self.storage_options))[0]

    def path(self, url: str) -> str:
        """Filesystem path of a URL of this location (bucket/key for S3)."""
        return fsspec.core.url_to_fs(url, **dict(self.storage_options))[1]

    def zarr_exists(self) -> bool:
        """Whether anything is stored at the cube URL."""
        fs = self.fs
        return fs.exists(self.path(self.url))

    def read_meta(self, name: str) -> dict[str, Any] | None:
        """A JSON document of the metadata directory, or ``None`` when absent."""
        fs = self.fs
        path = self.path(f"{self.meta_url}/{name}")
        try:
            with fs.open(path, "rb") as stream:
                return json.loads(stream.read().decode("utf-8"))
        except FileNotFoundError:
            return None

    def write_meta(self, name: str, document: Mapping[str, Any]) -> None:
        """Write a JSON document of the metadata directory atomically."""
        data = json.dumps(document, indent=1, sort_keys=False, default=str).encode("utf-8")
        self.write_bytes(f"{self.meta_url}/{name}", data)

    def write_bytes(self, url: str, data: bytes) -> None:
        """Write a whole object: one PUT on S3, write-then-rename on a local disk."""
        fs = self.fs
        path = self.path(url)
        if self.remote:
            fs.pipe_file(path, data)
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)

    def upload(self, local_path: str, url: str) -> None:
        """Copy a local file to ``url`` of this location."""
        fs = self.fs
        path = self.path(url)
        if not self.remote:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            fs.put_file(local_path, tmp)
            os.replace(tmp, path)
            return
        fs.put_file(local_path, path)

    def remove(self) -> None:
        """Delete the cube, its metadata and its COGs."""
        fs = self.fs
        for url in (self.url, self.meta_url, self.cog_url):
            path = self.path(url)
            if fs.exists(path):
                fs.rm(path, recursive=True)
        fs.invalidate_cache()


def resolve_location(
    url: str | None,
    *,
    name: str,
    centre: str | None = None,
    centres: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> CubeLocation:
    """Turn a target (URL, centre storage or default) into a :class:`CubeLocation`.

    Parameters
    ----------
    url : str, optional
        Target URL or path; relative paths are relative to the working directory.
    name : str
        Cube name, for the default ``<name>.zarr``.
    centre : str, optional
        Centre whose storage holds the cube when ``url`` is not given.
    centres : lab.CentreSet, optional
        The federation, to find storage options (default: the ``centres`` setting,
        ``EARTHLAB_CENTRES``, when set).
    storage_options : mapping, optional
        fsspec options that take precedence over the centre's.

    Returns
    -------
    CubeLocation
        The cube's location.
    """
    options: dict[str, Any] | None = dict(storage_options) if storage_options else None
    if url is None and centre is not None:
        found = _centres(centres, required=True)[centre]
        if found.storage is None:
            raise ConfigurationError(
                f"target.centre {centre!r} has no storage in the centres file: add "
                "storage: {url: ...} to it or give target.url"
            )
        url = f"{found.storage.url.rstrip('/')}/{name}.zarr"
        if options is None:
            options = found.storage.storage_options()
    if url is None:
        url = f"{name}.zarr"
    url = url.rstrip("/")
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    elif options is None:
        options = storage_options_for(url, centres)
    return CubeLocation(url, options or {})


def storage_options_for(url: str, centres: Any = None) -> dict[str, Any]:
    """Return the fsspec options of the centre whose storage holds ``url`` (empty when none does)."""
    if "://" not in url:
        return {}
    found = _centres(centres, required=False)
    if found is None:
        return {}
    for candidate in found.values():
        storage = candidate.storage
        if storage is not None and _under(url, storage.url):
            return storage.storage_options()
    return {}


def _under(url: str, root: str) -> bool:
    root = root.rstrip("/")
    return url == root or url.startswith(root + "/")


def _centres(centres: Any, *, required: bool) -> Any:
    if centres is not None and not isinstance(centres, str | os.PathLike):
        return centres
    from lab import centres as read_centres
    from lab import config

    if centres is not None:
        return read_centres(centres)
    if required or config.get("centres"):
        return read_centres()
    return None
