"""The order of a federated search: ``sortby`` as STAC API's Sort extension spells it.

One key function (:func:`sort_key`) orders items everywhere the lab orders them: the merge of
the centres' results, ``limit``, and every adapter that sorts by itself (static catalogues,
cube stores, stac-geoparquet files, STAC APIs without Sort). Without ``sortby`` the order is
the federation's merge order: datetime ascending.

Rules, the same in both directions: an item without the field sorts after every item that
has it; ties are broken by datetime, collection and id, ascending. Values compare as numbers
when both are numbers, as instants when the field is a datetime, as text otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pystac

from lab._errors import ConfigurationError

__all__ = [
    "DEFAULT_SORT",
    "SortField",
    "describe",
    "parse_sortby",
    "sort_items",
    "sort_key",
    "sort_prefix",
]

TOP_LEVEL = ("id", "collection")
"""Fields of the item itself rather than of its properties."""
DATETIME_FIELDS = ("datetime", "start_datetime", "end_datetime", "created", "updated")
"""Properties compared as instants."""


@dataclass(frozen=True)
class SortField:
    """One field of a sort: its name (``id``, ``collection`` or a property) and direction."""

    field: str
    """``id``, ``collection`` or a property name (``datetime``, ``eo:cloud_cover``)."""
    descending: bool = False
    """Largest first."""

    def __post_init__(self) -> None:
        if not self.field or not self.field.strip() or self.field != self.field.strip():
            raise ConfigurationError(
                f"sortby: empty or padded field name {self.field!r}; write e.g. "
                '"-properties.eo:cloud_cover" or [{"field": "datetime", "direction": "desc"}]'
            )

    @property
    def server_field(self) -> str:
        """The name a STAC API's ``sortby`` takes (``properties.<name>`` for properties)."""
        return self.field if self.field in TOP_LEVEL else f"properties.{self.field}"

    def to_dict(self) -> dict[str, str]:
        """The field as STAC API's Sort extension writes it in a POST body."""
        return {"field": self.server_field, "direction": "desc" if self.descending else "asc"}

    def __str__(self) -> str:
        return ("-" if self.descending else "+") + self.field


DEFAULT_SORT: tuple[SortField, ...] = (SortField("datetime"),)
"""The federation's merge order."""


def _field(name: str, descending: bool) -> SortField:
    name = name.strip()
    if name.startswith("properties."):
        name = name[len("properties.") :]
    return SortField(name, descending)


def parse_sortby(value: str | Sequence[Any] | None) -> tuple[SortField, ...] | None:
    """Read ``sortby`` as pystac-client takes it.

    ``"-datetime,+id"``, ``["-properties.eo:cloud_cover", "id"]`` or
    ``[{"field": "properties.eo:cloud_cover", "direction": "desc"}]``; ``properties.`` is
    optional. None keeps the merge order.

    Raises
    ------
    ConfigurationError
        For an empty field, an unknown direction, a field named twice or another type.
    """
    if value is None:
        return None
    parts: list[Any] = value.split(",") if isinstance(value, str) else list(value)
    if not parts:
        raise ConfigurationError("sortby is empty: give a field, e.g. sortby='-datetime'")
    fields: list[SortField] = []
    for part in parts:
        if isinstance(part, str):
            text = part.strip()
            descending = text.startswith("-")
            fields.append(_field(text.lstrip("+-"), descending))
        elif isinstance(part, Mapping):
            direction = str(part.get("direction", "asc")).lower()
            if direction not in ("asc", "desc"):
                raise ConfigurationError(
                    f"sortby: direction must be 'asc' or 'desc', not {part.get('direction')!r}"
                )
            fields.append(_field(str(part.get("field", "")), direction == "desc"))
        else:
            raise ConfigurationError(
                f"sortby takes strings or {{'field', 'direction'}} mappings, not "
                f"{type(part).__name__}; e.g. sortby='-properties.eo:cloud_cover'"
            )
    names = [f.field for f in fields]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigurationError(f"sortby names {', '.join(twice)} twice")
    return tuple(fields)


def describe(sortby: Sequence[SortField] | None) -> str:
    """``"+datetime"``, ``"-eo:cloud_cover, +id"``: for messages and reports."""
    return ", ".join(str(f) for f in (sortby or DEFAULT_SORT))


class _Reversed:
    """A value that sorts the other way round."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and bool(other.value == self.value)

    def __hash__(self) -> int:
        return hash(self.value)


def _instant(value: Any) -> str | None:
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat()


def _value(item: pystac.Item | Mapping[str, Any], name: str) -> Any:
    if isinstance(item, pystac.Item):
        top = {"id": item.id, "collection": item.collection_id}
        props: Mapping[str, Any] = item.properties
    else:
        top = {"id": item.get("id"), "collection": item.get("collection")}
        props = item.get("properties") or {}
    if name in TOP_LEVEL:
        return top[name]
    value = props.get(name)
    if name == "datetime" and value is None:
        value = props.get("start_datetime")
    return value


def _comparable(name: str, value: Any) -> tuple[int, Any] | None:
    """``(kind, value)``: numbers (0), instants (1), text (2); None when missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, float(value))
    if name in DATETIME_FIELDS:
        instant = _instant(value)
        if instant is not None:
            return (1, instant)
    return (2, str(value))


def sort_prefix(
    sortby: Sequence[SortField] | None,
) -> Callable[[pystac.Item | Mapping[str, Any]], tuple[Any, ...]]:
    """The key of the requested fields only (no tie-break): how a server's order is checked."""
    fields = tuple(sortby or DEFAULT_SORT)

    def key(item: pystac.Item | Mapping[str, Any]) -> tuple[Any, ...]:
        parts: list[Any] = []
        for f in fields:
            value = _comparable(f.field, _value(item, f.field))
            if value is None:
                parts.append((1, 0))  # missing: after every value, in both directions
            else:
                parts.append((0, _Reversed(value) if f.descending else value))
        return tuple(parts)

    return key


def sort_key(
    sortby: Sequence[SortField] | None,
) -> Callable[[pystac.Item | Mapping[str, Any]], tuple[Any, ...]]:
    """The total order of items: the requested fields, then datetime, collection and id."""
    prefix = sort_prefix(sortby)
    tie = sort_prefix(DEFAULT_SORT)

    def key(item: pystac.Item | Mapping[str, Any]) -> tuple[Any, ...]:
        return (
            *prefix(item),
            *tie(item),
            str(_value(item, "collection") or ""),
            str(_value(item, "id") or ""),
        )

    return key


def sort_items(items: Iterable[Any], sortby: Sequence[SortField] | None) -> list[Any]:
    """``items`` (pystac Items or item documents) in the requested order."""
    return sorted(items, key=sort_key(sortby))
