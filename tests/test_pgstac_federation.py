"""Federated search over pgstac centres answers what it answers over rustac centres.

The sample federation served twice on loopback: by ``rustac serve`` (memory) and by
stac-fastapi-pgstac on PostgreSQL + pgstac (``tests/pgstac_server.py``), each centre its own
STAC API root behind the lab's front. The same queries through ``lab.catalog().search`` must
give the same items, in the same (merged, datetime-ascending) order, and the same pixels.

The servers differ where it matters: pgstac conforms to Filter (the CQL2 filter runs in the
database; rustac's is evaluated client-side by the lab), pages with tokens (rustac with
``skip``) and sorts newest first (rustac oldest first).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pystac_client  # noqa: F401  (imported up front: first-search import time is not latency)
import pytest
import requests
import yaml
from pgstac_server import pgstac_servers
from stac_servers import LiveFederation, stac_servers

import datacubes
import lab
from lab._adapters import _stac_api

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CENTRES = ("theia", "odatis", "dinamis", "aeris")
CLEAR = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}
THAU = (3.55, 43.35, 3.62, 43.40)
LAGOON = {
    "type": "Polygon",
    "coordinates": [[[3.50, 43.33], [3.72, 43.33], [3.72, 43.46], [3.50, 43.46], [3.50, 43.33]]],
}


@pytest.fixture(scope="module")
def rustac(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFederation]:
    with stac_servers(
        sample_dir / "centres.yaml",
        tmp_path_factory.mktemp("rustac"),
        catalog_options={"retries": 1},
    ) as federation:
        yield federation


def listed(result: lab.SearchResult) -> list[tuple[str, str, str]]:
    """(centre, collection, id) of every item, in the result's order."""
    return [(i.properties["earthlab:centre"], str(i.collection_id), i.id) for i in result]


def test_the_pgstac_centres_file_has_the_shape_of_the_rustac_one(
    pgstac_federation: LiveFederation, rustac: LiveFederation
) -> None:
    pg = yaml.safe_load(pgstac_federation.centres_file.read_text(encoding="utf-8"))
    rs = yaml.safe_load(rustac.centres_file.read_text(encoding="utf-8"))
    assert [c["name"] for c in pg["centres"]] == [c["name"] for c in rs["centres"]]
    for p, r in zip(pg["centres"], rs["centres"], strict=True):
        assert p["catalog"]["kind"] == r["catalog"]["kind"] == "stac-api"
        assert p["catalog"]["href"].endswith(f"/stac/{p['name']}/")
        assert {k: v for k, v in p.items() if k != "catalog"} == {
            k: v for k, v in r.items() if k != "catalog"
        }
    # what answers is stac-fastapi-pgstac, its links rewritten to the front
    landing = requests.get(pgstac_federation.urls["theia"], timeout=30).json()
    assert landing["id"] == "centre_theia"
    assert any("filter" in c for c in landing["conformsTo"])
    hrefs = [link["href"] for link in landing["links"]]
    assert hrefs and all(h.startswith(pgstac_federation.urls["theia"]) for h in hrefs), hrefs
    assert set(pgstac_federation.procs) == {
        "postgres",
        "front",
        *(f"stac-{c}" for c in CENTRES),
    }
    assert pgstac_federation.cluster is not None
    assert set(pgstac_federation.timings) == {"postgres", "load", "apis"}


QUERIES: dict[str, dict[str, Any]] = {
    "everything": {},
    "collection": {"collections": "sentinel-2-l2a"},
    "two collections": {"collections": ["sentinel-2-l2a", "insitu-water-quality"]},
    "bbox and interval": {"bbox": list(THAU), "datetime": "2021-11-01/2022-02-28"},
    "partial dates": {"datetime": "2022-01/2022-03"},
    "open interval": {"datetime": "2022-02-01/.."},
    "open start": {"datetime": "../2021-12-31"},
    "instant day": {"datetime": "2022-02-15"},
    "intersects": {"intersects": LAGOON, "collections": "sentinel-2-l2a"},
    "ids": {"ids": ["S2B_31TEJ_20220215_0_L2A", "THAU01-water-quality"]},
    "cql2 filter": {"collections": "sentinel-2-l2a", "filter": CLEAR},
    "filter and bbox": {"filter": CLEAR, "bbox": list(THAU)},
    "nothing matches": {"bbox": [-60.0, -20.0, -59.0, -19.0]},
}


@pytest.mark.parametrize("query", list(QUERIES.values()), ids=list(QUERIES))
def test_same_items_in_the_same_order(
    pgstac_federation: LiveFederation, rustac: LiveFederation, query: dict[str, Any]
) -> None:
    over_rustac = lab.catalog(rustac.centres_file).search(**query)
    over_pgstac = lab.catalog(pgstac_federation.centres_file).search(**query)
    statuses = {n: r.status for n, r in over_pgstac.federation.items()}
    assert statuses == {n: r.status for n, r in over_rustac.federation.items()}
    assert "ok" in statuses.values() and set(statuses.values()) <= {"ok", "skipped"}
    assert listed(over_pgstac) == listed(over_rustac)
    for centre in CENTRES:
        assert over_pgstac.federation[centre].kept == over_rustac.federation[centre].kept


def test_the_sample_is_all_there(pgstac_federation: LiveFederation, sample_dir: Path) -> None:
    result = lab.catalog(pgstac_federation.centres_file).search()
    counts = {c: sum(i.properties["earthlab:centre"] == c for i in result) for c in CENTRES}
    assert counts == {"theia": 16 + 16, "odatis": 7 + 92, "dinamis": 3, "aeris": 92}
    filtered = lab.catalog(pgstac_federation.centres_file).search(
        collections="sentinel-2-l2a", filter=CLEAR
    )
    assert 0 < len(filtered) < 16
    assert all(i.properties["eo:cloud_cover"] < 20 for i in filtered)
    # pgstac conforms to Filter: the filter ran in the database, no client-side note
    assert "client-side" not in filtered.federation["theia"].note


def test_pages_are_followed(
    pgstac_federation: LiveFederation, rustac: LiveFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_stac_api, "PAGE_SIZE", 5)
    query = {"collections": "sentinel-2-l2a", "centres": ["theia"]}
    over_pgstac = lab.catalog(pgstac_federation.centres_file).search(**query)
    over_rustac = lab.catalog(rustac.centres_file).search(**query)
    assert len(over_pgstac) == 16 and len({i.id for i in over_pgstac}) == 16
    assert listed(over_pgstac) == listed(over_rustac)


@pytest.mark.parametrize(
    "query",
    [
        {"collections": "sentinel-2-l2a", "limit": 3},
        {"limit": 5},  # every centre: the earliest five of the federation
        {"collections": "sentinel-2-l2a", "datetime": "2022-01/2022-06", "limit": 4},
        {"collections": "sentinel-2-l2a", "filter": CLEAR, "limit": 2},
    ],
    ids=["one-collection", "federation", "interval", "filter"],
)
def test_limit_keeps_the_earliest_items_whatever_the_server_order(
    pgstac_federation: LiveFederation,
    rustac: LiveFederation,
    query: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pgstac answers newest first, rustac oldest first: ``limit`` keeps the merge order's
    first items on both (pgstac is asked ``sortby``; pages of 2 make the limit span pages)."""
    monkeypatch.setattr(_stac_api, "PAGE_SIZE", 2)
    everything = {k: v for k, v in query.items() if k != "limit"}
    expected = listed(lab.catalog(rustac.centres_file).search(**everything))[: query["limit"]]
    assert len(expected) == query["limit"]
    for federation in (pgstac_federation, rustac):
        result = lab.catalog(federation.centres_file).search(**query)
        assert listed(result) == expected
        assert result.federation_missing == []
    over_pgstac = lab.catalog(pgstac_federation.centres_file).search(**query)
    assert "datetime" not in over_pgstac.federation["theia"].note  # the server sorted
    over_rustac = lab.catalog(rustac.centres_file).search(**query)
    # rustac serve does not declare Sort: the lab read everything and sorted
    assert "no Sort conformance: read all" in over_rustac.federation["theia"].note


def test_limit_without_sort_reads_a_bounded_number_of_items(rustac: LiveFederation) -> None:
    with lab.config.set({"catalog.client_filter_max_items": 5}):
        result = lab.catalog(rustac.centres_file).search(
            collections="sentinel-2-l2a", limit=2, timeout=60
        )
    report = result.federation["theia"]
    assert report.status == "missing" and len(result) == 0
    assert "to keep the first 2 items by +datetime" in report.error
    assert "does not conform to Sort" in report.error
    assert "catalog.client_filter_max_items" in report.error


def test_pixels_from_pgstac_items_equal_those_from_rustac_items(
    pgstac_federation: LiveFederation, rustac: LiveFederation
) -> None:
    query = {"collections": "sentinel-2-l2a", "bbox": list(THAU), "datetime": "2022-01/2022-02"}
    from_pgstac = lab.catalog(pgstac_federation.centres_file).search(**query)
    from_rustac = lab.catalog(rustac.centres_file).search(**query)
    assert len(from_pgstac) >= 2 and listed(from_pgstac) == listed(from_rustac)
    # the hrefs differ (each federation's front), the files are the same
    assert all(
        p.assets["red"].href != r.assets["red"].href
        for p, r in zip(from_pgstac, from_rustac, strict=True)
    )
    a = datacubes.load(list(from_pgstac), ["red", "nir"], bbox=THAU).compute()
    b = datacubes.load(list(from_rustac), ["red", "nir"], bbox=THAU).compute()
    for band in ("red", "nir"):
        assert np.isfinite(a[band].values).any()
        np.testing.assert_array_equal(a[band].values, b[band].values)
        assert a[band].dims == b[band].dims
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_a_stopped_pgstac_centre_is_reported_missing(sample_dir: Path, tmp_path: Path) -> None:
    with pgstac_servers(
        sample_dir / "centres.yaml", tmp_path, catalog_options={"retries": 0}
    ) as federation:
        before = lab.catalog(federation.centres_file).search()
        assert len(before) == 26 + 16 + 92 + 92 and before.federation_missing == []
        federation.stop("stac-odatis")
        after = lab.catalog(federation.centres_file).search(timeout=60)
        assert after.federation["odatis"].status == "missing"
        assert after.federation["odatis"].error
        assert after.federation_missing == ["odatis"]
        assert {i.properties["earthlab:centre"] for i in after} == {"theia", "dinamis", "aeris"}
        assert len(after) == 26 + 16 - 7 + 92


# --- the user's sortby: the same items in the same order on every server (issue 15, item 2) ---


def expected_order(sample_dir: Path, keys: list[tuple[str, bool]], limit: int | None) -> list[str]:
    """Ids of theia's items read from the catalogue files, sorted by hand: ``keys`` are
    (property, descending); ties by datetime, collection, id ascending."""
    catalog = pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json"))
    items = [i for i in catalog.get_items(recursive=True) if i.collection_id == "sentinel-2-l2a"]
    # stable sorts from the last key to the first
    items.sort(key=lambda i: (i.datetime.isoformat(), i.collection_id, i.id))
    for name, descending in reversed(keys):
        value = (lambda i: i.id) if name == "id" else (lambda i, n=name: i.properties[n])
        items.sort(key=value, reverse=descending)
    ids = [i.id for i in items]
    return ids[:limit] if limit else ids


SORTS = [
    ("-datetime", [("datetime", True)], 3),
    ("-properties.eo:cloud_cover", [("eo:cloud_cover", True)], 4),
    (["+eo:cloud_cover", "-id"], [("eo:cloud_cover", False), ("id", True)], 5),
    ([{"field": "properties.datetime", "direction": "desc"}], [("datetime", True)], None),
]


@pytest.mark.parametrize(("sortby", "keys", "limit"), SORTS, ids=["dt", "cloud", "two", "all"])
def test_sortby_gives_the_same_items_in_the_same_order_on_every_server(
    pgstac_federation: LiveFederation,
    rustac: LiveFederation,
    sample_dir: Path,
    sortby: object,
    keys: list[tuple[str, bool]],
    limit: int | None,
) -> None:
    expected = expected_order(sample_dir, keys, limit)
    assert len(expected) == (limit or 16)
    answers = {}
    for name, centres_file in (
        ("files", sample_dir / "centres.yaml"),  # static catalogues, sorted by the lab
        ("rustac", rustac.centres_file),  # no Sort conformance: read whole, sorted by the lab
        ("pgstac", pgstac_federation.centres_file),  # Sort: sent sortby
    ):
        result = lab.catalog(centres_file).search(
            collections="sentinel-2-l2a", sortby=sortby, limit=limit
        )
        answers[name] = [i.id for i in result]
        if name == "rustac" and limit:
            assert "no Sort conformance: read all 16 matching items to keep the first" in (
                result.federation["theia"].note
            )
        if name == "pgstac":
            assert "read all" not in result.federation["theia"].note
    assert answers == dict.fromkeys(answers, expected)
