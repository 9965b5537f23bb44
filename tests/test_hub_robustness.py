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
from hub_fixtures import Hub, Kernel

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
    run_dir = tmp_path / "run"
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
