"""Restricted collections in a local catalogue: never searched from the client.

Restricted data (``Centre.restricted``) is served only through an authenticating service
that checks who asks (in the lab deployment, the hub service ``restricted-<centre>``). A
local catalogue file cannot check anyone, so the SDK does not read restricted collections
from one: a search that asks for them reports the centre ``restricted`` with where to request
access, and the centre's open collections, if any, are searched as usual.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lab._adapters import AdapterResult, CatalogAdapter
from lab._adapters._common import restricted_message
from lab._errors import RestrictedDataError

if TYPE_CHECKING:
    from lab._centres import Centre
    from lab._query import SearchQuery

LOCAL_REASON = (
    "restricted collections are served only through the lab's restricted-data service, "
    "never from a local catalogue file; in the lab (earthlab hub up) they are searched "
    "with your hub token"
)


class LocalRestrictedAdapter:
    """Wrap the adapter of a local catalogue so that its restricted collections stay closed.

    Parameters
    ----------
    centre
        The centre (its ``restricted`` mapping names the closed collections).
    inner
        The adapter of its catalogue file.
    """

    def __init__(self, centre: Centre, inner: CatalogAdapter):
        self.centre = centre
        self.inner = inner
        self.closed = frozenset(centre.restricted)

    def search(self, query: SearchQuery) -> AdapterResult:
        """Search the open collections only; see :class:`lab._adapters.CatalogAdapter`.

        Raises
        ------
        RestrictedDataError
            If every collection the query may reach is restricted.
        """
        asked = set(query.collections) if query.collections else None
        if asked is not None and not asked & self.closed:
            return self.inner.search(query)
        if asked is not None:
            open_ones = asked - self.closed
        else:
            open_ones = set(self.centre.collections) - self.closed
            if not self.centre.collections:  # unknown holdings: search, then drop closed items
                return self._filtered(self.inner.search(query))
        if not open_ones:
            raise RestrictedDataError(restricted_message(self.centre, LOCAL_REASON))
        result = self.inner.search(replace(query, collections=tuple(sorted(open_ones))))
        return replace(result, note=self._note(result.note))

    def _filtered(self, result: AdapterResult) -> AdapterResult:
        kept = [i for i in result.items if i.collection_id not in self.closed]
        if len(kept) == len(result.items):
            return result
        if not kept:
            raise RestrictedDataError(restricted_message(self.centre, LOCAL_REASON))
        matched = (
            None if result.matched is None else result.matched - (len(result.items) - len(kept))
        )
        return AdapterResult(items=kept, matched=matched, note=self._note(result.note))

    def _note(self, note: str) -> str:
        closed = ", ".join(sorted(self.closed))
        where = self.centre.access_url or f"the operators of {self.centre.name}"
        extra = f"restricted collection(s) {closed} not searched (request access via {where})"
        return f"{note}; {extra}" if note else extra

    def __repr__(self) -> str:
        return f"<LocalRestrictedAdapter {self.centre.name} closed={sorted(self.closed)}>"
