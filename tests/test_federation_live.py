"""Federated search across live STAC APIs on loopback: the sample's four centres, each served
by ``rustac serve`` (as ``earthlab hub up`` serves them), searched through pystac-client.

What is expected comes from the sample's own files (its static catalogues and COGs), not from
the servers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pystac_client  # noqa: F401  (imported up front: first-search import time is not latency)
import pytest
import requests
import yaml
from stac_servers import IP, stac_servers

import lab
from lab._adapters import _stac_api
from lab._cli import main
from lab._http import RetryPolicy

pytestmark = [pytest.mark.integration]

CENTRES = ("theia", "odatis", "dinamis", "aeris")
HANG = 120.0  # seconds: only guards against a hang, never decides what a test checks


def static_items(sample_dir: Path, centre: str) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(sample_dir / centre / "catalog.json"))
    return list(catalog.get_items(recursive=True))


def when(item: pystac.Item) -> str:
    return (item.datetime or item.common_metadata.start_datetime).isoformat()


@pytest.fixture(scope="module")
def live(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with stac_servers(
        sample_dir / "centres.yaml", tmp_path_factory.mktemp("live"), catalog_options={"retries": 1}
    ) as federation:
        yield federation


def test_three_live_stac_apis_merged_sorted_and_tagged(live, sample_dir: Path) -> None:
    result = lab.catalog(live.centres_file).search()
    expected = {c: static_items(sample_dir, c) for c in CENTRES}
    assert {c: len(v) for c, v in expected.items()} == {
        "theia": 16 + 16,  # Sen2Cor-like and MAJA
        "odatis": 7 + 92,
        "dinamis": 3,
        "aeris": 92,
    }
    assert len(result) == 26 + 16 + 92 + 92
    for centre in CENTRES:
        report = result.federation[centre]
        assert report.status == "ok", report
        assert report.matched == report.returned == report.kept == len(expected[centre])
        assert {i.id for i in result if i.properties["earthlab:centre"] == centre} == {
            i.id for i in expected[centre]
        }
    stamps = [(when(i), i.collection_id, i.id) for i in result]
    assert stamps == sorted(stamps)
    assert result.federation_missing == []


def test_live_assets_are_the_centres_files(live, sample_dir: Path) -> None:
    result = lab.catalog(live.centres_file).search(ids=["S2B_31TEJ_20220215_0_L2A"])
    (item,) = result
    href = item.assets["red"].href
    assert href.startswith("http://127.0.0.1:") and href.endswith(
        "/theia/sentinel-2-l2a/S2B_31TEJ_20220215_0_L2A/red.tif"
    )
    local = sample_dir / "theia" / "sentinel-2-l2a" / "S2B_31TEJ_20220215_0_L2A" / "red.tif"
    body = requests.get(href, timeout=30).content
    assert hashlib.sha256(body).digest() == hashlib.sha256(local.read_bytes()).digest()
    part = requests.get(href, headers={"Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206 and part.content == local.read_bytes()[100:200]


def test_filters_agree_with_the_offline_catalogues(
    live, sample_dir: Path, sample_truth: dict
) -> None:
    box = (3.55, 43.35, 3.62, 43.40)
    query = {"bbox": list(box), "datetime": "2021-11-01/2022-02-28"}
    online = lab.catalog(live.centres_file).search(**query)
    offline = lab.catalog(sample_dir / "centres.yaml").search(**query)
    assert offline.federation["dinamis"].status == "restricted"  # never read from a local file
    open_ids = [i.id for i in online if i.properties["earthlab:centre"] != "dinamis"]
    assert open_ids == [i.id for i in offline]
    scenes = [
        name
        for a in sample_truth["acquisitions"]
        if "2021-11-01" <= a["datetime"][:10] <= "2022-02-28"
        for name in (a["item_id"], a["maja_product"])
    ]
    # every station's record spans the whole interval: the box decides
    stations = [
        s["item_id"]
        for s in sample_truth["stations"]
        if box[0] <= s["lon"] <= box[2] and box[1] <= s["lat"] <= box[3]
    ]
    assert len(scenes) == 8 * 2 and sorted(stations) == [
        "THAU01-water-quality",
        "THAU03-water-quality",
    ]
    # the daily ocean-colour product covers the box: its days within the interval
    days = pd.date_range("2021-11-01", "2022-01-02")
    products = [f"{p}_{d:%Y%m%d}" for p in ("OC_THAU", "AOD_GOL") for d in days]
    assert sorted(open_ids) == sorted(scenes + stations + products)
    # dinamis's window (near Bouzigues) is east of the box: its items do not match
    assert online.federation["dinamis"].matched == 0


def test_rustac_pagination_is_followed(live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stac_api, "PAGE_SIZE", 5)
    result = lab.catalog(live.centres_file).search(collections="sentinel-2-l2a", centres=["theia"])
    assert len(result) == 16 and result.federation["theia"].matched == 16
    assert len({i.id for i in result}) == 16


def test_mirrored_items_are_kept_from_the_preferred_centre(live, tmp_path: Path) -> None:
    document = json.loads(json.dumps(__import__("yaml").safe_load(live.centres_file.read_text())))
    theia = next(c for c in document["centres"] if c["name"] == "theia")
    for name, priority in (("mirror-low", 200), ("mirror-high", 1)):
        document["centres"].append({**theia, "name": name, "priority": priority})
    path = tmp_path / "mirrored.yaml"
    path.write_text(json.dumps(document))
    result = lab.catalog(path).search(collections="sentinel-2-l2a")
    assert len(result) == 16
    assert {i.properties["earthlab:centre"] for i in result} == {"mirror-high"}
    report = result.federation
    assert report["mirror-high"].kept == 16
    assert report["theia"].duplicates == 16 and report["mirror-low"].duplicates == 16
    # under a limit too: the earliest items, each from the preferred centre
    limited = lab.catalog(path).search(collections="sentinel-2-l2a", limit=4)
    assert [i.id for i in limited] == [i.id for i in result][:4]
    assert {i.properties["earthlab:centre"] for i in limited} == {"mirror-high"}
    assert limited.federation["mirror-high"].kept == 4


class Relay:
    """An HTTP relay on loopback in front of the live centres' STAC APIs, for tests of timing
    that check what happened rather than how long it took.

    It records, in order, each request it is asked and each answer it gives (``events``, pairs
    ``("ask" | "answer", centre)``). It can make the first requests of every centre wait for one
    another (:meth:`together`: none is answered until all have asked, which a search asking one
    centre after another never does), and hold a centre's answers until the test releases them
    (:meth:`hold`). A held answer starts at once and trickles blanks (JSON allows them) so that
    the client's read timeout never fires: only the search's own budget can cut it. Links in the
    answers are rewritten to point at the relay.
    """

    def __init__(self, upstream: Mapping[str, str]):
        self.upstream = dict(upstream)
        self.events: list[tuple[str, str]] = []
        self.apart: list[str] = []
        """Centres whose first request waited for the others in vain (the barrier broke)."""
        self._lock = threading.Lock()
        self._held: dict[str, threading.Event] = {}
        self._barrier: threading.Barrier | None = None
        self._asked: set[str] = set()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                relay._relay(self)

            def do_POST(self) -> None:
                relay._relay(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((IP, 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.urls = {centre: f"http://{IP}:{port}/{centre}/" for centre in self.upstream}
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def together(self) -> None:
        """From now on, no centre's first request is answered before every centre has asked."""
        self._asked = set()
        self._barrier = threading.Barrier(len(self.upstream), timeout=HANG)

    def hold(self, centre: str) -> threading.Event:
        """Hold ``centre``'s answers until the returned event is set."""
        return self._held.setdefault(centre, threading.Event())

    def close(self) -> None:
        for event in self._held.values():
            event.set()
        self._server.shutdown()
        self._server.server_close()

    def _relay(self, handler: BaseHTTPRequestHandler) -> None:
        centre, _, rest = handler.path.lstrip("/").partition("/")
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.events.append(("ask", centre))
            first = centre not in self._asked
            self._asked.add(centre)
        if first and self._barrier is not None:
            try:
                self._barrier.wait()
            except threading.BrokenBarrierError:
                self.apart.append(centre)
        held = self._held.get(centre)
        if held is not None:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Connection", "close")
            handler.end_headers()
            hang = time.monotonic() + HANG
            while not held.wait(0.2) and time.monotonic() < hang:
                handler.wfile.write(b" ")
                handler.wfile.flush()
        headers = {k: v for k in ("Content-Type", "Accept") if (v := handler.headers.get(k))}
        request = urllib.request.Request(
            self.upstream[centre] + rest,
            data=body or None,
            method=handler.command,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=HANG) as response:
                status, kind, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, kind, payload = error.code, error.headers, error.read()
        for name, url in self.upstream.items():
            payload = payload.replace(
                url.rstrip("/").encode(), self.urls[name].rstrip("/").encode()
            )
        with self._lock:
            self.events.append(("answer", centre))
        if held is None:
            handler.send_response(status)
            handler.send_header("Content-Type", kind.get("Content-Type", "application/json"))
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
        handler.wfile.write(payload)


@pytest.fixture()
def relay(live) -> Iterator[Relay]:
    relayed = Relay(live.urls)
    try:
        yield relayed
    finally:
        relayed.close()


def relayed_centres(
    live, relay: Relay, path: Path, timeouts: Mapping[str, float] | None = None
) -> Path:
    """The live centres file with every centre reached through ``relay``, and ``catalog.timeout``
    (and no retries) where ``timeouts`` says."""
    document = yaml.safe_load(live.centres_file.read_text())
    for centre in document["centres"]:
        name = centre["name"]
        if name in relay.urls:
            centre["catalog"]["href"] = relay.urls[name]
        if timeouts and name in timeouts:
            centre["catalog"].update(timeout=timeouts[name], retries=0)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.mark.slow
def test_slow_centres_are_searched_at_the_same_time(sample_dir: Path, tmp_path: Path) -> None:
    delays = {
        "theia": 0.2,
        "odatis": 0.4,
        "dinamis": 0.9,
        "aeris": 0.3,
    }  # the front adds them to every answer
    with stac_servers(sample_dir / "centres.yaml", tmp_path, delays=delays) as slow:
        relay = Relay(slow.urls)
        try:
            federated = lab.catalog(relayed_centres(slow, relay, tmp_path / "relayed.yaml"))
            relay.together()
            result = federated.search()
        finally:
            relay.close()
    # every centre was asked before any was answered: the search costs the slowest, not the sum
    assert relay.apart == []
    assert sorted(relay.events[: len(CENTRES)]) == sorted(("ask", c) for c in CENTRES), relay.events
    assert len(result) == 26 + 16 + 92 + 92 and result.federation_missing == []
    seconds = {c: r.seconds for c, r in result.federation.items()}
    # two answers per search (landing page, one page of results): at least twice the delay
    assert all(seconds[c] >= 2 * d for c, d in delays.items()), seconds


def test_one_worker_searches_the_centres_one_after_another(
    live, relay: Relay, tmp_path: Path
) -> None:
    centres_file = relayed_centres(live, relay, tmp_path / "centres.yaml")
    result = lab.catalog(centres_file, max_workers=1).search()
    # each centre's requests and answers form one run: none began before the previous ended
    runs = [centre for centre, _ in itertools.groupby(c for _, c in relay.events)]
    assert sorted(runs) == sorted(CENTRES), relay.events
    for centre in CENTRES:
        kinds = [kind for kind, c in relay.events if c == centre]
        assert kinds[-1] == "answer" and kinds.count("ask") == kinds.count("answer") >= 2
    assert len(result) == 26 + 16 + 92 + 92 and result.federation_missing == []


def test_a_slow_centre_is_cut_at_its_budget_and_the_others_returned(
    live, relay: Relay, tmp_path: Path
) -> None:
    # dinamis answers only when released; theia and odatis have a budget that only guards
    # against a hang, so how loaded the machine is decides nothing
    timeouts = {"theia": HANG, "odatis": HANG, "aeris": HANG, "dinamis": 1.3}
    federated = lab.catalog(relayed_centres(live, relay, tmp_path / "centres.yaml", timeouts))
    release = relay.hold("dinamis")
    try:
        cut = federated.search()
        # the search came back while dinamis had been asked and not yet answered
        assert ("ask", "dinamis") in relay.events
        assert ("answer", "dinamis") not in relay.events
    finally:
        release.set()
    report = cut.federation
    assert report["dinamis"].status == "missing"
    assert report["dinamis"].error == "timed out after 1.3 s"
    assert report["dinamis"].seconds >= 1.3
    assert report["theia"].status == report["odatis"].status == "ok"
    assert (report["theia"].returned, report["odatis"].returned) == (32, 7 + 92)
    assert cut.federation_missing == ["dinamis"] and len(cut) == 32 + 7 + 92 + 92
    assert {i.properties["earthlab:centre"] for i in cut} == {"theia", "odatis", "aeris"}


def test_a_centre_stopped_mid_test_is_reported_missing(
    sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with stac_servers(
        sample_dir / "centres.yaml", tmp_path, catalog_options={"retries": 2}
    ) as federation:
        before = lab.catalog(federation.centres_file).search()
        assert before.federation_missing == [] and len(before) == 26 + 16 + 92 + 92
        federation.stop("stac-odatis")
        backoffs: list[float] = []
        backoff = RetryPolicy.backoff

        def recorded(policy: RetryPolicy, retry: int) -> float:
            backoffs.append(backoff(policy, retry))
            return backoffs[-1]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(RetryPolicy, "backoff", recorded)
            after = lab.catalog(federation.centres_file).search()
        assert main(["search", "--centres", str(federation.centres_file), "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
    report = after.federation["odatis"]
    assert report.status == "missing" and report.attempts == 3  # 1 + 2 retries
    assert report.error.startswith(f"ConnectionError: {federation.urls['odatis']} answered 502")
    assert "the STAC API does not answer" in report.error
    assert after.federation_missing == ["odatis"] and after.missing == {"odatis": report.error}
    assert {i.properties["earthlab:centre"] for i in after} == {"theia", "dinamis", "aeris"}
    assert len(after) == 32 + 3 + 92
    # each try was answered (502), none timed out, and the two waits between them are short
    assert len(backoffs) == 2 and sum(backoffs) < 3.0, backoffs
    assert document["federation:missing"] == ["odatis"]
    statuses = {r["centre"]: r["status"] for r in document["federation"]}
    assert statuses == {"theia": "ok", "odatis": "missing", "dinamis": "ok", "aeris": "ok"}
    assert len(document["features"]) == 32 + 3 + 92


def test_library_import_time_is_not_counted_in_a_centres_budget(live) -> None:
    """A fresh Python: the catalogue imports pystac-client when it is made (1-4 s), so that a
    first search with a 1 s budget against servers answering in milliseconds is ``ok``."""
    import subprocess
    import sys

    script = (
        "import sys, lab\n"
        "assert 'pystac_client' not in sys.modules\n"
        f"catalog = lab.catalog({str(live.centres_file)!r})\n"
        "assert 'pystac_client' in sys.modules, 'imported inside the timed search'\n"
        "result = catalog.search(collections='sentinel-2-l2a', timeout=1)\n"
        "print(result.federation['theia'].status, len(result))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "16"]


def test_catalogues_that_are_not_stac_apis_are_reported_missing_with_the_reason(
    sample_dir: Path, tmp_path: Path
) -> None:
    """A static ``catalog.json``, an HTML page and a 404 declared ``kind: stac-api``: each
    centre is ``missing`` and says why (never ``ok`` with 0 items)."""
    import functools
    from http.server import SimpleHTTPRequestHandler

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html><body>Welcome</body></html>")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(sample_dir))
    site = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    servers = [ThreadingHTTPServer((IP, 0), h) for h in (handler, site)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    static, pages = (f"http://{IP}:{s.server_address[1]}/" for s in servers)
    hrefs = {
        "static": static + "theia/catalog.json",
        "html": pages + "index.html",
        "gone": pages + "no-such-api/",
    }
    document = {
        "version": 1,
        "centres": [
            {
                "name": name,
                "catalog": {"kind": "stac-api", "href": href, "retries": 0},
                "collections": ["sentinel-2-l2a"],
            }
            for name, href in hrefs.items()
        ],
    }
    path = tmp_path / "centres.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        result = lab.catalog(path).search(collections="sentinel-2-l2a", timeout=60)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    report = result.federation
    assert {name: r.status for name, r in report.items()} == dict.fromkeys(hrefs, "missing")
    assert "declared kind: stac-api but is not a STAC API" in report["static"].error
    assert "no conformsTo" in report["static"].error and "stac-static" in report["static"].error
    assert "is not a STAC API: its answer is not a STAC landing page" in report["html"].error
    assert "answered 404" in report["gone"].error
    assert all(r.attempts == 1 for r in report.values())  # not retried as transient
    assert all(len(r.error.splitlines()) == 1 for r in report.values())


def test_an_https_url_to_a_plain_http_server_is_a_tls_error_not_retried(
    sample_dir: Path, tmp_path: Path
) -> None:
    """TLS to a plain-HTTP server (it answers the ClientHello with an HTTP 400: the TLS
    library reads ``WRONG_VERSION_NUMBER``) fails the same way every time: one try, one line."""
    import functools
    from http.server import SimpleHTTPRequestHandler

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(sample_dir))
    server = ThreadingHTTPServer((IP, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    href = f"https://{IP}:{server.server_address[1]}/theia/catalog.json"
    document = {
        "version": 1,
        "centres": [
            {
                "name": "theia",
                "catalog": {"kind": "stac-api", "href": href, "retries": 3},
                "collections": ["sentinel-2-l2a"],
            }
        ],
    }
    path = tmp_path / "centres.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        result = lab.catalog(path).search(timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    theia = result.federation["theia"]
    assert theia.status == "missing", theia.error
    assert theia.attempts == 1, theia.error  # not retried
    assert theia.error.startswith("CatalogError: centre theia: the TLS handshake with https://")
    assert "[SSL: WRONG_VERSION_NUMBER]" in theia.error
    assert "check the URL's scheme and port" in theia.error
    assert len(theia.error.splitlines()) == 1


class _RefusesFilters(BaseHTTPRequestHandler):
    """A STAC API conforming to Filter whose search answers a filter with a plain 500."""

    def _send(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        root = f"http://{self.headers['Host']}/"
        self._send(
            200,
            {
                "type": "Catalog",
                "id": "refuses-filters",
                "description": "test",
                "stac_version": "1.0.0",
                "conformsTo": [
                    "https://api.stacspec.org/v1.0.0/core",
                    "https://api.stacspec.org/v1.0.0/item-search",
                    "https://api.stacspec.org/v1.0.0/item-search#filter",
                ],
                "links": [
                    {"rel": "self", "href": root},
                    {"rel": "root", "href": root},
                    {"rel": "search", "href": root + "search", "method": "POST"},
                ],
            },
        )

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        if body.get("filter"):
            self._send(500, {"code": "InternalError", "description": "cannot evaluate s_within"})
        else:
            self._send(200, {"type": "FeatureCollection", "features": []})

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_error_on_a_filter_is_the_servers_refusal_also_through_the_front(
    tmp_path: Path,
) -> None:
    """A 500 to a filter is the server refusing this request: reported with its message, not
    retried as a connection problem, directly and through the lab's STAC front (which passes the
    status on instead of turning it into a retryable 502)."""
    import os
    import sys

    from lab_server.deploy._procs import free_port, http_ready, start, stop, wait_until

    api = ThreadingHTTPServer((IP, 0), _RefusesFilters)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    direct = f"http://{IP}:{api.server_address[1]}/"
    port = free_port()
    config = {"ip": IP, "port": port, "centres": {"x": {"stac": direct}}}
    (tmp_path / "front.json").write_text(json.dumps(config))
    command = [sys.executable, "-m", "lab_server.stac_front", str(tmp_path / "front.json")]
    front = start("front", command, tmp_path / "front.log", dict(os.environ), tmp_path)
    try:
        wait_until(front, http_ready(f"http://{IP}:{port}/health"), 60)
        hrefs = {"direct": direct, "fronted": f"http://{IP}:{port}/stac/x/"}
        document = {
            "version": 1,
            "centres": [
                {"name": name, "catalog": {"kind": "stac-api", "href": href, "retries": 3}}
                for name, href in hrefs.items()
            ],
        }
        path = tmp_path / "centres.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        federation = lab.catalog(path)
        assert all(r.status == "ok" for r in federation.search().federation.values())
        refused = federation.search(filter={"op": "=", "args": [{"property": "a"}, 1]})
    finally:
        stop(front, timeout=5)
        api.shutdown()
        api.server_close()
    for name in hrefs:
        report = refused.federation[name]
        assert report.status == "missing", report
        assert report.attempts == 1, report.error  # not retried
        assert report.error.startswith("CatalogError: centre ")
        assert "answered 500" in report.error and "cannot evaluate s_within" in report.error


def test_a_gridded_product_opens_through_its_served_references(live, sample_dir: Path) -> None:
    """The served collection names its kerchunk references by URL; their relative targets
    resolve against it and the chunks come over HTTP (ranges), as on the hub."""
    import datacubes

    (served,) = [
        c for c in lab.catalog(live.centres_file).collections() if c.id == "ocean-colour-daily"
    ]
    href = served.assets["references"].href
    assert href.startswith("http://127.0.0.1:") and href.endswith(
        "/odatis/ocean-colour-daily/references.json"
    )
    window = {"bbox": [3.6, 43.38, 3.66, 43.42], "datetime": "2021-11-01/2021-11-07"}
    remote = datacubes.load_gridded(served, **window)
    local = datacubes.load_gridded(
        pystac.Collection.from_file(
            str(sample_dir / "odatis" / "ocean-colour-daily" / "collection.json")
        ),
        **window,
    )
    assert remote.sizes == local.sizes and remote.sizes["time"] == 7
    for name in ("chl", "tur"):
        np.testing.assert_array_equal(remote[name].to_numpy(), local[name].to_numpy())
