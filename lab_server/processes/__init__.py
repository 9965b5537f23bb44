"""The lab's processing service: OGC API – Processes for hub users (server side).

Run as ``python -m lab_server.processes`` by ``earthlab hub up`` (the hub service
``processes``). Processes are pygeoapi processors; ``echo`` is built in, the others are
contributed through the entry-point group ``earthlab.processes`` (``cube-build`` by
``datacubes``). Jobs are kept per user in SQLite (:class:`JobStore`). See
``docs/processing.md``.
"""

from lab_server.processes._app import CONFORMANCE, ProcessesService, ServiceConfig, make_app
from lab_server.processes._registry import (
    ENTRY_POINT_GROUP,
    ContributedProcessor,
    EchoProcessor,
    JobCancelledError,
    JobContext,
    LabProcessor,
    ProcessDefinitionError,
    load_processors,
)
from lab_server.processes._runner import LocalRunner, Runner
from lab_server.processes._store import JobNotFoundError, JobResultNotFoundError, JobStore

__all__ = [
    "CONFORMANCE",
    "ENTRY_POINT_GROUP",
    "ContributedProcessor",
    "EchoProcessor",
    "JobCancelledError",
    "JobContext",
    "JobNotFoundError",
    "JobResultNotFoundError",
    "JobStore",
    "LabProcessor",
    "LocalRunner",
    "ProcessDefinitionError",
    "ProcessesService",
    "Runner",
    "ServiceConfig",
    "load_processors",
    "make_app",
]
