"""Catalogue adapters: one small class per kind of catalogue, behind one Protocol.

An adapter is built from a :class:`~lab._centres.Centre` and answers
:meth:`CatalogAdapter.search` with the centre's matching items. Adapters raise
:class:`~lab._errors.CatalogError` (or let transport errors through); the federated
catalogue turns failures into per-centre reports, so an adapter never needs to catch
errors to protect the other centres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pystac

    from lab._centres import Centre
    from lab._query import SearchQuery

__all__ = ["AdapterResult", "CatalogAdapter", "adapter_for", "read_catalogue"]


@dataclass(frozen=True)
class AdapterResult:
    """What one centre answered."""

    items: list[pystac.Item]
    """Matching items (at most the query's limit)."""
    matched: int | None = None
    """Total number of matches when the catalogue says so (may exceed ``len(items)``)."""
    note: str = ""
    """Anything worth reporting (e.g. a fallback that was used)."""


class CatalogAdapter(Protocol):
    """Searches one centre's catalogue."""

    def search(self, query: SearchQuery) -> AdapterResult:
        """Return the centre's items matching ``query``."""
        ...


def adapter_for(centre: Centre) -> CatalogAdapter:
    """Build the adapter for a centre's catalogue kind.

    A local catalogue (a file, not a URL) holding restricted collections is wrapped so that
    those collections are never read from it (see ``lab._adapters._restricted``).

    Parameters
    ----------
    centre
        The centre.

    Returns
    -------
    CatalogAdapter
        A ``stac-geoparquet``, ``stac-api``, ``stac-static``, ``cube-store`` or ``csw``
        adapter.
    """
    adapter = _plain_adapter(centre)
    if centre.restricted and "://" not in centre.catalog.href:
        from lab._adapters._restricted import LocalRestrictedAdapter

        return LocalRestrictedAdapter(centre, adapter)
    return adapter


def read_catalogue(centre: Centre) -> list[pystac.Item]:
    """Return every item of a centre's own catalogue, its access rules not applied.

    For the servers that publish a centre's catalogue (the local lab's STAC APIs), not for
    users: a search through :func:`lab.catalog` applies the centre's restrictions.

    Parameters
    ----------
    centre
        A centre of a centres file.

    Returns
    -------
    list of pystac.Item
        The catalogue's items, in the adapter's order (time, then id).
    """
    from lab._query import SearchQuery

    return list(_plain_adapter(centre).search(SearchQuery()).items)


def _plain_adapter(centre: Centre) -> CatalogAdapter:
    """The adapter of a centre's catalogue kind, with no access rule applied."""
    kind = centre.catalog.kind
    if kind == "stac-geoparquet":
        from lab._adapters._geoparquet import GeoparquetAdapter

        return GeoparquetAdapter(centre)
    if kind == "stac-api":
        from lab._adapters._stac_api import StacApiAdapter

        return StacApiAdapter(centre)
    if kind == "csw":
        from lab._adapters._csw import CswAdapter

        return CswAdapter(centre)
    if kind == "cube-store":
        from lab._adapters._cube_store import CubeStoreAdapter

        return CubeStoreAdapter(centre)
    from lab._adapters._static import StaticCatalogAdapter

    return StaticCatalogAdapter(centre)
