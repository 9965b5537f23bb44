"""One HTTP stack: lab.http_session's retry policy, against a real HTTP server on 127.0.0.1.

The server (stdlib ``http.server`` in a thread) answers each path by a script: so many
failures with a given status, then 200. Backoff is set to 0 through ``lab.config``, so that no
test waits; what is asserted is what the server saw and what the caller got.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import urllib3.util.connection
from urllib3.util.retry import RequestHistory, Retry

import lab
from lab import CatalogSpec, Centre, CentreSet
from recipes import insitu


class Server:
    """What the loopback server was asked, and what it is to answer."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self.failures: dict[str, tuple[int, int]] = {}  # path -> (status, how many times)
        self.bodies: dict[str, Any] = {}  # path -> JSON answered with 200
        self.release = threading.Event()  # /hang answers once set

    def fail(self, path: str, status: int, times: int) -> None:
        self.failures[path] = (status, times)

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"] == path)


@contextlib.contextmanager
def http_server() -> Iterator[Server]:
    state = Server()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path = self.path.split("?")[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with lock:
                state.requests.append(
                    {
                        "method": self.command,
                        "path": path,
                        "user_agent": self.headers.get("User-Agent"),
                        "body": body,
                    }
                )
                status, times = state.failures.get(path, (200, 0))
                if times:
                    state.failures[path] = (status, times - 1)
                else:
                    status = 200
            if path == "/hang":  # no answer until the test ends (the client gave up by then)
                state.release.wait(30)
                return
            document = state.bodies.get(path, {"path": path}) if status == 200 else {}
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status in (429, 503):
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def server() -> Iterator[Server]:
    with http_server() as state:
        yield state


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """Defaults but no wait between tries; no user file or variable of the developer's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in lab.config.env_names():
        monkeypatch.delenv(name, raising=False)
    with lab.config.set({"http.backoff_factor": 0.0}):
        yield


@pytest.fixture()
def seen() -> Iterator[list[requests.PreparedRequest]]:
    """Every request a lab session sends, through a request hook."""
    requests_seen: list[requests.PreparedRequest] = []
    lab.add_request_hook(requests_seen.append)
    try:
        yield requests_seen
    finally:
        lab.remove_request_hook(requests_seen.append)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_retried_status_is_tried_again_exactly_http_retries_times(
    server: Server, status: int
) -> None:
    server.fail("/flaky", status, 3)
    with lab.config.set(http__retries=3), lab.http_session() as session:
        answer = session.get(server.url + "/flaky")
    assert answer.status_code == 200 and server.count("/flaky") == 4  # 1 + 3 retries

    server.fail("/flaky", status, 3)
    with lab.config.set(http__retries=2), lab.http_session() as session:
        answer = session.get(server.url + "/flaky")
    assert answer.status_code == status  # the last answer, for the caller to read
    assert server.count("/flaky") == 4 + 3  # 1 + 2 retries, then the failure is returned


@pytest.mark.parametrize("status", [500, 404, 400, 401, 403])
def test_a_plain_500_or_a_4xx_is_not_retried(server: Server, status: int) -> None:
    server.fail("/refused", status, 1)
    with lab.http_session() as session:
        answer = session.get(server.url + "/refused")
    assert answer.status_code == status and server.count("/refused") == 1


def test_a_post_is_not_sent_twice_by_the_session(server: Server) -> None:
    server.fail("/search", 503, 1)
    with lab.http_session() as session:
        answer = session.post(server.url + "/search", json={"q": 1})
    assert answer.status_code == 503 and server.count("/search") == 1


def test_connection_refused_is_a_lab_error_after_the_configured_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a port nothing listens at
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempts = []
    connect = urllib3.util.connection.create_connection

    def counting(*args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(args[0])
        return connect(*args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    url = f"http://127.0.0.1:{port}/nothing"
    with (
        lab.config.set(http__retries=2),
        lab.http_session() as session,
        pytest.raises(lab.HttpError) as info,
    ):
        session.get(url)
    assert len(attempts) == 3  # 1 + 2 retries
    error = info.value
    assert isinstance(error, lab.EarthLabError) and isinstance(error, requests.ConnectionError)
    message = str(error)
    assert message.startswith(f"no answer from {url}: [Errno")
    assert "Connection refused" in message and "after 2 retries" in message
    assert "http.retries" in message  # what to do


def test_a_timeout_is_the_setting_or_the_argument_and_no_answer_is_a_lab_error(
    server: Server,
) -> None:
    with lab.config.set({"http.timeout": 7}):
        assert lab.http_session().timeout == 7.0
    policy = replace(lab.RetryPolicy.from_config(), total=0)
    with (
        lab.http_session(retry=policy, timeout=0.2) as session,
        pytest.raises(lab.HttpError, match="timed out"),
    ):
        session.get(server.url + "/hang")
    with pytest.raises(lab.ConfigurationError, match="timeout"):
        lab.http_session(timeout=0)


def test_sessions_say_who_asks_and_call_the_request_hooks(
    server: Server, seen: list[requests.PreparedRequest]
) -> None:
    with lab.http_session() as session:
        session.get(server.url + "/a")
        session.post(server.url + "/b", json={"x": 1})
    assert [(r.method, r.url) for r in seen] == [
        ("GET", server.url + "/a"),
        ("POST", server.url + "/b"),
    ]
    agents = {r["user_agent"] for r in server.requests}
    assert len(agents) == 1 and agents.pop().startswith("earthlab/")
    lab.remove_request_hook(seen.append)
    with lab.http_session() as session:
        session.get(server.url + "/c")
    assert len(seen) == 2


def test_the_policy_comes_from_the_settings_and_refuses_what_must_not_be_retried() -> None:
    with lab.config.set(
        {"http": {"retries": 4, "backoff_factor": 0.25, "backoff_max": 3, "retry_statuses": [503]}}
    ):
        policy = lab.RetryPolicy.from_config()
    assert policy == lab.RetryPolicy(total=4, backoff_factor=0.25, backoff_max=3.0, statuses=(503,))
    retry = policy.urllib3_retry()
    assert (retry.total, retry.backoff_factor, retry.backoff_max) == (4, 0.25, 3.0)
    assert retry.status_forcelist == (503,) and retry.raise_on_status is False
    with pytest.raises(lab.ConfigurationError, match=r"http.retry_statuses.*500"):
        lab.RetryPolicy(total=1, backoff_factor=0, backoff_max=0, statuses=(500, 503))
    with pytest.raises(lab.ConfigurationError, match=r"http.retry_statuses.*404"):
        lab.config.set({"http.retry_statuses": [404]})


def test_the_backoff_is_urllib3s_and_retry_after_is_capped() -> None:
    policy = lab.RetryPolicy(total=6, backoff_factor=0.5, backoff_max=5.0, statuses=(503,))
    for n in range(1, 7):
        history = tuple(RequestHistory("GET", "/", None, 503, None) for _ in range(n))
        expected = Retry(backoff_factor=0.5, backoff_max=5.0, history=history).get_backoff_time()
        assert policy.backoff(n) == expected
    assert [policy.backoff(n) for n in range(1, 6)] == [0.0, 1.0, 2.0, 4.0, 5.0]

    class Answer:
        def __init__(self) -> None:
            self.headers = {"Retry-After": "3600"}  # an hour: waited backoff_max

    assert policy.urllib3_retry().get_retry_after(Answer()) == 5.0  # type: ignore[arg-type]


def test_what_is_worth_another_try() -> None:
    policy = lab.RetryPolicy.from_config()
    assert [policy.retryable(s) for s in (429, 502, 503, 504, 500, 501, 404, 400)] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    assert policy.retryable(lab.HttpError("no answer"))
    assert policy.retryable(ConnectionError("reset")) and policy.retryable(TimeoutError())
    assert not policy.retryable(lab.CatalogError("the API answered 400"))
    assert not policy.retryable(lab.RestrictedDataError("request access"))
    assert not policy.retryable(ValueError("a bug"))


HUBEAU_PAGE = {"count": 0, "first": None, "next": None, "data": []}


def stac_landing(url: str) -> dict[str, Any]:
    return {
        "type": "Catalog",
        "id": "remote",
        "description": "a STAC API on loopback",
        "stac_version": "1.0.0",
        "conformsTo": [
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/item-search",
        ],
        "links": [
            {"rel": "self", "href": url + "/stac/", "type": "application/json"},
            {"rel": "root", "href": url + "/stac/", "type": "application/json"},
            {
                "rel": "search",
                "href": url + "/stac/search",
                "type": "application/geo+json",
                "method": "POST",
            },
        ],
    }


def test_hubeau_and_the_stac_adapter_go_through_the_lab_session(
    server: Server, seen: list[requests.PreparedRequest]
) -> None:
    server.bodies["/hubeau"] = HUBEAU_PAGE
    server.bodies["/stac/"] = stac_landing(server.url)
    server.bodies["/stac/search"] = {"type": "FeatureCollection", "features": [], "links": []}
    server.fail("/hubeau", 503, 1)  # the session retries a plain GET

    table = insitu.fetch_hubeau(server.url + "/hubeau")
    spec = CatalogSpec(kind="stac-api", href=server.url + "/stac/", retries=0)
    remote = Centre(name="remote", title="R", catalog=spec, collections=("x",))
    result = lab.catalog(CentreSet([remote])).search(collections="x")

    assert len(table.data) == 0 and server.count("/hubeau") == 2
    assert result.federation["remote"].status == "ok"
    assert [r.url for r in seen] == [
        server.url + "/hubeau",  # one logical request: the retry is the session's
        server.url + "/stac/",
        server.url + "/stac/search",
    ]
    assert all(r["user_agent"].startswith("earthlab/") for r in server.requests)


def test_a_stac_search_is_retried_by_the_federation_only(
    server: Server, seen: list[requests.PreparedRequest]
) -> None:
    server.bodies["/stac/"] = stac_landing(server.url)
    server.bodies["/stac/search"] = {"type": "FeatureCollection", "features": [], "links": []}
    server.fail("/stac/search", 503, 2)
    spec = CatalogSpec(kind="stac-api", href=server.url + "/stac/", retries=2)
    with lab.config.set(http__retries=5):  # the session's own retries would multiply these
        result = lab.catalog(CentreSet([Centre(name="remote", title="R", catalog=spec)])).search()
    report = result.federation["remote"]
    assert report.status == "ok" and report.attempts == 3
    assert server.count("/stac/search") == 3  # not 3 x 6
    assert sum(r.url.endswith("/stac/search") for r in seen) == 3

    server.fail("/stac/search", 500, 1)  # a plain 500: the server refuses, no other try
    result = lab.catalog(CentreSet([Centre(name="remote", title="R", catalog=spec)])).search()
    report = result.federation["remote"]
    assert report.status == "missing" and report.attempts == 1
    assert "answered 500" in report.error


def test_hubeau_reports_an_unreachable_page_as_an_asset_read_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with lab.config.set(http__retries=0), pytest.raises(lab.AssetReadError) as info:
        insitu.fetch_hubeau(f"http://127.0.0.1:{port}/hubeau")
    assert "Connection refused" in str(info.value)
    assert isinstance(info.value.__cause__, lab.HttpError)


def test_the_stac_adapter_session_has_the_centres_timeout_and_no_retries_of_its_own(
    server: Server,
) -> None:
    from lab._adapters._stac_api import StacApiAdapter

    server.bodies["/stac/"] = stac_landing(server.url)
    spec = CatalogSpec(kind="stac-api", href=server.url + "/stac/", timeout=4.5, retries=2)
    client = StacApiAdapter(Centre(name="remote", title="R", catalog=spec))._client()
    stac_io = client._stac_io
    try:
        assert stac_io.timeout == 4.5 and stac_io.session.timeout == 4.5
        assert stac_io.session.retry_policy.total == 0
        assert stac_io.session.headers["User-Agent"].startswith("earthlab/")
    finally:
        stac_io.session.close()


def test_tls_failures_are_not_retried() -> None:
    import ssl

    import requests

    from lab._http import RetryPolicy

    policy = RetryPolicy.from_config()
    assert policy.retryable(requests.exceptions.ConnectionError("refused"))
    assert not policy.retryable(requests.exceptions.SSLError("wrong version number"))
    try:
        try:
            raise ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
        except ssl.SSLError as inner:
            raise ConnectionError("wrapped") from inner
    except ConnectionError as outer:
        assert not policy.retryable(outer)  # found through the cause chain
