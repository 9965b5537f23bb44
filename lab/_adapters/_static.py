"""Static STAC catalogues (catalog.json trees), filtered client-side."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

import pystac

from lab._adapters import AdapterResult
from lab._adapters._common import select
from lab._errors import CatalogError

if TYPE_CHECKING:
    from lab._centres import Centre
    from lab._query import SearchQuery


class StaticCatalogAdapter:
    """Walk a static catalogue once, then filter its items for each query."""

    def __init__(self, centre: Centre):
        self.centre = centre
        self._items: list[pystac.Item] | None = None
        self._lock = threading.Lock()

    def _all_items(self) -> list[pystac.Item]:
        with self._lock:
            if self._items is None:
                try:
                    root = pystac.Catalog.from_file(self.centre.catalog.href)
                except (OSError, pystac.STACError) as exc:
                    raise CatalogError(
                        f"cannot read static catalogue {self.centre.catalog.href}: {exc}"
                    ) from exc
                items = list(root.get_items(recursive=True))
                for item in items:
                    item.make_asset_hrefs_absolute()
                self._items = items
            return self._items

    def search(self, query: SearchQuery) -> AdapterResult:
        """Filter the catalogue's items; see :class:`lab._adapters.CatalogAdapter`."""
        result = select(self._all_items(), query)
        return replace(result, items=[item.clone() for item in result.items])  # cache stays as is
