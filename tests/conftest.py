"""Shared fixtures: the reference data in tests/data/reference and the sample federation.

The sample federation is generated once per test session into a temporary directory
(about 30 s). To iterate faster locally, point ``EARTHLAB_TEST_SAMPLE`` at a directory made
by ``earthlab sample --out DIR`` and it is reused as is.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# Session-wide fixtures defined next to their helpers: ``pgstac_federation`` (the sample
# federation served from pgstac, tests/pgstac_server.py) and ``postgres`` (a bare PostgreSQL
# server for the job database, tests/postgres_server.py).
pytest_plugins = ["pgstac_server", "postgres_server"]

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "reference"
ROOT_TEMP_PREFIX = "earthlab-pytest-"


def pytest_configure(config: pytest.Config) -> None:
    """As root, temporary directories of this session in ``/tmp/earthlab-pytest-<pid>``.

    A lab started as root isolates its users and runs its services as an account of their
    own: the directories above a lab's run directory and the sample federation must let them
    pass (``hub_fixtures.reachable_by_users``). pytest's shared ``/tmp/pytest-of-root`` is set
    back to 0700 by every other pytest session that starts meanwhile (a developer's second
    run), which would close a running lab to its users; a directory of this session's own is
    not. Those of ended sessions stay for inspection until the next session starts.
    """
    if os.geteuid() != 0 or config.option.basetemp is not None:
        return
    import shutil
    import tempfile

    import psutil

    base = Path(tempfile.gettempdir())
    for old in base.glob(ROOT_TEMP_PREFIX + "*"):
        pid = old.name[len(ROOT_TEMP_PREFIX) :]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    config.option.basetemp = str(base / f"{ROOT_TEMP_PREFIX}{os.getpid()}")


@pytest.fixture(autouse=True)
def _restore_dask_scheduler_config():
    """Undo a global ``scheduler = "dask.distributed"`` that a test's clients left behind.

    distributed's ``Client(set_as_default=True)`` sets the scheduler in dask's global config
    and restores the *previous* value on close: closing two default clients in creation order
    leaves ``dask.distributed`` with no client, which breaks every later ``.compute()``.
    """
    import dask

    saved = {key: dask.config.config.get(key, _MISSING) for key in ("scheduler", "shuffle")}
    yield
    for key, value in saved.items():
        if value is _MISSING:
            dask.config.config.pop(key, None)
        else:
            dask.config.config[key] = value


_MISSING = object()


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The reference data (real provider files) kept in the repository, see its SOURCES.md."""
    return REFERENCE


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the embedded sample federation (generated once per session)."""
    reuse = os.environ.get("EARTHLAB_TEST_SAMPLE")
    if reuse:
        path = Path(reuse)
        if not (path / "centres.yaml").is_file():
            import lab

            lab.make_sample(path)
        return path
    import lab

    out = tmp_path_factory.mktemp("sample")
    lab.make_sample(out)
    # as root a lab isolates its users and runs its services as an account of their own,
    # which must reach the served files (`hub up` names the `chmod o+x` otherwise)
    from hub_fixtures import reachable_by_users

    reachable_by_users(out / "centres.yaml")
    return out


@pytest.fixture(scope="session")
def sample_truth(sample_dir: Path) -> dict:
    """The generator's own record of what it wrote (``truth/generator.json``)."""
    return json.loads((sample_dir / "truth" / "generator.json").read_text())


@pytest.fixture()
def sample_centres_env(sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``EARTHLAB_CENTRES`` at the sample federation's centres file."""
    centres_file = sample_dir / "centres.yaml"
    monkeypatch.setenv("EARTHLAB_CENTRES", str(centres_file))
    return centres_file


# --- Network guard: tests reach loopback only ---------------------------------------------------
# Every in-process connection goes through socket.socket.connect / connect_ex (ssl, asyncio,
# tornado, urllib3 and boto3 included); the guard refuses any INET/INET6 address outside
# 127.0.0.0/8 and ::1 before anything leaves the machine. AF_UNIX and other families pass.
# A host name is resolved first (what connect would do) and must resolve to loopback only.
# The error is a ConnectionRefusedError, so code under test sees a refused connection, as it
# would offline; its message names the address. Subprocesses are not covered.


class NetworkBlockedError(ConnectionRefusedError):
    """A test tried to connect outside loopback."""


def _loopback_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def refuse_outside_loopback(family: int, address: object) -> None:
    """Raise :class:`NetworkBlockedError` unless ``address`` is on loopback (or not INET)."""
    if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return
    host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
    if _loopback_address(host):
        return
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        resolved: list[str] = []
    except ValueError:  # a name: it may only stand for loopback addresses
        resolved = sorted({info[4][0] for info in socket.getaddrinfo(host, address[1])})
        if resolved and all(_loopback_address(a) for a in resolved):
            return
    shown = f"{host}:{address[1]}" + (f" ({', '.join(resolved)})" if resolved else "")
    raise NetworkBlockedError(
        errno.ECONNREFUSED,
        f"connection to {shown} refused: tests may only reach loopback (127.0.0.0/8, ::1) "
        "or AF_UNIX sockets (guard in tests/conftest.py)",
    )


@pytest.fixture(scope="session", autouse=True)
def _network_only_to_loopback() -> Iterator[None]:
    """Refuse every connection outside loopback for the whole session."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    create_connection = socket.create_connection

    def guarded_connect(self: socket.socket, address: object) -> None:
        refuse_outside_loopback(self.family, address)
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        refuse_outside_loopback(self.family, address)
        return connect_ex(self, address)

    def guarded_create_connection(address: tuple, *args: object, **kwargs: object):
        host = address[0]
        family = socket.AF_INET6 if ":" in str(host) else socket.AF_INET
        refuse_outside_loopback(family, address)
        return create_connection(address, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        patch.setattr(socket, "create_connection", guarded_create_connection)
        yield
