"""Cluster listing and stopping go gateway by gateway: a gateway that refuses the user's token
(a centre restricted to a hub group the user is not in), cannot be reached or fails is reported,
and the other gateways' clusters are still listed and stopped.

A real ``dask-gateway-server`` (simple authentication, clusters as local processes) runs on
loopback for the centre ``theia``; the centre ``dinamis`` has a gateway that answers 403 to
every request, as the lab's restricted centre's gateway answers a user outside its group; the
centre ``odatis`` has a gateway address where nothing listens.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import lab
from lab._centres import read_centres_file
from lab._cluster import GatewayWarning, _close
from lab_server.deploy._procs import free_port, http_ready, start, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IP = "127.0.0.1"
HANG = 120.0  # seconds: only guards against a hang, never decides what a test checks
GATEWAY_CONFIG = """
c.DaskGateway.address = "{ip}:{api}"
c.Proxy.address = "{ip}:{http}"
c.Proxy.tcp_address = "{ip}:{tcp}"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.ClusterConfig.scheduler_cmd = [{dask!r}, "scheduler"]
c.ClusterConfig.worker_cmd = [{dask!r}, "worker"]
c.ClusterConfig.idle_timeout = 0
c.LocalBackend.clusters_directory = {clusters!r}
"""


class Refusing:
    """A gateway API on loopback that answers 403 to every request, recording the paths."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                paths.append(self.path)
                body = b'{"error": "403 Forbidden: not in the group of this centre"}'
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._refuse()

            def do_POST(self) -> None:
                self._refuse()

            def do_DELETE(self) -> None:
                self._refuse()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((IP, 0), Handler)
        self.url = f"http://{IP}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(HANG)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real dask-gateway-server for theia: (API address, proxy address)."""
    directory = tmp_path_factory.mktemp("gateway")
    bin_dir = Path(sys.executable).parent
    api, http, tcp = free_port(), free_port(), free_port()
    config = directory / "gateway_config.py"
    config.write_text(
        GATEWAY_CONFIG.format(
            ip=IP,
            api=api,
            http=http,
            tcp=tcp,
            dask=str(bin_dir / "dask"),
            clusters=str(directory / "clusters"),
        )
    )
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "HOME": str(directory)}
    command = [str(bin_dir / "dask-gateway-server"), "-f", str(config)]
    proc = start("gateway-theia", command, directory / "gateway.log", env, directory)
    try:
        wait_until(proc, http_ready(f"http://{IP}:{api}/api/health"), HANG)
        yield f"http://{IP}:{api}", f"gateway://{IP}:{tcp}"
    finally:
        stop(proc, timeout=20)


@pytest.fixture()
def refusing() -> Iterator[Refusing]:
    server = Refusing()
    yield server
    server.close()


@pytest.fixture()
def federation(tmp_path: Path, gateway, refusing, monkeypatch) -> lab.CentreSet:
    for name in ("THEIA", "ODATIS", "DINAMIS"):
        monkeypatch.delenv(f"EARTHLAB_GATEWAY_{name}", raising=False)
        monkeypatch.delenv(f"EARTHLAB_GATEWAY_PROXY_{name}", raising=False)
    address, proxy = gateway
    nowhere = f"http://{IP}:{free_port()}"
    lines = ["version: 1", "centres:"]
    for name, gateway_line in (
        ("theia", f"{{address: '{address}', proxy_address: '{proxy}', auth: simple}}"),
        ("odatis", f"{{address: '{nowhere}', auth: simple}}"),
        ("dinamis", f"{{address: '{refusing.url}', auth: simple}}"),
    ):
        lines += [
            f"  - name: {name}",
            f"    catalog: {{kind: stac-static, href: {name}/catalog.json}}",
            f"    gateway: {gateway_line}",
        ]
    path = tmp_path / "centres.yaml"
    path.write_text("\n".join(lines) + "\n")
    return read_centres_file(path)


def _start_clusters(address: str, proxy: str, count: int) -> list[str]:
    from dask_gateway import Gateway

    gateway = Gateway(address, proxy_address=proxy, auth="basic")
    try:
        return [gateway.submit() for _ in range(count)]
    finally:
        _close(gateway)


def _wait_gone(address: str, proxy: str, names: set[str]) -> None:
    from dask_gateway import Gateway

    deadline = time.monotonic() + HANG  # a hang guard only: the loop ends on the state
    gateway = Gateway(address, proxy_address=proxy, auth="basic")
    try:
        while {c.name for c in gateway.list_clusters()} & names:
            assert time.monotonic() < deadline, "clusters still listed after stop"
            time.sleep(0.2)
    finally:
        _close(gateway)


def test_refused_and_unreachable_gateways_are_reported_the_others_listed_and_stopped(
    federation, gateway, refusing
) -> None:
    address, proxy = gateway
    names = set(_start_clusters(address, proxy, 2))
    with pytest.warns(GatewayWarning, match=r"dinamis, odatis|odatis, dinamis") as caught:
        listed = lab.list_clusters(federation)
    assert {c.name for c in listed} == names
    assert {c.centre for c in listed} == {"theia"}
    reports = listed.gateways
    assert reports["theia"].status == "ok" and reports["theia"].clusters == 2
    assert reports["dinamis"].status == "refused"
    assert "refused the token (HTTP 403)" in reports["dinamis"].error
    assert reports["dinamis"].address == refusing.url
    assert reports["odatis"].status == "unreachable" and "cannot reach" in reports["odatis"].error
    assert set(listed.failed) == {"dinamis", "odatis"}
    assert "403" in str(caught[0].message)
    assert any(p.startswith("/api/v1/clusters") for p in refusing.paths)  # it was asked

    with pytest.warns(GatewayWarning, match="not stopped"):
        stopped = lab.stop_clusters(centres_file=federation)
    assert set(stopped) == names
    assert stopped.not_stopped == {}
    assert stopped.gateways["dinamis"].status == "refused"
    _wait_gone(address, proxy, names)
    with pytest.warns(GatewayWarning):
        assert lab.list_clusters(federation) == []


def test_stopping_named_clusters_raises_only_for_those_not_stopped(federation, gateway) -> None:
    address, proxy = gateway
    first, second = _start_clusters(address, proxy, 2)
    # a name that may be on a gateway that could not be asked: the others named are stopped,
    # then the error names it and the gateways' answers
    with pytest.raises(lab.ClusterError) as caught:
        lab.stop_clusters([first, "on-dinamis"], centres_file=federation)
    message = str(caught.value)
    assert "on-dinamis not found" in message and "dinamis (refused)" in message
    assert "HTTP 403" in message and f"stopped: {first}" in message
    _wait_gone(address, proxy, {first})
    # every named cluster stopped: no error, nothing to report
    assert lab.stop_clusters([second], centres_file=federation) == [second]
    _wait_gone(address, proxy, {second})
