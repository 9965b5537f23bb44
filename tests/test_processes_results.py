"""Where the processing service keeps users' results: its directory, or S3-compatible storage.

A real S3 server (moto) on loopback. A job writes in a scratch directory of its own; when it
succeeds its files are uploaded under ``<storage>/<user>/`` and the scratch removed; a failed
job leaves nothing in the store. Reads are by user, with byte ranges, and never leave the
user's results. The hub-level journey (``hub up --results-storage``) is in
``tests/test_processes_service.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from s3_server import KEY, SECRET, Bucket, s3_bucket, s3_server  # noqa: F401

from lab_server.processes import JobStore
from lab_server.processes._registry import JobContext
from lab_server.processes._results import ResultNotFoundError, ResultsStorage
from lab_server.processes._runner import job_work_dir, run_job

pytestmark = pytest.mark.integration


class _Writer:
    """A process writing two files (and a Zarr-like folder) into its working directory."""

    name = "writer"
    reference = None
    metadata: ClassVar[dict[str, str]] = {"id": "writer", "title": "Writer"}

    def __init__(self, fail: bool = False):
        self.fail = fail

    def run(self, data: dict[str, Any], context: JobContext) -> dict[str, Any]:
        folder = context.work_dir / "out"
        (folder / "cube.zarr" / "a").mkdir(parents=True)
        (folder / "report.txt").write_bytes(b"0123456789" * 10)
        (folder / "cube.zarr" / "a" / "0.0").write_bytes(b"chunk")
        if self.fail:
            raise RuntimeError("the recipe broke halfway")
        context.add_product("report", folder / "report.txt", "text/plain")
        return {"report": str(folder / "report.txt"), "n": 1}


def _storage(kind: str, tmp_path: Path, bucket: Bucket | None) -> ResultsStorage:
    if kind == "local":
        return ResultsStorage(str(tmp_path / "results"))
    assert bucket is not None
    return ResultsStorage(f"{bucket.url}/results", bucket.storage_options())


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> ResultsStorage:
    bucket = request.getfixturevalue("s3_bucket") if request.param == "s3" else None
    return _storage(request.param, tmp_path, bucket)


def test_a_successful_job_is_published_and_its_scratch_removed(
    storage: ResultsStorage, tmp_path: Path
) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.add_job({"user": "alice", "process_id": "writer", "inputs": {}})
    work = job_work_dir(storage, tmp_path / "scratch", "alice", job_id)
    service = "http://lab.example/services/processes/"
    status = run_job(store, job_id, _Writer(), {}, work, service, results=storage)  # type: ignore[arg-type]
    assert status == "successful", store.get_job(job_id)["message"]

    assert storage.size("alice", "out/report.txt") == 100
    assert storage.read("alice", "out/report.txt", 10, 15) == b"01234"
    assert storage.read("alice", "out/cube.zarr/a/0.0") == b"chunk"
    outputs = store.get_job_result(job_id, "alice")[1]
    item = store.get_item(job_id, "alice")
    assert item is not None
    assert item["assets"]["report"]["href"] == service + "results/out/report.txt"
    if storage.is_local:
        assert outputs["report"] == str(work / "out" / "report.txt")
    else:
        # the scratch is gone; the outputs name the file through the service
        assert not work.exists()
        assert outputs == {"report": service + "results/out/report.txt", "n": 1}

    # another user, a folder, paths leaving the user's results: not found
    for user, path in (
        ("bob", "out/report.txt"),
        ("alice", "out/cube.zarr"),
        ("alice", "../alice/out/report.txt"),
        ("alice", "/out/report.txt"),
        ("alice", "out/missing.txt"),
    ):
        with pytest.raises(ResultNotFoundError):
            storage.size(user, path)


def test_a_failed_job_leaves_nothing_in_the_object_store(
    s3_bucket: Bucket,  # noqa: F811
    tmp_path: Path,
) -> None:
    storage = _storage("s3", tmp_path, s3_bucket)
    store = JobStore(tmp_path / "jobs.sqlite")
    job_id = store.add_job({"user": "alice", "process_id": "writer", "inputs": {}})
    work = job_work_dir(storage, tmp_path / "scratch", "alice", job_id)
    assert run_job(store, job_id, _Writer(fail=True), {}, work, results=storage) == "failed"  # type: ignore[arg-type]
    assert "the recipe broke halfway" in store.get_job(job_id)["message"]
    assert s3_bucket.keys() == [] and not work.exists()
    with pytest.raises(ResultNotFoundError):
        storage.size("alice", "out/report.txt")


def test_the_store_a_process_writes_itself_goes_to_the_bucket(
    s3_bucket: Bucket,  # noqa: F811
    tmp_path: Path,
) -> None:
    storage = _storage("s3", tmp_path, s3_bucket)
    context = JobContext(
        "j1",
        "alice",
        tmp_path / "scratch",
        storage_url=storage.user_url("alice"),
        storage_options=dict(storage.storage_options),
    )
    url, options = context.store("thau.zarr")
    assert url == f"{s3_bucket.url}/results/alice/thau.zarr"
    assert options["client_kwargs"]["endpoint_url"] == s3_bucket.endpoint
    context.add_product("cube", url, "application/vnd+zarr")
    assert context.products["cube"]["path"] == "thau.zarr"
    assert SECRET not in repr(context) and KEY not in repr(context)
    local = JobContext("j2", "alice", tmp_path / "alice")
    assert local.store("thau.zarr") == (str(tmp_path / "alice" / "thau.zarr"), {})


def test_links_never_lead_out_of_a_users_results(tmp_path: Path) -> None:
    """A link in a results directory or a job's scratch is neither served nor uploaded."""
    secret = tmp_path / "service-secret"
    secret.write_text("do-not-serve")
    local = ResultsStorage(str(tmp_path / "results"))
    (tmp_path / "results" / "alice").mkdir(parents=True)
    (tmp_path / "results" / "alice" / "link.txt").symlink_to(secret)
    with pytest.raises(ResultNotFoundError):
        local.size("alice", "link.txt")
    with pytest.raises(ResultNotFoundError):
        local.read("alice", "link.txt")

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "kept.txt").write_text("result")
    (scratch / "link.txt").symlink_to(secret)
    remote = ResultsStorage("memory://results")
    assert remote.publish(scratch, "alice") == ["kept.txt"]
    assert remote.read("alice", "kept.txt") == b"result"
    with pytest.raises(ResultNotFoundError):
        remote.size("alice", "link.txt")
    for name in ("..", "alice/../bob", ""):  # a user name never leaves the results' root
        with pytest.raises(ResultNotFoundError):
            remote.user_url(name)
