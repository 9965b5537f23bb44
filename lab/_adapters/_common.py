"""Helpers shared by the adapters: relative hrefs, client-side filtering (CQL2 included), restriction messages."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac

from lab._adapters import AdapterResult
from lab._errors import RestrictedDataError
from lab._query import matches
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
