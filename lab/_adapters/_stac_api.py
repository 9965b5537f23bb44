"""STAC APIs searched through pystac-client (item-search, or each collection's /items)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from lab._adapters import AdapterResult
from lab._adapters._common import matches
from lab._errors import CatalogError

if TYPE_CHECKING:
    import pystac

    from lab._centres import Centre
    from lab._query import SearchQuery


class StacApiAdapter:
    """Search a STAC API, following its own pagination.

    Conformance is read from the landing page: an API without the ``item-search``
    conformance class is searched through its collections' ``/items`` endpoints (OGC API
    Features), filtered client-side, and the report says so.
    """

    def __init__(self, centre: Centre):
        self.centre = centre

    def _client(self) -> Any:
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO

        spec = self.centre.catalog
        headers = dict(spec.headers)
        if spec.token_env:
            token = os.environ.get(spec.token_env)
            if not token:
                raise CatalogError(
                    f"centre {self.centre.name}: environment variable {spec.token_env} holding the "
                    "catalogue token is not set"
                )
            headers["Authorization"] = f"Bearer {token}"
        # Retries are handled by the federation (bounded, per centre); one try per request here.
        stac_io = StacApiIO(headers=headers, timeout=spec.timeout, max_retries=0)
        return Client.open(spec.href, stac_io=stac_io)

    def search(self, query: SearchQuery) -> AdapterResult:
        """Search the API; see :class:`lab._adapters.CatalogAdapter`."""
        from pystac_client.conformance import ConformanceClasses

        client = self._client()
        if client.conforms_to(ConformanceClasses.ITEM_SEARCH):
            search = client.search(
                collections=list(query.collections) if query.collections else None,
                bbox=list(query.bbox) if query.bbox else None,
                datetime=query.datetime_string(),
                ids=list(query.ids) if query.ids else None,
                intersects=query.intersects,
                filter=query.filter,
                max_items=query.limit,
            )
            items = list(search.items())
            matched = search.matched()
            return AdapterResult(items=items, matched=matched)
        return self._collections_fallback(client, query)

    def _collections_fallback(self, client: Any, query: SearchQuery) -> AdapterResult:
        if query.filter:
            raise CatalogError(
                f"centre {self.centre.name} has no item-search conformance; CQL2 filters cannot be "
                "applied to its /items endpoints: drop the filter or filter the results yourself"
            )
        wanted = query.collections or tuple(c.id for c in client.get_collections())
        found: list[pystac.Item] = []
        for collection_id in wanted:
            collection = client.get_collection(collection_id)
            for item in collection.get_items():
                if matches(item, query):
                    found.append(item)
        found.sort(key=lambda i: (i.datetime or i.common_metadata.start_datetime, i.id))
        matched = len(found)
        if query.limit:
            found = found[: query.limit]
        return AdapterResult(
            items=found,
            matched=matched,
            note="no item-search conformance: searched each collection's /items",
        )
