"""``sortby``: what it accepts, and the order it gives (issue 15, item 2).

Live servers: tests/test_pgstac_federation.py (files, rustac and pgstac give the same items
in the same order); every kind of catalogue and the CLI: tests/test_catalog.py.
"""

from __future__ import annotations

import pytest

import lab
from lab._query import SearchQuery
from lab._sorting import SortField, parse_sortby, sort_items


def test_sortby_is_read_as_pystac_client_takes_it() -> None:
    assert parse_sortby(None) is None
    assert parse_sortby("-datetime,+id") == (SortField("datetime", True), SortField("id"))
    assert parse_sortby(["properties.eo:cloud_cover", "-collection"]) == (
        SortField("eo:cloud_cover"),
        SortField("collection", True),
    )
    assert parse_sortby([{"field": "properties.datetime", "direction": "DESC"}]) == (
        SortField("datetime", True),
    )
    assert SortField("eo:cloud_cover", True).to_dict() == {
        "field": "properties.eo:cloud_cover",
        "direction": "desc",
    }
    assert SortField("id").to_dict() == {"field": "id", "direction": "asc"}
    assert SearchQuery.build(sortby="-datetime").describe() == "sortby=-datetime"


@pytest.mark.parametrize(
    ("sortby", "message"),
    [
        ("", "empty or padded field name ''"),
        ([], "sortby is empty"),
        ("-", "empty or padded field name ''"),
        ([{"field": "datetime", "direction": "up"}], "direction must be 'asc' or 'desc', not 'up'"),
        ([3], "sortby takes strings or {'field', 'direction'} mappings, not int"),
        ("datetime,-datetime", "sortby names datetime twice"),
    ],
)
def test_a_bad_sortby_says_what_to_write(sortby: object, message: str) -> None:
    with pytest.raises(lab.ConfigurationError) as info:
        SearchQuery.build(sortby=sortby)  # type: ignore[arg-type]
    assert message in str(info.value)


def doc(item_id: str, when: str, **props: object) -> dict:
    return {"id": item_id, "collection": "c", "properties": {"datetime": when, **props}}


def test_items_without_the_field_come_last_in_both_directions_ties_by_time() -> None:
    items = [
        doc("a", "2022-01-03T00:00:00Z", cc=10),
        doc("b", "2022-01-01T00:00:00Z"),
        doc("c", "2022-01-02T00:00:00Z", cc=10),
        doc("d", "2022-01-04T00:00:00Z", cc=2.5),
        doc("e", "2021-12-31T00:00:00Z"),
    ]
    ids = [i["id"] for i in sort_items(items, parse_sortby("-cc"))]
    assert ids == ["c", "a", "d", "e", "b"]  # 10 (older first), 10, 2.5, then missing by time
    ids = [i["id"] for i in sort_items(items, parse_sortby("+cc"))]
    assert ids == ["d", "c", "a", "e", "b"]


def test_datetimes_compare_as_instants_not_text() -> None:
    items = [
        doc("utc", "2022-01-01T10:00:00Z"),
        doc("paris", "2022-01-01T10:30:00+01:00"),  # 09:30 UTC: earlier
        doc("naive", "2022-01-01T09:45:00"),  # taken as UTC
    ]
    assert [i["id"] for i in sort_items(items, None)] == ["paris", "naive", "utc"]
    assert [i["id"] for i in sort_items(items, parse_sortby("-datetime"))] == [
        "utc",
        "naive",
        "paris",
    ]
