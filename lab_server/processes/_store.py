"""Jobs of the processing service, in SQLite or PostgreSQL.

:class:`JobStore` follows the job-keeping half of pygeoapi's process manager interface
(``get_jobs``, ``add_job``, ``update_job``, ``get_job``, ``get_job_result``, ``delete_job``)
with one addition: every job belongs to a hub user, and every read or change names the user,
so that one user's jobs are invisible to another (an unknown job and another user's job are
the same "not found").

One database (:class:`~lab_server.processes._database.JobDatabase`: an SQLite file, WAL mode
and a busy timeout, or a PostgreSQL server), connected to per operation (the service's threads
and the job processes write to it), so that a job survives a restart of the service.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from lab import EarthLabError
from lab_server.processes._database import Connection, JobDatabase, column

__all__ = ["ACTIVE", "FINISHED", "JobNotFoundError", "JobResultNotFoundError", "JobStore", "now"]

ACTIVE = ("accepted", "running")
"""States of a job that has not finished."""
FINISHED = ("successful", "failed", "dismissed")
"""Final states."""

_COLUMNS = (
    "id",
    "user",
    "process_id",
    "status",
    "message",
    "progress",
    "created",
    "started",
    "finished",
    "updated",
    "inputs",
    "results",
    "mimetype",
    "item",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    process_id TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    progress INTEGER,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    updated TEXT NOT NULL,
    inputs TEXT NOT NULL DEFAULT '{}',
    results TEXT,
    mimetype TEXT,
    item TEXT
);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs ("user", created);
"""
assert all(name in _SCHEMA for name in _COLUMNS)
_NO_LIMIT = 2**62
"""``LIMIT`` of an unlimited page (SQLite's -1 is refused by PostgreSQL)."""


class JobNotFoundError(EarthLabError, LookupError):
    """No such job for this user (unknown, or another user's): list your jobs to find its id."""


class JobResultNotFoundError(EarthLabError, LookupError):
    """The job has no results (not finished, failed or dismissed): check its status first."""


def now() -> str:
    """The current UTC time as RFC 3339 (what the status documents carry)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JobStore:
    """Jobs by user, in an SQLite file or a PostgreSQL database.

    Parameters
    ----------
    database : JobDatabase or path
        Where the jobs are (a path: an SQLite file, created with its directory).
    create : bool
        Create the tables (the service does; its job processes open what exists).
    """

    def __init__(self, database: JobDatabase | str | os.PathLike[str], *, create: bool = True):
        self.database = (
            database if isinstance(database, JobDatabase) else JobDatabase(os.fspath(database))
        )
        if not create:
            return
        self.database.create_directory()
        with self._db() as db:
            if not db.postgresql:
                db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            if "item" not in db.columns("jobs"):  # a database of the first version
                db.execute("ALTER TABLE jobs ADD COLUMN item TEXT")

    @contextmanager
    def _db(self) -> Iterator[Connection]:
        with self.database.connect() as db:
            yield db

    @staticmethod
    def _job(row: Any) -> dict[str, Any]:
        job = dict(row)
        job["inputs"] = json.loads(job["inputs"] or "{}")
        return job

    def get_jobs(
        self,
        status: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        *,
        user: str,
        process_id: str | None = None,
    ) -> dict[str, Any]:
        """The user's jobs, newest first, optionally of one status or process.

        Returns
        -------
        dict
            ``{"jobs": [job, ...], "numberMatched": n}`` (pygeoapi's shape).
        """
        where, args = ['"user" = ?'], [user]
        if status is not None:
            where.append("status = ?")
            args.append(getattr(status, "value", status))
        if process_id is not None:
            where.append("process_id = ?")
            args.append(process_id)
        clause = " AND ".join(where)
        with self._db() as db:
            matched = db.execute(f"SELECT count(*) AS n FROM jobs WHERE {clause}", args).fetchone()[
                "n"
            ]
            rows = db.execute(
                f"SELECT * FROM jobs WHERE {clause} ORDER BY created DESC, id LIMIT ? OFFSET ?",
                [*args, _NO_LIMIT if limit is None else limit, offset or 0],
            ).fetchall()
        return {"jobs": [self._job(r) for r in rows], "numberMatched": matched}

    def add_job(self, job_metadata: dict[str, Any]) -> str:
        """Record a new job (``user``, ``process_id`` and ``inputs`` required); its id."""
        stamp = now()
        job = {
            "id": job_metadata.get("id") or uuid.uuid4().hex,
            "status": "accepted",
            "message": "accepted, waiting for a worker",
            "progress": 0,
            "created": stamp,
            "updated": stamp,
            **job_metadata,
        }
        job["inputs"] = json.dumps(job.get("inputs") or {})
        names = [c for c in _COLUMNS if c in job]
        with self._db() as db:
            db.execute(
                f"INSERT INTO jobs ({', '.join(map(column, names))}) "
                f"VALUES ({', '.join('?' * len(names))})",
                [job[n] for n in names],
            )
        return str(job["id"])

    def update_job(
        self, job_id: str, update_dict: dict[str, Any], *, only_if: tuple[str, ...] = ()
    ) -> bool:
        """Change a job's fields; with ``only_if``, only while its status is one of those.

        Returns
        -------
        bool
            Whether the job was changed (False: unknown, or no longer in ``only_if``).
        """
        update = {"updated": now(), **update_dict}
        for key in ("results", "item"):
            if key in update and not isinstance(update[key], str | None):
                update[key] = json.dumps(update[key])
        unknown = set(update) - set(_COLUMNS)
        if unknown:
            raise KeyError(f"unknown job fields {sorted(unknown)}")
        sql = f"UPDATE jobs SET {', '.join(f'{column(k)} = ?' for k in update)} WHERE id = ?"
        args = [*update.values(), job_id]
        if only_if:
            sql += f" AND status IN ({', '.join('?' * len(only_if))})"
            args += list(only_if)
        with self._db() as db:
            return db.execute(sql, args).rowcount == 1

    def get_job(self, job_id: str, user: str | None = None) -> dict[str, Any]:
        """One job, if it is the user's (``user=None``: any user's, for the runner).

        Raises
        ------
        JobNotFoundError
            No such job, or another user's.
        """
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or (user is not None and row["user"] != user):
            raise JobNotFoundError(f"no job {job_id}: list your jobs to find its id")
        return self._job(row)

    def get_job_result(self, job_id: str, user: str | None = None) -> tuple[str, Any]:
        """The results document of the user's successful job.

        Raises
        ------
        JobResultNotFoundError
            The job has no results (yet, or any more).
        """
        job = self.get_job(job_id, user)
        if job["status"] != "successful" or job["results"] is None:
            raise JobResultNotFoundError(
                f"job {job_id} is {job['status']}: results exist only once it is successful"
            )
        return job["mimetype"] or "application/json", json.loads(job["results"])

    def delete_job(self, job_id: str, user: str | None = None) -> bool:
        """Mark the user's job dismissed and drop its results (the runner stops it).

        Returns
        -------
        bool
            Whether it was still running (or waiting) when dismissed.
        """
        job = self.get_job(job_id, user)
        self.update_job(
            job_id,
            {
                "status": "dismissed",
                "message": "dismissed by its owner",
                "results": None,
                "item": None,
            },
        )
        self.update_job(job_id, {"finished": now()}, only_if=("dismissed",))
        return job["status"] in ACTIVE

    def get_item(self, job_id: str, user: str) -> dict[str, Any] | None:
        """The STAC Item of the user's successful job, if it has one (None otherwise)."""
        try:
            job = self.get_job(job_id, user)
        except JobNotFoundError:
            return None
        if job["status"] != "successful" or not job["item"]:
            return None
        return dict(json.loads(job["item"]))

    def get_items(self, user: str) -> list[dict[str, Any]]:
        """The STAC Items of the user's successful jobs (their results), oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT item FROM jobs WHERE \"user\" = ? AND status = 'successful' "
                "AND item IS NOT NULL ORDER BY finished, id",
                (user,),
            ).fetchall()
        return [json.loads(r["item"]) for r in rows]

    def interrupted(self, message: str) -> list[str]:
        """Fail every job left unfinished by a previous run of the service (its ids)."""
        with self._db() as db:
            rows = db.execute("SELECT id FROM jobs WHERE status IN (?, ?)", ACTIVE).fetchall()
        ids = [r["id"] for r in rows]
        for job_id in ids:
            self.update_job(
                job_id, {"status": "failed", "message": message, "finished": now()}, only_if=ACTIVE
            )
        return ids
