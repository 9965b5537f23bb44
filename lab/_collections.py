"""Dataset discovery: every centre's collections searched at once (``catalog().collections``).

Each centre answers with :class:`pystac.Collection` objects, whatever its catalogue:

- a STAC API that conforms to STAC Collection Search with free text is asked
  ``/collections?q=&bbox=&datetime=``; one with Collection Search but no free text gets
  ``bbox`` and ``datetime`` and the lab matches ``q``; any other STAC API's ``/collections``
  list is read whole (following ``next`` links, at most :data:`MAX_COLLECTIONS`) and filtered
  by the lab. The centre's report says which;
- static catalogues, stac-geoparquet files (their ``static_catalog`` mirror when the centre has
  one, else collections made from the items) and cube stores are filtered by the lab;
- OGC CSW catalogues (``kind: csw``) are asked GetRecords and their ISO 19139 records mapped
  to collections (``lab._adapters._csw``).

The lab's filter: ``q`` matches, case-insensitively, the id, title, description or a keyword
(comma-separated terms: any of them); ``bbox`` intersects the spatial extent; ``datetime``
overlaps the temporal extent (open ends are open). Restricted collections of a local
catalogue are never listed (as in ``search``): the report says so, and a centre holding only
restricted collections that match is reported ``restricted``.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pystac

from lab._errors import CatalogError, ConfigurationError, RestrictedDataError
from lab._http import RetryPolicy
from lab._query import DatetimeLike, SearchQuery
from lab._reports import (
    CENTRE_PROPERTY,
    CentreCollections,
    CentreReport,
    FederatedAnswer,
    first_line,
)

if TYPE_CHECKING:
    from lab._centres import Centre, CentreSet

__all__ = ["CollectionQuery", "CollectionsResult"]

MAX_COLLECTIONS = 10_000
"""Collections read from one centre at most (paging is bounded; the report says when hit)."""
LAB_FILTER_NOTE = "filtered by the lab"
COLLECTION_SEARCH = "/collection-search"
FREE_TEXT = "/collection-search#free-text"


@dataclass(frozen=True)
class CollectionQuery:
    """What collections to look for, the same for every centre."""

    q: tuple[str, ...] | None = None
    """Free-text terms (any of them matches), or None."""
    bbox: tuple[float, float, float, float] | None = None
    """``(west, south, east, north)`` in WGS84 degrees."""
    datetime: tuple[dt.datetime | None, dt.datetime | None] | None = None
    """Closed interval in UTC; None ends are open."""

    @classmethod
    def build(
        cls,
        q: str | Iterable[str] | None = None,
        bbox: Sequence[float] | None = None,
        datetime: DatetimeLike = None,
    ) -> CollectionQuery:
        """Validate and normalise the arguments of :meth:`FederatedCatalog.collections`.

        Raises
        ------
        ConfigurationError
            If ``q`` is not text, or ``bbox``/``datetime`` are invalid (see ``search``).
        """
        terms: tuple[str, ...] | None = None
        if q is not None:
            values = q.split(",") if isinstance(q, str) else list(q)
            if not all(isinstance(v, str) for v in values):
                raise ConfigurationError(f"q must be text or a list of text, got {q!r}")
            terms = tuple(v.strip() for v in values if v.strip()) or None
        parsed = SearchQuery.build(bbox=bbox, datetime=datetime)
        return cls(q=terms, bbox=parsed.bbox, datetime=parsed.datetime)

    def datetime_string(self) -> str | None:
        """The interval as RFC 3339 ``start/end`` (``..`` for an open end), or None."""
        return SearchQuery(datetime=self.datetime).datetime_string()

    def describe(self) -> str:
        """A short text of the query, for reports."""
        parts = []
        if self.q:
            parts.append(f"q={','.join(self.q)}")
        rest = SearchQuery(bbox=self.bbox, datetime=self.datetime).describe()
        if rest and "everything" not in rest:
            parts.append(rest)
        return " ".join(parts) or "every collection"

    def matches(self, collection: pystac.Collection) -> bool:
        """Say whether a collection matches (the lab's filter, see the module docstring)."""
        if self.q:
            text = [collection.id, collection.title or "", collection.description or ""]
            text += list(collection.keywords or [])
            lowered = [t.lower() for t in text]
            if not any(term.lower() in t for term in self.q for t in lowered):
                return False
        if self.bbox:
            west, south, east, north = self.bbox
            boxes = collection.extent.spatial.bboxes or [[-180.0, -90.0, 180.0, 90.0]]
            if not any(_intersects(box, (west, south, east, north)) for box in boxes):
                return False
        if self.datetime:
            lo, hi = self.datetime
            intervals = collection.extent.temporal.intervals or [[None, None]]
            if not any(
                (hi is None or start is None or _utc(start) <= hi)
                and (lo is None or end is None or _utc(end) >= lo)
                for start, end in intervals
            ):
                return False
        return True


class CollectionsResult(FederatedAnswer):
    """Collections found across the federation, with the same per-centre report as ``search``.

    Iterating gives :class:`pystac.Collection` objects (centre order, then id), each tagged
    with its centre in ``collection.extra_fields["earthlab:centre"]``.
    """

    found = "collections"

    def __init__(
        self,
        collections: list[pystac.Collection],
        federation: dict[str, CentreReport],
        query: CollectionQuery,
    ):
        super().__init__(federation, query)
        self._collections = collections

    def __iter__(self) -> Iterator[pystac.Collection]:
        return iter(self._collections)

    def __len__(self) -> int:
        return len(self._collections)

    def __getitem__(self, index: int) -> pystac.Collection:
        return self._collections[index]

    @property
    def collections(self) -> list[pystac.Collection]:
        """The collections, as a list."""
        return list(self._collections)


def search_collections(
    centre_set: CentreSet,
    query: CollectionQuery,
    *,
    timeout: float | None,
    max_workers: int,
) -> CollectionsResult:
    """Ask every centre of ``centre_set`` in parallel (see the module docstring)."""
    policy = RetryPolicy.from_config()
    answers: dict[str, tuple[CentreCollections | None, CentreReport]] = {}
    pool = cf.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="earthlab-coll")
    try:
        started = time.monotonic()
        futures = {
            c.name: pool.submit(_centre_collections, c, query, policy) for c in centre_set.values()
        }
        for centre in centre_set.values():
            budget = timeout if timeout is not None else centre.catalog.timeout
            remaining = max(0.0, started + budget - time.monotonic())
            try:
                answers[centre.name] = futures[centre.name].result(timeout=remaining)
            except cf.TimeoutError:
                answers[centre.name] = (
                    None,
                    CentreReport(
                        centre.name,
                        "missing",
                        error=f"timed out after {budget:.1f} s",
                        seconds=time.monotonic() - started,
                    ),
                )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    found: list[pystac.Collection] = []
    federation = {}
    for name in centre_set:
        answer, report = answers[name]
        kept = sorted(answer.collections, key=lambda c: c.id) if answer else []
        for collection in kept:
            collection.extra_fields[CENTRE_PROPERTY] = name
        found.extend(kept)
        federation[name] = replace(report, kept=len(kept))
    return CollectionsResult(found, federation, query)


def _centre_collections(
    centre: Centre, query: CollectionQuery, policy: RetryPolicy
) -> tuple[CentreCollections | None, CentreReport]:
    """One centre's answer and report, with the centre's bounded retries."""
    started = time.monotonic()
    policy = replace(policy, total=centre.catalog.retries)
    attempts = 0
    last_error = ""
    while attempts <= policy.total:
        attempts += 1
        try:
            answer = centre_collections(centre, query)
        except RestrictedDataError as exc:
            return None, CentreReport(
                centre.name,
                "restricted",
                error=str(exc),
                attempts=attempts,
                seconds=time.monotonic() - started,
            )
        except Exception as exc:
            last_error = f"{type(exc).__name__}: {first_line(exc)}"
            if not policy.retryable(exc) or attempts > policy.total:
                break
            time.sleep(policy.backoff(attempts))
            continue
        return answer, CentreReport(
            centre.name,
            "ok",
            matched=answer.matched if answer.matched is not None else len(answer.collections),
            returned=len(answer.collections),
            note=answer.note,
            attempts=attempts,
            seconds=time.monotonic() - started,
        )
    return None, CentreReport(
        centre.name,
        "missing",
        error=last_error,
        attempts=attempts,
        seconds=time.monotonic() - started,
    )


def centre_collections(centre: Centre, query: CollectionQuery) -> CentreCollections:
    """The collections of one centre matching ``query``, its access rules applied.

    Raises
    ------
    RestrictedDataError
        If the centre's matching collections are all restricted (local catalogue), or its
        server refuses (401/403).
    CatalogError
        If the catalogue cannot be read or does not answer as its kind says.
    """
    kind = centre.catalog.kind
    if kind == "csw":
        from lab._adapters._csw import CswAdapter

        answer = CswAdapter(centre).collections(query)
    elif kind == "stac-api":
        answer = _stac_api_collections(centre, query)
    else:
        answer = _local_collections(centre, query)
    if centre.restricted and "://" not in centre.catalog.href:
        answer = _without_restricted(centre, answer)
    return answer


def _without_restricted(centre: Centre, answer: CentreCollections) -> CentreCollections:
    """Drop the restricted collections of a local catalogue (never listed, as in search)."""
    from lab._adapters._common import restricted_message
    from lab._adapters._restricted import LOCAL_REASON

    closed = set(centre.restricted)
    kept = [c for c in answer.collections if c.id not in closed]
    dropped = len(answer.collections) - len(kept)
    if not dropped:
        return answer
    if not kept:
        raise RestrictedDataError(restricted_message(centre, LOCAL_REASON))
    where = centre.access_url or f"the operators of {centre.name}"
    extra = f"restricted collection(s) {', '.join(sorted(closed))} not listed (request access via {where})"
    note = f"{answer.note}; {extra}" if answer.note else extra
    matched = None if answer.matched is None else answer.matched - dropped
    return CentreCollections(kept, matched=matched, note=note)


def _local_collections(centre: Centre, query: CollectionQuery) -> CentreCollections:
    """Static catalogues, stac-geoparquet files and cube stores, filtered by the lab."""
    kind = centre.catalog.kind
    source = centre.catalog.href if kind == "stac-static" else centre.static_catalog
    if source:
        try:
            root = pystac.Catalog.from_file(source)
            collections = [c for c in root.get_all_collections()]
        except (OSError, pystac.STACError, ValueError) as exc:
            raise CatalogError(f"cannot read static catalogue {source}: {exc}") from exc
        how = LAB_FILTER_NOTE
    else:
        from lab._adapters import _plain_adapter

        items = _plain_adapter(centre).search(SearchQuery()).items
        collections = _collections_of_items(items)
        how = f"collections made from the items' extents; {LAB_FILTER_NOTE}"
    kept = [c for c in collections if query.matches(c)]
    return CentreCollections(kept, matched=len(kept), note=how)


def _collections_of_items(items: list[pystac.Item]) -> list[pystac.Collection]:
    """One collection per collection id of ``items``, its extent that of its items."""
    by_id: dict[str, list[pystac.Item]] = {}
    for item in items:
        by_id.setdefault(item.collection_id or "(none)", []).append(item)
    collections = []
    for collection_id, members in sorted(by_id.items()):
        boxes = [i.bbox for i in members if i.bbox]
        bbox = (
            [
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            ]
            if boxes
            else [-180.0, -90.0, 180.0, 90.0]
        )
        times = [
            t
            for i in members
            for t in (
                i.datetime,
                i.common_metadata.start_datetime,
                i.common_metadata.end_datetime,
            )
            if t is not None
        ]
        interval: list[dt.datetime | None] = [min(times), max(times)] if times else [None, None]
        collections.append(
            pystac.Collection(
                id=collection_id,
                description=f"{len(members)} items",
                extent=pystac.Extent(
                    pystac.SpatialExtent([bbox]), pystac.TemporalExtent([interval])
                ),
            )
        )
    return collections


def _stac_api_collections(centre: Centre, query: CollectionQuery) -> CentreCollections:
    """A STAC API's collections: Collection Search when offered, else the list filtered here."""
    from lab._adapters._common import request_headers
    from lab._http import http_session

    spec = centre.catalog
    headers = request_headers(centre)
    with http_session(retry=replace(RetryPolicy.from_config(), total=0), timeout=spec.timeout) as s:
        s.headers.update(headers)
        landing = _get_json(s, centre, spec.href, None)
        conforms = [str(u) for u in landing.get("conformsTo") or []]
        if not conforms:
            raise CatalogError(
                f"centre {centre.name}: {spec.href} is declared kind: stac-api but is not a STAC "
                "API: its landing page has no conformsTo; check the centre's href and kind"
            )
        url = spec.href.rstrip("/") + "/collections"
        for link in landing.get("links") or []:
            if link.get("rel") == "data" and link.get("href"):
                url = str(link["href"])
        searchable = any(u.endswith(COLLECTION_SEARCH) for u in conforms)
        free_text = any(u.endswith(FREE_TEXT) for u in conforms)
        params: dict[str, str] = {}
        if searchable:
            if query.bbox:
                params["bbox"] = ",".join(f"{v:.10g}" for v in query.bbox)
            if query.datetime:
                params["datetime"] = str(query.datetime_string())
            if free_text and query.q:
                params["q"] = ",".join(query.q)
        documents, cut = _pages(s, centre, url, params)
    collections = [pystac.Collection.from_dict(d, preserve_dict=False) for d in documents]
    if searchable and free_text:
        note = "STAC Collection Search (free text) on the server"
        kept = collections
    elif searchable:
        kept = [c for c in collections if replace(query, bbox=None, datetime=None).matches(c)]
        note = "STAC Collection Search on the server" + (
            f", q {LAB_FILTER_NOTE} (no free-text conformance)" if query.q else ""
        )
    else:
        kept = [c for c in collections if query.matches(c)]
        note = f"no Collection Search conformance: /collections {LAB_FILTER_NOTE}"
    if cut:
        note += f"; only the first {MAX_COLLECTIONS} collections read"
    return CentreCollections(kept, matched=len(kept), note=note)


def _pages(
    session: Any, centre: Centre, url: str, params: dict[str, str]
) -> tuple[list[dict[str, Any]], bool]:
    """Every collection of a ``/collections`` answer, following ``next`` links (bounded)."""
    documents: list[dict[str, Any]] = []
    seen: set[str] = set()
    next_url: str | None = url
    next_params: dict[str, str] | None = params
    while next_url:
        page = _get_json(session, centre, next_url, next_params)
        documents.extend(page.get("collections") or [])
        if len(documents) >= MAX_COLLECTIONS:
            return documents[:MAX_COLLECTIONS], True
        next_url = None
        next_params = None
        for link in page.get("links") or []:
            href = link.get("href")
            if link.get("rel") == "next" and href and href not in seen:
                seen.add(str(href))
                next_url = str(href)
    return documents, False


def _get_json(session: Any, centre: Centre, url: str, params: dict[str, str] | None) -> Any:
    """GET a JSON document; 401/403 -> restricted, retryable statuses -> ConnectionError."""
    from lab._adapters._common import restricted_message

    response = session.get(url, params=params)
    status = response.status_code
    if status in (401, 403):
        raise RestrictedDataError(
            restricted_message(centre, f"the server said {status}: {response.text[:200]}")
        )
    if RetryPolicy.from_config().retryable(status):
        raise ConnectionError(f"{url} answered {status}")
    if status >= 400:
        raise CatalogError(f"centre {centre.name}: {url} answered {status}: {response.text[:200]}")
    try:
        document = response.json()
    except ValueError:
        raise CatalogError(
            f"centre {centre.name}: {url} is declared kind: stac-api but its answer is not JSON "
            f"({response.headers.get('Content-Type', 'no content type')}); check the centre's "
            "href and kind"
        ) from None
    if not isinstance(document, dict):
        raise CatalogError(f"centre {centre.name}: {url} did not answer a JSON object")
    return document


def _intersects(box: Sequence[float], other: Sequence[float]) -> bool:
    if len(box) >= 6:  # 3D: west, south, min z, east, north, max z
        box = [box[0], box[1], box[3], box[4]]
    west, south, east, north = (float(v) for v in box[:4])
    o_west, o_south, o_east, o_north = other
    if south > o_north or north < o_south:
        return False
    if west > east:  # crosses the antimeridian
        return _intersects([west, south, 180.0, north], other) or _intersects(
            [-180.0, south, east, north], other
        )
    return not (west > o_east or east < o_west)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
