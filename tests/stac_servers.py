"""Start the lab's catalogue servers for tests: each centre as a live STAC API on loopback.

:func:`stac_servers` does what ``earthlab hub up`` does for catalogues, with the same code
(``lab_server.deploy._catalogues``, ``lab_server.deploy._procs``): one ``rustac serve`` per centre over its
items, asset hrefs pointing at one asset server (``lab_server.stac_front``), and a centres file
where each centre is ``kind: stac-api``. No hub here: every centre, ``dinamis`` included, is
served openly (``tests/test_restricted.py`` runs the hub and the restricted-data service).

``backend="pgstac"`` serves the same centres from PostgreSQL + pgstac with stac-fastapi-pgstac
instead (``lab_server.deploy._pgstac``, as ``earthlab hub up --catalogue pgstac`` does): one
database and one API per centre, behind the same front; ``tests/pgstac_server.py`` has the
session-wide fixture.

``delays`` puts a proxy (``lab_server.stac_front`` with its ``delay`` option) in front of a
centre's API, adding that many seconds to every answer. Every process is stopped, by id, when
the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postgres_server import start_postgres

from lab._centres import read_centres_file
from lab_server.deploy._catalogues import (
    centre_root,
    prepare_catalogue,
    rustac_command,
    served_locally,
    write_centres_file,
)
from lab_server.deploy._pgstac import PgstacCluster, api_command, served_documents
from lab_server.deploy._procs import Proc, free_port, http_ready, start, stop, stop_all, wait_until

IP = "127.0.0.1"


@dataclass
class LiveFederation:
    """The running servers and the centres file pointing at them."""

    centres_file: Path
    """Centres file whose catalogues are the live STAC APIs."""
    urls: dict[str, str]
    """STAC API root of each centre, as in the centres file."""
    procs: dict[str, Proc] = field(default_factory=dict)
    """``stac-<centre>`` (rustac serve, or stac-fastapi-pgstac), ``front`` and, with pgstac,
    ``postgres``, by name."""
    cluster: PgstacCluster | None = None
    """The PostgreSQL server of the pgstac backend (None with rustac)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds each start-up step took (``postgres``, ``load``, ``apis``), with pgstac."""

    def stop(self, name: str) -> None:
        """Stop one server (e.g. ``stac-odatis``), as if the centre's API went down."""
        stop(self.procs[name], timeout=5)


@contextlib.contextmanager
def stac_servers(
    source: Path,
    directory: Path,
    *,
    delays: Mapping[str, float] | None = None,
    catalog_options: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
    backend: str = "rustac",
) -> Iterator[LiveFederation]:
    """Serve every local catalogue of the centres file ``source`` as a live STAC API.

    Parameters
    ----------
    source
        A centres file with local catalogues (e.g. the sample federation's).
    directory
        Where the served items, configurations and logs go.
    delays
        ``{centre: seconds}`` added to every STAC answer of those centres.
    catalog_options
        Extra ``catalog`` fields of every centre in the written file (``timeout``, ``retries``).
    timeout
        Seconds each server may take to start.
    backend
        ``"rustac"`` (``rustac serve``, in memory) or ``"pgstac"`` (PostgreSQL + pgstac +
        stac-fastapi-pgstac; needs the Debian packages ``lab_server.deploy._pgstac`` names).
    """
    if backend not in ("rustac", "pgstac"):
        raise ValueError(f"backend must be 'rustac' or 'pgstac', not {backend!r}")
    centre_set = read_centres_file(source)
    served = [c for c in centre_set.values() if served_locally(c)]
    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": bin_dir}
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    front_port = free_port()
    front = f"http://{IP}:{front_port}"
    live = LiveFederation(centres_file=directory / "centres.yaml", urls={})
    try:
        config: dict[str, Any] = {"ip": IP, "port": front_port, "centres": {}}
        waiting = []
        if backend == "pgstac":
            live.cluster = _start_postgres(live, directory, logs, timeout)
        for centre in served:
            files = prepare_catalogue(
                centre, directory / "stac" / centre.name, f"{front}/assets/{centre.name}/"
            )
            port = free_port()
            name = f"stac-{centre.name}"
            if live.cluster is not None:
                began = time.monotonic()
                database = live.cluster.prepare(centre.name)
                live.cluster.load(database, *served_documents(files))
                live.timings["load"] = live.timings.get("load", 0.0) + time.monotonic() - began
                command = api_command(sys.executable, live.cluster, database, IP, port)
            else:
                command = rustac_command(bin_dir, files, IP, port)
            server_env = {**env, **live.cluster.client_env()} if live.cluster else env
            live.procs[name] = start(name, command, logs / f"{name}.log", server_env, directory)
            waiting.append((live.procs[name], f"http://{IP}:{port}/"))
            config["centres"][centre.name] = {
                "stac": f"http://{IP}:{port}/",
                "files": str(centre_root(centre).resolve()),
                "delay": float((delays or {}).get(centre.name, 0.0)),
            }
            live.urls[centre.name] = f"{front}/stac/{centre.name}/"
        path = directory / "front.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        command = [sys.executable, "-m", "lab_server.stac_front", str(path)]
        live.procs["front"] = start("front", command, logs / "front.log", env, directory)
        waiting.append((live.procs["front"], f"{front}/health"))
        began = time.monotonic()
        for proc, url in waiting:
            wait_until(proc, http_ready(url), timeout)
        live.timings["apis"] = time.monotonic() - began
        catalogs = {
            name: {"kind": "stac-api", "href": url, **dict(catalog_options or {})}
            for name, url in live.urls.items()
        }
        write_centres_file(live.centres_file, centre_set, catalogs)
        yield live
    finally:
        # the servers at once, then PostgreSQL (started first, its clients gone)
        servers = [p for p in reversed(list(live.procs.values())) if p.name != "postgres"]
        stop_all(servers, timeout=5)
        for proc in live.procs.values():
            if proc.name == "postgres":
                stop(proc, timeout=30)
        if live.cluster is not None:
            live.cluster.remove()


def _start_postgres(
    live: LiveFederation, directory: Path, logs: Path, timeout: float
) -> PgstacCluster:
    """Start PostgreSQL (recorded in ``live.procs`` first, so stopped last) with pgstac."""
    began = time.monotonic()
    cluster = PgstacCluster.create(directory / "pgstac", free_port(), IP)
    live.cluster = cluster
    proc = start_postgres(cluster, logs / "postgres.log")
    live.procs["postgres"] = proc
    wait_until(proc, cluster.ready(), timeout)
    cluster.migrate_template()
    live.timings["postgres"] = time.monotonic() - began
    return cluster
