"""The processes the service offers: pygeoapi processors, built in or contributed.

A process is a pygeoapi :class:`~pygeoapi.process.base.BaseProcessor`: its ``metadata`` is an
OGC process description (pygeoapi's ``PROCESS_METADATA`` format: id, title, version,
``jobControlOptions``, ``inputs`` and ``outputs`` with JSON Schemas; units as ``x-ogc-unit``),
and ``execute(data)`` returns ``(mimetype, outputs)``. The lab's processors also take a
:class:`JobContext` (progress, cancellation, a working directory).

``echo`` is built in. Other packages contribute processes through the entry-point group
``earthlab.processes`` (``pyproject.toml``), since the server side imports only the SDK: the
entry point names an object with a ``metadata`` mapping and an
``execute(data, context) -> dict`` method, wrapped here in a :class:`ContributedProcessor`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from pygeoapi.process.base import BaseProcessor

from lab import EarthLabError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ContributedProcessor",
    "EchoProcessor",
    "JobCancelledError",
    "JobContext",
    "LabProcessor",
    "ProcessDefinitionError",
    "load_processors",
    "processor_for",
]

ENTRY_POINT_GROUP = "earthlab.processes"
log = logging.getLogger("earthlab.processes")


class JobCancelledError(EarthLabError, RuntimeError):
    """The job was dismissed by its owner while it ran."""


class ProcessDefinitionError(EarthLabError, TypeError):
    """A contributed process is not usable (its entry point names the wrong object)."""


@dataclass
class JobContext:
    """What a running process may use: its job, progress reporting and cancellation.

    Attributes
    ----------
    job_id, user : str
        The job and its owner.
    work_dir : pathlib.Path
        Where the job writes its files: the owner's results directory, or, when results are
        kept on object storage, the job's scratch directory, uploaded when the job succeeds.
    report : callable
        ``report(fraction, message)``: records progress (0 to 1).
    is_cancelled : callable
        Whether the owner dismissed the job.
    results_url : str
        URL of ``work_dir`` through the service (``…/results/``, ending in ``/``): files there
        are served to their owner only, with the hub's authentication.
    products : dict
        What the job produced, by asset key (:meth:`add_product`): the job's STAC Item's assets.
    sources : list
        The STAC Items it read (:meth:`add_sources`): the Item's ``derived_from`` links, and
        its footprint and dates.
    storage_url, storage_options
        Where the owner's results are kept when that is object storage (``s3://…/<user>``)
        and its fsspec options; ``""`` when they are ``work_dir`` itself (:meth:`store`).
    """

    job_id: str
    user: str
    work_dir: Path
    report: Callable[[float | None, str], None] = field(default=lambda f, m: None)
    is_cancelled: Callable[[], bool] = field(default=lambda: False)
    results_url: str = ""
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    hub_api_url: str = ""
    hub_token: str = field(default="", repr=False)
    computed_on: dict[str, Any] = field(default_factory=dict)
    storage_url: str = ""
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)

    def store(self, name: str) -> tuple[str, dict[str, Any]]:
        """Where a store the process writes itself (a Zarr cube) goes, and its fsspec options.

        On object storage, the store is written there directly (an interrupted build resumes
        from what it holds), not uploaded at the end; otherwise it is ``work_dir / name``.
        """
        if self.storage_url:
            return f"{self.storage_url}/{name}", dict(self.storage_options)
        return str(self.work_dir / name), {}

    @contextmanager
    def cluster(self, near: Any, workers: int = 1, timeout: float = 300.0) -> Iterator[Any]:
        """Compute on a Dask Gateway cluster of the job's owner, next to the data.

        The cluster goes where ``lab.cluster(near=items)`` would put it (the centre holding
        most of the items' data). It is started with a hub token of the job's owner that the
        service makes for this job only (the one gateway's access scope, deleted when the job
        ends): the gateway sees the owner, with the owner's caps and permissions, as for a
        cluster started from a notebook. Inside, Dask computations go to the cluster (its
        client is the default), and the fraction of its tasks done is the job's progress.

        Without a gateway at that centre, or for a job run without the hub's credentials (a
        synchronous execution, in the service's own process), nothing is started: the block
        computes with local threads. ``computed_on`` records where it ran.

        Raises
        ------
        lab.ClusterError
            The owner may not use that gateway, a cap is reached (the gateway's message says
            which), or no worker started in time.
        """
        import lab

        if not self.hub_token:
            self.computed_on = {"kind": "local", "why": "no hub credentials (synchronous run)"}
            yield None
            return
        federation = lab.centres()
        centre = lab.choose_centre(near, federation)
        if federation[centre].gateway is None:
            self.computed_on = {"kind": "local", "centre": centre, "why": "no gateway there"}
            yield None
            return
        token, token_id = self._owner_token(centre)
        client = None
        try:
            self.progress(None, f"starting a Dask cluster of {self.user} at {centre}")
            client = lab.cluster(centre=centre, workers=workers, timeout=timeout, token=token)
            self.computed_on = {
                "kind": "gateway",
                "centre": centre,
                "cluster": str(client.cluster.name),
                "workers": workers,
            }
            with _scheduler_progress(self, client, centre):
                yield client
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.cluster.shutdown()
                with contextlib.suppress(Exception):
                    client.close()
            self._drop_token(token_id)

    def _hub(self, method: str, path: str, **kwargs: Any) -> Any:
        import lab

        with lab.http_session(timeout=30) as session:  # a POST is never sent twice
            return session.request(
                method,
                f"{self.hub_api_url.rstrip('/')}/{path}",
                headers={"Authorization": f"token {self.hub_token}"},
                **kwargs,
            )

    def _owner_token(self, centre: str) -> tuple[str, str]:
        """A token of the owner holding only the centre's gateway scope (its value and id)."""
        from lab import ClusterError
        from lab_server.deploy._layout import access_scope

        answer = self._mint([access_scope(centre)], f"its cluster at {centre}")
        if answer.status_code != 201:
            raise ClusterError(
                f"the hub gave no token of {self.user} for the gateway of {centre} "
                f"(HTTP {answer.status_code}: {answer.text[:200]}): you may not use that "
                "gateway (a restricted centre?), or the service lacks the 'tokens' scope"
            )
        document = answer.json()
        return str(document["token"]), str(document["id"])

    def _mint(self, scopes: list[str], why: str, expires_in: int = 7 * 86400) -> Any:
        """Ask the hub for a token of the owner holding ``scopes``; the hub's answer."""
        return self._hub(
            "POST",
            f"users/{self.user}/tokens",
            json={
                "scopes": scopes,
                "expires_in": expires_in,
                "note": f"earthlab processing job {self.job_id}: {why}",
            },
        )

    def _holds(self, scope: str) -> bool:
        """Whether the owner holds ``scope`` (the hub gives a token with it only then)."""
        from lab import ConfigurationError

        answer = self._mint([scope], f"does the owner hold {scope}?", expires_in=60)
        if answer.status_code == 201:
            self._drop_token(str(answer.json()["id"]))
            return True
        if answer.status_code in (400, 403) and "not held" in answer.text:
            return False
        raise ConfigurationError(
            f"the hub did not say whether {self.user} holds {scope} "
            f"(HTTP {answer.status_code}: {answer.text[:200]})"
        )

    @contextmanager
    def reading_as_owner(self) -> Iterator[None]:
        """Read the lab's restricted centres as the job's owner.

        A job reads a restricted centre (DINAMIS imagery) with a token of its owner that the
        service makes for this job only, holding the access scopes of the restricted-data
        services the owner holds (the hub says which): the service admits the owner's
        groups only, and charges what the job reads to the owner's quota, as for a notebook.
        Without such scopes the token identifies the owner and nothing more: the centre
        answers ``restricted``, and a job needing it fails saying how to request access. The
        token is deleted when the job ends. Nothing is done for a job run without the hub's
        credentials (synchronous) or in a lab without restricted centres.
        """
        import lab
        from lab_server.deploy._catalogues import restricted_service_name

        restricted = [c for c in lab.centres().values() if c.restricted and c.catalog.token_env]
        if not self.hub_token or not restricted:
            yield
            return
        held = [
            scope
            for scope in (
                f"access:services!service={restricted_service_name(c.name)}" for c in restricted
            )
            if self._holds(scope)
        ]
        answer = self._mint(
            held or [f"read:users:name!user={self.user}"], "reading restricted centres"
        )
        if answer.status_code != 201:
            raise lab.ConfigurationError(
                f"the hub gave no token of {self.user} to read the restricted centres "
                f"(HTTP {answer.status_code}: {answer.text[:200]})"
            )
        document = answer.json()
        names = {str(c.catalog.token_env) for c in restricted}
        previous = {name: os.environ.get(name) for name in names}
        os.environ.update(dict.fromkeys(names, str(document["token"])))
        try:
            yield
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._drop_token(str(document["id"]))

    def _drop_token(self, token_id: str) -> None:
        try:
            self._hub("DELETE", f"users/{self.user}/tokens/{token_id}")
        except Exception as exc:  # it expires anyway
            log.warning("job %s: could not delete its token %s: %s", self.job_id, token_id, exc)

    def add_product(
        self,
        key: str,
        path: Path | str,
        media_type: str,
        title: str = "",
        roles: tuple[str, ...] = ("data",),
        **fields: Any,
    ) -> None:
        """Record a file or store the job wrote, for its STAC Item.

        ``path`` is in ``work_dir``, or a URL :meth:`store` gave.

        Raises
        ------
        ValueError
            The path is not among the job's results (it would not be served).
        """
        text = str(path)
        if self.storage_url and text.startswith(self.storage_url + "/"):
            relative = text[len(self.storage_url) + 1 :]
        else:
            relative = Path(path).resolve().relative_to(self.work_dir.resolve()).as_posix()
        self.products[key] = {
            "path": relative,
            "type": media_type,
            "roles": list(roles),
            **({"title": title} if title else {}),
            **fields,
        }

    def add_sources(self, items: Any) -> None:
        """Record the STAC Items the job read (pystac Items or item dicts)."""
        for item in items:
            document = item if isinstance(item, Mapping) else item.to_dict(transform_hrefs=False)
            self_link = next(
                (link for link in document.get("links", ()) if link.get("rel") == "self"), None
            )
            self.sources.append(
                {
                    "id": document.get("id"),
                    "collection": document.get("collection"),
                    "href": self_link.get("href") if self_link else None,
                    "bbox": document.get("bbox"),
                    "properties": {
                        k: v
                        for k, v in (document.get("properties") or {}).items()
                        if k in ("datetime", "start_datetime", "end_datetime", "earthlab:centre")
                    },
                }
            )

    def progress(self, fraction: float | None, message: str = "") -> None:
        """Report progress (a fraction of the work done, or None) and stop if dismissed.

        Raises
        ------
        JobCancelledError
            The job was dismissed: processes call this between steps.
        """
        if self.is_cancelled():
            raise JobCancelledError(f"job {self.job_id} was dismissed")
        self.report(fraction, message)


class _scheduler_progress:  # noqa: N801 (a context manager used like a function)
    """Report the fraction of a distributed cluster's tasks done (polling its scheduler)."""

    def __init__(self, context: JobContext, client: Any, centre: str, every: float = 0.5):
        self.context, self.client, self.centre, self.every = context, client, centre, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True, name="progress")

    def _poll(self) -> None:
        def counts(dask_scheduler: Any) -> tuple[int, int]:  # runs on the scheduler
            done = sum(
                p.state_counts.get("memory", 0) + p.state_counts.get("erred", 0)
                for p in dask_scheduler.task_prefixes.values()
            )
            waiting = ("released", "waiting", "processing", "queued", "no-worker")
            pending = sum(1 for t in dask_scheduler.tasks.values() if t.state in waiting)
            return done, pending

        while not self.stop.wait(self.every):
            try:
                done, pending = self.client.run_on_scheduler(counts)
            except Exception:  # the cluster is closing
                return
            if done + pending:
                self.context.report(
                    done / (done + pending),
                    f"{done} of {done + pending} Dask tasks done on the gateway of {self.centre}",
                )

    def __enter__(self) -> _scheduler_progress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def _io(schema: dict[str, Any], title: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "description": description, "schema": schema, **extra}


_BBOX = {
    "type": "object",
    "required": ["bbox"],
    "properties": {
        "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 6},
        "crs": {"type": "string", "format": "uri"},
    },
}
# The echo process of OGC's test suite (ets-ogcapi-processes10): every input comes back as the
# output of the same stem (stringInput -> stringOutput); pause (s) makes a job last.
_ECHO_INPUTS: dict[str, dict[str, Any]] = {
    "stringInput": _io({"type": "string"}, "String", "A string, echoed as stringOutput."),
    "measureInput": _io(
        {
            "type": "object",
            "required": ["measurement", "uom"],
            "properties": {
                "measurement": {"type": "number"},
                "uom": {"type": "string"},
                "reference": {"type": "string", "format": "uri"},
            },
        },
        "Measure",
        "A value with its unit of measure, echoed as measureOutput.",
    ),
    "dateInput": _io(
        {"type": "string", "format": "date-time"}, "Date", "An instant, echoed as dateOutput."
    ),
    "doubleInput": _io({"type": "number"}, "Number", "A number, echoed as doubleOutput."),
    "arrayInput": _io(
        {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        "Array",
        "An array of integers, echoed as arrayOutput.",
    ),
    "complexObjectInput": _io(
        {"type": "object"}, "Object", "Any JSON object, echoed as complexObjectOutput."
    ),
    "geometryInput": _io(
        {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
        "Geometry",
        "A GeoJSON geometry, echoed as geometryOutput.",
    ),
    "boundingBoxInput": _io(_BBOX, "Bounding box", "A bounding box, echoed as boundingBoxOutput."),
    "pause": _io(
        {"type": "number", "minimum": 0, "maximum": 3600, "x-ogc-unit": "s"},
        "Pause",
        "Seconds to wait before answering (progress is reported every 0.1 s; a dismissed "
        "job stops at once).",
    ),
}
ECHO_METADATA: dict[str, Any] = {
    "id": "echo",
    "title": "Echo",
    "description": "Returns its inputs as outputs (stringInput -> stringOutput, ...): the "
    "process OGC's conformance tests rely on. 'pause' makes it last that many seconds.",
    "version": "1.0.0",
    "keywords": ["test", "echo"],
    "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
    "outputTransmission": ["value"],
    "inputs": {
        name: {**spec, "minOccurs": 0, "maxOccurs": 1} for name, spec in _ECHO_INPUTS.items()
    },
    "outputs": {
        name.replace("Input", "Output"): {
            "title": spec["title"],
            "description": f"The {name} given.",
            "schema": spec["schema"],
        }
        for name, spec in _ECHO_INPUTS.items()
        if name != "pause"
    },
    "example": {"inputs": {"stringInput": "Hello", "doubleInput": 42.0}},
}


class LabProcessor(BaseProcessor):
    """A pygeoapi processor that also runs with a :class:`JobContext`."""

    reference: str | None = None
    """``module:attribute`` a job's worker process loads it from (None: built in)."""

    def run(self, data: dict[str, Any], context: JobContext) -> dict[str, Any]:
        """Execute for a job: the outputs by id (JSON values)."""
        raise NotImplementedError

    def execute(self, data: dict[str, Any], outputs: dict[str, Any] | None = None) -> Any:
        """Run as pygeoapi does: without a job (no progress, no cancellation)."""
        return "application/json", self.run(data, JobContext("", "", Path.cwd()))


class EchoProcessor(LabProcessor):
    """OGC's ``echo``: the inputs given, as outputs."""

    def __init__(self) -> None:
        super().__init__({"name": "echo"}, copy.deepcopy(ECHO_METADATA))

    def run(self, data: dict[str, Any], context: JobContext) -> dict[str, Any]:
        """Wait ``pause`` seconds (reporting progress), then echo."""
        pause = float(data.get("pause") or 0)
        start = time.monotonic()
        context.progress(0.0, "echoing")
        while (elapsed := time.monotonic() - start) < pause:
            context.progress(elapsed / pause, f"pausing {pause - elapsed:.1f} s more")
            time.sleep(min(0.1, pause - elapsed))
        return {
            name.replace("Input", "Output"): value
            for name, value in data.items()
            if name != "pause"
        }


class ContributedProcessor(LabProcessor):
    """A process another package contributes (entry point ``earthlab.processes``)."""

    def __init__(self, name: str, reference: str):
        target = resolve(reference)
        meta = getattr(target, "metadata", None)
        if not isinstance(meta, Mapping) or meta.get("id") != name:
            raise ProcessDefinitionError(
                f"the process {name!r} ({target!r}) needs a 'metadata' mapping whose id is {name!r}"
            )
        super().__init__({"name": name}, copy.deepcopy(dict(meta)))
        self.target = target
        self.reference = reference

    def run(self, data: dict[str, Any], context: JobContext) -> dict[str, Any]:
        """Call the contributed ``execute(data, context)``."""
        return dict(self.target.execute(data, context))


def resolve(reference: str) -> Any:
    """The object a ``module:attribute`` reference names."""
    module, _, attribute = reference.partition(":")
    target: Any = import_module(module)
    for part in attribute.split(".") if attribute else ():
        target = getattr(target, part)
    return target


def load_processors(extra: Mapping[str, str] | None = None) -> dict[str, LabProcessor]:
    """Every process offered: ``echo``, the entry points, then ``extra`` references.

    Parameters
    ----------
    extra : mapping, optional
        ``{id: "module:attribute"}`` of further processes (tests, operators' own).
    """
    processors: dict[str, LabProcessor] = {"echo": EchoProcessor()}
    references = {
        ep.name: ep.value for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)
    }
    references.update(extra or {})
    for name, reference in sorted(references.items()):
        processors[name] = ContributedProcessor(name, reference)
    return processors


def processor_for(process_id: str, reference: str | None) -> LabProcessor:
    """One processor, in a job's worker (``reference`` None for ``echo``)."""
    if reference is None:
        return EchoProcessor()
    return ContributedProcessor(process_id, reference)
