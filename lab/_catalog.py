"""The federated catalogue: one search over every data centre, in parallel.

Each centre is searched by its adapter in its own thread, with a per-centre timeout and
bounded retries (``catalog.retries`` further tries of the whole search, by the lab's HTTP retry
policy: which failures, how long between tries; see ``lab._http``). A centre that fails is
reported in ``result.federation`` and does not sink the others. Results are merged, de-duplicated (an item mirrored by two centres is kept once,
from the preferred centre) and sorted by datetime.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pystac

from lab._adapters import AdapterResult, adapter_for
from lab._centres import Centre, CentreSet, centres
from lab._errors import ConfigurationError, EarthLabWarning, RestrictedDataError
from lab._http import RetryPolicy
from lab._query import DatetimeLike, SearchQuery
from lab._reports import CENTRE_PROPERTY, CentreReport, FederatedAnswer
from lab._reports import first_line as _first_line
from lab._sorting import sort_key

if TYPE_CHECKING:
    from lab._collections import CollectionsResult

__all__ = ["CentreReport", "FederatedCatalog", "SearchResult", "catalog"]

STATUSES = ("ok", "missing", "restricted", "skipped")


class SearchResult(FederatedAnswer):
    """Items found by a federated search, with a per-centre report.

    Iterating gives :class:`pystac.Item` objects in the query's order (datetime by default),
    each tagged with its centre in ``item.properties["earthlab:centre"]``.
    """

    found = "items"

    def __init__(
        self, items: list[pystac.Item], federation: dict[str, CentreReport], query: SearchQuery
    ):
        super().__init__(federation, query)
        self._items = items

    def __iter__(self) -> Iterator[pystac.Item]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> pystac.Item:
        return self._items[index]

    @property
    def items(self) -> list[pystac.Item]:
        """The items, as a list."""
        return list(self._items)

    def item_collection(self) -> pystac.ItemCollection:
        """Return the items as a :class:`pystac.ItemCollection`."""
        return pystac.ItemCollection(self._items, clone_items=False)


class FederatedCatalog:
    """Search every centre of a federation at once.

    Parameters
    ----------
    centre_set
        The centres (default: :func:`lab.centres`).
    max_workers
        Threads used to search centres in parallel (default: one per centre, at most 16).
    """

    def __init__(self, centre_set: CentreSet | None = None, max_workers: int | None = None):
        self.centres = centre_set if centre_set is not None else centres()
        self.max_workers = max_workers or min(16, max(1, len(self.centres)))
        self._adapters = {name: adapter_for(c) for name, c in self.centres.items()}

    def search(
        self,
        collections: str | Iterable[str] | None = None,
        bbox: Sequence[float] | None = None,
        datetime: DatetimeLike = None,
        limit: int | None = None,
        *,
        ids: str | Iterable[str] | None = None,
        intersects: dict[str, Any] | None = None,
        filter: dict[str, Any] | None = None,
        sortby: str | Sequence[Any] | None = None,
        centres: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> SearchResult:
        """Search all centres in parallel and merge what they return.

        Parameters
        ----------
        collections
            Collection id(s).
        bbox
            ``west, south, east, north`` in WGS84 degrees.
        datetime
            Instant or interval: RFC 3339, partial dates (``"2022-01/2022-03"``), datetimes.
        limit
            At most this many items in the merged result: the first ones in the result's
            order, whatever order each centre's server returns.
        ids
            Item id(s).
        intersects
            GeoJSON geometry (or an object with ``__geo_interface__``).
        filter
            CQL2-JSON filter: sent to the STAC APIs that conform to Filter and to stac-geoparquet
            searches; evaluated client-side for the others (STAC APIs without Filter, static
            catalogues, cube stores), which the centre's report note says. Never dropped.
        sortby
            The result's order, as pystac-client takes it: ``"-properties.eo:cloud_cover"``,
            ``"-datetime,+id"``, a list of such strings or of ``{"field", "direction"}``
            mappings. Default: datetime ascending. Items without a field come after those
            with it in both directions; ties go by datetime, collection and id. STAC APIs
            that conform to Sort are sent it; the others, and every other kind of catalogue,
            are sorted by the lab (with ``limit``: read whole, which the report note says).
            Only these centres (names); default all.
        timeout
            Seconds allowed per centre, retries included, overriding each centre's
            ``catalog.timeout``. A centre that has not answered by then is reported
            ``missing`` and its late answer is ignored.

        Returns
        -------
        SearchResult
            Items in the ``sortby`` order (datetime by default), and
            ``result.federation``, the per-centre report.

        Raises
        ------
        ConfigurationError
            If an argument or an ``http.*`` setting is invalid (the message names it), or a
            collection asked for is declared by no centre (a misspelt id: the message says
            which centres declare which collections and suggests the closest id). Not raised
            when a searched centre declares no collections (it may hold any), nor for a
            declared collection without matching items (an empty result).

        Warns
        -----
        EarthLabWarning
            If nothing is found and a collection asked for is declared by no centre, when a
            searched centre declares no collections (so it might have held it).
        UnknownCentreError
            If ``centres`` names a centre that is not in the federation.
        """
        query = SearchQuery.build(
            collections, bbox, datetime, ids, intersects, filter, limit, sortby
        )
        if timeout is not None and not timeout > 0:
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        selected = self.centres.select(None if centres is None else list(centres))
        undeclared = _undeclared_collections(query.collections, self.centres, selected)
        policy = RetryPolicy.from_config()  # read once, here: a wrong setting fails the search
        answers: dict[str, tuple[AdapterResult | None, CentreReport]] = {}
        to_search = []
        for centre in selected.values():
            if centre.catalog.kind == "csw":  # dataset records, no items
                from lab._adapters._csw import NOT_ITEMS

                answers[centre.name] = (
                    None,
                    CentreReport(centre.name, "skipped", matched=0, note=NOT_ITEMS),
                )
            elif centre.holds(query.collections):
                to_search.append(centre)
            else:
                note = f"holds none of {', '.join(query.collections or ())}"
                answers[centre.name] = (
                    None,
                    CentreReport(centre.name, "skipped", matched=0, note=note),
                )
        pool = cf.ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix="earthlab-search"
        )
        try:
            started = time.monotonic()
            futures = {
                c.name: pool.submit(self._search_centre, c, query, policy) for c in to_search
            }
            for centre in to_search:
                limit_s = _total_budget(centre, timeout)
                remaining = max(0.0, started + limit_s - time.monotonic())
                try:
                    answers[centre.name] = futures[centre.name].result(timeout=remaining)
                except cf.TimeoutError:
                    answers[centre.name] = (
                        None,
                        CentreReport(
                            centre.name,
                            "missing",
                            error=f"timed out after {limit_s:.1f} s",
                            seconds=time.monotonic() - started,
                        ),
                    )
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        ordered = {name: answers[name] for name in selected if name in answers}
        result = _merge(ordered, selected, query)
        if undeclared and not len(result):
            warnings.warn(undeclared, EarthLabWarning, stacklevel=2)
        return result

    def collections(
        self,
        q: str | Iterable[str] | None = None,
        bbox: Sequence[float] | None = None,
        datetime: DatetimeLike = None,
        *,
        centres: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> CollectionsResult:
        """Find datasets: the collections of every centre matching the query, at once.

        STAC APIs are asked with STAC Collection Search where they offer it, else their
        ``/collections`` list is filtered by the lab; static catalogues, stac-geoparquet files
        and cube stores are filtered by the lab; OGC CSW catalogues (``kind: csw``) are asked
        GetRecords and their ISO 19139 records mapped to collections. Restricted collections
        of local catalogues are never listed. See ``lab._collections``.

        Parameters
        ----------
        q
            Free text: matches, case-insensitively, a collection's id, title, description or
            keywords (comma-separated terms, or a list: any of them).
        bbox
            ``west, south, east, north`` in WGS84 degrees: the spatial extent intersects it.
        datetime
            Instant or interval (as in :meth:`search`): the temporal extent overlaps it.
        centres
            Only these centres (names); default all.
        timeout
            Seconds allowed per centre, retries included (default: each centre's
            ``catalog.timeout``).

        Returns
        -------
        CollectionsResult
            The :class:`pystac.Collection` objects (centre order, then id), each tagged with
            ``extra_fields["earthlab:centre"]``, and ``result.federation``, the per-centre
            report (the same as :meth:`search`'s).

        Raises
        ------
        ConfigurationError
            If an argument is invalid (the message names it).
        UnknownCentreError
            If ``centres`` names a centre that is not in the federation.
        """
        from lab._collections import CollectionQuery, search_collections

        query = CollectionQuery.build(q, bbox, datetime)
        if timeout is not None and not timeout > 0:
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        selected = self.centres.select(None if centres is None else list(centres))
        return search_collections(selected, query, timeout=timeout, max_workers=self.max_workers)

    def _search_centre(
        self, centre: Centre, query: SearchQuery, policy: RetryPolicy
    ) -> tuple[AdapterResult | None, CentreReport]:
        started = time.monotonic()
        policy = replace(policy, total=centre.catalog.retries)
        attempts = 0
        last_error = ""
        while attempts <= policy.total:
            attempts += 1
            try:
                result = self._adapters[centre.name].search(query)
            except RestrictedDataError as exc:
                return None, CentreReport(
                    centre.name,
                    "restricted",
                    error=str(exc),
                    attempts=attempts,
                    seconds=time.monotonic() - started,
                )
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {_first_line(exc)}"
                if not policy.retryable(exc) or attempts > policy.total:
                    break
                time.sleep(policy.backoff(attempts))
                continue
            for item in result.items:
                item.properties[CENTRE_PROPERTY] = centre.name
            report = CentreReport(
                centre.name,
                "ok",
                matched=result.matched if result.matched is not None else None,
                returned=len(result.items),
                note=result.note,
                attempts=attempts,
                seconds=time.monotonic() - started,
            )
            return result, report
        return None, CentreReport(
            centre.name,
            "missing",
            error=last_error,
            attempts=attempts,
            seconds=time.monotonic() - started,
        )

    def __repr__(self) -> str:
        return f"<FederatedCatalog of {len(self.centres)} centres: {', '.join(self.centres)}>"


def catalog(
    centres: CentreSet | str | os.PathLike[str] | None = None, max_workers: int | None = None
) -> FederatedCatalog:
    """Return the federated catalogue of the lab's data centres.

    Parameters
    ----------
    centres
        A :class:`CentreSet` or the path of a centres file (default: ``$EARTHLAB_CENTRES``,
        else the embedded sample federation).
    max_workers
        Threads used to search centres in parallel.

    Returns
    -------
    FederatedCatalog
        Call ``.search(...)`` on it.
    """
    if centres is None or isinstance(centres, CentreSet):
        return FederatedCatalog(centres, max_workers=max_workers)
    from pathlib import Path

    from lab._centres import read_centres_file

    return FederatedCatalog(read_centres_file(Path(centres)), max_workers=max_workers)


def _merge(
    answers: dict[str, tuple[AdapterResult | None, CentreReport]],
    selected: CentreSet,
    query: SearchQuery,
) -> SearchResult:
    order = {name: i for i, name in enumerate(selected)}
    preference = sorted(answers, key=lambda n: (selected[n].priority, order[n]))
    kept: dict[tuple[str | None, str], pystac.Item] = {}
    duplicates = dict.fromkeys(answers, 0)
    for name in preference:
        result = answers[name][0]
        if result is None:
            continue
        for item in result.items:
            key = (item.collection_id, item.id)
            if key in kept:
                duplicates[name] += 1
            else:
                kept[key] = item
    items = sorted(kept.values(), key=sort_key(query.sortby))
    if query.limit:
        items = items[: query.limit]
    counts = dict.fromkeys(answers, 0)
    for item in items:
        counts[item.properties[CENTRE_PROPERTY]] += 1
    federation = {}
    for name, (_, report) in answers.items():
        federation[name] = replace(report, kept=counts[name], duplicates=duplicates[name])
    return SearchResult(items, federation, query)


def _undeclared_collections(
    asked: tuple[str, ...] | None, federation: CentreSet, selected: CentreSet
) -> str:
    """Say which collections asked for no centre declares, so that a typo is not just 0 items.

    Returns
    -------
    str
        The same message when a searched centre declares no collections (it may hold any:
        the search warns if nothing is found), else an empty string.

    Raises
    ------
    ConfigurationError
        If a collection asked for is declared by no centre and every searched centre declares
        its collections (so none can hold it).
    """
    if not asked:
        return ""
    declared = {name for c in federation.values() for name in c.collections}
    unknown = [name for name in asked if name not in declared]
    if not unknown:
        return ""
    import difflib

    hints = []
    for name in unknown:
        close = (
            difflib.get_close_matches(name, sorted(declared), n=1, cutoff=0.5)
            or [d for d in sorted(declared) if name.lower() in d.lower()][:1]
        )
        if close:
            hints.append(f"{close[0]!r}" + (f" for {name!r}" if len(unknown) > 1 else ""))
    which = "; ".join(
        f"{c.name}: {', '.join(c.collections) or '(any)'}" for c in federation.values()
    )
    source = f" (centres file {federation.source})" if federation.source else ""
    message = (
        f"no centre declares the collection{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(repr(n) for n in unknown)}"
        + (f" (did you mean {', '.join(hints)}?)" if hints else "")
        + f". Collections by centre{source}: {which}."
    )
    if all(c.collections or c.catalog.kind == "csw" for c in selected.values()):  # CSW: no items
        raise ConfigurationError(message)
    return message


def _total_budget(centre: Centre, timeout: float | None) -> float:
    """Wall time allowed for one centre, retries included."""
    return timeout if timeout is not None else centre.catalog.timeout
