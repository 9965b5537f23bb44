"""The processing service's database: an SQLite file by default, PostgreSQL when the lab has one.

:class:`JobDatabase` names where jobs and subscriptions are kept and opens connections that
speak one dialect to their callers: ``?`` placeholders, rows read by column name, and
``executescript`` for the schema. The SQL the store writes is the subset both engines share
(``"user"`` quoted: it is a reserved word of PostgreSQL; ``DOUBLE PRECISION`` rather than
``REAL``, which is 4 bytes in PostgreSQL and would round a time stamp by minutes).

The PostgreSQL password never appears in the location (it would reach logs and the job
processes' command lines): it is given apart, and :meth:`JobDatabase.describe` is what logs
show.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lab import ConfigurationError

__all__ = ["Connection", "JobDatabase", "column"]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class JobDatabase:
    """Where the service keeps its jobs and subscriptions.

    Parameters
    ----------
    location : str
        An SQLite file's path, or a PostgreSQL URL ``postgresql://user@host:port/database``
        (without a password).
    password : str
        The PostgreSQL user's password (never logged).
    """

    location: str
    password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.is_postgresql:
            parts = urlsplit(self.location)
            if parts.password:
                raise ConfigurationError(
                    "the job database's URL must not hold its password (it would reach logs "
                    "and command lines): remove it from the URL and give it apart "
                    "(hub up reads it from $EARTHLAB_JOBS_DATABASE_PASSWORD)"
                )
            if not parts.hostname or not parts.path.strip("/"):
                raise ConfigurationError(
                    f"the job database's URL {self.location!r} needs a host and a database: "
                    "postgresql://user@host:port/database"
                )

    @property
    def is_postgresql(self) -> bool:
        """Whether the database is a PostgreSQL server (else an SQLite file)."""
        return urlsplit(self.location).scheme in _POSTGRES_SCHEMES

    def describe(self) -> str:
        """Where the database is, for logs and status (no password)."""
        return self.location

    def create_directory(self) -> None:
        """Create an SQLite file's directory (nothing for PostgreSQL)."""
        if not self.is_postgresql:
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in autocommit mode (each statement its own transaction).

        Raises
        ------
        lab.ConfigurationError
            The PostgreSQL server refused or cannot be reached (its message, and what to
            check).
        """
        if not self.is_postgresql:
            db = sqlite3.connect(self.location, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            try:
                yield Connection(db, postgresql=False)
            finally:
                db.close()
            return
        import psycopg
        from psycopg.rows import dict_row

        try:
            pg = psycopg.connect(
                self.location,
                password=self.password or None,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=10,
            )
        except psycopg.OperationalError as exc:
            raise ConfigurationError(
                f"cannot reach the job database {self.describe()}: {exc}".strip()
                + " (is the server up, and its password the one the lab was given?)"
            ) from exc
        try:
            yield Connection(pg, postgresql=True)
        finally:
            pg.close()


def column(name: str) -> str:
    """A column's name in SQL (``user`` is reserved in PostgreSQL: quoted)."""
    return f'"{name}"' if name == "user" else name


class Connection:
    """One connection, with SQLite's placeholders whatever the engine."""

    def __init__(self, connection: Any, *, postgresql: bool):
        self._connection = connection
        self.postgresql = postgresql

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); the cursor (``fetchone``, ``rowcount``)."""
        if self.postgresql:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return self._connection.execute(sql, list(args))

    def executescript(self, script: str) -> None:
        """Run statements separated by ``;`` (a schema)."""
        if not self.postgresql:
            self._connection.executescript(script)
            return
        # one schema change at a time: two processes creating the same table at once would
        # collide in PostgreSQL's catalogue
        with self._connection.transaction():
            self._connection.execute("SELECT pg_advisory_xact_lock(1701)")
            for statement in script.split(";"):
                if statement.strip():
                    self._connection.execute(statement)

    def columns(self, table: str) -> set[str]:
        """The names of a table's columns."""
        if self.postgresql:
            rows = self.execute(
                "SELECT column_name AS name FROM information_schema.columns "
                "WHERE table_name = ? AND table_schema = current_schema()",
                (table,),
            ).fetchall()
        else:
            rows = self.execute(f"PRAGMA table_info({table})").fetchall()
        return {str(row["name"]) for row in rows}
