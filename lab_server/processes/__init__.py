"""The lab's processing service: OGC API – Processes for hub users (server side).

Work in progress (issue 17): for now only the job store, :class:`JobStore` (jobs by user in
SQLite). See ``docs/processing.md`` for what is done and what is not.
"""

from lab_server.processes._store import JobNotFoundError, JobResultNotFoundError, JobStore

__all__ = ["JobNotFoundError", "JobResultNotFoundError", "JobStore"]
