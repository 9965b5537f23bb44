"""The processing service's job store: jobs by user, surviving a reopen.

Every test runs on both engines the service keeps jobs in: an SQLite file (the default) and a
real PostgreSQL server on loopback (``hub up --jobs-database``; ``tests/postgres_server.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab import ConfigurationError, EarthLabError
from lab_server.processes import JobNotFoundError, JobResultNotFoundError, JobStore
from lab_server.processes._database import JobDatabase
from lab_server.processes._subscriptions import Subscriptions


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> JobDatabase:
    """A new, empty job database of each engine."""
    if request.param == "sqlite":
        return JobDatabase(str(tmp_path / "state" / "jobs.sqlite"))
    url, password = request.getfixturevalue("postgres").new_database()
    return JobDatabase(url, password)


def test_jobs_are_per_user_and_survive_a_reopen(database: JobDatabase) -> None:
    store = JobStore(database)
    a = store.add_job({"user": "alice", "process_id": "echo", "inputs": {"x": 1}})
    b = store.add_job({"user": "bob", "process_id": "echo", "inputs": {}})

    reopened = JobStore(database)
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


def test_results_only_of_successful_jobs_and_dismiss(database: JobDatabase) -> None:
    store = JobStore(database)
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


def test_unfinished_jobs_fail_after_a_restart(database: JobDatabase) -> None:
    store = JobStore(database)
    left = store.add_job({"user": "alice", "process_id": "echo", "inputs": {}})
    done = store.add_job({"user": "alice", "process_id": "echo", "inputs": {}})
    store.update_job(done, {"status": "successful", "results": {}})

    assert JobStore(database).interrupted("the service restarted") == [left]
    assert store.get_job(left, "alice")["status"] == "failed"
    assert store.get_job(left, "alice")["message"] == "the service restarted"
    assert store.get_job(done, "alice")["status"] == "successful"


def test_errors_are_earthlab_errors() -> None:
    assert issubclass(JobNotFoundError, EarthLabError)
    assert issubclass(JobNotFoundError, LookupError)
    assert issubclass(JobResultNotFoundError, EarthLabError)


def test_pages_items_and_a_second_process(database: JobDatabase) -> None:
    store = JobStore(database)
    ids = [store.add_job({"user": "alice", "process_id": "echo", "inputs": {}}) for _ in range(5)]
    page = store.get_jobs(user="alice", limit=2, offset=1)
    assert page["numberMatched"] == 5 and len(page["jobs"]) == 2
    everything = store.get_jobs(user="alice")["jobs"]
    assert sorted(j["id"] for j in everything) == sorted(ids)
    assert [j["id"] for j in page["jobs"]] == [j["id"] for j in everything[1:3]]

    item = {"type": "Feature", "id": ids[0], "properties": {"processing:software": {}}}
    store.update_job(ids[0], {"status": "successful", "results": {}, "item": item})
    assert store.get_item(ids[0], "alice") == item
    assert store.get_item(ids[0], "bob") is None
    assert store.get_items("alice") == [item] and store.get_items("bob") == []

    # a job process opens what the service created, without touching the schema
    assert JobStore(database, create=False).get_job(ids[1], "alice")["status"] == "accepted"


def test_subscriptions_keep_their_schedule_to_the_second(database: JobDatabase) -> None:
    store = JobStore(database)
    started: list[tuple[str, str]] = []

    def submit(user: str, process_id: str, inputs: dict[str, Any]) -> str:
        started.append((user, process_id))
        return store.add_job({"user": user, "process_id": process_id, "inputs": inputs})

    clock = {"now": 1_764_892_800.25}  # a time stamp a 4-byte float would round by 64 s
    subs = Subscriptions(store, submit, lambda query: [], clock=lambda: clock["now"])
    sub = subs.subscribe("alice", "echo", {"stringInput": "x"}, {"every": 60})
    assert sub["next_run"] == 1_764_892_860.25
    assert subs.tick() == []
    clock["now"] += 60
    assert len(subs.tick()) == 1 and subs.get(sub["id"], "alice")["next_run"] == 1_764_892_920.25
    assert [s["id"] for s in subs.list("alice")] == [sub["id"]] and subs.list("bob") == []
    assert json.loads(json.dumps(subs.get(sub["id"])["inputs"])) == {"stringInput": "x"}
    assert started == [("alice", "echo")] * 2


def test_a_postgresql_url_with_its_password_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must not hold its password"):
        JobDatabase("postgresql://jobs:secret@127.0.0.1:5432/jobs")
    with pytest.raises(ConfigurationError, match="needs a host and a database"):
        JobDatabase("postgresql://jobs@127.0.0.1:5432")
    assert "secret" not in repr(JobDatabase("postgresql://jobs@h/jobs", "secret"))


def test_a_wrong_password_says_what_to_check(postgres: Any) -> None:
    url, _ = postgres.new_database()
    with pytest.raises(ConfigurationError, match="cannot reach the job database") as raised:
        JobStore(JobDatabase(url, "wrong"))
    assert "password" in str(raised.value) and "wrong" not in str(raised.value).split("(")[0]
