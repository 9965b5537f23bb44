"""End to end: the local lab (hub, proxy, one gateway per centre) on the sample federation.

The lab is started once for the module with what ``earthlab hub up`` starts, on free loopback
ports, and stopped in a ``finally`` block. Alice's scenario runs in a kernel of her server:
search the federation, ``lab.cluster(near=items)``, a cube statistic on gateway workers.
The tests after it use her running cluster, and the last one stops her server: keep their order.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import requests
from hub_fixtures import Hub, Kernel, reachable_by_users, running_lab

import lab
from lab_server.deploy._layout import access_scope, gateway_env_names

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEARCH = {"collections": ["sentinel-2-l2a"], "datetime": "2022-02-01/2022-03-31"}

ALICE_CELL = f"""
import json, os
import lab, datacubes
from distributed import get_task_stream

result = lab.catalog().search(**{SEARCH!r})
items = list(result)
client = lab.cluster(near=items, workers=1)
cube = datacubes.load(items, ["red"])
with get_task_stream(client) as stream:
    value = float(cube["red"].mean().compute())
centres = client.run(lambda: os.environ.get("EARTHLAB_CENTRE"))
print(json.dumps({{
    "items": sorted(item.id for item in items),
    "centre": client.earthlab_centre,
    "cluster": client.cluster.name,
    "gateway": client.cluster.gateway.address,
    "workers": centres,
    "task_workers": sorted({{task["worker"] for task in stream.data}}),
    "value": value,
}}))
"""


@pytest.fixture(scope="module")
def deployment(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with running_lab(sample_dir / "centres.yaml", tmp_path_factory.mktemp("hub")) as d:
        yield d


@pytest.fixture(scope="module")
def hub(deployment) -> Hub:
    return Hub(deployment)


@pytest.fixture(scope="module")
def alice(hub: Hub):
    """Alice's server runs a kernel cell that computes on the nearest gateway.

    The kernel stays open (its cluster with it) until the module ends or her server stops.
    """
    hub.create_user("alice")
    server = hub.start_server("alice")
    kernel = Kernel(server, hub.token("alice", ["access:servers!user=alice"]))
    try:
        output = kernel.execute(ALICE_CELL, timeout=150)
        assert output.error is None, output.error
        (record,) = output.json_lines()
        yield {"server": server, "kernel_name": kernel.name, "kernel": kernel, **record}
    finally:
        kernel.close()


def expected_mean_red(sample_dir: Path) -> tuple[list[str], float]:
    """Mean red reflectance of the Feb-Mar 2022 scenes over valid pixels, read with rasterio."""
    ids, values = [], []
    for item_dir in sorted(
        p for p in (sample_dir / "theia" / "sentinel-2-l2a").iterdir() if p.is_dir()
    ):
        item = json.loads((item_dir / f"{item_dir.name}.json").read_text())
        if not "2022-02-01" <= item["properties"]["datetime"][:10] <= "2022-03-31":
            continue
        ids.append(item["id"])
        band = item["assets"]["red"]["raster:bands"][0]
        with rasterio.open(item_dir / "red.tif") as src:
            dn = src.read(1).astype("float64")
        values.append(dn[dn != band["nodata"]] * band["scale"] + band["offset"])
    return sorted(ids), float(np.concatenate(values).mean())


def test_kernel_computes_cube_statistic_on_nearest_gateway(alice, deployment, hub, sample_dir):
    ids, expected = expected_mean_red(sample_dir)
    assert alice["kernel_name"] == "earth-analytics"
    assert alice["items"] == ids and len(ids) == 3
    # Sentinel-2 data is at theia: the cluster is on theia's gateway, its workers were started
    # by that gateway, and the computation ran on them.
    assert alice["centre"] == "theia"
    assert alice["gateway"] == deployment.gateway_address("theia")
    assert set(alice["workers"].values()) == {"theia"}
    assert alice["task_workers"] and set(alice["task_workers"]) <= set(alice["workers"])
    assert alice["cluster"] in hub.gateway_clusters("alice", "theia")
    assert hub.gateway_clusters("alice", "odatis") == {}
    assert alice["value"] == pytest.approx(expected, rel=1e-6)


def test_token_without_gateway_scope_is_refused(alice, deployment, hub, monkeypatch):
    url = deployment.gateway_address("theia") + "/api/v1/clusters/"
    no_scope = hub.token("alice", ["read:users:name!user=alice"])
    other_centre = hub.gateway_token("alice", "odatis")
    for token in (no_scope, other_centre):
        response = requests.get(url, headers={"Authorization": f"jupyterhub {token}"}, timeout=30)
        assert response.status_code in (401, 403)
    assert requests.get(url, timeout=30).status_code == 401
    # The SDK says which scope is missing.
    address_var, proxy_var = gateway_env_names("theia")
    monkeypatch.setenv(address_var, deployment.gateway_address("theia"))
    monkeypatch.setenv(proxy_var, deployment.gateway_proxy_address("theia"))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", no_scope)
    with pytest.raises(lab.ClusterError, match=r"access:services!service=dask-gateway-theia"):
        lab.cluster(centre="theia", centres_file=deployment.centres_file)


def test_another_user_cannot_see_or_connect_to_the_cluster(alice, deployment, hub):
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    hub.create_user("bob")
    bob = hub.gateway_token("bob", "theia")
    assert alice["cluster"] not in hub.gateway_clusters("bob", "theia", token=bob)
    response = requests.get(
        deployment.gateway_address("theia") + f"/api/v1/clusters/{alice['cluster']}",
        headers={"Authorization": f"jupyterhub {bob}"},
        timeout=30,
    )
    assert response.status_code == 403
    gateway = Gateway(
        deployment.gateway_address("theia"),
        proxy_address=deployment.gateway_proxy_address("theia"),
        auth=JupyterHubAuth(api_token=bob),
    )
    try:
        with pytest.raises(Exception, match="403"):
            gateway.connect(alice["cluster"])
    finally:
        gateway.close()
    assert alice["cluster"] in hub.gateway_clusters("alice", "theia")  # untouched


def test_cluster_options_and_per_user_caps(deployment, hub, monkeypatch):
    hub.create_user("carol")
    for centre in ("theia", "odatis"):
        address_var, proxy_var = gateway_env_names(centre)
        monkeypatch.setenv(address_var, deployment.gateway_address(centre))
        monkeypatch.setenv(proxy_var, deployment.gateway_proxy_address(centre))
    monkeypatch.setenv(
        "JUPYTERHUB_API_TOKEN", hub.token("carol", [access_scope("theia"), access_scope("odatis")])
    )
    centres_file = deployment.centres_file
    with pytest.raises(lab.ClusterError, match=r"worker_cores \(integer 1\.\.4, default 1\)"):
        lab.cluster(centre="theia", worker_cores=99, centres_file=centres_file)
    with pytest.raises(lab.ClusterError, match=r"unknown option.*gpus.*worker_memory"):
        lab.cluster(centre="theia", gpus=1, centres_file=centres_file)
    assert lab.list_clusters(centres_file) == []
    first = lab.cluster(centre="theia", workers=0, centres_file=centres_file, worker_memory=1.0)
    second = lab.cluster(centre="theia", workers=0, centres_file=centres_file)
    with pytest.raises(lab.ClusterError, match=r"cap 2"):
        lab.cluster(centre="theia", workers=0, centres_file=centres_file)
    first.cluster.adapt(minimum=0, maximum=6)
    with pytest.raises(Exception, match=r"cap of 8 workers per user"):
        second.cluster.adapt(minimum=0, maximum=6)
    listed = lab.list_clusters(centres_file)
    assert {c.name for c in listed} == {first.cluster.name, second.cluster.name}
    assert {c.centre for c in listed} == {"theia"}
    assert set(lab.stop_clusters(centres_file=centres_file)) == {c.name for c in listed}
    for client in (first, second):
        client.close()
    assert hub.gateway_clusters("carol", "theia") == {}


def test_the_worker_cap_holds_against_a_scheduler_scaled_from_inside(deployment, hub, monkeypatch):
    """Issue 16: scaling a second cluster from its own scheduler got 9 workers past a cap of 8.

    The gateway's API refuses such a request; code run on the scheduler does not pass through
    it. The gateway clamps what the scheduler asks for at its heartbeat, where it creates
    workers.
    """
    hub.create_user("erin")
    address_var, proxy_var = gateway_env_names("theia")
    monkeypatch.setenv(address_var, deployment.gateway_address("theia"))
    monkeypatch.setenv(proxy_var, deployment.gateway_proxy_address("theia"))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub.token("erin", [access_scope("theia")]))
    centres_file = deployment.centres_file
    first = lab.cluster(centre="theia", workers=0, centres_file=centres_file)
    second = lab.cluster(centre="theia", workers=0, centres_file=centres_file)
    log = Path(deployment.run_dir) / "logs" / "dask-gateway-theia.log"
    name = second.cluster.name
    try:
        first.cluster.adapt(minimum=0, maximum=7)  # through the API: room for 1 is left

        async def scale_from_inside(dask_scheduler: Any) -> None:
            await dask_scheduler.services["gateway"].scale(5)

        second.run_on_scheduler(scale_from_inside)
        second.wait_for_workers(1, timeout=180)
        clamped = (
            f"Cluster {name} of erin: its scheduler asked for 5 workers; the cap of 8 workers "
            "per user leaves room for 1: 1 given"
        )
        settled = f"Cluster {name} heartbeat [count: 1, n_active: 1,"
        deadline = time.monotonic() + 120  # a hang guard: heartbeats come every few seconds
        while settled not in log.read_text(encoding="utf-8") and time.monotonic() < deadline:
            time.sleep(0.5)
        text = log.read_text(encoding="utf-8")
        assert clamped in text and settled in text
        counts = re.findall(rf"Cluster {name} heartbeat \[count: (\d+)", text)
        assert counts and max(int(c) for c in counts) <= 1  # never more than the room
        assert len(second.scheduler_info()["workers"]) == 1
    finally:
        lab.stop_clusters(centres_file=centres_file)
        for client in (first, second):
            client.close()


def test_a_worker_is_held_to_its_cores(deployment, hub, monkeypatch):
    """Issue 16: a 1-core worker used 1.6 cores; its threads, and those a task starts, ran anywhere."""
    hub.create_user("grace")
    address_var, proxy_var = gateway_env_names("theia")
    monkeypatch.setenv(address_var, deployment.gateway_address("theia"))
    monkeypatch.setenv(proxy_var, deployment.gateway_proxy_address("theia"))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub.token("grace", [access_scope("theia")]))
    client = lab.cluster(
        centre="theia", workers=1, worker_cores=1, centres_file=deployment.centres_file
    )
    try:

        def affinities() -> dict[str, Any]:
            import os
            import threading

            seen: dict[str, int] = {}
            started = threading.Thread(target=lambda: seen.update(t=len(os.sched_getaffinity(0))))
            started.start()
            started.join()
            threads = [len(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")]
            return {"threads": threads, "started": seen["t"], "machine": os.cpu_count()}

        (report,) = client.run(affinities).values()
        assert report["machine"] >= 2  # CI and this machine: 2 cores, so 1 is a real limit
        assert set(report["threads"]) == {1} and report["started"] == 1
        in_task = client.submit(affinities, pure=False).result()
        assert set(in_task["threads"]) == {1} and in_task["started"] == 1
    finally:
        client.cluster.shutdown()
        client.close()


def test_stopping_the_server_ends_its_clusters(alice, deployment, hub):
    assert alice["cluster"] in hub.gateway_clusters("alice", "theia")
    # As if the kernel had died: nothing on the client side will stop the cluster any more.
    detach = alice["kernel"].execute("client.cluster.shutdown_on_close = False")
    assert detach.error is None, detach.error
    hub.stop_server("alice")
    deadline = time.monotonic() + 30
    while hub.gateway_clusters("alice", "theia") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert hub.gateway_clusters("alice", "theia") == {}
    token = hub.gateway_token("alice", "theia")
    response = requests.get(
        deployment.gateway_address("theia") + f"/api/v1/clusters/{alice['cluster']}",
        headers={"Authorization": f"jupyterhub {token}"},
        timeout=30,
    )
    assert response.json()["status"] in ("STOPPING", "STOPPED")
    # ... and it was the hub's post-stop hook that stopped it.
    line = f"Stopped 1 cluster(s) of alice on dask-gateway-theia: {alice['cluster']}"
    log = Path(deployment.run_dir) / "logs" / "jupyterhub.log"
    deadline = time.monotonic() + 10
    while line not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert line in log.read_text()


def test_hub_command_starts_reports_and_stops_everything(sample_dir, tmp_path, monkeypatch):
    """``earthlab hub up/status/down``; this lab's policy shuts idle clusters after 4 s."""
    import os
    import subprocess
    import sys

    import psutil

    from lab_server.deploy import RunDir, status

    policy = tmp_path / "lab.yaml"
    text = (Path(__file__).parent.parent / "hub_config" / "lab.yaml").read_text()
    policy.write_text(text.replace("  idle_timeout: 1800\n", "  idle_timeout: 4\n"))
    assert policy.read_text() != text
    run_dir = reachable_by_users(tmp_path / "run")  # as root, users are isolated
    earthlab = [sys.executable, "-m", "lab._cli", "hub", "--run-dir", str(run_dir)]
    try:
        started = subprocess.run(
            [*earthlab, "up", "--port", "0", "--centres", str(sample_dir / "centres.yaml")],
            capture_output=True,
            text=True,
            timeout=150,
            env={**os.environ, "EARTHLAB_POLICY_FILE": str(policy)},
        )
        assert started.returncode == 0, started.stderr
        deployment = RunDir(run_dir).deployment()
        assert f"The lab runs at {deployment.url}" in started.stdout
        owner = RunDir(run_dir).deployment().owner
        assert f"Log in as {owner} with the password in {run_dir / 'secrets' / 'password'}" in (
            started.stdout
        )
        for secret in ("password", "admin-token", "proxy-token", "dask-gateway-theia-token"):
            assert RunDir(run_dir).secret(secret) not in started.stdout + started.stderr
            assert (run_dir / "secrets" / secret).stat().st_mode & 0o777 == 0o600
        assert requests.get(deployment.url + "hub/api/", timeout=10).json()["version"]
        report = subprocess.run([*earthlab, "status"], capture_output=True, text=True, timeout=60)
        assert report.returncode == 0, report.stdout
        assert [line.split()[:2] for line in report.stdout.splitlines()] == [
            [name, "running"]
            for name in (
                "proxy",
                "stac-theia",
                "stac-odatis",
                "stac-dinamis",
                "stac-aeris",
                "front",
                "restricted-dinamis",
                "processes",
                "gateway-theia",
                "gateway-odatis",
                "gateway-dinamis",
                "gateway-aeris",
                "hub",
            )
        ]
        pids = [proc.pid for proc, _ in status(run_dir)]
        # An idle cluster is shut down by its gateway, with nothing else stopping it.
        hub = Hub(deployment)
        hub.create_user("dave")
        address_var, proxy_var = gateway_env_names("odatis")
        monkeypatch.setenv(address_var, deployment.gateway_address("odatis"))
        monkeypatch.setenv(proxy_var, deployment.gateway_proxy_address("odatis"))
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub.gateway_token("dave", "odatis"))
        client = lab.cluster(centre="odatis", workers=1, centres_file=deployment.centres_file)
        client.cluster.shutdown_on_close = False
        assert client.submit(sum, [1, 2]).result() == 3
        name = client.cluster.name
        assert name in hub.gateway_clusters("dave", "odatis")
        deadline = time.monotonic() + 40
        while hub.gateway_clusters("dave", "odatis") and time.monotonic() < deadline:
            time.sleep(1)
        assert hub.gateway_clusters("dave", "odatis") == {}
        log = (run_dir / "logs" / "dask-gateway-odatis.log").read_text()
        assert f"Stopping cluster {name}" in log
        client.close()
    finally:
        stopped = subprocess.run([*earthlab, "down"], capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0
    assert stopped.stdout.strip() == (
        "stopped: hub, gateway-aeris, gateway-dinamis, gateway-odatis, gateway-theia, "
        "processes, restricted-dinamis, "
        "front, stac-aeris, stac-dinamis, stac-odatis, stac-theia, proxy"
    )
    assert not [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]
    after = subprocess.run([*earthlab, "status"], capture_output=True, text=True, timeout=60)
    assert after.returncode == 3 and "no lab runs" in after.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(deployment.url + "hub/api/", timeout=5)
