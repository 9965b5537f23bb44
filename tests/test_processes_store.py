"""The processing service's job store: jobs by user in SQLite, surviving a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import EarthLabError
from lab_server.processes import JobNotFoundError, JobResultNotFoundError, JobStore


def test_jobs_are_per_user_and_survive_a_reopen(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "state" / "jobs.sqlite")
    a = store.add_job({"user": "alice", "process_id": "echo", "inputs": {"x": 1}})
    b = store.add_job({"user": "bob", "process_id": "echo", "inputs": {}})

    reopened = JobStore(tmp_path / "state" / "jobs.sqlite")
    job = reopened.get_job(a, "alice")
    assert job["status"] == "accepted"
    assert job["inputs"] == {"x": 1}
    assert [j["id"] for j in reopened.get_jobs(user="alice")["jobs"]] == [a]
    assert reopened.get_jobs(user="bob")["numberMatched"] == 1
    assert reopened.get_jobs(user="carol") == {"jobs": [], "numberMatched": 0}

    # another user's job is "not found", for reading and for dismissing alike
    with pytest.raises(JobNotFoundError):
        reopened.get_job(a, "bob")
    with pytest.raises(JobNotFoundError):
        reopened.delete_job(a, "bob")
    assert reopened.get_job(a, "alice")["status"] == "accepted"
    assert reopened.get_job(b, None)["user"] == "bob"


def test_results_only_of_successful_jobs_and_dismiss(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.add_job({"user": "alice", "process_id": "echo", "inputs": {}})
    with pytest.raises(JobResultNotFoundError, match="accepted"):
        store.get_job_result(job_id, "alice")

    assert store.update_job(job_id, {"status": "running"}, only_if=("accepted",))
    assert not store.update_job(job_id, {"status": "running"}, only_if=("successful",))
    assert store.update_job(job_id, {"status": "successful", "results": {"echo": "hi"}})
    assert store.get_job_result(job_id, "alice") == ("application/json", {"echo": "hi"})
    assert store.get_jobs(user="alice", status="successful")["numberMatched"] == 1
    assert store.get_jobs(user="alice", process_id="other")["numberMatched"] == 0

    running = store.add_job({"user": "alice", "process_id": "echo", "inputs": {}})
    assert store.delete_job(running, "alice") is True  # was still waiting: the runner stops it
    dismissed = store.get_job(running, "alice")
    assert dismissed["status"] == "dismissed"
    assert dismissed["finished"] is not None
    assert store.delete_job(job_id, "alice") is False
    with pytest.raises(JobResultNotFoundError):
        store.get_job_result(job_id, "alice")

    with pytest.raises(KeyError, match="unknown job fields"):
        store.update_job(job_id, {"colour": "blue"})


def test_unfinished_jobs_fail_after_a_restart(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    left = store.add_job({"user": "alice", "process_id": "echo", "inputs": {}})
    done = store.add_job({"user": "alice", "process_id": "echo", "inputs": {}})
    store.update_job(done, {"status": "successful", "results": {}})

    assert JobStore(tmp_path / "jobs.sqlite").interrupted("the service restarted") == [left]
    assert store.get_job(left, "alice")["status"] == "failed"
    assert store.get_job(left, "alice")["message"] == "the service restarted"
    assert store.get_job(done, "alice")["status"] == "successful"


def test_errors_are_earthlab_errors() -> None:
    assert issubclass(JobNotFoundError, EarthLabError)
    assert issubclass(JobNotFoundError, LookupError)
    assert issubclass(JobResultNotFoundError, EarthLabError)
