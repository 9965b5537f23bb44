"""The sample federation served from pgstac: PostgreSQL + PostGIS + pgstac + stac-fastapi-pgstac.

What most STAC data centres run. :func:`pgstac_servers` is ``stac_servers(...,
backend="pgstac")`` (``tests/stac_servers.py``): one PostgreSQL server on loopback (as the
``postgres`` account when the tests run as root: PostgreSQL refuses root), one pgstac database
and one stac-fastapi-pgstac per centre (each centre its own STAC API root), behind the same
front as the rustac servers (``lab_server.stac_front``: links rewritten, ``delays``, the
centres' files with byte ranges). The centres file it writes has the same shape: ``kind:
stac-api`` at ``http://127.0.0.1:<front>/stac/<centre>/``, asset hrefs through the front.

Start-up takes 5–10 s (PostgreSQL, the pgstac migration, three APIs): share the session-wide
fixture :func:`pgstac_federation` (registered in ``tests/conftest.py``)::

    def test_something(pgstac_federation):
        result = lab.catalog(pgstac_federation.centres_file).search(collections=...)

or parametrize a test over both back ends, e.g. with ``request.getfixturevalue``::

    @pytest.fixture(params=["rustac", "pgstac"])
    def federation(request):
        return request.getfixturevalue({"rustac": "live", "pgstac": "pgstac_federation"}[
            request.param])

A test that stops one of its servers (``pgstac_federation.stop("stac-odatis")``) breaks it
for the others: start its own with :func:`pgstac_servers` instead.

The Debian packages ``postgresql`` and ``postgresql-15-postgis-3`` must be installed (``make
system-packages`` does it as root, as in CI); without them the fixture fails with a message
naming them (no skip: they are declared dependencies of the tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from stac_servers import LiveFederation, stac_servers

__all__ = ["PGSTAC_START", "pgstac_federation", "pgstac_servers"]

PGSTAC_START = 120.0
"""Seconds each server may take to start (a hang guard: 2 shared cores, cold imports)."""


@contextlib.contextmanager
def pgstac_servers(
    source: Path,
    directory: Path,
    *,
    delays: Mapping[str, float] | None = None,
    catalog_options: Mapping[str, Any] | None = None,
    timeout: float = PGSTAC_START,
) -> Iterator[LiveFederation]:
    """Serve every local catalogue of the centres file ``source`` from pgstac.

    Parameters are those of ``stac_servers.stac_servers``; the result's ``procs`` has
    ``postgres``, ``stac-<centre>`` (stac-fastapi-pgstac) and ``front``, its ``cluster`` the
    PostgreSQL server (``cluster.dsn(database)`` to query it), its ``timings`` how long the
    start-up steps took.
    """
    with stac_servers(
        source,
        directory,
        delays=delays,
        catalog_options=catalog_options,
        timeout=timeout,
        backend="pgstac",
    ) as federation:
        yield federation


@pytest.fixture(scope="session")
def pgstac_federation(
    sample_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveFederation]:
    """The sample federation's centres as pgstac STAC APIs, for the whole session.

    Read-only: tests must not stop its servers (see the module docstring).
    """
    with pgstac_servers(
        sample_dir / "centres.yaml",
        tmp_path_factory.mktemp("pgstac"),
        catalog_options={"retries": 1},
    ) as federation:
        yield federation
