"""Regular production (issue 17, item 5): subscriptions on a schedule or on new items.

The subscriptions of the processing service (``lab_server.processes._subscriptions``) with the
real processes, the real federated search over a static catalogue, and the real incremental
cube build: a scene catalogued after the subscription extends the cube, and only it is
written. Jobs run in this process (``run_job``, the code a job's process runs); the service's
API and CLI over them are tested on a real hub in ``tests/test_processes_service.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_build import SPEC, sample_items, write_federation

import datacubes
from lab_server.processes import JobStore
from lab_server.processes._registry import processor_for
from lab_server.processes._runner import run_job
from lab_server.processes._subscriptions import (
    SubscriptionError,
    Subscriptions,
    federated_search,
)

pytestmark = pytest.mark.slow

REFERENCES = {"cube-build": "datacubes._process:CUBE_BUILD", "echo": None}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def inline_jobs(store: JobStore, results: Path) -> Any:
    """``submit`` running each job to its end here, as a job's worker process does."""

    def submit(user: str, process_id: str, inputs: dict[str, Any]) -> str:
        job_id = store.add_job({"user": user, "process_id": process_id, "inputs": inputs})
        processor = processor_for(process_id, REFERENCES[process_id])
        run_job(store, job_id, processor, inputs, results / user, "http://lab/")
        return job_id

    return submit


def test_new_items_extend_the_cube_and_only_they_are_written(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = sample_items(sample_dir)
    centres = write_federation(tmp_path, items[:14])
    monkeypatch.setenv("EARTHLAB_CENTRES", str(centres))
    store = JobStore(tmp_path / "jobs.sqlite")
    subs = Subscriptions(store, inline_jobs(store, tmp_path / "results"), federated_search)
    spec = {k: v for k, v in SPEC.items() if k != "target"}
    inputs = {"spec": spec, "target": "thau.zarr"}
    new_scenes = {"new_items": {"collections": ["sentinel-2-l2a"], "bbox": [3.5, 43.3, 3.8, 43.5]}}

    sub = subs.subscribe("alice", "cube-build", inputs, new_scenes)
    assert sub["status"] == "active" and len(sub["seen"]) == 14 and len(sub["jobs"]) == 1
    first = store.get_job(sub["jobs"][0], "alice")
    assert first["status"] == "successful", first["message"]
    cube_path = tmp_path / "results" / "alice" / "thau.zarr"
    assert datacubes.open_cube(str(cube_path)).sizes["time"] == 14

    assert subs.tick() == []  # nothing new: no run

    write_federation(tmp_path, items)  # two more scenes of the tile are catalogued
    started = subs.tick()
    assert len(started) == 1
    run = store.get_job(started[0], "alice")
    assert run["status"] == "successful", run["message"]
    cube = store.get_job_result(started[0], "alice")[1]["cube"]
    assert (cube["steps"], cube["steps_added"]) == (16, 2)
    assert 0 < cube["regions_written"] < cube["regions_total"]  # the new steps only
    assert cube["regions_skipped"] == cube["regions_total"] - cube["regions_written"]
    opened = datacubes.open_cube(str(cube_path))
    assert opened.sizes["time"] == 16
    assert str(opened["time"].values[-1])[:10] == str(items[-1].datetime)[:10]
    sub = subs.get(sub["id"], "alice")
    assert sub["jobs"] == [first["id"], started[0]] and len(sub["seen"]) == 16
    assert "2 new item(s)" in sub["message"]
    assert subs.tick() == []

    # nobody else reads or cancels it
    for attempt in (subs.get, subs.cancel):
        with pytest.raises(SubscriptionError, match="you have no subscription"):
            attempt(sub["id"], "bob")
    assert subs.list("bob") == []
    cancelled = subs.cancel(sub["id"], "alice")
    assert cancelled["status"] == "cancelled"
    renamed = items[-1].clone()
    renamed.id = "S2B_31TEJ_20220531_0_L2A"
    write_federation(tmp_path, [*items, renamed])
    assert subs.tick() == []  # a new item, but the subscription is cancelled


def test_a_schedule_runs_on_its_cadence_without_piling_up(tmp_path: Path) -> None:
    clock = Clock()
    store = JobStore(tmp_path / "jobs.sqlite")
    subs = Subscriptions(
        store, inline_jobs(store, tmp_path / "results"), federated_search, clock=clock
    )
    sub = subs.subscribe("alice", "echo", {"stringInput": "tick"}, {"every": 3600})
    assert len(sub["jobs"]) == 1  # runs once when made
    clock.now += 1800
    assert subs.tick() == []
    clock.now += 1801
    [job_id] = subs.tick()
    assert store.get_job_result(job_id, "alice")[1] == {"stringOutput": "tick"}
    assert subs.tick() == []
    clock.now += 5 * 3600  # the service was down for hours: one run, not five
    assert len(subs.tick()) == 1
    assert subs.tick() == []
    # the next run is the first of its cadence after now
    assert subs.get(sub["id"])["next_run"] == sub["next_run"] + 6 * 3600 > clock.now
    assert [s["id"] for s in subs.list("alice")] == [sub["id"]]


def test_bad_triggers_and_failing_searches_say_what_to_do(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    answers: list[Any] = [RuntimeError("theia: missing (timed out)")]

    def search(query: Any) -> list[str]:
        answer = answers[0]
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    subs = Subscriptions(store, inline_jobs(store, tmp_path / "results"), search, min_interval=60)
    subscribe = subs.subscribe
    for trigger, message in [
        ({"every": 5}, "at least 60 s"),
        ({"every": "1h"}, "a number of seconds"),
        ({"hourly": True}, "unknown trigger"),
        ({"every": 60, "new_items": {}}, "one trigger"),
        ({"new_items": {"bbox": [0, 0, 1, 1]}}, "at least its collections"),
        ({"new_items": {"collections": ["a"], "limit": 3}}, "not \\['limit'\\]"),
        ({"new_items": {"collections": ["a"], "bbox": [0, 0, 1]}}, "'new_items': .*bbox"),
        (None, "needs one trigger"),
    ]:
        with pytest.raises(SubscriptionError, match=message):
            subscribe("alice", "echo", {}, trigger)
    new_items = {"new_items": {"collections": ["sentinel-2-l2a"]}}
    with pytest.raises(SubscriptionError, match="nothing was subscribed: theia: missing"):
        subscribe("alice", "echo", {}, new_items)
    assert subs.list("alice") == [] and store.get_jobs(user="alice")["numberMatched"] == 0

    answers[0] = ["a"]
    sub = subscribe("alice", "echo", {"stringInput": "new"}, new_items)
    answers[0] = RuntimeError("odatis: missing (HTTP 503)")
    assert subs.tick() == []  # an incomplete answer runs nothing...
    assert "last check failed (tried again): odatis: missing" in subs.get(sub["id"])["message"]
    answers[0] = ["a", "b"]
    assert len(subs.tick()) == 1  # ...and the next check finds the new item

    # each subscription runs jobs of its own: a user has a bounded number of active ones
    subs.max_per_user = 2
    second = subscribe("alice", "echo", {}, {"every": 3600})
    with pytest.raises(SubscriptionError, match=r"2 active subscriptions.*cancel one first"):
        subscribe("alice", "echo", {}, {"every": 3600})
    subs.cancel(second["id"], "alice")
    subscribe("alice", "echo", {}, {"every": 3600})  # room again
    subscribe("bob", "echo", {}, {"every": 3600})  # another user's count is his own
