"""Cube stores: the analysis-ready cubes a centre built, searchable like any catalogue.

A cube store is a directory or an object-storage prefix where ``earthlab cube build`` writes
``<name>.zarr`` and, beside it, ``<name>.meta/item.json``: the cube's STAC Item (datacube
extension). This adapter lists those items and filters them for each query, so that
``lab.catalog().search(collections=["<name>"])`` finds a cube once it is built. Credentials
come from the centre's ``storage`` when the catalogue href lies in it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import fsspec
import pystac

from lab._adapters import AdapterResult
from lab._adapters._common import select
from lab._errors import CatalogError

if TYPE_CHECKING:
    from lab._centres import Centre
    from lab._query import SearchQuery

ITEM_GLOB = "*.meta/item.json"
"""Where cube Items sit in a store (the layout ``datacubes`` writes)."""


class CubeStoreAdapter:
    """List the cubes of a store and filter their STAC Items."""

    def __init__(self, centre: Centre):
        self.centre = centre
        self.href = centre.catalog.href.rstrip("/")

    def _options(self) -> dict[str, Any]:
        storage = self.centre.storage
        if storage is None or "://" not in self.href:
            return {}
        root = storage.url.rstrip("/")
        if self.href == root or self.href.startswith(root + "/"):
            return storage.storage_options()
        return {}

    def search(self, query: SearchQuery) -> AdapterResult:
        """List and filter the store's cubes; see :class:`lab._adapters.CatalogAdapter`."""
        try:
            fs, root = fsspec.core.url_to_fs(self.href, **self._options())
            paths = sorted(fs.glob(f"{root}/{ITEM_GLOB}"))
        except FileNotFoundError:
            paths = []
        except OSError as exc:
            raise CatalogError(f"cannot list cube store {self.href}: {exc}") from exc
        items = []
        for path in paths:
            with fs.open(path, "rb") as stream:
                items.append(pystac.Item.from_dict(json.loads(stream.read()), preserve_dict=False))
        return select(items, query)
