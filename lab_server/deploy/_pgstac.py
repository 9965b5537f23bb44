"""Centres' catalogues in pgstac: PostgreSQL + PostGIS + pgstac, served by stac-fastapi-pgstac.

What most STAC data centres run. :class:`PgstacCluster` runs one PostgreSQL server on loopback
(a throw-away cluster in its own data directory), makes one database per centre (a copy of a
template where the pgstac schema was migrated once, so each centre is its own STAC API root:
mirrored collection ids stay apart) and loads each centre's collections and items with
pypgstac. :func:`api_command` is the command serving one centre's database as a STAC API
(``python -m lab_server.deploy._pgstac api ...``: uvicorn running ``stac_fastapi.pgstac``).

``earthlab hub up --catalogue pgstac`` and the tests' ``tests/pgstac_server.py`` use it.

PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` account
the Debian package creates (commands run through ``setpriv``), in a directory of its own under
the system's temporary directory (the run directory may sit where that account cannot go);
otherwise it runs as the current user inside the given directory. The server needs the Debian
packages :data:`SYSTEM_PACKAGES` (``make system-packages`` installs them as root); without
them :func:`find_postgres` says which to install.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab import ConfigurationError

__all__ = [
    "SYSTEM_PACKAGES",
    "PgstacCluster",
    "api_command",
    "api_environment",
    "find_postgres",
    "served_documents",
]

POSTGRES_MAJOR = 15
"""PostgreSQL major version of Debian 12 (bookworm), the platform the lab is tested on."""
SYSTEM_PACKAGES = ("postgresql", f"postgresql-{POSTGRES_MAJOR}-postgis-3")
"""Debian packages of the database server: PostgreSQL and PostGIS (pgstac needs it)."""
SERVICE_ACCOUNT = "postgres"
"""The account PostgreSQL runs as when the lab runs as root (created by the Debian package)."""
SUPERUSER = "postgres"
"""Database superuser of the cluster (password authentication, loopback only)."""
TEMPLATE = "pgstac_template"
"""Database where the pgstac schema is migrated once; centres' databases are copies of it."""


def _install_hint() -> str:
    packages = " ".join(SYSTEM_PACKAGES)
    return (
        f"install the Debian packages {', '.join(SYSTEM_PACKAGES)} (as root: `make "
        f"system-packages`, or `sudo apt-get update && sudo apt-get install -y "
        f"--no-install-recommends {packages}`)"
    )


def find_postgres(root: Path = Path("/")) -> Path:
    """Return the ``bin`` directory of the PostgreSQL server, checking PostGIS is installed.

    Parameters
    ----------
    root
        File-system root to look under (tests give another one).

    Returns
    -------
    pathlib.Path
        Directory holding ``initdb`` and ``postgres`` (``/usr/lib/postgresql/<major>/bin``).

    Raises
    ------
    ConfigurationError
        If the server or the PostGIS extension is missing: the message names the packages.
    """
    candidates = sorted(
        (root / "usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("postgres") if root == Path("/") else None
    if on_path:
        candidates.append(Path(on_path).resolve())
    for server in candidates:
        bin_dir = server.parent
        if not (bin_dir / "initdb").is_file():
            continue
        major = bin_dir.parent.name
        extensions = root / "usr/share/postgresql" / major / "extension"
        if not (extensions / "postgis.control").is_file():
            raise ConfigurationError(
                f"PostgreSQL {major} ({bin_dir}) has no PostGIS extension, which pgstac needs: "
                + _install_hint()
            )
        return bin_dir
    raise ConfigurationError("PostgreSQL is not installed (pgstac needs it): " + _install_hint())


def _service_ids() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as: the service account when root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        raise ConfigurationError(
            f"PostgreSQL cannot run as root and there is no {SERVICE_ACCOUNT!r} account to run "
            "it as: " + _install_hint()
        ) from None
    return entry.pw_uid, entry.pw_gid


def _as_service(command: Sequence[str]) -> list[str]:
    if _service_ids() is None:
        return list(command)
    return [
        "setpriv",
        f"--reuid={SERVICE_ACCOUNT}",
        f"--regid={SERVICE_ACCOUNT}",
        "--init-groups",
        "--",
        *command,
    ]


def _database_name(centre: str) -> str:
    return "centre_" + re.sub(r"[^a-z0-9_]", "_", centre.lower())


@dataclass(frozen=True)
class PgstacCluster:
    """One PostgreSQL server with pgstac, on loopback, owned by the lab.

    Call :meth:`init` once, start :meth:`server_command` (a long-running process, e.g. with
    ``lab_server.deploy._procs.start``), wait for :meth:`ready`, then :meth:`prepare` and
    :meth:`load` each centre.
    """

    data_dir: str
    """The cluster's directory (``initdb``'s, owned by the account PostgreSQL runs as)."""
    port: int
    """TCP port on ``ip``."""
    bin_dir: str
    """PostgreSQL's ``bin`` directory (:func:`find_postgres`)."""
    password: str = field(repr=False)
    """The superuser's password: every connection, TCP or socket, authenticates with it
    (SCRAM-SHA-256), since any local account can reach a loopback port. Handed to clients in
    their environment (:meth:`client_env`), never on a command line."""
    ip: str = "127.0.0.1"
    """Address it listens at (loopback only)."""

    @classmethod
    def create(
        cls, directory: Path, port: int, ip: str = "127.0.0.1", password: str | None = None
    ) -> PgstacCluster:
        """Make an empty cluster directory for a new server (not initialised yet).

        Parameters
        ----------
        directory
            The lab's directory for it. As root, the cluster goes to a new directory under
            the system's temporary directory instead, owned by the service account (it cannot
            enter the directories of root); :meth:`remove` deletes it.
        port
            TCP port to listen at.
        ip
            Loopback address.
        password
            The superuser's password (default: a new random one).
        """
        bin_dir = find_postgres()
        ids = _service_ids()
        if ids is None:
            directory.mkdir(parents=True, exist_ok=True)
            data = directory / "pgdata"
        else:
            base = Path(tempfile.mkdtemp(prefix="earthlab-pgstac-"))
            os.chown(base, *ids)
            data = base / "pgdata"
        return cls(str(data), port, str(bin_dir), password or secrets.token_hex(24), ip)

    @property
    def admin_dsn(self) -> str:
        """Connection string of the ``postgres`` maintenance database."""
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        """Connection string of one database of the cluster (with the password: never log it)."""
        return f"postgresql://{SUPERUSER}:{self.password}@{self.ip}:{self.port}/{database}"

    def client_env(self) -> dict[str, str]:
        """What a client process (stac-fastapi-pgstac) needs in its environment to connect."""
        return {"PGPASSWORD": self.password}

    def init(self) -> None:
        """Run ``initdb`` (UTF-8, SCRAM-SHA-256 password authentication, superuser ``postgres``).

        Raises
        ------
        ConfigurationError
            If ``initdb`` fails (its output is in the message).
        """
        data = Path(self.data_dir)
        # the password reaches initdb in a file only the server's account reads, removed after
        pwfile = data.parent / ".pgpass-initdb"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(self.password + "\n")
        ids = _service_ids()
        if ids is not None:
            os.chown(pwfile, *ids)
        command = [
            str(Path(self.bin_dir) / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
        try:
            done = subprocess.run(
                _as_service(command),
                cwd=data.parent,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise ConfigurationError(
                f"initdb failed for the pgstac database in {data}:\n{done.stdout}{done.stderr}"
            )

    def server_command(self) -> list[str]:
        """The PostgreSQL server's command, as the account it must run as.

        Durability is traded for speed (``fsync=off``): the database is rebuilt from the
        centres' files at every start.
        """
        command = [
            str(Path(self.bin_dir) / "postgres"),
            "-D",
            self.data_dir,
            "-h",
            self.ip,
            "-p",
            str(self.port),
            "-k",
            self.data_dir,  # its unix socket stays in its own directory
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        return _as_service(command)

    def server_env(self) -> dict[str, str]:
        """Environment of the server process."""
        return {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}

    def ready(self) -> Callable[[], bool]:
        """Return a check that the server accepts connections."""

        def check() -> bool:
            import psycopg

            try:
                with psycopg.connect(self.admin_dsn, connect_timeout=2):
                    return True
            except psycopg.Error:
                return False

        return check

    def migrate_template(self) -> str:
        """Create the template database and migrate the pgstac schema into it (once).

        Returns
        -------
        str
            The pgstac version.
        """
        import psycopg
        from pypgstac.db import PgstacDB
        from pypgstac.migrate import Migrate

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        with PgstacDB(dsn=self.dsn(TEMPLATE)) as db:
            version = Migrate(db).run_migration()
        return str(version)

    def prepare(self, centre: str) -> str:
        """Create a centre's database as a copy of the template; return its name."""
        import psycopg

        name = _database_name(centre)
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return name

    def load(
        self,
        database: str,
        collections: Iterable[Mapping[str, Any]],
        items: Iterable[Mapping[str, Any]] | str,
    ) -> None:
        """Load collections, then items (dicts, or an ndjson file), into a centre's database."""
        from pypgstac.db import PgstacDB
        from pypgstac.load import Loader, Methods

        with PgstacDB(dsn=self.dsn(database)) as db:
            loader = Loader(db)
            loader.load_collections(iter([dict(c) for c in collections]), Methods.insert)
            source = items if isinstance(items, str) else iter([dict(i) for i in items])
            loader.load_items(source, Methods.insert)

    def remove(self) -> None:
        """Delete the cluster's directory (the server must be stopped)."""
        data = Path(self.data_dir)
        target = data.parent if data.parent.name.startswith("earthlab-pgstac-") else data
        shutil.rmtree(target, ignore_errors=True)


def served_documents(files: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Collections and items of a centre, from the files ``prepare_catalogue`` wrote.

    A collection the items name without a document of its own gets a minimal one (its
    extent from its items), as ``rustac serve --create-collections`` does.

    Returns
    -------
    tuple of (list of dict, list of dict)
        Collections, items.
    """
    collections: dict[str, dict[str, Any]] = {}
    items: list[dict[str, Any]] = []
    for path in files:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        if document.get("type") == "FeatureCollection":
            items.extend(document["features"])
        elif document.get("type") == "Collection":
            collections[document["id"]] = document
    for cid in sorted({str(i.get("collection")) for i in items} - set(collections)):
        mine = [i for i in items if i.get("collection") == cid]
        collections[cid] = _minimal_collection(cid, mine)
    return list(collections.values()), items


def _minimal_collection(cid: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    boxes = [i["bbox"] for i in items if i.get("bbox")]
    bbox = [-180.0, -90.0, 180.0, 90.0]
    if boxes:
        lows = [min(b[k] for b in boxes) for k in (0, 1)]
        bbox = [*lows, *(max(b[k] for b in boxes) for k in (2, 3))]
    times = sorted(
        str(t)
        for i in items
        for t in (
            i["properties"].get("datetime"),
            i["properties"].get("start_datetime"),
            i["properties"].get("end_datetime"),
        )
        if t
    )
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": cid,
        "description": f"Collection {cid}",
        "license": "other",
        "links": [],
        "extent": {
            "spatial": {"bbox": [bbox]},
            "temporal": {"interval": [[times[0], times[-1]] if times else [None, None]]},
        },
    }


def api_environment(cluster: PgstacCluster, database: str) -> dict[str, str]:
    """Settings stac-fastapi-pgstac reads: its title, connection (``PG*`` variables)."""
    return {
        "STAC_FASTAPI_TITLE": f"pgstac: {database}",
        "STAC_FASTAPI_DESCRIPTION": "A centre's catalogue in pgstac (earthlab local lab)",
        "STAC_FASTAPI_LANDING_ID": database,
        "PGUSER": SUPERUSER,  # PGPASSWORD comes from the process's environment (client_env)
        "PGHOST": cluster.ip,
        "PGPORT": str(cluster.port),
        "PGDATABASE": database,
    }


def api_command(
    python: str, cluster: PgstacCluster, database: str, ip: str, port: int
) -> list[str]:
    """The command serving one centre's database as a STAC API at ``http://ip:port/``."""
    settings = json.dumps(api_environment(cluster, database))
    return [
        python,
        "-m",
        "lab_server.deploy._pgstac",
        "api",
        "--host",
        ip,
        "--port",
        str(port),
        "--settings",
        settings,
    ]


def _serve_api(argv: list[str]) -> None:
    """Run stac-fastapi-pgstac with uvicorn (the ``api`` sub-command of this module)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lab_server.deploy._pgstac api")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--settings", required=True, help="JSON of PG* variables")
    args = parser.parse_args(argv)
    os.environ.update(json.loads(args.settings))
    import uvicorn
    from stac_fastapi.pgstac.app import create_app

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    if sys.argv[1:2] != ["api"]:
        raise SystemExit("usage: python -m lab_server.deploy._pgstac api --host H --port P ...")
    with contextlib.suppress(KeyboardInterrupt):
        _serve_api(sys.argv[2:])
