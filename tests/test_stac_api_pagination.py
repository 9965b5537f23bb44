"""The STAC API adapter follows real APIs' pagination, replayed from recorded responses.

``tests/data/reference/stac-api/`` holds real pages of two public APIs (see its SOURCES.md):
Earth Search ``/search`` (POST ``next`` link whose body carries a ``next`` token with
``merge: false``), Planetary Computer ``/search`` (POST body ``token``) and Planetary
Computer ``/collections/{id}/items`` (GET ``?token=``). A tiny HTTP server on 127.0.0.1 serves
them, their link hosts rewritten to itself, and records what pystac-client (through our
adapter) asked. The Earth Search series ends as the API ended it (an empty last page with no
``next`` link); the last recorded Planetary Computer pages still have a ``next`` link, which
the server answers with an empty page, as the API does at the end.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import shapely.geometry

import lab
from lab._adapters._stac_api import StacApiAdapter
from lab._catalog import FederatedCatalog
from lab._centres import CatalogSpec, Centre, CentreSet
from lab._query import SearchQuery

ES_HOST = "https://earth-search.aws.element84.com"
PC_HOST = "https://planetarycomputer.microsoft.com"
EMPTY_PAGE = {"type": "FeatureCollection", "features": [], "links": []}

Answer = Callable[[str, str, dict[str, Any]], tuple[int, Any]]


class Replay:
    """What the loopback server was asked (method, path, query, JSON body), in order."""

    def __init__(self, reference_dir: Path, host: str):
        self.reference_dir = reference_dir
        self.host = host
        self.url = ""
        self.requests: list[dict[str, Any]] = []

    def page(self, name: str) -> Any:
        """A recorded response, its links pointing at this server."""
        text = (self.reference_dir / "stac-api" / name).read_text(encoding="utf-8")
        return json.loads(text.replace(self.host, self.url))


@contextlib.contextmanager
def replay_server(reference_dir: Path, host: str, answer: Answer) -> Iterator[Replay]:
    """Serve ``answer(method, path, request)`` on a free loopback port until the block ends."""
    replay = Replay(reference_dir, host)

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            request = {
                "method": method,
                "path": parts.path,
                "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                "body": body,
                "authorization": self.headers.get("Authorization"),
            }
            replay.requests.append(request)
            status, document = answer(method, parts.path, request)
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    replay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def centre(href: str, **catalog: Any) -> Centre:
    return Centre(
        name="remote",
        title="Remote",
        catalog=CatalogSpec(kind="stac-api", href=href, retries=0, **catalog),
        access_url="https://example.org/access",
    )


def not_found(path: str) -> tuple[int, Any]:
    return 404, {"code": "NotFound", "description": f"no route {path}"}


def test_earth_search_post_next_token_without_merge(reference_dir: Path) -> None:
    def answer(method: str, path: str, request: dict) -> tuple[int, Any]:
        if method == "GET" and path == "/v1":
            return 200, replay.page("earthsearch-v1-landing.json")
        if method == "POST" and path == "/v1/search":
            if "next" in (request["body"] or {}):
                return 200, replay.page("earthsearch-v1-search-page2-last.json")
            return 200, replay.page("earthsearch-v1-search-page1.json")
        return not_found(path)

    with replay_server(reference_dir, ES_HOST, answer) as replay:
        page1 = replay.page("earthsearch-v1-search-page1.json")
        query = SearchQuery.build(
            collections=["sentinel-2-l2a", "landsat-c2-l2"],
            datetime="2023-10-08",
            intersects={"type": "Point", "coordinates": [-105.1019, 40.1672]},
        )
        result = StacApiAdapter(centre(replay.url + "/v1")).search(query)
    assert [i.id for i in result.items] == [f["id"] for f in page1["features"]]
    assert [i.id for i in result.items] == [
        "S2A_13TDE_20231008_0_L2A",
        "LC08_L2SP_033032_20231008_02_T1",
    ]
    assert result.matched == 2  # numberMatched of the first page, no extra request to count
    searches = [r for r in replay.requests if r["path"] == "/v1/search"]
    assert len(searches) == 2
    first, second = (r["body"] for r in searches)
    assert first["collections"] == ["sentinel-2-l2a", "landsat-c2-l2"]
    assert first["datetime"] == "2023-10-08T00:00:00Z/2023-10-08T23:59:59.999999Z"
    assert first["limit"] == 100
    # merge: false -> the next request's body is the link's body exactly (no limit merged in)
    (next_link,) = [link for link in page1["links"] if link["rel"] == "next"]
    assert next_link["merge"] is False
    assert second == next_link["body"]
    assert (
        second["next"]
        == "2023-10-08T17:37:26.656958Z,LC08_L2SP_033032_20231008_02_T1,landsat-c2-l2"
    )


def test_planetary_computer_post_body_token(reference_dir: Path) -> None:
    def answer(method: str, path: str, request: dict) -> tuple[int, Any]:
        if method == "GET" and path == "/api/stac/v1/":
            return 200, replay.page("planetarycomputer-landing.json")
        if method == "POST" and path == "/api/stac/v1/search":
            token = (request["body"] or {}).get("token")
            if token is None:
                return 200, replay.page("planetarycomputer-search-page1.json")
            if token == "next:naip:vt_m_4307307_nw_18_060_20211029":
                return 200, replay.page("planetarycomputer-search-page2.json")
            return 200, EMPTY_PAGE
        return not_found(path)

    with replay_server(reference_dir, PC_HOST, answer) as replay:
        pages = [replay.page(f"planetarycomputer-search-page{n}.json") for n in (1, 2)]
        query = SearchQuery.build(collections="naip", bbox=[-73.21, 43.99, -73.12, 44.05])
        result = StacApiAdapter(centre(replay.url + "/api/stac/v1/")).search(query)
    expected = [f["id"] for page in pages for f in page["features"]]
    assert len(expected) == 20
    assert [i.id for i in result.items] == expected
    assert result.matched == 20  # no count in the pages: all pages read, so it is known
    bodies = [r["body"] for r in replay.requests if r["path"] == "/api/stac/v1/search"]
    assert [b.get("token") for b in bodies] == [
        None,
        "next:naip:vt_m_4307307_nw_18_060_20211029",
        "next:naip:vt_m_4307307_ne_18_h_20160805",
    ]
    # each next body repeats the search (PC's links carry it whole)
    assert all(b["collections"] == ["naip"] for b in bodies)
    assert all(b["bbox"] == [-73.21, 43.99, -73.12, 44.05] for b in bodies)


def test_limit_asks_sortby_and_stops_paging_early(reference_dir: Path) -> None:
    """PC conforms to Sort: a limited search asks datetime ascending, pages of limit + 1."""

    def answer(method: str, path: str, request: dict) -> tuple[int, Any]:
        if path == "/api/stac/v1/":
            return 200, replay.page("planetarycomputer-landing.json")
        page = replay.page("planetarycomputer-search-page1.json")
        if (request["body"] or {}).get("sortby"):  # the server honours sortby
            page["features"].sort(key=lambda f: (f["properties"]["datetime"], f["id"]))
        return 200, page

    with replay_server(reference_dir, PC_HOST, answer) as replay:
        result = StacApiAdapter(centre(replay.url + "/api/stac/v1/")).search(
            SearchQuery.build(collections="naip", limit=5)
        )
    page = replay.page("planetarycomputer-search-page1.json")["features"]
    earliest = sorted(page, key=lambda f: (f["properties"]["datetime"], f["id"]))[:5]
    assert [i.id for i in result.items] == [f["id"] for f in earliest]
    assert result.note == ""  # sorted by the server, nothing read beyond the first page
    search_bodies = [r["body"] for r in replay.requests if r["method"] == "POST"]
    assert len(search_bodies) == 1 and search_bodies[0]["limit"] == 6
    assert search_bodies[0]["sortby"] == [{"field": "properties.datetime", "direction": "asc"}]


def test_items_endpoints_get_token_when_item_search_is_not_advertised(
    reference_dir: Path,
) -> None:
    items_path = "/api/stac/v1/collections/landsat-c2-l2/items"

    def answer(method: str, path: str, request: dict) -> tuple[int, Any]:
        if method == "GET" and path == "/api/stac/v1/":
            landing = replay.page("planetarycomputer-landing.json")
            landing["conformsTo"] = [c for c in landing["conformsTo"] if "/item-search" not in c]
            return 200, landing
        if method == "GET" and path == items_path:
            if "token" in request["query"]:
                return 200, EMPTY_PAGE
            return 200, replay.page("planetarycomputer-landsat-c2-l2-items-page1.json")
        return not_found(path)

    with replay_server(reference_dir, PC_HOST, answer) as replay:
        page1 = replay.page("planetarycomputer-landsat-c2-l2-items-page1.json")
        adapter = StacApiAdapter(centre(replay.url + "/api/stac/v1/"))
        result = adapter.search(SearchQuery.build(collections="landsat-c2-l2", datetime="2025-07"))
        everything = list(replay.requests)
        replay.requests.clear()
        # a box over part of the page: filtered client-side (the recorded server ignores it)
        box = (140.0, -40.0, 160.0, -20.0)
        boxed = adapter.search(SearchQuery.build(collections="landsat-c2-l2", bbox=box))
        # a CQL2 filter cannot be sent to /items: it is evaluated on the returned items
        clear = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}
        filtered = adapter.search(
            SearchQuery.build(collections="landsat-c2-l2", datetime="2025-07", filter=clear)
        )
    assert len(result.items) == 10
    assert {i.id for i in result.items} == {f["id"] for f in page1["features"]}
    assert "no item-search conformance" in result.note
    expected_clear = {f["id"] for f in page1["features"] if f["properties"]["eo:cloud_cover"] < 20}
    assert 0 < len(expected_clear) < 10
    assert {i.id for i in filtered.items} == expected_clear
    assert "CQL2 filter evaluated client-side" in filtered.note
    assert not any(r["path"].endswith("/search") for r in everything)
    items_requests = [r for r in everything if r["path"] == items_path]
    assert len(items_requests) == 2
    assert items_requests[0]["query"]["limit"] == "100"
    assert items_requests[0]["query"]["datetime"].startswith("2025-07-01T00:00:00Z/")
    assert (
        items_requests[1]["query"]["token"] == "next:landsat-c2-l2:LC09_L2SR_084056_20250722_02_T1"
    )
    inside = {
        f["id"]
        for f in page1["features"]
        if shapely.geometry.shape(f["geometry"]).intersects(shapely.geometry.box(*box))
    }
    assert 0 < len(inside) < 10
    assert {i.id for i in boxed.items} == inside and boxed.matched == len(inside)
    boxed_requests = [r["query"] for r in replay.requests if r["path"] == items_path]
    assert boxed_requests[0]["bbox"] == "140,-40,160,-20"  # sent to the server too


def test_refusal_is_restricted_with_the_access_url(reference_dir: Path) -> None:
    def answer(method: str, path: str, request: dict) -> tuple[int, Any]:
        if request["authorization"] != "Bearer let-me-in":
            return 403, {"code": "Forbidden", "description": "not a member of group dinamis"}
        if path == "/api/stac/v1/":
            return 200, replay.page("planetarycomputer-landing.json")
        return 200, EMPTY_PAGE

    with replay_server(reference_dir, PC_HOST, answer) as replay:
        remote = centre(replay.url + "/api/stac/v1/", token_env="REMOTE_TOKEN")
        fed = FederatedCatalog(CentreSet([remote]))
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("REMOTE_TOKEN", "wrong")
            refused = fed.search(collections="naip")
            with pytest.raises(lab.RestrictedDataError, match="not a member of group dinamis"):
                StacApiAdapter(remote).search(SearchQuery.build(collections="naip"))
            mp.setenv("REMOTE_TOKEN", "let-me-in")
            allowed = fed.search(collections="naip")
            mp.delenv("REMOTE_TOKEN")
            no_token = fed.search(collections="naip")
    report = refused.federation["remote"]
    assert report.status == "restricted" and report.attempts == 1  # a refusal is not retried
    assert report.error.startswith("restricted: request access via https://example.org/access")
    assert refused.federation_missing == ["remote"] and refused.missing == {}
    assert allowed.federation["remote"].status == "ok" and allowed.federation_missing == []
    assert no_token.federation["remote"].status == "restricted"
    assert "REMOTE_TOKEN" in no_token.federation["remote"].error


def test_server_errors_are_retried_and_client_errors_are_not(reference_dir: Path) -> None:
    calls = {"search": 0}

    def answer(method: str, path: str, request: dict) -> tuple[int, Any]:
        if path == "/api/stac/v1/":
            return 200, replay.page("planetarycomputer-landing.json")
        calls["search"] += 1
        if request["body"].get("collections") == ["bad"]:
            return 400, {"code": "BadRequest", "description": "unknown collection bad"}
        if calls["search"] == 1:
            return 502, {"code": "BadGateway", "description": "upstream hiccup"}
        return 200, replay.page("planetarycomputer-search-page2.json") | {"links": []}

    with replay_server(reference_dir, PC_HOST, answer) as replay:
        spec = CatalogSpec(kind="stac-api", href=replay.url + "/api/stac/v1/", retries=2)
        fed = FederatedCatalog(CentreSet([Centre(name="remote", title="R", catalog=spec)]))
        started = time.monotonic()
        flaky = fed.search(collections="naip")
        bad = fed.search(collections="bad")
        elapsed = time.monotonic() - started
    assert flaky.federation["remote"].status == "ok" and flaky.federation["remote"].attempts == 2
    assert len(flaky) == 10
    assert bad.federation["remote"].status == "missing" and bad.federation["remote"].attempts == 1
    assert "answered 400: unknown collection bad" in bad.federation["remote"].error
    assert elapsed < 5


def test_a_next_link_that_does_not_advance_is_an_error_not_a_loop(reference_dir: Path) -> None:
    def answer(method: str, path: str, request: dict) -> tuple[int, Any]:
        if path == "/api/stac/v1/":
            return 200, replay.page("planetarycomputer-landing.json")
        return 200, replay.page("planetarycomputer-search-page1.json")  # same page, forever

    with replay_server(reference_dir, PC_HOST, answer) as replay:
        spec = CatalogSpec(kind="stac-api", href=replay.url + "/api/stac/v1/", retries=0)
        fed = FederatedCatalog(CentreSet([Centre(name="loop", title="L", catalog=spec)]))
        result = fed.search(collections="naip")
        searches = [r for r in replay.requests if r["method"] == "POST"]
    report = result.federation["loop"]
    assert report.status == "missing" and report.attempts == 1
    assert "page 2 of the results repeats page 1" in report.error
    assert len(searches) == 2
