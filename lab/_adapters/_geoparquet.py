"""stac-geoparquet catalogues searched offline with rustac's DuckDB client.

Small local files (at most :data:`SMALL_FILE_ITEMS` items) are read whole and filtered in
Python instead, with the same rules as static catalogues: starting DuckDB costs more than
reading them.

Two things rustac 0.9.8's DuckDB search gets wrong are worked around here:

- a ``datetime`` interval is matched against ``start_datetime``/``end_datetime`` alone when
  the file has those columns, so items with only a ``datetime`` are missed, and against
  ``datetime`` alone otherwise. The adapter asks for each kind of item with its own
  AND-only CQL2 filter (``datetime`` inside the interval; ``start_datetime``/
  ``end_datetime`` overlapping it, when the file has those columns) and merges the two, so an
  interval matches what a STAC API matches;
- an ``or`` (or ``not``) in a CQL2 filter loses its parentheses once combined with anything
  else, returning items the other conditions exclude: such a filter is not sent to DuckDB but
  evaluated with ``cql2`` on the items the other conditions select.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac

from lab._adapters import AdapterResult
from lab._adapters._common import absolute_hrefs, select
from lab._errors import CatalogError
from lab._query import filter_matches
from lab._sorting import describe, sort_key

if TYPE_CHECKING:
    from lab._centres import Centre
    from lab._query import SearchQuery

SMALL_FILE_ITEMS = 5000
"""Local files with at most this many items are read whole (rustac, no DuckDB) and filtered in
Python like a static catalogue: creating a DuckDB client (loading its spatial extension) costs
about 0.6 s of CPU per process, far more than reading a small file. Larger files, globs and
remote files are searched with DuckDB."""

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
        client = rustac.DuckdbClient(extension_directory=directory, install_extensions=False)
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
        self._interval_columns: bool | None = None

    def _has_interval_columns(self) -> bool:
        """Whether the file has ``start_datetime`` and ``end_datetime`` columns (cached)."""
        if self._interval_columns is None:
            self._interval_columns = {"start_datetime", "end_datetime"} <= _columns(self.href)
        return self._interval_columns

    def search(self, query: SearchQuery) -> AdapterResult:
        """Search the parquet file; see :class:`lab._adapters.CatalogAdapter`."""
        if (
            "://" not in self.href
            and not any(ch in self.href for ch in "*?[")
            and not Path(self.href).exists()
        ):
            raise CatalogError(f"catalogue file {self.href} does not exist")
        if self._is_small():
            return self._search_in_memory(query)
        kwargs: dict[str, Any] = {}
        if query.collections:
            kwargs["collections"] = list(query.collections)
        if query.bbox:
            kwargs["bbox"] = list(query.bbox)
        if query.ids:
            kwargs["ids"] = list(query.ids)
        if query.intersects:
            kwargs["intersects"] = query.intersects
        # no max_items: DuckDB returns items in the file's order, and a limit keeps the first
        # items in the query's order, so every match is read and sorted here
        # rustac would drop the parentheses of an 'or'/'not': such a filter is evaluated here,
        # on what DuckDB returns for the other conditions.
        client_side = query.filter if query.filter and _has_disjunction(query.filter) else None
        filters: list[dict[str, Any] | None] = [None]
        if query.datetime:
            filters = [_instant_filter(query)]
            if self._has_interval_columns():
                filters.append(_interval_filter(query))
        found: dict[str, dict[str, Any]] = {}
        for extra in filters:
            conditions = [c for c in (None if client_side else query.filter, extra) if c]
            if conditions:
                kwargs["filter"] = (
                    conditions[0] if len(conditions) == 1 else {"op": "and", "args": conditions}
                )
            for document in self._search(kwargs):
                found.setdefault(document["id"], document)
        documents = list(found.values())
        if client_side:
            documents = [d for d in documents if filter_matches(client_side, d)]
        documents.sort(key=sort_key(query.sortby))
        matched = len(documents)
        note = ""
        if query.limit and len(documents) > query.limit:
            note = (
                f"read all {len(documents)} matching items to keep the first {query.limit} "
                f"by {describe(query.sortby)}"
            )
            documents = documents[: query.limit]
        items = [
            pystac.Item.from_dict(absolute_hrefs(d, self.base), preserve_dict=False)
            for d in documents
        ]
        return AdapterResult(items=items, matched=matched, note=note)

    def _is_small(self) -> bool:
        """Whether the catalogue is one local file of at most ``SMALL_FILE_ITEMS`` items."""
        if "://" in self.href or any(ch in self.href for ch in "*?["):
            return False
        import pyarrow.parquet as pq

        try:
            return bool(pq.read_metadata(self.href).num_rows <= SMALL_FILE_ITEMS)
        except (OSError, ValueError) as exc:
            raise CatalogError(f"cannot read catalogue file {self.href}: {exc}") from exc

    def _search_in_memory(self, query: SearchQuery) -> AdapterResult:
        """Read every item of a small file and filter them as a static catalogue is."""
        import rustac

        try:
            documents = rustac.read_sync(self.href, set_self_link=False)["features"]
        except rustac.RustacError as exc:
            raise CatalogError(f"cannot read {self.href}: {str(exc).splitlines()[0]}") from exc
        for document in documents:
            if isinstance(document.get("bbox"), tuple):
                document["bbox"] = list(document["bbox"])
        return select(
            (
                pystac.Item.from_dict(absolute_hrefs(d, self.base), preserve_dict=False)
                for d in documents
            ),
            query,
        )

    def _search(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        import rustac

        try:
            with _client() as client:
                return list(client.search(self.href, **kwargs))
        except rustac.RustacError as exc:
            raise CatalogError(f"cannot search {self.href}: {str(exc).splitlines()[0]}") from exc


def _instant_filter(query: SearchQuery) -> dict[str, Any]:
    """CQL2 (AND only): ``datetime`` inside the query's interval."""
    assert query.datetime is not None
    start, end = query.datetime
    args = []
    if start is not None:
        args.append({"op": ">=", "args": [{"property": "datetime"}, {"timestamp": _ts(start)}]})
    if end is not None:
        args.append({"op": "<=", "args": [{"property": "datetime"}, {"timestamp": _ts(end)}]})
    return args[0] if len(args) == 1 else {"op": "and", "args": args}


def _interval_filter(query: SearchQuery) -> dict[str, Any]:
    """CQL2 (AND only): ``start_datetime``/``end_datetime`` overlapping the query's interval."""
    assert query.datetime is not None
    start, end = query.datetime
    args = []
    if end is not None:
        args.append({"op": "<=", "args": [{"property": "start_datetime"}, {"timestamp": _ts(end)}]})
    if start is not None:
        args.append({"op": ">=", "args": [{"property": "end_datetime"}, {"timestamp": _ts(start)}]})
    return args[0] if len(args) == 1 else {"op": "and", "args": args}


def _ts(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _has_disjunction(node: Any) -> bool:
    if isinstance(node, dict):
        if str(node.get("op", "")).lower() in ("or", "not"):
            return True
        return any(_has_disjunction(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_disjunction(v) for v in node)
    return False


def _columns(href: str) -> set[str]:
    """Column names of a parquet file (the first file of a glob)."""
    import glob

    import fsspec
    import pyarrow.parquet as pq

    if "://" not in href and any(ch in href for ch in "*?["):
        matches = sorted(glob.glob(href))
        if not matches:
            return set()
        href = matches[0]
    fs, path = fsspec.core.url_to_fs(href)
    return set(pq.read_schema(path, filesystem=fs).names)
