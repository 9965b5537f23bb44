"""A CQL2 filter is never dropped: sent to a STAC API that conforms to Filter, evaluated
client-side (and reported so) for an API with item-search but without Filter, such as the lab's
own ``rustac serve`` behind ``lab_server.stac_front``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pystac
import pytest
import requests
from stac_servers import stac_servers
from test_stac_api_pagination import EMPTY_PAGE, PC_HOST, centre, not_found, replay_server

import lab
from lab._adapters import _stac_api
from lab._adapters._stac_api import CLIENT_FILTER_NOTE, StacApiAdapter
from lab._query import SearchQuery, filter_matches

CLEAR = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}


def _static_items(sample_dir: Path, centre_name: str) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(sample_dir / centre_name / "catalog.json"))
    return list(catalog.get_items(recursive=True))


@pytest.fixture(scope="module")
def live(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with stac_servers(
        sample_dir / "centres.yaml", tmp_path_factory.mktemp("live"), catalog_options={"retries": 0}
    ) as federation:
        yield federation


@pytest.fixture()
def sent() -> Any:
    """The bodies of the requests lab sessions send while a test runs."""
    bodies: list[dict[str, Any]] = []

    def hook(request: requests.PreparedRequest) -> None:
        if request.body:
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            bodies.append(json.loads(body))

    lab.add_request_hook(hook)
    yield bodies
    lab.remove_request_hook(hook)


@pytest.mark.integration
def test_live_api_without_filter_evaluates_it_client_side(live, sample_dir: Path, sent) -> None:
    landing = requests.get(live.urls["theia"], timeout=30).json()
    assert not any("filter" in uri for uri in landing["conformsTo"])  # what this test is about
    items = _static_items(sample_dir, "theia")
    expected = {
        i.id
        for i in items
        if i.collection_id == "sentinel-2-l2a"
        and filter_matches(CLEAR, i.to_dict(include_self_link=False, transform_hrefs=False))
    }
    assert 0 < len(expected) < len([i for i in items if i.collection_id == "sentinel-2-l2a"])
    result = lab.catalog(live.centres_file).search(
        collections="sentinel-2-l2a", filter=CLEAR, centres=["theia"]
    )
    report = result.federation["theia"]
    assert report.status == "ok", report
    assert {i.id for i in result} == expected
    assert report.matched == report.returned == len(expected)
    assert report.note == "filter evaluated client-side (the API does not conform to Filter)"
    assert "filter evaluated client-side" in result.describe()
    searches = [b for b in sent if "collections" in b]
    assert searches and not any("filter" in b for b in searches)  # never sent to this API
    # the limit applies to the filtered items
    limited = lab.catalog(live.centres_file).search(
        collections="sentinel-2-l2a", filter=CLEAR, centres=["theia"], limit=2
    )
    ordered = [i.id for i in result]
    assert [i.id for i in limited] == ordered[:2]


@pytest.mark.integration
def test_live_client_side_filter_is_bounded(live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHLAB_CATALOG__CLIENT_FILTER_MAX_ITEMS", "5")
    monkeypatch.setattr(_stac_api, "PAGE_SIZE", 3)
    result = lab.catalog(live.centres_file).search(
        collections="sentinel-2-l2a", filter=CLEAR, centres=["theia"]
    )
    report = result.federation["theia"]
    assert report.status == "missing" and len(result) == 0
    assert "does not conform to Filter" in report.error and "more than 5 items" in report.error
    assert "narrow the search" in report.error


def test_api_conforming_to_filter_gets_the_filter(reference_dir: Path) -> None:
    def answer(method: str, path: str, request: dict) -> tuple[int, Any]:
        if method == "GET" and path == "/api/stac/v1/":
            return 200, replay.page("planetarycomputer-landing.json")
        if method == "POST" and path == "/api/stac/v1/search":
            if "token" in (request["body"] or {}):
                return 200, EMPTY_PAGE
            return 200, replay.page("planetarycomputer-search-page1.json")
        return not_found(path)

    # a filter no recorded item passes: the items kept are the server's answer, not re-evaluated
    odd = {"op": "=", "args": [{"property": "naip:state"}, "nowhere"]}
    with replay_server(reference_dir, PC_HOST, answer) as replay:
        landing = replay.page("planetarycomputer-landing.json")
        assert "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter" in landing["conformsTo"]
        page1 = replay.page("planetarycomputer-search-page1.json")
        result = StacApiAdapter(centre(replay.url + "/api/stac/v1/")).search(
            SearchQuery.build(collections="naip", filter=odd)
        )
    searches = [r for r in replay.requests if r["method"] == "POST"]
    assert searches[0]["body"]["filter"] == odd
    assert searches[0]["body"]["filter-lang"] == "cql2-json"
    assert [i.id for i in result.items] == [f["id"] for f in page1["features"]]
    assert result.note != CLIENT_FILTER_NOTE


def test_recorded_api_without_filter_conformance_is_filtered_here(reference_dir: Path) -> None:
    def answer(method: str, path: str, request: dict) -> tuple[int, Any]:
        if method == "GET" and path == "/api/stac/v1/":
            landing = replay.page("planetarycomputer-landing.json")
            landing["conformsTo"] = [
                c for c in landing["conformsTo"] if "filter" not in c and "cql2" not in c
            ]
            return 200, landing
        if method == "POST" and path == "/api/stac/v1/search":
            if "token" in (request["body"] or {}):
                return 200, EMPTY_PAGE
            return 200, replay.page("planetarycomputer-search-page1.json")
        return not_found(path)

    with replay_server(reference_dir, PC_HOST, answer) as replay:
        features = replay.page("planetarycomputer-search-page1.json")["features"]
        first = features[0]["id"]
        only_first = {"op": "=", "args": [{"property": "id"}, first]}
        result = StacApiAdapter(centre(replay.url + "/api/stac/v1/")).search(
            SearchQuery.build(collections="naip", filter=only_first)
        )
    searches = [r for r in replay.requests if r["method"] == "POST"]
    assert searches and not any("filter" in r["body"] for r in searches)
    assert searches[0]["body"]["collections"] == ["naip"]  # the other criteria are sent
    assert [i.id for i in result.items] == [first]
    assert result.matched == 1 and result.note == CLIENT_FILTER_NOTE
