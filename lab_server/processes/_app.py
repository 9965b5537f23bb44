"""The HTTP side of the processing service: OGC API – Processes Part 1 on Tornado.

Routes (under the service's prefix, ``/services/processes/`` behind the hub):

- ``GET /`` landing page, ``GET conformance``, ``GET openapi`` (public: clients read them
  before authenticating; they hold no user data), ``GET health``;
- ``GET processes``, ``GET processes/{id}``, ``POST processes/{id}/execution`` (synchronous,
  or ``Prefer: respond-async`` → 201 with ``Location`` and ``Preference-Applied``);
- ``GET jobs``, ``GET jobs/{id}``, ``DELETE jobs/{id}`` (dismiss: stops a running job),
  ``GET jobs/{id}/results``.

Every route but the public ones needs a hub token (``Authorization: token ...`` or
``Bearer ...``) whose user is the caller; a job is its creator's only: another user's job is
answered 404, exactly like a job that does not exist. Errors are OGC exception documents
(``type``, ``title``, ``status``, ``detail``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import mimetypes
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import tornado.web

from lab import EarthLabError
from lab_server.processes._database import JobDatabase
from lab_server.processes._openapi import openapi_document
from lab_server.processes._registry import LabProcessor, load_processors
from lab_server.processes._results import ResultNotFoundError, ResultsStorage
from lab_server.processes._runner import LocalRunner, Runner, job_work_dir, run_job
from lab_server.processes._stac import COLLECTION, ITEM_REL, stac_routes
from lab_server.processes._store import (
    ACTIVE,
    JobNotFoundError,
    JobResultNotFoundError,
    JobStore,
)
from lab_server.processes._subscriptions import (
    SubscriptionError,
    Subscriptions,
    federated_search,
)

__all__ = ["CONFORMANCE", "ProcessesService", "ServiceConfig", "make_app"]

log = logging.getLogger("earthlab.processes")

_SPEC = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
CONFORMANCE = tuple(
    _SPEC + name
    for name in ("core", "ogc-process-description", "json", "job-list", "dismiss", "oas30")
)
"""The requirement classes of OGC API – Processes Part 1 the service declares."""
_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
JSON = "application/json"


@dataclass(frozen=True)
class ServiceConfig:
    """What the processing service needs (built by ``python -m lab_server.processes``)."""

    public_url: str
    """The service's URL as clients see it, ending in ``/`` (links are built on it)."""
    prefix: str
    """URL path prefix of the routes (``/services/processes/``)."""
    hub_api_url: str
    """JupyterHub's REST API (identifies callers' tokens)."""
    api_token: str = field(repr=False)
    """The service's own hub token."""
    data_dir: Path
    """Where the job database (``jobs.sqlite``) and users' results (``results/<user>``) are."""
    service: str = "processes"
    """JupyterHub service name."""
    max_workers: int = 2
    """Asynchronous jobs running at once (the others wait, accepted)."""
    extra_processes: Mapping[str, str] = field(default_factory=dict)
    """Further processes, ``{id: "module:attribute"}`` (besides the entry points)."""
    subscription_poll: float = 30.0
    """Seconds between two checks of the subscriptions (schedules due, new items)."""
    min_interval: float = 60.0
    """The shortest schedule a subscription may ask for, in seconds."""
    database: JobDatabase | None = None
    """Where jobs and subscriptions are kept: a PostgreSQL database when the lab has one
    (``hub up --jobs-database``); by default the SQLite file ``data_dir/jobs.sqlite``."""
    results: ResultsStorage | None = None
    """Where users' results are kept: the lab's object storage (``hub up --results-storage``);
    by default the directory ``data_dir/results``."""

    @property
    def access_scope(self) -> str:
        """The hub scope a token needs to use the service."""
        return f"access:services!service={self.service}"

    @property
    def job_database(self) -> JobDatabase:
        """The job database (:attr:`database`, or the SQLite file in ``data_dir``)."""
        return self.database or JobDatabase(str(self.data_dir / "jobs.sqlite"))

    @property
    def results_storage(self) -> ResultsStorage:
        """Where users' results are kept (:attr:`results`, or ``data_dir/results``)."""
        return self.results or ResultsStorage(str(self.data_dir / "results"))

    @property
    def scratch_dir(self) -> Path:
        """Jobs' scratch directories, when results are kept on object storage."""
        return self.data_dir / "scratch"


class OgcError(EarthLabError, tornado.web.HTTPError):
    """An error answered as an OGC exception document (and an :class:`~lab.EarthLabError`)."""

    def __init__(self, status: int, kind: str, detail: str):
        super().__init__(status, reason=None)
        self.kind = kind
        self.detail = detail


class ProcessesService:
    """The service's state: processes, job store, runner, and who is calling."""

    def __init__(self, config: ServiceConfig, runner: Runner | None = None):
        from jupyterhub.services.auth import HubAuth

        self.config = config
        self.processors: dict[str, LabProcessor] = load_processors(config.extra_processes)
        self.store = JobStore(config.job_database)
        interrupted = self.store.interrupted(
            "the processing service restarted while the job ran: run it again (cube builds "
            "resume where they stopped)"
        )
        if interrupted:
            log.warning("%d jobs interrupted by a restart marked failed", len(interrupted))
        self.results = config.results_storage
        self.runner: Runner = runner or LocalRunner(
            self.store,
            self.results,
            config.max_workers,
            config.public_url,
            hub=(config.hub_api_url, config.api_token),
            scratch_dir=config.scratch_dir,
        )
        self.sync_pool = ThreadPoolExecutor(4, thread_name_prefix="sync-job")
        self.subscriptions = Subscriptions(
            self.store, self.submit, federated_search, min_interval=config.min_interval
        )
        self._clock: Any = None
        self.hub_auth = HubAuth(
            api_url=config.hub_api_url, api_token=config.api_token, cache_max_age=10
        )

    def start_clock(self) -> None:
        """Check the subscriptions every ``subscription_poll`` seconds (off the event loop)."""
        import tornado.ioloop

        pool = ThreadPoolExecutor(1, thread_name_prefix="subscriptions")
        busy: dict[str, Any] = {"future": None}

        def tick() -> None:
            if busy["future"] is None or busy["future"].done():  # never two checks at once
                busy["future"] = pool.submit(self.subscriptions.tick)

        self._clock = tornado.ioloop.PeriodicCallback(tick, self.config.subscription_poll * 1000)
        self._clock.start()

    def submit(self, user: str, process_id: str, inputs: dict[str, Any]) -> str:
        """Start an asynchronous job of ``user`` (a subscription's run); its id."""
        processor = self.processor(process_id)
        job_id = self.store.add_job({"user": user, "process_id": process_id, "inputs": inputs})
        self.runner.submit(job_id, processor, inputs)
        return job_id

    def close(self) -> None:
        """Stop running jobs and threads."""
        if self._clock is not None:
            self._clock.stop()
        self.runner.shutdown()
        self.sync_pool.shutdown(wait=False, cancel_futures=True)

    async def caller(self, handler: tornado.web.RequestHandler) -> str:
        """The hub user whose token the request carries."""
        header = handler.request.headers.get("Authorization", "")
        match = self.hub_auth.auth_header_pat.match(header)
        if not match:
            raise OgcError(
                401,
                "unauthorized",
                "send your hub token (Authorization: token <token>; in the lab, "
                "$JUPYTERHUB_API_TOKEN)",
            )
        model = await self.hub_auth.user_for_token(match.group(1), sync=False)
        if not model or model.get("kind", "user") != "user":
            raise OgcError(401, "unauthorized", "the hub does not know this token (expired?)")
        scopes = set(model.get("scopes") or ())
        if not scopes & {"access:services", self.config.access_scope}:
            raise OgcError(
                403,
                "forbidden",
                f"your token lacks the scope {self.config.access_scope}: ask the hub for a "
                "token with it (or use your server's $JUPYTERHUB_API_TOKEN)",
            )
        return str(model["name"])

    # documents ---------------------------------------------------------------------------

    def link(self, path: str, rel: str, title: str = "", kind: str = JSON) -> dict[str, str]:
        """A link to one of the service's paths."""
        link = {"href": self.config.public_url + path, "rel": rel, "type": kind}
        if title:
            link["title"] = title
        return link

    def summary(self, processor: LabProcessor) -> dict[str, Any]:
        """The process summary (``/processes``)."""
        meta = processor.metadata
        keys = ("id", "title", "description", "version", "keywords", "jobControlOptions")
        summary = {k: meta[k] for k in keys if k in meta}
        summary["outputTransmission"] = meta.get("outputTransmission", ["value"])
        summary["links"] = [
            self.link(f"processes/{meta['id']}", "self", "process description"),
            self.link(f"processes/{meta['id']}/execution", _REL + "execute", "execute"),
        ]
        return summary

    def description(self, processor: LabProcessor) -> dict[str, Any]:
        """The OGC process description (``/processes/{id}``)."""
        meta = processor.metadata
        return {
            **self.summary(processor),
            "inputs": meta.get("inputs", {}),
            "outputs": meta.get("outputs", {}),
            **({"example": meta["example"]} if "example" in meta else {}),
        }

    def status_info(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """A job's status document (``statusInfo``)."""
        info: dict[str, Any] = {
            "type": "process",
            "processID": job["process_id"],
            "jobID": job["id"],
            "status": job["status"],
            "message": job["message"],
        }
        for key in ("created", "started", "finished", "updated", "progress"):
            if job.get(key) is not None:
                info[key] = job[key]
        links = [
            self.link(f"jobs/{job['id']}", "self", "job status"),
            self.link(f"processes/{job['process_id']}", "up", "the process"),
        ]
        if job["status"] == "successful":
            links.append(self.link(f"jobs/{job['id']}/results", _REL + "results", "results"))
            if job.get("item"):  # the STAC Item of what it wrote
                links.append(
                    self.link(
                        f"stac/collections/{COLLECTION}/items/{job['id']}",
                        ITEM_REL,
                        "STAC Item of the results",
                        "application/geo+json",
                    )
                )
        info["links"] = links
        return info

    def subscription_info(self, sub: Mapping[str, Any]) -> dict[str, Any]:
        """A subscription's document: request, trigger, state, its jobs (links)."""
        return {
            "id": sub["id"],
            "process": sub["process_id"],
            "inputs": sub["inputs"],
            "trigger": sub["trigger"],
            "status": sub["status"],
            "message": sub["message"],
            "created": sub["created"],
            "jobs": list(sub["jobs"]),
            "links": [
                self.link(f"subscriptions/{sub['id']}", "self", "the subscription"),
                self.link(f"processes/{sub['process_id']}", "up", "the process"),
                *(self.link(f"jobs/{j}", "related", "a run") for j in sub["jobs"]),
            ],
        }

    # execution ---------------------------------------------------------------------------

    def processor(self, process_id: str) -> LabProcessor:
        """The process of that id, or a 404."""
        try:
            return self.processors[process_id]
        except KeyError:
            known = ", ".join(sorted(self.processors))
            raise OgcError(
                404, "no-such-process", f"no process {process_id!r}; the processes are: {known}"
            ) from None

    @staticmethod
    def check_inputs(processor: LabProcessor, request: Any) -> dict[str, Any]:
        """The execute request's inputs, checked against the process description."""
        if not isinstance(request, dict):
            raise OgcError(400, "invalid-request", "the body must be a JSON execute request")
        inputs = request.get("inputs", {})
        if not isinstance(inputs, dict):
            raise OgcError(400, "invalid-request", "'inputs' must be an object {id: value}")
        described = processor.metadata.get("inputs", {})
        unknown = sorted(set(inputs) - set(described))
        if unknown:
            raise OgcError(
                400,
                "InvalidParameterValue",
                f"unknown inputs {unknown}; {processor.name} takes {sorted(described)}",
            )
        for name, spec in described.items():
            if name not in inputs:
                if spec.get("minOccurs", 1) >= 1:
                    raise OgcError(400, "MissingParameterValue", f"the input {name!r} is required")
                continue
            values = inputs[name]
            most = spec.get("maxOccurs", 1)
            if most == "unbounded" or (isinstance(most, int) and most > 1):
                values = values if isinstance(values, list) else [values]
            else:
                values = [values]
            for value in values:
                errors = sorted(
                    jsonschema.Draft202012Validator(spec.get("schema", {})).iter_errors(value),
                    key=lambda e: list(e.path),
                )
                if errors:
                    where = "/".join(str(p) for p in errors[0].absolute_path)
                    raise OgcError(
                        400,
                        "InvalidParameterValue",
                        f"input {name!r}{' at ' + where if where else ''}: {errors[0].message}",
                    )
        return inputs

    async def execute(
        self, processor: LabProcessor, inputs: dict[str, Any], user: str, asynchronous: bool
    ) -> dict[str, Any]:
        """Record a job and run it (queued, or here while the request waits); the job."""
        job_id = self.store.add_job(
            {"user": user, "process_id": processor.metadata["id"], "inputs": inputs}
        )
        if asynchronous:
            self.runner.submit(job_id, processor, inputs)
        else:
            work_dir = job_work_dir(self.results, self.config.scratch_dir, user, job_id)
            await asyncio.get_running_loop().run_in_executor(
                self.sync_pool,
                functools.partial(
                    run_job,
                    self.store,
                    job_id,
                    processor,
                    inputs,
                    work_dir,
                    self.config.public_url,
                    results=self.results,
                ),
            )
        return self.store.get_job(job_id)

    def dismiss(self, job_id: str, user: str) -> dict[str, Any]:
        """Dismiss the user's job, stopping it if it runs."""
        if self.store.delete_job(job_id, user):
            self.runner.cancel(job_id)
        return self.store.get_job(job_id, user)


class _Handler(tornado.web.RequestHandler):
    public = False

    def initialize(self, service: ProcessesService) -> None:
        self.service = service
        self.user = ""

    async def prepare(self) -> None:
        if not self.public:
            self.user = await self.service.caller(self)

    def reply(self, document: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", JSON)
        self.finish(json.dumps(document))

    def job(self, job_id: str) -> dict[str, Any]:
        try:
            return self.service.store.get_job(job_id, self.user)
        except JobNotFoundError:
            raise OgcError(404, "no-such-job", f"you have no job {job_id}") from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, OgcError):
            kind, detail = exc.kind, exc.detail
        else:
            kind, detail = "server-error", self._reason
        self.set_header("Content-Type", "application/problem+json")
        self.finish(
            json.dumps(
                {"type": _EXC + kind, "title": kind, "status": status_code, "detail": detail}
            )
        )


class LandingHandler(_Handler):
    """``GET /``: the landing page."""

    public = True

    def get(self) -> None:
        """Links to the API's description, conformance, processes and jobs."""
        s = self.service
        self.reply(
            {
                "title": "Earth Analytics Lab processing",
                "description": "The lab's recipes as OGC API – Processes, run for hub users.",
                "links": [
                    s.link("", "self", "this document"),
                    s.link(
                        "openapi",
                        "service-desc",
                        "the API definition",
                        "application/vnd.oai.openapi+json;version=3.0",
                    ),
                    s.link("conformance", _REL + "conformance", "conformance classes"),
                    s.link("processes", _REL + "processes", "processes"),
                    s.link("jobs", _REL + "job-list", "your jobs"),
                ],
            }
        )


class ConformanceHandler(_Handler):
    """``GET conformance``."""

    public = True

    def get(self) -> None:
        """The requirement classes declared."""
        self.reply({"conformsTo": list(CONFORMANCE)})


class OpenApiHandler(_Handler):
    """``GET openapi``: the OpenAPI 3.0 definition."""

    public = True

    def get(self) -> None:
        """The definition, with the service's URL."""
        self.set_header("Content-Type", "application/vnd.oai.openapi+json;version=3.0")
        self.finish(json.dumps(openapi_document(self.service.config.public_url)))


class HealthHandler(_Handler):
    """``GET health`` (no authentication)."""

    public = True

    def get(self) -> None:
        """Say it runs."""
        self.reply({"status": "ok"})


class ProcessListHandler(_Handler):
    """``GET processes``."""

    def get(self) -> None:
        """Every process's summary."""
        s = self.service
        self.reply(
            {
                "processes": [s.summary(p) for _, p in sorted(s.processors.items())],
                "links": [s.link("processes", "self", "processes")],
            }
        )


class ProcessHandler(_Handler):
    """``GET processes/{id}``."""

    def get(self, process_id: str) -> None:
        """The process description."""
        self.reply(self.service.description(self.service.processor(process_id)))


class ExecutionHandler(_Handler):
    """``POST processes/{id}/execution``."""

    async def post(self, process_id: str) -> None:
        """Run synchronously, or asynchronously on ``Prefer: respond-async``."""
        s = self.service
        processor = s.processor(process_id)
        try:
            request = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise OgcError(400, "invalid-request", f"the body is not JSON: {exc}") from None
        inputs = s.check_inputs(processor, request)
        prefer = {
            token.strip().lower()
            for part in self.request.headers.get_list("Prefer")
            for token in part.split(",")
        }
        controls = processor.metadata.get("jobControlOptions", ["sync-execute"])
        asynchronous = "respond-async" in prefer and "async-execute" in controls
        if "sync-execute" not in controls:
            asynchronous = True
        job = await s.execute(processor, inputs, self.user, asynchronous)
        location = s.config.public_url + f"jobs/{job['id']}"
        self.set_header("Location", location)
        if asynchronous:
            if "respond-async" in prefer:
                self.set_header("Preference-Applied", "respond-async")
            self.reply(s.status_info(job), 201)
            return
        if "respond-async" in prefer:
            self.set_header("Preference-Applied", "wait")
        if job["status"] != "successful":
            raise OgcError(500, "job-failed", f"the job {job['id']} failed: {job['message']}")
        self.reply(s.store.get_job_result(job["id"], self.user)[1])


class JobListHandler(_Handler):
    """``GET jobs``: the caller's jobs."""

    def get(self) -> None:
        """Newest first; ``limit``, ``offset``, ``status``, ``processID`` filter them."""
        s = self.service
        try:
            limit = int(self.get_query_argument("limit", "100"))
            offset = int(self.get_query_argument("offset", "0"))
        except ValueError:
            raise OgcError(400, "invalid-request", "limit and offset are integers") from None
        if not 1 <= limit <= 10000 or offset < 0:
            raise OgcError(400, "invalid-request", "limit is 1 to 10000, offset >= 0")
        found = s.store.get_jobs(
            self.get_query_argument("status", None),
            limit,
            offset,
            user=self.user,
            process_id=self.get_query_argument("processID", None),
        )
        links = [s.link("jobs", "self", "your jobs")]
        if offset + limit < found["numberMatched"]:
            links.append(s.link(f"jobs?limit={limit}&offset={offset + limit}", "next", "more"))
        self.reply(
            {
                "jobs": [s.status_info(j) for j in found["jobs"]],
                "numberMatched": found["numberMatched"],
                "links": links,
            }
        )


class JobHandler(_Handler):
    """``GET jobs/{id}`` (status) and ``DELETE jobs/{id}`` (dismiss)."""

    def get(self, job_id: str) -> None:
        """The job's status."""
        self.reply(self.service.status_info(self.job(job_id)))

    def delete(self, job_id: str) -> None:
        """Dismiss the job: stop it if it runs, drop its results."""
        self.job(job_id)
        self.reply(self.service.status_info(self.service.dismiss(job_id, self.user)))


class ResultsHandler(_Handler):
    """``GET jobs/{id}/results``."""

    def get(self, job_id: str) -> None:
        """The results document of a successful job."""
        job = self.job(job_id)
        if job["status"] in ACTIVE:
            raise OgcError(
                404, "result-not-ready", f"job {job_id} is {job['status']}: ask again later"
            )
        if job["status"] == "failed":
            raise OgcError(500, "job-results-failed", f"job {job_id} failed: {job['message']}")
        try:
            _, results = self.service.store.get_job_result(job_id, self.user)
        except JobResultNotFoundError:
            raise OgcError(
                404, "no-such-job", f"job {job_id} was dismissed: its results are gone"
            ) from None
        self.reply(results)


class SubscriptionListHandler(_Handler):
    """``GET subscriptions`` (the caller's) and ``POST subscriptions`` (subscribe)."""

    def get(self) -> None:
        """The caller's subscriptions, newest first."""
        s = self.service
        self.reply(
            {
                "subscriptions": [
                    s.subscription_info(sub) for sub in s.subscriptions.list(self.user)
                ],
                "links": [s.link("subscriptions", "self", "your subscriptions")],
            }
        )

    async def post(self) -> None:
        """Subscribe: ``{"process", "inputs", "trigger"}``; runs once now; 201 + Location."""
        s = self.service
        try:
            request = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise OgcError(400, "invalid-request", f"the body is not JSON: {exc}") from None
        if not isinstance(request, dict) or not isinstance(request.get("process"), str):
            raise OgcError(
                400,
                "invalid-request",
                'a subscription is {"process": id, "inputs": {...}, "trigger": {...}}',
            )
        processor = s.processor(request["process"])
        if "async-execute" not in processor.metadata.get("jobControlOptions", ()):
            raise OgcError(
                400, "invalid-request", f"{processor.name} cannot run as a job: no subscription"
            )
        inputs = s.check_inputs(processor, {"inputs": request.get("inputs", {})})
        try:
            sub = await asyncio.get_running_loop().run_in_executor(
                s.sync_pool,
                s.subscriptions.subscribe,
                self.user,
                processor.metadata["id"],
                inputs,
                request.get("trigger"),
            )
        except SubscriptionError as exc:
            raise OgcError(400, "invalid-subscription", str(exc)) from None
        self.set_header("Location", s.config.public_url + f"subscriptions/{sub['id']}")
        self.reply(s.subscription_info(sub), 201)


class SubscriptionHandler(_Handler):
    """``GET subscriptions/{id}`` and ``DELETE subscriptions/{id}`` (cancel)."""

    def _get(self, sub_id: str, cancel: bool = False) -> dict[str, Any]:
        subs = self.service.subscriptions
        try:
            return subs.cancel(sub_id, self.user) if cancel else subs.get(sub_id, self.user)
        except SubscriptionError as exc:
            raise OgcError(404, "no-such-subscription", str(exc)) from None

    def get(self, sub_id: str) -> None:
        """The subscription, with its jobs."""
        self.reply(self.service.subscription_info(self._get(sub_id)))

    def delete(self, sub_id: str) -> None:
        """Cancel it: no further runs (jobs already started go on)."""
        self.reply(self.service.subscription_info(self._get(sub_id, cancel=True)))


class ResultFilesHandler(_Handler):
    """``GET results/{path}``: a file the caller's jobs wrote, to the caller only.

    The caller's results (``<storage>/<user>/``, the user from their hub token) are the root:
    another user's files are out of reach by construction, paths leaving the root are refused,
    folders are not listed. Byte ranges (one per request) and ``HEAD`` work, so a COG is read
    by GDAL and a Zarr store written by a job opens over HTTP (``xarray.open_zarr`` with the
    token in the ``storage_options`` headers), wherever the results are kept: the service
    reads the object store with its own credentials, which never reach users.
    """

    CHUNK = 4 * 2**20

    async def head(self, path: str) -> None:
        """Size and type of the file, without its bytes."""
        await self._send(path, body=False)

    async def get(self, path: str) -> None:
        """The file, or the byte range asked for."""
        await self._send(path, body=True)

    async def _send(self, path: str, body: bool) -> None:
        user = self.user  # the caller, from their hub token (prepare)
        results = self.service.results
        loop = asyncio.get_running_loop()
        try:
            size = await loop.run_in_executor(None, results.size, user, path)
        except ResultNotFoundError as exc:
            raise OgcError(404, "no-such-result", str(exc)) from None
        start, end = 0, size
        asked = self.request.headers.get("Range")
        if asked:
            found = _RANGE.match(asked.strip())
            if found is None:
                raise OgcError(416, "bad-range", f"cannot serve the range {asked!r}")
            first, last = found.groups()
            if not first and not last:
                raise OgcError(416, "bad-range", f"cannot serve the range {asked!r}")
            if first:
                start, end = int(first), min(size, int(last) + 1 if last else size)
            elif last:
                start, end = max(0, size - int(last)), size
            if start >= size or start >= end:
                self.set_header("Content-Range", f"bytes */{size}")
                raise OgcError(416, "bad-range", f"{asked!r} is outside the file ({size} bytes)")
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        self.set_header("Content-Type", kind)
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Content-Length", str(end - start))
        if not body:
            return
        position = start
        while position < end:
            stop = min(end, position + self.CHUNK)
            self.write(await loop.run_in_executor(None, results.read, user, path, position, stop))
            await self.flush()
            position = stop


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def make_app(
    config: ServiceConfig, service: ProcessesService | None = None
) -> tornado.web.Application:
    """The service's Tornado application (``app.settings['processes']`` is its state)."""
    service = service or ProcessesService(config)
    p = config.prefix.rstrip("/")
    args = {"service": service}
    return tornado.web.Application(
        [
            (rf"{p}/?", LandingHandler, args),
            (rf"{p}/conformance/?", ConformanceHandler, args),
            (rf"{p}/openapi/?", OpenApiHandler, args),
            (rf"{p}/health", HealthHandler, args),
            (rf"{p}/processes/?", ProcessListHandler, args),
            (rf"{p}/processes/([^/]+)/?", ProcessHandler, args),
            (rf"{p}/processes/([^/]+)/execution/?", ExecutionHandler, args),
            (rf"{p}/jobs/?", JobListHandler, args),
            (rf"{p}/jobs/([^/]+)/?", JobHandler, args),
            (rf"{p}/jobs/([^/]+)/results/?", ResultsHandler, args),
            (rf"{p}/subscriptions/?", SubscriptionListHandler, args),
            (rf"{p}/subscriptions/([^/]+)/?", SubscriptionHandler, args),
            (rf"{p}/results/(.+)", ResultFilesHandler, args),
            *stac_routes(p, args),
        ],
        processes=service,
    )
