"""The processing service's job queue: users served in turn, each job in its own process.

A real :class:`LocalRunner` (job processes forked from its fork server) running the built-in
``echo`` process; the job database records when each job started.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab_server.processes import JobStore
from lab_server.processes._registry import processor_for
from lab_server.processes._results import ResultsStorage
from lab_server.processes._runner import LocalRunner

pytestmark = pytest.mark.slow


def test_a_batch_of_one_user_does_not_hold_back_another(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    runner = LocalRunner(store, ResultsStorage(str(tmp_path / "results")), max_workers=1)
    echo = processor_for("echo", None)
    try:
        submitted = []
        for user, pause in [("alice", 1.0)] * 4 + [("bob", 0.0), ("carol", 0.0)]:
            inputs = {"stringInput": user, "pause": pause}
            job_id = store.add_job({"user": user, "process_id": "echo", "inputs": inputs})
            runner.submit(job_id, echo, inputs)
            submitted.append((user, job_id))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = [store.get_job(job_id) for _, job_id in submitted]
            if all(j["status"] == "successful" for j in jobs):
                break
            assert not [j for j in jobs if j["status"] in ("failed", "dismissed")], jobs
            time.sleep(0.1)
        else:
            raise AssertionError(f"jobs still waiting: {[j['status'] for j in jobs]}")
    finally:
        runner.shutdown()
    order = [
        store.get_job(job_id)["user"]
        for _, job_id in sorted(submitted, key=lambda pair: store.get_job(pair[1])["started"])
    ]
    # alice's first job took the only worker; bob and carol came next, not after her batch
    assert order == ["alice", "bob", "carol", "alice", "alice", "alice"], order
