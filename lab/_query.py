"""A validated, normalised search query shared by every catalogue adapter."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lab._errors import ConfigurationError
from lab._sorting import SortField, parse_sortby

__all__ = ["SearchQuery"]

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")
DatetimeLike = str | dt.datetime | dt.date | Sequence[str | dt.datetime | dt.date | None] | None


@dataclass(frozen=True)
class SearchQuery:
    """What to search for, the same for every centre.

    Build it with :meth:`SearchQuery.build`, which validates and normalises user input.
    """

    collections: tuple[str, ...] | None = None
    """Collection ids, or None for all."""
    bbox: tuple[float, float, float, float] | None = None
    """``(west, south, east, north)`` in WGS84 degrees."""
    datetime: tuple[dt.datetime | None, dt.datetime | None] | None = None
    """Closed interval in UTC; None ends are open."""
    ids: tuple[str, ...] | None = None
    """Item ids."""
    intersects: dict[str, Any] | None = None
    """A GeoJSON geometry the items must intersect."""
    filter: dict[str, Any] | None = None
    """A CQL2-JSON filter: sent to STAC APIs that conform to Filter and to geoparquet searches,
    evaluated client-side on STAC APIs without Filter, static catalogues and cube stores."""
    limit: int | None = None
    """At most this many items in the merged result (None: all)."""
    sortby: tuple[SortField, ...] | None = None
    """The order of the merged result (None: datetime ascending, the merge order)."""

    @classmethod
    def build(
        cls,
        collections: str | Iterable[str] | None = None,
        bbox: Sequence[float] | None = None,
        datetime: DatetimeLike = None,
        ids: str | Iterable[str] | None = None,
        intersects: dict[str, Any] | None = None,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        sortby: str | Sequence[Any] | None = None,
    ) -> SearchQuery:
        """Validate and normalise search arguments.

        Parameters
        ----------
        collections, ids
            A string or an iterable of strings.
        bbox
            Four numbers ``west, south, east, north`` in degrees.
        datetime
            An RFC 3339 instant or interval (``"2022-01-01/2022-03-31"``, open ends ``..``),
            partial dates (``"2022"``, ``"2022-01"``, ``"2022-01/2022-03"``), a datetime, or a
            pair. Naive datetimes are taken as UTC.
        intersects
            A GeoJSON geometry.
        filter
            A CQL2-JSON filter (a dict), e.g.
            ``{"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}``.
        limit
            Maximum number of items in the result.
        sortby
            The order: ``"-properties.eo:cloud_cover,+id"``, a list of such strings, or
            ``[{"field": ..., "direction": "asc"|"desc"}]`` (``lab._sorting``).

        Raises
        ------
        ConfigurationError
            Naming the argument that is invalid and what a valid one looks like.
        """
        return cls(
            collections=_strings("collections", collections),
            bbox=_bbox(bbox),
            datetime=_interval(datetime),
            ids=_strings("ids", ids),
            intersects=_geometry(intersects),
            filter=_filter(filter),
            limit=_limit(limit),
            sortby=parse_sortby(sortby),
        )

    def datetime_string(self) -> str | None:
        """Return the interval as an RFC 3339 ``start/end`` string (``..`` for open ends)."""
        if self.datetime is None:
            return None
        start, end = self.datetime
        return f"{_iso(start)}/{_iso(end)}"

    def matches(self, item: Any) -> bool:
        """Say whether a pystac Item matches the query, as a static catalogue is searched.

        Collections, ids, the datetime interval (an item's own interval overlapping it), the
        bbox or geometry (intersecting the item's geometry) and the CQL2 filter are checked;
        ``limit`` and ``sortby`` are not (they apply to a result, not to one item).
        """
        return matches(item, self)

    def describe(self) -> str:
        """Return a one-line human description, for messages."""
        parts = []
        if self.collections:
            parts.append(f"collections={','.join(self.collections)}")
        if self.bbox:
            parts.append("bbox=" + ",".join(f"{v:g}" for v in self.bbox))
        if self.datetime:
            parts.append(f"datetime={self.datetime_string()}")
        if self.ids:
            parts.append(f"ids={','.join(self.ids)}")
        if self.intersects:
            parts.append(f"intersects={self.intersects.get('type')}")
        if self.filter:
            parts.append("filter=<cql2>")
        if self.limit:
            parts.append(f"limit={self.limit}")
        if self.sortby:
            parts.append(f"sortby={','.join(str(f) for f in self.sortby)}")
        return " ".join(parts) or "(everything)"


def _strings(name: str, value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    values = (value,) if isinstance(value, str) else tuple(value)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigurationError(
            f"{name} must be a non-empty string or list of strings, got {value!r}"
        )
    return tuple(dict.fromkeys(v for s in values for v in s.split(",")))


def _bbox(value: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            value = [float(v) for v in value.split(",")]
        west, south, east, north = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"bbox must be four numbers west, south, east, north in degrees, got {value!r}"
        ) from None
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise ConfigurationError(
            f"bbox {value!r} is outside WGS84 degrees or has south > north; "
            "give west, south, east, north in lon/lat"
        )
    if west > east:
        raise ConfigurationError(
            f"bbox {value!r} has west > east; antimeridian-crossing boxes are not supported, "
            "split it in two searches"
        )
    return (west, south, east, north)


def _geometry(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if hasattr(value, "__geo_interface__"):
        value = value.__geo_interface__
    if not isinstance(value, dict) or "type" not in value or "coordinates" not in value:
        raise ConfigurationError(
            "intersects must be a GeoJSON geometry with 'type' and 'coordinates'"
        )
    return dict(value)


def _limit(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"limit must be a positive integer, got {value!r}")
    return value


def _interval(value: DatetimeLike) -> tuple[dt.datetime | None, dt.datetime | None] | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            if "/" in text:
                start_text, end_text = text.split("/", 1)
                start = _bound(start_text, end=False)
                end = _bound(end_text, end=True)
            else:
                start, end = _bound(text, end=False), _bound(text, end=True)
        except ConfigurationError as exc:
            if "/" not in text:
                raise
            raise ConfigurationError(f"in the interval {text!r}: {exc}") from None
    elif isinstance(value, dt.datetime | dt.date):
        start, end = _bound(value, end=False), _bound(value, end=True)
    else:
        pair = tuple(value)
        if len(pair) != 2:
            raise ConfigurationError(f"datetime as a sequence must be (start, end), got {value!r}")
        start, end = _bound(pair[0], end=False), _bound(pair[1], end=True)
    if start is not None and end is not None and start > end:
        raise ConfigurationError(f"datetime interval {value!r} ends before it starts")
    if start is None and end is None:
        return None
    return (start, end)


def _bound(value: str | dt.datetime | dt.date | None, *, end: bool) -> dt.datetime | None:
    if value is None or value in ("", ".."):
        return None
    if isinstance(value, dt.datetime):
        return _utc(value)
    if isinstance(value, dt.date):
        midnight = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        return midnight + dt.timedelta(days=1, microseconds=-1) if end else midnight
    match = _PARTIAL.match(value)
    if match:
        year_text, month_text, day_text = match.groups()
        year = int(year_text)
        month = int(month_text) if month_text else None
        day = int(day_text) if day_text else None
        try:
            start = dt.datetime(year, month or 1, day or 1, tzinfo=dt.UTC)
        except ValueError as exc:
            raise ConfigurationError(f"datetime {value!r} is not a valid date: {exc}") from None
        if not end:
            return start
        if day is not None:
            nxt = start + dt.timedelta(days=1)
        elif month is not None:
            nxt = start.replace(year=start.year + (month == 12), month=month % 12 + 1)
        else:
            nxt = start.replace(year=start.year + 1)
        return nxt - dt.timedelta(microseconds=1)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"datetime {value!r} is not RFC 3339; use e.g. 2022-01-15, 2022-01, "
            "2022-01-01T10:00:00Z or an interval start/end with '..' for an open end"
        ) from None
    return _utc(parsed)


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _iso(value: dt.datetime | None) -> str:
    if value is None:
        return ".."
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"


def _filter(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"filter must be a CQL2-JSON dict, got {type(value).__name__}; e.g. "
            '{"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}'
        )
    cql2_expression(value)
    return value


@functools.lru_cache(maxsize=64)
def _parsed(filter_json: str) -> Any:
    import cql2

    try:
        expr = cql2.Expr(json.loads(filter_json))
        expr.validate()
    except Exception as exc:  # cql2 raises its own ParseError / ValidationError types
        raise ConfigurationError(
            f"filter is not valid CQL2-JSON ({exc}); write it as "
            '{"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}'
        ) from None
    return expr


def cql2_expression(value: dict[str, Any]) -> Any:
    """The parsed ``cql2.Expr`` of a CQL2-JSON filter (parsed once per distinct filter).

    Raises
    ------
    ConfigurationError
        If the filter is not valid CQL2-JSON.
    """
    return _parsed(json.dumps(value, sort_keys=True))


# --- client-side evaluation (static catalogues, cube stores, the lab's own services) -----


def matches(item: Any, query: SearchQuery) -> bool:
    """Say whether an item matches a query (for catalogues that cannot search themselves)."""
    if query.collections and item.collection_id not in query.collections:
        return False
    if query.ids and item.id not in query.ids:
        return False
    if query.datetime and not _in_interval(item, query.datetime):
        return False
    if query.bbox or query.intersects:
        import shapely.geometry

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


def _in_interval(item: Any, interval: tuple[dt.datetime | None, dt.datetime | None]) -> bool:
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
