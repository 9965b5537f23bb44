"""A client of OGC API – Processes (Part 1: Core): the lab's processing service or any other.

>>> import lab
>>> service = lab.processes()                 # the lab's service (setting processes.url)
>>> [p.id for p in service.list()]
>>> job = service.execute("cube-build", {"spec": "...", "target": "..."}, asynchronous=True)
>>> job.wait()                                # a progress bar, then the final status
>>> job.results()                             # outputs by id; STAC Items as pystac Items

The client follows the standard only (OGC 18-062r2): it works with pygeoapi, the lab's service
and other servers. Every request goes through the lab's HTTP layer (:func:`lab.http_session`);
the token is the hub's (``JUPYTERHUB_API_TOKEN`` in a single-user server) unless another is
given. A server's exception document (``type``, ``title``, ``detail``) becomes a
:class:`ProcessingError` that quotes it.
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

from lab._config import config
from lab._errors import ConfigurationError, ProcessingError
from lab._http import http_session

__all__ = [
    "FINAL_STATES",
    "Job",
    "JobStatus",
    "ProcessDescription",
    "ProcessesClient",
    "processes",
]

STATES = ("accepted", "running", "successful", "failed", "dismissed")
"""Job states of OGC API – Processes (``statusCode``)."""
FINAL_STATES = ("successful", "failed", "dismissed")
"""States after which a job does not change."""


def processes(url: str | None = None, token: str | None = None) -> ProcessesClient:
    """Return a client of an OGC API – Processes service (the lab's by default).

    Parameters
    ----------
    url
        The service's landing page (default: the ``processes.url`` setting, which the hub sets
        in every single-user server).
    token
        Token sent as ``Authorization: token ...`` (default: ``JUPYTERHUB_API_TOKEN`` if set;
        none otherwise, for public services).

    Raises
    ------
    ConfigurationError
        If no URL is given and the ``processes.url`` setting is empty.
    """
    if url is None:
        url = config.get("processes.url")
        if not url:
            raise ConfigurationError(
                "no processing service: give its URL, lab.processes('https://.../processes/'), "
                "or set processes.url (EARTHLAB_PROCESSES__URL); in the lab the hub sets it"
            )
    if token is None:
        token = os.environ.get("JUPYTERHUB_API_TOKEN") or None
    return ProcessesClient(url, token=token)


@dataclass(frozen=True)
class ProcessDescription:
    """What a process does, what it takes and what it gives (``/processes/{id}``)."""

    id: str
    """The process identifier."""
    title: str
    """Its title ('' if the server gives none)."""
    description: str
    """What it does ('' if the server gives none)."""
    version: str
    """Its version."""
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Input id -> description (``title``, ``schema``, ``minOccurs``...); empty in a list."""
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Output id -> description (``title``, ``schema``...); empty in a list."""
    job_control: tuple[str, ...] = ()
    """``sync-execute`` and/or ``async-execute``."""
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The server's JSON, whole."""

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ProcessDescription:
        """Read a process summary or description; raise :class:`ProcessingError` if not one."""
        if not isinstance(document, Mapping) or not isinstance(document.get("id"), str):
            raise ProcessingError(f"not an OGC process description (no 'id'): {document!r:.200}")
        return cls(
            id=document["id"],
            title=str(document.get("title") or ""),
            description=str(document.get("description") or ""),
            version=str(document.get("version") or ""),
            inputs=dict(document.get("inputs") or {}),
            outputs=dict(document.get("outputs") or {}),
            job_control=tuple(document.get("jobControlOptions") or ()),
            document=dict(document),
        )

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """Ids of the inputs that must be given (``minOccurs`` 1 or more, the default)."""
        return tuple(
            name for name, spec in self.inputs.items() if int(spec.get("minOccurs", 1)) > 0
        )


@dataclass(frozen=True)
class JobStatus:
    """A job's status as the server reported it (``statusInfo``)."""

    job_id: str
    """The job's identifier."""
    status: str
    """``accepted``, ``running``, ``successful``, ``failed`` or ``dismissed``."""
    process_id: str = ""
    """The process it runs ('' if the server does not say)."""
    message: str = ""
    """The server's message (why it failed, what it does now)."""
    progress: int | None = None
    """Percent done (0-100), if the server says."""
    created: str | None = None
    """When it was created (RFC 3339)."""
    started: str | None = None
    """When it started running."""
    finished: str | None = None
    """When it finished."""
    links: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    """Its links (``results`` among them once successful)."""

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> JobStatus:
        """Read a ``statusInfo`` document; raise :class:`ProcessingError` if it is not one."""
        if not isinstance(document, Mapping):
            raise ProcessingError(f"not an OGC job status: {document!r:.200}")
        job_id = document.get("jobID", document.get("jobId"))
        status = document.get("status")
        if not isinstance(job_id, str) or status not in STATES:
            raise ProcessingError(
                f"not an OGC job status (jobID and a status among {', '.join(STATES)}): "
                f"{dict(document)!r:.300}"
            )
        progress = document.get("progress")
        return cls(
            job_id=job_id,
            status=status,
            process_id=str(document.get("processID") or document.get("processId") or ""),
            message=str(document.get("message") or ""),
            progress=int(progress) if isinstance(progress, int | float) else None,
            created=document.get("created"),
            started=document.get("started"),
            finished=document.get("finished"),
            links=tuple(document.get("links") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """The status as ``statusInfo`` JSON (without links)."""
        return {
            "jobID": self.job_id,
            "processID": self.process_id,
            "status": self.status,
            "message": self.message,
            "progress": self.progress,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }

    @property
    def done(self) -> bool:
        """True once the job is successful, failed or dismissed."""
        return self.status in FINAL_STATES


REBUILD_FORMAT = "ogcapi-processes"
"""``processing:expression.format`` of the Items the lab's service describes results with."""
ITEM_REL = "describedby"
"""Relation of a job status's link to the STAC Item of its results."""


class ProcessesClient:
    """A client of one OGC API – Processes service; build it with :func:`lab.processes`.

    Parameters
    ----------
    url
        The service's landing page.
    token
        Sent as ``Authorization: token ...``; None: no authorization header.
    """

    def __init__(self, url: str, token: str | None = None):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"a processing service's URL is http(s)://..., not {url!r}")
        self.url = url if url.endswith("/") else url + "/"
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"token {token}"

    def __repr__(self) -> str:
        return f"ProcessesClient({self.url!r})"

    # --- HTTP -------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any
    ) -> requests.Response:
        """Send a request to ``path`` (relative to the service or absolute); check the status.

        Raises
        ------
        ProcessingError
            If the answer's status is not in ``expect``: the message quotes the server's
            exception document and says what to do for 401/403.
        """
        url = urljoin(self.url, path)
        headers = {**self._headers, **kwargs.pop("headers", {})}
        with http_session() as session:
            response = session.request(method, url, headers=headers, **kwargs)
        if response.status_code not in expect:
            raise ProcessingError(_refusal(method, url, response))
        return response

    def _json(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ProcessingError(
                f"GET {response.url} did not answer JSON ({response.headers.get('Content-Type')})"
            ) from None

    # --- the API ----------------------------------------------------------------------------

    def conformance(self) -> tuple[str, ...]:
        """The conformance classes the service declares (``/conformance``)."""
        return tuple(self._json("conformance").get("conformsTo", ()))

    def list(self) -> builtins.list[ProcessDescription]:
        """The processes the service offers (``/processes``, every page)."""
        return [ProcessDescription.from_json(p) for p in self._listed("processes")]

    def describe(self, process_id: str) -> ProcessDescription:
        """The full description of one process (its inputs' and outputs' schemas)."""
        return ProcessDescription.from_json(self._json(f"processes/{_segment(process_id)}"))

    def execute(
        self,
        process_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        asynchronous: bool = False,
        outputs: Mapping[str, Any] | None = None,
    ) -> Job | dict[str, Any]:
        """Run a process.

        Parameters
        ----------
        process_id
            The process.
        inputs
            Input id -> value (a literal, a list, ``{"href": ...}`` or ``{"value": ...}``).
        asynchronous
            Ask for an asynchronous job (``Prefer: respond-async``) and return a :class:`Job`
            at once; otherwise wait for the results.
        outputs
            The outputs wanted (default: all).

        Returns
        -------
        Job or dict
            The job (asynchronous, or when the server chose to run it as a job), or the
            results: output id -> value.

        Raises
        ------
        ProcessingError
            If the server refuses the request (unknown process, bad inputs: its message), or
            the process fails.
        """
        body: dict[str, Any] = {"inputs": dict(inputs or {})}
        if outputs is not None:
            body["outputs"] = dict(outputs)
        headers = {"Prefer": "respond-async"} if asynchronous else {}
        response = self.request(
            "POST",
            f"processes/{_segment(process_id)}/execution",
            json=body,
            headers=headers,
            expect=(200, 201),
        )
        if response.status_code == 201:  # a job was created; its status is at Location
            location = response.headers.get("Location")
            if location:
                return Job(self, urljoin(response.url, location))
            return Job(
                self, urljoin(self.url, f"jobs/{JobStatus.from_json(response.json()).job_id}")
            )
        return _results(response)

    def rebuild(self, item: Any, *, asynchronous: bool = True) -> Job | dict[str, Any]:
        """Run again the request a result's STAC Item records (``processing:expression``).

        Parameters
        ----------
        item
            A result Item of this lab (a pystac Item or its dict: :meth:`Job.item`, or found
            by ``lab.catalog().search(collections="results")``).
        asynchronous
            As in :meth:`execute`.

        Raises
        ------
        ProcessingError
            If the Item does not record an OGC API – Processes request.
        """
        document = item if isinstance(item, Mapping) else item.to_dict(transform_hrefs=False)
        expression = (document.get("properties") or {}).get("processing:expression") or {}
        request = expression.get("expression") if isinstance(expression, Mapping) else None
        if expression.get("format") != REBUILD_FORMAT or not isinstance(request, Mapping):
            raise ProcessingError(
                f"item {document.get('id')!r} records no request to rebuild it (its "
                f"processing:expression must have format {REBUILD_FORMAT!r}): only results of "
                "the lab's processing service can be rebuilt"
            )
        return self.execute(
            str(request["process"]), dict(request.get("inputs") or {}), asynchronous=asynchronous
        )

    def subscribe(
        self,
        process_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        every: float | None = None,
        new_items: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run a process regularly (the lab's service): on a schedule or on new items.

        The process runs once now, then every ``every`` seconds, or each time the federated
        catalogue finds items of the ``new_items`` search it had not found before (for
        example a ``cube-build`` into the same target extends the cube with each new scene).

        Parameters
        ----------
        process_id, inputs
            As in :meth:`execute`.
        every
            Seconds between two runs (the lab sets a minimum).
        new_items
            A search: ``{"collections": [...], "bbox": [w, s, e, n], "datetime": "a/b"}``.

        Returns
        -------
        dict
            The subscription: ``id``, ``process``, ``inputs``, ``trigger``, ``status``,
            ``message``, ``jobs`` (ids of its runs).

        Raises
        ------
        ConfigurationError
            Neither or both of ``every`` and ``new_items``.
        ProcessingError
            The service refused it (bad inputs or trigger: its message).
        """
        if (every is None) == (new_items is None):
            raise ConfigurationError("give one trigger: every=seconds or new_items={search}")
        trigger = {"every": every} if every is not None else {"new_items": dict(new_items or {})}
        body = {"process": process_id, "inputs": dict(inputs or {}), "trigger": trigger}
        response = self.request("POST", "subscriptions", json=body, expect=(201,))
        return dict(response.json())

    def subscriptions(self) -> builtins.list[dict[str, Any]]:
        """The caller's subscriptions, newest first (cancelled ones too)."""
        return builtins.list(self._json("subscriptions").get("subscriptions") or ())

    def unsubscribe(self, subscription_id: str) -> dict[str, Any]:
        """Cancel a subscription (its runs already started go on); the subscription."""
        response = self.request("DELETE", f"subscriptions/{_segment(subscription_id)}")
        return dict(response.json())

    def jobs(self) -> builtins.list[JobStatus]:
        """The caller's jobs (``/jobs``, every page)."""
        return [JobStatus.from_json(j) for j in self._listed("jobs")]

    def job(self, job_id: str) -> Job:
        """The job ``job_id`` (of the caller)."""
        return Job(self, urljoin(self.url, f"jobs/{_segment(job_id)}"))

    def _listed(self, path: str) -> Iterator[Any]:
        """The entries of a paged list (``/processes``, ``/jobs``: the key is the path)."""
        url: str | None = path
        seen = set()
        while url is not None:
            document = self._json(url)
            yield from document.get(path) or ()
            url = next(
                (link["href"] for link in document.get("links", ()) if link.get("rel") == "next"),
                None,
            )
            if url is not None:
                url = urljoin(self.url, url)
                if url in seen:
                    raise ProcessingError(f"{self.url}{path}: a next link points back to {url}")
                seen.add(url)


class Job:
    """An asynchronous job of a processing service: its status, its results, its dismissal."""

    def __init__(self, client: ProcessesClient, url: str):
        self.client = client
        self.url = url
        self.job_id = url.rstrip("/").rsplit("/", 1)[-1]

    def __repr__(self) -> str:
        return f"Job({self.job_id!r} at {self.client.url})"

    def status(self) -> JobStatus:
        """Ask the server for the job's status now."""
        return JobStatus.from_json(self.client._json(self.url))

    def wait(
        self, timeout: float | None = None, poll: float = 1.0, progress: bool = True
    ) -> JobStatus:
        """Wait until the job is done, showing its progress; return the final status.

        Parameters
        ----------
        timeout
            Seconds to wait at most (None: as long as it takes).
        poll
            Seconds between two status requests.
        progress
            Show a progress bar (tqdm: a widget in notebooks) with the server's percent done.

        Raises
        ------
        ProcessingError
            If the job failed (with the server's message) or the timeout passed (the job goes
            on: wait again, or :meth:`dismiss` it).
        """
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        bar = tqdm(total=100, desc=self.job_id[:12], unit="%", disable=not progress, leave=True)
        try:
            while True:
                status = self.status()
                if status.progress is not None:
                    bar.n = max(0, min(100, status.progress))
                bar.set_postfix_str(status.status, refresh=True)
                if status.done:
                    if status.status == "successful":
                        bar.n = 100
                        bar.refresh()
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise ProcessingError(
                        f"job {self.job_id} still {status.status} after {timeout:g} s; it goes "
                        "on: wait() again, or dismiss() it"
                    )
                time.sleep(poll)
        finally:
            bar.close()
        if status.status == "failed":
            raise ProcessingError(
                f"job {self.job_id} ({status.process_id or 'process'}) failed: "
                f"{status.message or 'the server gives no reason'}"
            )
        return status

    def results(self) -> dict[str, Any]:
        """The outputs of a successful job: output id -> value (STAC Items as pystac Items).

        Raises
        ------
        ProcessingError
            If the job has not succeeded (the server's answer says why).
        """
        return _results(self.client.request("GET", self.url.rstrip("/") + "/results"))

    def item(self) -> Any:
        """The STAC Item describing the results of a successful job (a pystac Item).

        The lab's service links it from the job's status (its assets are the files the job
        wrote, readable by you with your token; ``processing:expression`` rebuilds it).

        Raises
        ------
        ProcessingError
            If the job has no such Item (not successful, or a process that wrote no file, or
            a service that does not describe results as STAC).
        """
        import pystac

        status = self.client._json(self.url)
        href = next(
            (link.get("href") for link in status.get("links", ()) if link.get("rel") == ITEM_REL),
            None,
        )
        if href is None:
            raise ProcessingError(
                f"job {self.job_id} has no STAC Item of its results (status "
                f"{status.get('status')}): only successful jobs that wrote files have one"
            )
        return pystac.Item.from_dict(self.client._json(urljoin(self.url, href)))

    def dismiss(self) -> JobStatus:
        """Cancel the job if it runs, or forget it and its results; return the new status."""
        response = self.client.request("DELETE", self.url, expect=(200,))
        return JobStatus.from_json(response.json())


def _segment(identifier: str) -> str:
    if not isinstance(identifier, str) or not identifier or "/" in identifier:
        raise ConfigurationError(f"{identifier!r} is not a process or job identifier")
    return identifier


def _results(response: requests.Response) -> dict[str, Any]:
    """Output id -> value from a results document; STAC Items and collections as pystac."""
    try:
        document = response.json()
    except ValueError:
        raise ProcessingError(
            f"{response.url} answered {response.headers.get('Content-Type')}, not JSON results: "
            "ask for JSON outputs"
        ) from None
    if not isinstance(document, Mapping):
        raise ProcessingError(f"{response.url}: results are not a JSON object: {document!r:.200}")
    return {name: _stac(value) for name, value in document.items()}


def _stac(value: Any) -> Any:
    """A STAC Item (or ItemCollection) as pystac; a qualified ``{"value": x}`` as x."""
    qualified = {"value", "mediaType", "encoding", "schema"}
    if isinstance(value, Mapping) and "value" in value and set(value) <= qualified:
        value = value["value"]
    if isinstance(value, Mapping) and "stac_version" in value and value.get("type") == "Feature":
        import pystac

        return pystac.Item.from_dict(dict(value))
    if isinstance(value, Mapping) and value.get("type") == "FeatureCollection":
        features = value.get("features") or []
        if features and all(isinstance(f, Mapping) and "stac_version" in f for f in features):
            import pystac

            return pystac.ItemCollection.from_dict(dict(value))
    return value


def _refusal(method: str, url: str, response: requests.Response) -> str:
    """What a refused request means, quoting the server's OGC exception document."""
    detail = ""
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, Mapping):
        parts = [str(document[k]) for k in ("title", "detail", "description") if document.get(k)]
        detail = ": " + "; ".join(parts) if parts else ""
    elif response.text:
        detail = ": " + response.text.strip()[:300]
    hint = ""
    if response.status_code == 401:
        hint = (
            " (no or unknown token: in the lab the hub gives one to your server; elsewhere "
            "pass token= to lab.processes)"
        )
    elif response.status_code == 403:
        hint = " (the token lacks the scope access:services!service=processes: ask the lab's admin)"
    return f"{method} {url} answered HTTP {response.status_code}{detail}{hint}"
