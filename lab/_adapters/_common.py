"""Helpers shared by the adapters: relative hrefs, client-side filtering (CQL2 included), restriction messages."""

from __future__ import annotations

import datetime as dt
import os
import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac
import shapely.geometry

from lab._adapters import AdapterResult
from lab._errors import RestrictedDataError
from lab._query import cql2_expression
from lab._sorting import sort_key

if TYPE_CHECKING:
    from lab._centres import Centre
    from lab._query import SearchQuery


def absolute_hrefs(item_dict: dict[str, Any], base: str) -> dict[str, Any]:
    """Make the asset hrefs of an item dict absolute against ``base`` (a directory or URL)."""
    for asset in item_dict.get("assets", {}).values():
        href = asset.get("href", "")
        if href and "://" not in href and not href.startswith("/"):
            if "://" in base:
                asset["href"] = posixpath.join(base.rstrip("/"), href)
            else:
                asset["href"] = str((Path(base) / href).resolve())
    return item_dict


def restricted_message(centre: Centre, reason: str) -> str:
    """The message of a ``RestrictedDataError``: where to request access first, then why.

    Parameters
    ----------
    centre
        The centre whose data the caller may not read.
    reason
        What happened (the server's answer, a missing token...).
    """
    where = centre.access_url or f"the operators of data centre {centre.name}"
    what = ", ".join(sorted(centre.restricted)) or "its catalogue"
    groups = sorted(set(centre.restricted.values()))
    who = f" to members of the hub group {', '.join(groups)}" if groups else ""
    return (
        f"restricted: request access via {where}; {centre.name} serves {what}{who} only ({reason})"
    )


def request_headers(centre: Centre) -> dict[str, str]:
    """The headers of every request to a centre's catalogue: its own, and its token if any.

    Raises
    ------
    RestrictedDataError
        When the centre names a token variable (``token_env``) that is not set.
    """
    spec = centre.catalog
    headers = dict(spec.headers)
    if spec.token_env:
        token = os.environ.get(spec.token_env)
        if not token:
            raise RestrictedDataError(
                restricted_message(
                    centre,
                    f"no token: environment variable {spec.token_env} holding the catalogue "
                    "token is not set (in the lab it is set in your server)",
                )
            )
        headers["Authorization"] = f"Bearer {token}"
    return headers


def matches(item: pystac.Item, query: SearchQuery) -> bool:
    """Say whether an item matches a query (for catalogues that cannot search themselves)."""
    if query.collections and item.collection_id not in query.collections:
        return False
    if query.ids and item.id not in query.ids:
        return False
    if query.datetime and not _in_interval(item, query.datetime):
        return False
    if query.bbox or query.intersects:
        if item.geometry is None:
            return False
        shape = shapely.geometry.shape(item.geometry)
        if query.bbox and not shape.intersects(shapely.geometry.box(*query.bbox)):
            return False
        if query.intersects and not shape.intersects(shapely.geometry.shape(query.intersects)):
            return False
    if query.filter:
        return filter_matches(
            query.filter, item.to_dict(include_self_link=False, transform_hrefs=False)
        )
    return True


def select(items: Iterable[pystac.Item], query: SearchQuery) -> AdapterResult:
    """The items that match ``query`` (client-side), in its order, at most ``query.limit``.

    For catalogues that cannot search themselves (static trees, cube stores, small
    stac-geoparquet files read whole).
    """
    found = sorted((item for item in items if matches(item, query)), key=sort_key(query.sortby))
    matched = len(found)
    if query.limit:
        found = found[: query.limit]
    return AdapterResult(items=found, matched=matched)


def filter_matches(query_filter: dict[str, Any], document: dict[str, Any]) -> bool:
    """Evaluate a CQL2-JSON filter on an item document, as a STAC API server would.

    A comparison with a property the item does not have is not true (CQL2's NULL semantics),
    so the item does not match, as on a server.
    """
    try:
        return bool(cql2_expression(query_filter).matches(document))
    except Exception as exc:  # cql2 raises a bare Exception when a property is missing
        if "reduce" in str(exc):
            return False
        raise


def _in_interval(
    item: pystac.Item, interval: tuple[dt.datetime | None, dt.datetime | None]
) -> bool:
    props = item.properties
    start = _parse(props.get("start_datetime")) or item.datetime
    end = _parse(props.get("end_datetime")) or item.datetime
    if start is None or end is None:
        return False
    lo, hi = interval
    return (hi is None or start <= hi) and (lo is None or end >= lo)


def _parse(value: Any) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
