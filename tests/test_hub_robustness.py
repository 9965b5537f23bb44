"""The local lab under real use: servers killed with SIGKILL leave nothing behind ``hub down``.

A hub killed with SIGKILL cannot stop its users' servers (each in its own session, so they
outlive it) nor their kernels; a gateway killed likewise leaves its clusters' schedulers and
workers. ``down`` finds them by the run directory they carry (environment or working
directory) and ends them.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
from hub_fixtures import Hub, Kernel, reachable_by_users

from lab_server.deploy import down, status, up

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_processes(run_dir: Path) -> dict[str, list[psutil.Process]]:
    """Processes of the run by kind (what the test looks for), from their command lines."""
    kinds: dict[str, list[psutil.Process]] = {}
    run = str(run_dir.resolve())
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            env, cwd = p.environ(), p.cwd()
        except psutil.Error:
            continue
        if env.get("EARTHLAB_HUB_RUN_DIR") != run and not cwd.startswith(run):
            continue
        line = " ".join(p.info["cmdline"] or [])
        for kind, word in (
            ("server", "jupyterhub-singleuser"),
            ("server", "-m jupyterhub.singleuser"),  # isolated users: the user environment's
            ("kernel", "ipykernel"),
            ("scheduler", "scheduler"),
            ("worker", "worker"),
            ("hub", "jupyterhub -f"),
            ("gateway", "dask-gateway-server"),
        ):
            if word in line:
                kinds.setdefault(kind, []).append(p)
                break
        else:
            kinds.setdefault("other", []).append(p)
    return kinds


def test_killed_hub_and_gateway_leave_nothing_after_down(sample_dir, tmp_path):
    run_dir = reachable_by_users(tmp_path / "run")  # as root, users are isolated
    try:
        deployment = up(sample_dir / "centres.yaml", run_dir=run_dir, port=0)
        hub = Hub(deployment)
        hub.create_user("eve")
        server = hub.start_server("eve")
        kernel = Kernel(server, hub.token("eve", ["access:servers!user=eve"]))
        started = kernel.execute(
            "import lab\n"
            "client = lab.cluster(centre='theia', workers=1)\n"
            "client.wait_for_workers(1, timeout=120)\n"
            "print(client.cluster.name)",
            timeout=180,
        )
        assert started.error is None, started.error
        before = run_processes(run_dir)
        for kind in ("server", "kernel", "scheduler", "worker", "hub", "gateway"):
            assert before.get(kind), f"no {kind} among {before}"
        procs = {name: proc for proc, name in ((p, p.name) for p, _ in status(run_dir))}
        hub_proc, gateway_proc = procs["hub"], procs["gateway-theia"]
        os.kill(hub_proc.pid, signal.SIGKILL)
        os.kill(gateway_proc.pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(hub_proc.pid)], timeout=30)
        psutil.wait_procs([psutil.Process(gateway_proc.pid)], timeout=30)
        kernel.ws.close()
        # orphans: the user's server, kernel, and the cluster's processes still run
        orphans = run_processes(run_dir)
        assert orphans.get("server") and orphans.get("scheduler") and orphans.get("worker")
        left_pids = [p.pid for procs_ in before.values() for p in procs_]
    finally:
        stopped = down(run_dir)
    assert stopped[-1].endswith("orphaned process(es)")
    assert "hub" not in stopped and "gateway-theia" not in stopped  # killed, not stopped
    assert run_processes(run_dir) == {}
    alive = [
        pid
        for pid in left_pids
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == []


def test_restricted_asset_read_fails_fast_when_its_service_is_down(
    sample_dir, tmp_path, monkeypatch
):
    """GDAL's retries and timeouts (datacubes, the kernel's env) end a read of a dead service
    in seconds: the load raises the lab's AssetReadError naming the item and asset."""
    import threading

    from hub_fixtures import running_lab

    import datacubes
    import lab
    from lab import AssetReadError
    from lab_server.deploy._layout import access_scope

    with running_lab(sample_dir / "centres.yaml", tmp_path / "run") as deployment:
        hub = Hub(deployment)
        hub.create_user("erin")
        hub.add_to_group("dinamis", ["erin"])
        token = hub.token(
            "erin", ["access:services!service=restricted-dinamis", access_scope("dinamis")]
        )
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
        items = lab.catalog(deployment.centres_file).search(collections="pleiades-ms")
        assert len(items) == 3
        service = next(p for p, _ in status(deployment.run_dir) if p.name == "restricted-dinamis")
        os.kill(service.pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(service.pid)], timeout=30)
        outcome: list[BaseException | None] = []

        def read() -> None:
            try:
                datacubes.load([items[0]], ["red"])["red"].compute()
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(20)  # hang guard: GDAL's defaults would retry for minutes
        assert not reader.is_alive(), "the read of a dead service did not end within 20 s"
        assert len(outcome) == 1 and isinstance(outcome[0], AssetReadError), outcome
        assert items[0].id in str(outcome[0]) and "red" in str(outcome[0])


def cluster_processes(name: str) -> list[psutil.Process]:
    """The live scheduler, worker and nanny processes of the gateway cluster ``name``."""
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            if p.environ().get("DASK_GATEWAY_CLUSTER_NAME") == name:
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_clusters_of_a_killed_gateway_end_by_themselves(sample_dir, tmp_path, monkeypatch):
    """A busy cluster whose gateway is SIGKILLed ends itself once its heartbeats have failed for
    the guard's limit (earthlab_scheduler_guard: the idle timeout, at least 60 s), with no
    ``hub down``: the scheduler, then its worker and nanny exit."""
    import time

    import lab
    from lab_server.deploy._layout import gateway_env_names

    hub_config = Path(__file__).resolve().parent.parent / "hub_config"
    text = (hub_config / "lab.yaml").read_text(encoding="utf-8")
    policy = tmp_path / "lab.yaml"
    policy.write_text(text.replace("  idle_timeout: 1800\n", "  idle_timeout: 20\n"))
    assert policy.read_text() != text
    monkeypatch.setenv("EARTHLAB_POLICY_FILE", str(policy))
    run_dir = reachable_by_users(tmp_path / "run")  # as root, users are isolated
    try:
        deployment = up(sample_dir / "centres.yaml", run_dir=run_dir, port=0)
        hub = Hub(deployment)
        hub.create_user("gus")
        address_var, proxy_var = gateway_env_names("theia")
        monkeypatch.setenv(address_var, deployment.gateway_address("theia"))
        monkeypatch.setenv(proxy_var, deployment.gateway_proxy_address("theia"))
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub.gateway_token("gus", "theia"))
        client = lab.cluster(centre="theia", workers=1, centres_file=deployment.centres_file)
        client.cluster.shutdown_on_close = False
        client.wait_for_workers(1, timeout=120)
        name = client.cluster.name
        # busy for an hour, past the client: only the guard's heartbeat limit may end it
        from distributed import fire_and_forget

        fire_and_forget(client.submit(time.sleep, 3600, pure=False))
        deadline = time.monotonic() + 60  # hang guard
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(client.processing().values())
        cluster = client.cluster
        client.close(timeout=30)
        cluster.close()  # the connection only (shutdown_on_close is off)
        processes = cluster_processes(name)
        commands = [" ".join(p.cmdline()) for p in processes]
        assert any("dask scheduler" in c or "dask-scheduler" in c for c in commands), commands
        assert any("earthlab_scheduler_guard.py" in c for c in commands), commands
        assert len(processes) >= 2, commands  # the scheduler and the worker (and its nanny)
        gateway = next(p for p, _ in status(run_dir) if p.name == "gateway-theia")
        os.kill(gateway.pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(gateway.pid)], timeout=30)
        # state-based: wait for the processes to exit; the hang guard is generous (limit 60 s)
        _, alive = psutil.wait_procs(processes, timeout=300)
        assert alive == [], [" ".join(p.cmdline()) for p in alive]
        assert cluster_processes(name) == []
        log = (run_dir / "gateways" / "theia" / name / "logs" / "scheduler.log").read_text()
        assert "Closing the cluster: the gateway has not answered heartbeats" in log
        assert "earthlab guard" in log
    finally:
        down(run_dir)


def test_scheduler_guard_closes_only_past_its_limit_or_when_idle_shutdown_fails():
    """The guard's decisions on a fake gateway client and clock (no hub)."""
    import asyncio
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "hub_config" / "earthlab_scheduler_guard.py"
    spec = importlib.util.spec_from_file_location("earthlab_scheduler_guard", path)
    assert spec and spec.loader
    guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guard)
    assert guard.unreachable_limit(1800) == 1800
    assert guard.unreachable_limit(20) == guard.unreachable_limit(0) == 60

    class Client:
        up = False
        token = "secret"

        async def heartbeat(self, msg):
            if not self.up:
                raise ConnectionRefusedError("gateway down")

        async def shutdown(self):
            if not self.up:
                raise ConnectionRefusedError("gateway down")

    now = [0.0]
    closed: list[str] = []
    client = Client()
    gateway = guard.GuardedGateway(client, closed.append, limit=60, clock=lambda: now[0])
    assert gateway.token == "secret"  # the wrapped client's attributes

    async def beat():
        try:
            await gateway.heartbeat({})
        except ConnectionRefusedError:
            return False
        return True

    async def scenario():
        # a gateway restarting for 50 s: failures, then a success resets the count
        for t in (0, 15, 30, 45):
            now[0] = t
            assert await beat() is False
        client.up = True
        now[0] = 50
        assert await beat() is True
        assert closed == [] and gateway.failing_since is None
        # gone for good: closed once the failures span more than 60 s, once
        client.up = False
        for t in (100, 130, 160):
            now[0] = t
            assert await beat() is False
        assert closed == []
        now[0] = 161
        assert await beat() is False
        now[0] = 176
        assert await beat() is False
        assert len(closed) == 1 and "61 s (limit 60 s)" in closed[0]

    asyncio.run(scenario())
    # idle for the idle timeout and the gateway cannot stop it: closed at once
    closed.clear()
    idle = guard.GuardedGateway(client, closed.append, limit=60, clock=lambda: 0.0)
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(idle.shutdown())
    assert len(closed) == 1 and "idle" in closed[0]
    client.up = True
    closed.clear()
    asyncio.run(guard.GuardedGateway(client, closed.append, limit=60).shutdown())
    assert closed == []
