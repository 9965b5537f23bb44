"""Where jobs run: the runner seam, and the local runner (one worker process per job).

:class:`Runner` is what the service asks of any place jobs run: ``submit`` an accepted job,
``cancel`` it, ``shutdown``. :class:`LocalRunner` runs each asynchronous job in its own
process (forked from a ``forkserver`` that has the lab's packages imported already: a job
starts in milliseconds, not the second its imports take), at most ``max_workers`` at once (the others wait, ``accepted``): a
dismissed job's process is terminated, which stops any computation (the cube builds it runs
resume from their manifest). The worker records its state, progress and results in the job
database itself, so the service's restart does not lose a finished job.

Progress: the process reports it (:class:`~lab_server.processes._registry.JobContext`) and,
when it computes with Dask's local schedulers, the fraction of Dask tasks done is reported too.

A job computes next to the data, as its owner, through
:meth:`~lab_server.processes._registry.JobContext.cluster` (a Dask Gateway cluster of the
owner at the centre holding the items, with a token the service asks the hub for): the
runner gives job processes the hub's credentials for that.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from multiprocessing import forkserver
from pathlib import Path
from typing import Any, Protocol

from lab_server.processes._database import JobDatabase
from lab_server.processes._registry import JobCancelledError, JobContext, LabProcessor
from lab_server.processes._results import ResultsStorage
from lab_server.processes._stac import result_item
from lab_server.processes._store import ACTIVE, JobStore, now

__all__ = ["PRELOAD", "LocalRunner", "Runner", "job_work_dir", "run_job"]

PRELOAD = (
    "lab_server.processes._registry",
    "lab_server.processes._store",
    "lab",
    "datacubes",
    "recipes.crossing",
    "xarray",
    "dask.array",
    "rasterio",
)
"""Modules the job processes' fork server imports before forking them."""

log = logging.getLogger("earthlab.processes")


class Runner(Protocol):
    """What runs asynchronous jobs."""

    def submit(self, job_id: str, processor: LabProcessor, inputs: dict[str, Any]) -> None:
        """Start (or queue) an accepted job; it records its own states in the store."""

    def cancel(self, job_id: str) -> bool:
        """Stop a job that runs or waits (already marked dismissed); whether one was found."""

    def shutdown(self) -> None:
        """Stop every job (the service stops)."""


def _reporter(store: JobStore, job_id: str) -> Any:
    """A ``report(fraction, message)`` writing at most every 0.2 s (and every message change)."""
    last: dict[str, Any] = {"at": 0.0, "message": None}

    def report(fraction: float | None, message: str) -> None:
        stamp = time.monotonic()
        if message == last["message"] and stamp - last["at"] < 0.2:
            return
        last.update(at=stamp, message=message)
        update: dict[str, Any] = {"message": message or "running"}
        if fraction is not None:
            update["progress"] = max(0, min(99, int(fraction * 100)))
        store.update_job(job_id, update, only_if=("running",))

    return report


def _dismissal_check(store: JobStore, job_id: str) -> Any:
    last = {"at": 0.0, "cancelled": False}

    def is_cancelled() -> bool:
        if not last["cancelled"] and time.monotonic() - last["at"] > 0.2:
            last["at"] = time.monotonic()
            last["cancelled"] = store.get_job(job_id)["status"] == "dismissed"
        return bool(last["cancelled"])

    return is_cancelled


def job_work_dir(results: ResultsStorage, scratch: Path, user: str, job_id: str) -> Path:
    """Where a job writes its files (created): the user's results, or the job's scratch."""
    path = Path(results.user_url(user)) if results.is_local else scratch / user / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def _relocated(document: Any, old: str, new: str) -> Any:
    """``document`` with the paths under ``old`` (a scratch directory) moved to ``new``."""
    if isinstance(document, str):
        return new + document[len(old) :] if document.startswith(old) else document
    if isinstance(document, dict):
        return {k: _relocated(v, old, new) for k, v in document.items()}
    if isinstance(document, list | tuple):
        return [_relocated(v, old, new) for v in document]
    return document


def run_job(
    store: JobStore,
    job_id: str,
    processor: LabProcessor,
    inputs: dict[str, Any],
    work_dir: Path,
    service_url: str = "",
    hub: tuple[str, str] | None = None,
    results: ResultsStorage | None = None,
) -> str:
    """Run an accepted job here and record its states; its final status.

    A job whose process recorded products (``context.add_product``) gets its STAC Item
    (:func:`~lab_server.processes._stac.result_item`) with its results. ``hub`` (the hub's
    API URL and the service's token) lets the job start clusters as its owner
    (``context.cluster``). With ``results`` on object storage, ``work_dir`` is the job's
    scratch directory: what it wrote there is uploaded when it succeeds (paths there in the
    outputs become the files' URLs through the service), and removed whatever the outcome.
    """
    job = store.get_job(job_id)
    remote = results is not None and not results.is_local
    try:
        return _run(store, job, processor, inputs, work_dir, service_url, hub, results)
    finally:
        if remote:
            shutil.rmtree(work_dir, ignore_errors=True)


def _run(
    store: JobStore,
    job: dict[str, Any],
    processor: LabProcessor,
    inputs: dict[str, Any],
    work_dir: Path,
    service_url: str,
    hub: tuple[str, str] | None,
    results: ResultsStorage | None,
) -> str:
    job_id = str(job["id"])
    remote = results is not None and not results.is_local
    results_url = service_url + "results/" if service_url else ""
    if not store.update_job(
        job_id, {"status": "running", "started": now(), "message": "running"}, only_if=("accepted",)
    ):
        return str(store.get_job(job_id)["status"])  # dismissed before it started
    context = JobContext(
        job_id,
        job["user"],
        work_dir,
        report=_reporter(store, job_id),
        is_cancelled=_dismissal_check(store, job_id),
        results_url=results_url,
        hub_api_url=hub[0] if hub else "",
        hub_token=hub[1] if hub else "",
        storage_url=results.user_url(job["user"]) if results and remote else "",
        storage_options=dict(results.storage_options) if results and remote else {},
    )
    started = time.monotonic()
    try:
        with _dask_progress(context), context.reading_as_owner():
            outputs = processor.run(inputs, context)
        if results is not None and remote:
            context.progress(None, "storing the results")
            results.publish(work_dir, job["user"])
            # the scratch is gone: paths there become the files' URLs through the service
            outputs = _relocated(
                outputs, str(work_dir), results_url.rstrip("/") or context.storage_url
            )
    except JobCancelledError:
        return "dismissed"
    except Exception as exc:
        log.warning("job %s (%s) failed:\n%s", job_id, processor.name, traceback.format_exc())
        message = str(exc).strip() or "no message"
        store.update_job(
            job_id,
            {"status": "failed", "message": f"{type(exc).__name__}: {message}", "finished": now()},
            only_if=ACTIVE,
        )
        return "failed"
    finished = now()
    item = None
    if context.products:
        item = result_item(
            job,
            context.products,
            context.sources,
            results_url=results_url,
            job_url=f"{service_url}jobs/{job_id}",
            finished=finished,
            title=str(processor.metadata.get("title", "")),
            computed_on=context.computed_on,
        )
    done = store.update_job(
        job_id,
        {
            "status": "successful",
            "progress": 100,
            "message": f"done in {time.monotonic() - started:.1f} s",
            "results": outputs,
            "mimetype": "application/json",
            "finished": finished,
            "item": item,
        },
        only_if=ACTIVE,
    )
    return "successful" if done else str(store.get_job(job_id)["status"])


class _dask_progress:  # noqa: N801 (a context manager used like a function)
    """Report the fraction of Dask tasks done (local schedulers) while a job runs."""

    def __init__(self, context: JobContext):
        self.context = context
        self.total = 0
        self.done = 0
        self.lock = threading.Lock()
        self.callback: Any = None

    def _start_state(self, dsk: Any, state: Any) -> None:
        with self.lock:
            self.total += len(state["ready"]) + len(state["waiting"]) + len(state["finished"])

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        with self.lock:
            self.done += 1
            fraction = self.done / self.total if self.total else None
        self.context.report(fraction, f"{self.done} of {self.total} Dask tasks done")

    def __enter__(self) -> _dask_progress:
        from dask.callbacks import Callback

        self.callback = Callback(start_state=self._start_state, posttask=self._posttask)
        self.callback.register()
        return self

    def __exit__(self, *exc: object) -> None:
        self.callback.unregister()


def _work(
    db: JobDatabase,
    job_id: str,
    process_id: str,
    reference: str | None,
    inputs: Any,
    work_dir: str,
    service_url: str,
    hub: tuple[str, str] | None,
    results: ResultsStorage,
) -> None:
    """A job's worker process."""
    from lab_server.processes._registry import processor_for

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s job %(process)d] %(message)s")
    # dismissal terminates this process: unwind, so that the job's cluster is stopped and the
    # token made for it deleted (JobContext.cluster's clean-up)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    store = JobStore(db, create=False)
    try:
        processor = processor_for(process_id, reference)
    except Exception as exc:
        store.update_job(
            job_id,
            {"status": "failed", "message": f"cannot load the process: {exc}", "finished": now()},
            only_if=ACTIVE,
        )
        return
    run_job(store, job_id, processor, inputs, Path(work_dir), service_url, hub, results)


class LocalRunner:
    """Each job in its own process, ``max_workers`` at once, users served in turn.

    Waiting jobs start fairly, users in turn: the next one is the oldest job of the user with
    the fewest jobs running and, among those, the one served longest ago; so one user's batch
    of jobs does not hold back everybody else's.

    Parameters
    ----------
    store : JobStore
        The job database.
    results : ResultsStorage
        Where users' results are kept.
    scratch_dir : pathlib.Path
        Jobs' scratch directories (``<user>/<job>``) when results are on object storage.
    max_workers : int
        Jobs running at once.
    service_url : str
        The service's URL (ending in ``/``): links of the jobs' results.
    hub : tuple, optional
        The hub's API URL and the service's token: jobs start their clusters as their owner
        with a token the service asks the hub for (:meth:`JobContext.cluster`).
    """

    def __init__(
        self,
        store: JobStore,
        results: ResultsStorage,
        max_workers: int = 2,
        service_url: str = "",
        hub: tuple[str, str] | None = None,
        scratch_dir: Path | None = None,
    ):
        self.store = store
        self.results = results
        # default: beside local results; results on object storage need a local scratch
        self.scratch_dir = scratch_dir or (
            Path(results.url) / ".scratch"
            if results.is_local
            else Path(tempfile.gettempdir()) / "earthlab-processes-scratch"
        )
        self.service_url = service_url
        self.hub = hub
        self.context = multiprocessing.get_context("forkserver")
        # every job process is forked from one server process that imported these once
        self.context.set_forkserver_preload(list(PRELOAD))
        # started now, in the background, so that the first job does not wait for the imports
        threading.Thread(target=forkserver.ensure_running, daemon=True).start()
        self.procs: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.closing = False
        self.queue = threading.Condition()
        self.waiting: list[tuple[int, str, str, LabProcessor, dict[str, Any]]] = []
        self.running: Counter[str] = Counter()
        self.served: dict[str, int] = {}  # user -> when their last job started (a count)
        self.submitted = 0
        self.started = 0
        self.workers = [
            threading.Thread(target=self._serve, name=f"job-{n}", daemon=True)
            for n in range(max(1, max_workers))
        ]
        for worker in self.workers:
            worker.start()

    def submit(self, job_id: str, processor: LabProcessor, inputs: dict[str, Any]) -> None:
        """Queue the job; it starts when a worker is free and its owner's turn comes."""
        user = str(self.store.get_job(job_id)["user"])
        with self.queue:
            self.submitted += 1
            self.waiting.append((self.submitted, job_id, user, processor, inputs))
            self.queue.notify()

    def _next(self) -> tuple[int, str, str, LabProcessor, dict[str, Any]] | None:
        """The next job to start, users in turn (None once closing)."""
        with self.queue:
            while not self.waiting and not self.closing:
                self.queue.wait()
            if self.closing:
                return None
            chosen = min(
                self.waiting,
                key=lambda w: (self.running[w[2]], self.served.get(w[2], -1), w[0]),
            )
            self.waiting.remove(chosen)
            self.running[chosen[2]] += 1
            self.started += 1
            self.served[chosen[2]] = self.started
            return chosen

    def _serve(self) -> None:
        while (chosen := self._next()) is not None:
            _, job_id, user, processor, inputs = chosen
            try:
                self._supervise(job_id, processor, inputs)
            except Exception:  # the job's record says what went wrong; the worker goes on
                log.exception("job %s could not be run", job_id)
            finally:
                with self.queue:
                    self.running[user] -= 1

    def _supervise(self, job_id: str, processor: LabProcessor, inputs: dict[str, Any]) -> None:
        job = self.store.get_job(job_id)
        if job["status"] != "accepted" or self.closing:
            return
        work_dir = job_work_dir(self.results, self.scratch_dir, job["user"], job_id)
        proc = self.context.Process(
            target=_work,
            args=(
                self.store.database,
                job_id,
                processor.metadata["id"],
                processor.reference,
                inputs,
                str(work_dir),
                self.service_url,
                self.hub,
                self.results,
            ),
            name=f"job-{job_id}",
            daemon=True,
        )
        with self.lock:
            if self.store.get_job(job_id)["status"] != "accepted":
                return
            proc.start()
            self.procs[job_id] = proc
        proc.join()
        with self.lock:
            self.procs.pop(job_id, None)
        why = (
            "the processing service stopped while the job ran: run it again"
            if self.closing
            else f"the job's worker process exited with code {proc.exitcode} before "
            "finishing (killed, or out of memory?): run the job again"
        )
        if self.store.update_job(
            job_id,
            {"status": "failed", "message": why, "finished": now()},
            only_if=ACTIVE,
        ):
            log.warning("job %s: worker exited with %s", job_id, proc.exitcode)

    def cancel(self, job_id: str) -> bool:
        """Terminate the job's process (it is marked dismissed already)."""
        with self.lock:
            proc = self.procs.get(job_id)
        if proc is None:
            return False
        proc.terminate()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(10)
        return True

    def shutdown(self) -> None:
        """Stop every running job and the workers (waiting jobs stay ``accepted``)."""
        with self.queue:
            self.closing = True
            self.queue.notify_all()
        with self.lock:
            running = list(self.procs)
        for job_id in running:
            self.cancel(job_id)
        for worker in self.workers:
            worker.join(30)
