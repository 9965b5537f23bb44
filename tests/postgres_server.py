"""A real PostgreSQL server on loopback, for the processing service's job database.

:func:`postgres` (session-wide, registered in ``tests/conftest.py``) starts one server (as the
``postgres`` account when the tests run as root: PostgreSQL refuses root) with password
authentication, and :meth:`Postgres.new_database` gives each test its own database and role,
as an operator would give the lab one (``hub up --jobs-database``). Needs the Debian package
``postgresql`` (``make system-packages``); without it the fixture fails naming it.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab_server.deploy._pgstac import PgstacCluster
from lab_server.deploy._procs import Proc, free_port, start, stop, wait_until

__all__ = ["Postgres", "postgres", "start_postgres"]


def start_postgres(cluster: PgstacCluster, log: Path) -> Proc:
    """Initialise the cluster's directory and start its server (wait for ``cluster.ready()``)."""
    cluster.init()
    return start(
        "postgres",
        cluster.server_command(),
        log,
        cluster.server_env(),
        Path(cluster.data_dir).parent,
    )


@dataclass
class Postgres:
    """The running server."""

    cluster: PgstacCluster

    def new_database(self, prefix: str = "jobs") -> tuple[str, str]:
        """A new database owned by a new role: its URL (no password) and the password."""
        import psycopg

        name = f"{prefix}_{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(16)
        with psycopg.connect(self.cluster.admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
            conn.execute(f'CREATE DATABASE "{name}" OWNER {name}')
        return f"postgresql://{name}@{self.cluster.ip}:{self.cluster.port}/{name}", password


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One PostgreSQL server for the session."""
    directory = Path(tempfile.mkdtemp(prefix="earthlab-pg-", dir=tmp_path_factory.getbasetemp()))
    cluster = PgstacCluster.create(directory, free_port())
    proc = start_postgres(cluster, directory / "postgres.log")
    try:
        wait_until(proc, cluster.ready(), 120)
        yield Postgres(cluster)
    finally:
        stop(proc, timeout=30)
        time.sleep(0.2)
        cluster.remove()
