"""stac-geoparquet catalogues searched offline with rustac's DuckDB client."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac

from lab._adapters import AdapterResult
from lab._adapters._common import absolute_hrefs
from lab._errors import CatalogError

if TYPE_CHECKING:
    from lab._centres import Centre
    from lab._query import SearchQuery

# DuckDB clients are not shared between threads at once: a small pool lends one per search.
_idle_clients: list[Any] = []
_pool_lock = threading.Lock()


def _extension_directory() -> Path:
    import duckdb

    # The duckdb-ext-* wheels install DuckDB extensions here, so nothing is downloaded.
    return Path(duckdb.__file__).resolve().parent.parent / "duckdb_ext" / "extensions"


@contextlib.contextmanager
def _client() -> Iterator[Any]:
    """Lend a DuckDB client (created on demand, returned to the pool after use)."""
    with _pool_lock:
        client = _idle_clients.pop() if _idle_clients else None
    if client is None:
        import rustac

        directory = _extension_directory()
        if not directory.is_dir():
            raise CatalogError(
                f"DuckDB extensions not found in {directory}; install the pinned wheels with "
                "`pip install -c constraints.txt -e .` (duckdb-ext-spatial/icu/parquet)"
            )
        client = rustac.DuckdbClient(extension_directory=str(directory), install_extensions=False)
    try:
        yield client
    finally:
        with _pool_lock:
            _idle_clients.append(client)


class GeoparquetAdapter:
    """Search a stac-geoparquet file (or glob) with DuckDB; relative asset hrefs are resolved."""

    def __init__(self, centre: Centre):
        self.centre = centre
        self.href = centre.catalog.href
        self.base = (
            str(Path(self.href).parent) if "://" not in self.href else self.href.rsplit("/", 1)[0]
        )

    def search(self, query: SearchQuery) -> AdapterResult:
        """Search the parquet file; see :class:`lab._adapters.CatalogAdapter`."""
        if (
            "://" not in self.href
            and not any(ch in self.href for ch in "*?[")
            and not Path(self.href).exists()
        ):
            raise CatalogError(f"catalogue file {self.href} does not exist")
        kwargs: dict[str, Any] = {}
        if query.collections:
            kwargs["collections"] = list(query.collections)
        if query.bbox:
            kwargs["bbox"] = list(query.bbox)
        if query.datetime:
            kwargs["datetime"] = query.datetime_string()
        if query.ids:
            kwargs["ids"] = list(query.ids)
        if query.intersects:
            kwargs["intersects"] = query.intersects
        if query.filter:
            kwargs["filter"] = query.filter
        if query.limit:
            kwargs["max_items"] = query.limit
        import rustac

        try:
            with _client() as client:
                found = client.search(self.href, **kwargs)
        except rustac.RustacError as exc:
            raise CatalogError(f"cannot search {self.href}: {str(exc).splitlines()[0]}") from exc
        items = [
            pystac.Item.from_dict(absolute_hrefs(d, self.base), preserve_dict=False) for d in found
        ]
        return AdapterResult(items=items, matched=len(items) if not query.limit else None)
