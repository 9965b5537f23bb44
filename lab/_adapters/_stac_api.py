"""STAC APIs searched through pystac-client (item-search, or each collection's /items).

Pagination is the API's own: pystac-client follows ``next`` links whatever their style
(a POST link whose body carries a ``next`` token with ``merge: false`` as Earth Search does,
a POST body ``token`` as the Planetary Computer's ``/search`` does, or a GET link with a
``?token=`` / ``?skip=`` query as ``/items`` endpoints do). The number of matches is read
from the first page (``numberMatched`` or the older ``context.matched``) when the API gives
it, so that no extra request is made to count.

A CQL2 filter is sent to an API that conforms to Filter (the STAC API ``item-search#filter``
class or OGC API Features part 3 ``filter``); an API with item-search but without Filter would
ignore it or match nothing, so it is searched with the other criteria only, every matching
page is read (at most ``lab.config`` ``catalog.client_filter_max_items`` items, else a
:class:`CatalogError` asks to narrow the search) and the filter is evaluated client-side with
``cql2``; the centre's report says so. A filter is never dropped.

A 401 or 403 answer raises :class:`~lab._errors.RestrictedDataError` naming where to request
access: the federation reports the centre ``restricted``, not empty.

Requests go through a lab HTTP session (``lab._http``: User-Agent, request hooks, timeout) that
makes one try per request: the federation retries the centre's whole search by the same retry
policy, so that retries do not multiply. An answer with a status of the policy (502, 503...)
or no answer becomes a ``ConnectionError`` (retried); another status a :class:`CatalogError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lab._adapters import AdapterResult
from lab._adapters._common import request_headers, restricted_message
from lab._config import config
from lab._errors import CatalogError, RestrictedDataError
from lab._http import RetryPolicy, http_session, is_tls_failure
from lab._query import filter_matches, matches
from lab._sorting import DEFAULT_SORT, describe, sort_key, sort_prefix

if TYPE_CHECKING:
    import pystac

    from lab._centres import Centre
    from lab._query import SearchQuery

PAGE_SIZE = 100
"""Items asked per page (servers may give fewer)."""
ITEM_SEARCH = "item-search"
CLIENT_FILTER_NOTE = "filter evaluated client-side (the API does not conform to Filter)"
#: Conformance classes saying that an API evaluates CQL2 filters in item-search.
FILTER_CONFORMANCE = (
    re.compile(r"^https://api\.stacspec\.org/v1\.0\.0[^/]*/item-search#filter$"),
    re.compile(r"^http://www\.opengis\.net/spec/ogcapi-features-3/1\.0/conf/(features-)?filter$"),
)
#: Conformance classes saying that item-search takes ``sortby`` (any STAC API version: pgstac 7
#: declares v1.1.0 URIs, which pystac-client's own check does not match).
SORT_CONFORMANCE = re.compile(r"^https://api\.stacspec\.org/v1\.[^/]*/item-search#sort$")


class StacApiAdapter:
    """Search a STAC API, following its own pagination.

    Conformance is read from the landing page: an API without the ``item-search``
    conformance class is searched through its collections' ``/items`` endpoints (OGC API
    Features, with ``bbox`` and ``datetime`` sent to the server), the rest filtered
    client-side, and the report says so.
    """

    def __init__(self, centre: Centre):
        self.centre = centre
        # Imported now, when the catalogue is made, not in the first search: importing
        # pystac-client takes 1-4 s, which a centre's timeout must not count.
        import pystac_client  # noqa: F401

    def _client(self) -> Any:
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO

        spec = self.centre.catalog
        headers = request_headers(self.centre)
        # Retries are the federation's (per centre, same policy); one try per request here.
        stac_io = StacApiIO(max_retries=0)
        stac_io.session.close()
        stac_io.session = http_session(
            retry=replace(RetryPolicy.from_config(), total=0), timeout=spec.timeout
        )
        try:  # open() updates stac_io with these (a timeout it is not given becomes None)
            return Client.open(spec.href, headers=headers, stac_io=stac_io, timeout=spec.timeout)
        except BaseException:
            stac_io.session.close()
            raise

    def search(self, query: SearchQuery) -> AdapterResult:
        """Search the API; see :class:`lab._adapters.CatalogAdapter`.

        Raises
        ------
        RestrictedDataError
            If the API answers 401 or 403 (the message says where to request access).
        CatalogError
            If the API answers another client error (4xx) or something that is not STAC.
        """
        from pystac_client.exceptions import APIError

        try:
            client = self._client()
        except APIError as exc:
            raise _api_error(self.centre, exc) from exc
        except ValueError as exc:  # JSONDecodeError, or JSON that pystac cannot read
            raise self._not_stac_api(f"its answer is not a STAC landing page ({exc})") from None
        try:
            if not client.has_conforms_to():
                raise self._not_stac_api(
                    "its landing page has no conformsTo (a static catalogue answers like "
                    "this; declare it with kind: stac-static)"
                )
            if _conforms_to_item_search(client):
                return self._item_search(client, query)
            return self._collections_fallback(client, query)
        except APIError as exc:
            raise _api_error(self.centre, exc) from exc
        finally:
            client._stac_io.session.close()

    def _not_stac_api(self, why: str) -> CatalogError:
        return CatalogError(
            f"centre {self.centre.name}: {self.centre.catalog.href} is declared "
            f"kind: stac-api but is not a STAC API: {why}; check the centre's href and kind"
        )

    def _item_search(self, client: Any, query: SearchQuery) -> AdapterResult:
        if query.limit:
            return self._first_items(client, query)
        if query.filter and not _conforms_to_filter(client):
            return self._item_search_filtered_here(client, query)
        search = client.search(**_criteria(query), filter=query.filter, limit=PAGE_SIZE)
        return _collect(search.pages_as_dicts(), query, self.centre)

    def _first_items(self, client: Any, query: SearchQuery) -> AdapterResult:
        """The first ``query.limit`` items in the federation's merge order, whatever the API's.

        Servers return items in their own order (pgstac: newest first; rustac: oldest first),
        so the first ``limit`` items a server returns are not the ones the merge keeps. An API
        that conforms to Sort is asked ``sortby`` datetime ascending, and read until the
        ``limit``-th item's datetime is passed (items of the same instant are ordered here by
        collection and id); the order it answers is checked, and an API that ignored
        ``sortby``, or one without Sort, is read to the end (at most ``lab.config``
        ``catalog.client_filter_max_items`` items) and sorted here. The report says which.
        """
        assert query.limit is not None
        filter_here = bool(query.filter) and not _conforms_to_filter(client)
        cql2_filter = query.filter
        sortable = _conforms_to_sort(client)
        if sortable and not client.conforms_to("SORT"):
            client.add_conforms_to("SORT")  # a later version pystac-client does not know
        order = describe(query.sortby)
        prefix = sort_prefix(query.sortby)
        search = client.search(
            **_criteria(query),
            filter=None if filter_here else cql2_filter,
            sortby=[f.to_dict() for f in query.sortby or DEFAULT_SORT] if sortable else None,
            limit=min(PAGE_SIZE, query.limit + 1) if sortable else PAGE_SIZE,
        )
        max_read = int(config.get("catalog.client_filter_max_items"))
        where = f"centre {self.centre.name}"
        features: list[dict[str, Any]] = []
        matched: int | None = None
        read = 0
        in_order = sortable
        previous: list[str] = []
        for number, page in enumerate(search.pages_as_dicts()):
            if number == 0 and not filter_here:
                matched = _number_matched(page)
            page_features = page.get("features", [])
            ids = [str(f.get("id")) for f in page_features]
            if number and ids == previous:
                raise _repeated_page(where, number)
            previous = ids
            read += len(page_features)
            for feature in page_features:
                if features and in_order and prefix(feature) < prefix(features[-1]):
                    # the API ignored sortby, or put items without the field elsewhere than
                    # last: read everything
                    in_order = False
                if filter_here and not filter_matches(cql2_filter, feature):  # type: ignore[arg-type]
                    continue
                features.append(feature)
            if in_order and len(features) > query.limit:
                boundary = prefix(features[query.limit - 1])
                if boundary < prefix(features[-1]):
                    break
            if read > max_read:
                raise CatalogError(
                    f"{where}: to keep the first {query.limit} items by {order} the lab "
                    f"must read every matching item (its STAC API "
                    f"{'ignores sortby' if sortable else 'does not conform to Sort'}), and "
                    f"that is more than {max_read} items; narrow the search with collections, "
                    "bbox or datetime, or raise catalog.client_filter_max_items"
                )
        features.sort(key=sort_key(query.sortby))
        items = _items([{"features": features[: query.limit]}])
        notes = []
        if filter_here:
            notes.append(CLIENT_FILTER_NOTE)
            matched = len(features)
        if not sortable:
            notes.append(
                f"no Sort conformance: read all {len(features)} matching items to keep the "
                f"first {query.limit} by {order}"
            )
        elif not in_order:
            notes.append(
                f"the API ignored sortby: read all {len(features)} matching items to keep "
                f"the first {query.limit} by {order}"
            )
        return AdapterResult(items=items, matched=matched, note="; ".join(notes))

    def _item_search_filtered_here(self, client: Any, query: SearchQuery) -> AdapterResult:
        """Search without the filter (the API would not apply it), then evaluate it here."""
        assert query.filter is not None
        cql2_filter = query.filter
        search = client.search(**_criteria(query), limit=PAGE_SIZE)
        result = _collect(
            search.pages_as_dicts(),
            query,
            self.centre,
            keep=lambda feature: filter_matches(cql2_filter, feature),
            max_read=int(config.get("catalog.client_filter_max_items")),
        )
        return replace(result, note=CLIENT_FILTER_NOTE)

    def _collections_fallback(self, client: Any, query: SearchQuery) -> AdapterResult:
        stac_io = client._stac_io
        collections_url = _collections_url(client)
        wanted = query.collections or tuple(
            c["id"] for page in stac_io.get_pages(collections_url) for c in page["collections"]
        )
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if query.bbox:
            params["bbox"] = ",".join(f"{v:.10g}" for v in query.bbox)
        if query.datetime:
            params["datetime"] = query.datetime_string()
        found: list[pystac.Item] = []
        for collection_id in wanted:
            url = f"{collections_url}/{collection_id}/items"
            try:
                pages = list(stac_io.get_pages(url, "GET", params))
            except Exception as exc:
                if getattr(exc, "status_code", None) == 404:
                    continue  # this centre does not hold that collection
                raise
            found.extend(i for i in _items(pages) if matches(i, query))
        found.sort(key=sort_key(query.sortby))
        matched = len(found)
        if query.limit:
            found = found[: query.limit]
        return AdapterResult(
            items=found,
            matched=matched,
            note="no item-search conformance: searched each collection's /items"
            + (", CQL2 filter evaluated client-side" if query.filter else ""),
        )

    def __repr__(self) -> str:
        return f"<StacApiAdapter {self.centre.name} {self.centre.catalog.href}>"


def _conforms_to_item_search(client: Any) -> bool:
    from pystac_client.conformance import ConformanceClasses

    return bool(client.conforms_to(ConformanceClasses.ITEM_SEARCH))


def _conforms_to_filter(client: Any) -> bool:
    """Whether the API's landing page says it evaluates CQL2 filters in item-search."""
    uris = client.get_conforms_to() if client.has_conforms_to() else []
    return any(pattern.match(str(uri)) for uri in uris for pattern in FILTER_CONFORMANCE)


def _criteria(query: SearchQuery) -> dict[str, Any]:
    """The query's criteria as pystac-client's ``Client.search`` takes them (no filter)."""
    return {
        "collections": list(query.collections) if query.collections else None,
        "bbox": list(query.bbox) if query.bbox else None,
        "datetime": query.datetime_string(),
        "ids": list(query.ids) if query.ids else None,
        "intersects": query.intersects,
    }


def _conforms_to_sort(client: Any) -> bool:
    """Whether the API's landing page says item-search takes ``sortby`` (any version)."""
    uris = client.get_conforms_to() if client.has_conforms_to() else []
    return any(SORT_CONFORMANCE.match(str(uri)) for uri in uris)


def _collections_url(client: Any) -> str:
    for link in client.links:
        if link.rel == "data":
            return str(link.get_absolute_href()).rstrip("/")
    return str(client.get_self_href() or client.self_href).rstrip("/") + "/collections"


def _collect(
    pages: Iterator[dict[str, Any]],
    query: SearchQuery,
    centre: Centre | None = None,
    *,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    max_read: int | None = None,
) -> AdapterResult:
    """Items of every page and the match count the first page gives (unlimited searches).

    Limited searches go through ``StacApiAdapter._first_items``, which keeps the merge order.

    With ``keep`` (a filter evaluated here), only the features it keeps are collected, the
    server's count is not the number of matches, and at most ``max_read`` features are read.

    Raises
    ------
    CatalogError
        If the API answers the same page again (a broken ``next`` link would loop forever), or
        if more than ``max_read`` features would have to be read.
    """
    collected: list[dict[str, Any]] = []
    matched: int | None = None
    previous: list[str] = []
    read = 0
    where = f"centre {centre.name}" if centre else "the STAC API"
    for number, page in enumerate(pages):
        server_count = _number_matched(page) if number == 0 else None
        if keep is None and number == 0:
            matched = server_count
        if max_read and server_count is not None and server_count > max_read:
            raise _too_many(where, max_read, f"the API counts {server_count} items")
        ids = [str(f.get("id")) for f in page.get("features", [])]
        if number and ids == previous:
            raise _repeated_page(where, number)
        previous = ids
        features = page.get("features", [])
        read += len(features)
        if max_read is not None and read > max_read:
            raise _too_many(where, max_read, f"page {number + 1} brings it to {read}")
        collected.extend(f for f in features if keep is None or keep(f))
    if matched is None:
        matched = len(collected)
    return AdapterResult(items=_items([{"features": collected}]), matched=matched)


def _repeated_page(where: str, number: int) -> CatalogError:
    return CatalogError(
        f"{where}: page {number + 1} of the results repeats page {number} (its next "
        "link does not advance: a server bug); ask its operators, or narrow the search "
        "so that one page holds it"
    )


def _too_many(where: str, max_read: int, how_many: str) -> CatalogError:
    return CatalogError(
        f"{where}: its STAC API does not conform to Filter, so the CQL2 filter is evaluated "
        f"client-side over every item the other criteria match, and that is more than "
        f"{max_read} items ({how_many}); narrow the search with collections, bbox or datetime"
    )


def _number_matched(page: dict[str, Any]) -> int | None:
    value = page.get("numberMatched")
    if value is None:
        value = (page.get("context") or {}).get("matched")
    return int(value) if isinstance(value, int | float) else None


def _items(pages: list[dict[str, Any]]) -> list[pystac.Item]:
    import pystac

    return [
        pystac.Item.from_dict(feature, preserve_dict=False)
        for page in pages
        for feature in page.get("features", [])
    ]


def _api_error(centre: Centre, exc: Exception) -> Exception:
    """Turn pystac-client's ``APIError`` into what the federation reports and retries.

    401/403 -> restricted; a status the retry policy retries (502, 503, 504, 429: the server
    or a gateway in front of it is failing) and no status at all (refused, reset, timed out: no
    answer) -> ``ConnectionError`` (retried); any other status (4xx, a plain 500: the server
    refuses this request) -> a catalogue error (not retried).
    """
    status = getattr(exc, "status_code", None)
    detail = _server_detail(str(exc))
    if status in (401, 403):
        if detail.startswith("restricted: request access via"):  # the lab's own services
            return RestrictedDataError(detail)
        return RestrictedDataError(
            restricted_message(centre, f"the server said {status}: {detail}")
        )
    if status is None and is_tls_failure(exc):
        return CatalogError(
            f"centre {centre.name}: the TLS handshake with {centre.catalog.href} failed "
            f"({_tls_reason(str(exc))}): an https URL to a plain-HTTP server, or a certificate "
            "the system does not trust; check the URL's scheme and port (not retried)"
        )
    if status is None:
        return ConnectionError(f"{centre.catalog.href} did not answer: {detail}")
    if RetryPolicy.from_config().retryable(status):  # failing for now: worth another try
        return ConnectionError(f"{centre.catalog.href} answered {status}: {detail}")
    return CatalogError(f"centre {centre.name}: the STAC API answered {status}: {detail}")


def _tls_reason(text: str) -> str:
    """The SSL library's reason (``[SSL: WRONG_VERSION_NUMBER] wrong version number``)."""
    found = re.search(r"\[SSL[^\]]*\][^(\)'\"]*", text)
    return found.group(0).strip() if found else text.strip().splitlines()[0][:200]


def _server_detail(text: str) -> str:
    """The ``description`` of a JSON error body, else its first line."""
    import json

    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("description", "message", "detail", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    line = text.strip().splitlines()[0] if text.strip() else "(empty body)"
    return line[:300]
