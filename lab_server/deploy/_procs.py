"""Start, watch and stop the lab's server processes, by process id.

Each server runs in its own session (so that it outlives ``earthlab hub up`` and can be stopped
as a group), writes to its own log, and is recorded with its start time so that a recycled
process id is never signalled by mistake.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psutil
import requests

from lab import ConfigurationError, RetryPolicy, http_session

__all__ = [
    "Proc",
    "end_processes",
    "ensure_alive",
    "ephemeral_ports",
    "free_port",
    "http_ready",
    "port_free",
    "run_processes",
    "start",
    "stop",
    "stop_all",
    "wait_until",
]


@dataclass(frozen=True)
class Proc:
    """A server process started by the lab."""

    name: str
    """What it is (``proxy``, ``hub``, ``gateway-theia``)."""
    pid: int
    """Process id (also its process-group id)."""
    create_time: float
    """Start time as the OS reports it; guards against recycled ids."""
    log: str
    """Its log file."""
    url: str = ""
    """Where it answers, for ``hub status``."""
    command: tuple[str, ...] = ()
    """The command line."""

    def process(self) -> psutil.Process | None:
        """Return the live process, or None if it exited (or the id was recycled)."""
        try:
            p = psutil.Process(self.pid)
            if abs(p.create_time() - self.create_time) > 1.0 or p.status() == "zombie":
                return None
            return p
        except psutil.Error:
            return None

    def alive(self) -> bool:
        """Say whether the process still runs."""
        return self.process() is not None

    def to_dict(self) -> dict[str, object]:
        """Serialise (for ``state.json``)."""
        return asdict(self)


def start(
    name: str,
    command: Sequence[str],
    log: Path,
    env: Mapping[str, str],
    cwd: Path,
    url: str = "",
    account: str | None = None,
) -> Proc:
    """Start a server in its own session, output appended to ``log``.

    Parameters
    ----------
    account
        Run the server as this Unix account and its own group only (no supplementary
        groups); needs root. The log is opened here, by the caller.

    Returns
    -------
    Proc
        The started process.
    """
    as_account: dict[str, Any] = (
        {"user": account, "group": account, "extra_groups": []} if account else {}
    )
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            **as_account,
        )
    try:
        created = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        created = time.time()
    return Proc(name, popen.pid, created, str(log), url, tuple(command))


def stop(proc: Proc, timeout: float = 15.0) -> bool:
    """Stop a server and every process it started: SIGTERM, then SIGKILL after ``timeout``.

    The server gets the chance to clean up (the hub stops single-user servers, a gateway stops
    its clusters); whatever of its descendants is left is then ended by id.

    Returns
    -------
    bool
        True if something was running.
    """
    main = proc.process()
    if main is None:
        return False
    try:
        family = [main, *main.children(recursive=True)]
    except psutil.Error:
        family = [main]
    with contextlib.suppress(psutil.Error):
        main.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs([main], timeout=timeout)
    with contextlib.suppress(psutil.Error):
        family += main.children(recursive=True) if main.is_running() else []
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    leftovers = [p for p in family[1:] if _running(p)]
    for p in leftovers:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, still = psutil.wait_procs(leftovers, timeout=5)
    for p in still:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs([main, *family], timeout=5)
    with contextlib.suppress(OSError):  # reap our own child, if it is one
        os.waitpid(proc.pid, os.WNOHANG)
    return True


def stop_all(procs: Sequence[Proc], timeout: float = 15.0) -> list[bool]:
    """:func:`stop` every server of ``procs`` at once; whether each was running.

    A server takes a second or two to exit after SIGTERM and be reaped: waiting for them
    together costs the slowest, not the sum. Only servers that need not stop in an order.
    """
    if not procs:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(procs)) as pool:
        return list(pool.map(lambda proc: stop(proc, timeout), procs))


def run_processes(run_dir: Path, marker: str) -> list[psutil.Process]:
    """Every process that belongs to the lab of ``run_dir``, whoever started it.

    A process belongs to the run when its environment has ``marker=<run_dir>`` (every server
    the lab starts, the single-user servers and their kernels, the gateways' schedulers and
    workers: the variable is passed down) or when its working directory is inside the run
    directory (users' homes, clusters' directories). This finds what a killed hub or gateway
    left behind, whose parent is gone. The calling process and its ancestors are never part
    of it (a shell sitting in the run directory).
    """
    run_dir = run_dir.resolve()
    me = psutil.Process()
    spared = {me.pid, *(p.pid for p in me.parents())}
    found = []
    for p in psutil.process_iter(["pid"]):
        if p.pid in spared or not _running(p):
            continue
        try:
            mine = p.environ().get(marker) == str(run_dir)
            if not mine:
                cwd = Path(p.cwd())
                mine = cwd == run_dir or run_dir in cwd.parents
        except (psutil.Error, OSError):
            continue
        if mine:
            found.append(p)
    return found


def end_processes(procs: Sequence[psutil.Process], timeout: float = 5.0) -> list[psutil.Process]:
    """End processes and their descendants: SIGTERM, then SIGKILL after ``timeout``.

    Returns
    -------
    list of psutil.Process
        Those that were running.
    """
    family: dict[int, psutil.Process] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            for q in [p, *p.children(recursive=True)]:
                family.setdefault(q.pid, q)
    running = [p for p in family.values() if _running(p)]
    for p in running:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(running, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=timeout)
    for p in running:  # reap our own children, if any
        with contextlib.suppress(OSError):
            os.waitpid(p.pid, os.WNOHANG)
    return running


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


LOWEST_PORT = 10000
"""The lowest port :func:`free_port` hands out."""

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Where Linux says which local ports outgoing connections take."""

_handed_out: set[int] = set()


def ephemeral_ports() -> range:
    """Return the ports the kernel gives to outgoing connections and to ``bind(0)``.

    Read from Linux's ``ip_local_port_range``; elsewhere (or unreadable) 32768-65535, which
    covers both Linux's default and the IANA dynamic range of BSD and macOS.
    """
    try:
        low, high = (int(v) for v in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 65535
    return range(low, high + 1)


def free_port(ip: str = "127.0.0.1") -> int:
    """Return a TCP port free at the moment on ``ip`` for a server the lab starts later.

    The port is chosen below the kernel's ephemeral range (:func:`ephemeral_ports`) and is never
    handed out twice by one process. A port from ``bind(0)`` would come from the range every
    outgoing connection takes its local port from: between the choice and the server's start,
    a client connection (a database pool, a readiness probe) could take it, and the server would
    die with "address already in use" after the lab reported it started.

    Raises
    ------
    ConfigurationError
        When no port below the ephemeral range is free (or the range starts below
        :data:`LOWEST_PORT`).
    """
    candidates = range(LOWEST_PORT, ephemeral_ports().start)
    for _ in range(200):
        if not candidates:
            break
        port = random.choice(candidates)
        if port not in _handed_out and port_free(port, ip):
            _handed_out.add(port)
            return port
    raise ConfigurationError(
        f"no free TCP port on {ip} between {LOWEST_PORT} and the kernel's ephemeral range "
        f"({ephemeral_ports().start}-{ephemeral_ports().stop - 1}); stop servers you do not "
        "need, or give the lab's ports explicitly."
    )


def port_free(port: int, ip: str = "127.0.0.1") -> bool:
    """Say whether a server can listen at ``port`` on ``ip`` now.

    The check binds the way the lab's servers do: with ``SO_REUSEADDR`` (tornado and node set
    it on POSIX), so that connections of a server just stopped, left in TIME_WAIT for a
    minute, do not make its port look taken; a socket listening there still does.
    """
    with socket.socket() as s:
        if os.name == "posix":  # on Windows SO_REUSEADDR would let it steal a listening port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
            s.listen(1)
        except OSError:
            return False
        return True


READY_TIMEOUT = 2.0
"""Seconds a readiness check waits for an answer."""


def http_ready(
    url: str,
    headers: Mapping[str, str] | None = None,
    accept: Callable[[requests.Response], bool] | None = None,
) -> Callable[[], bool]:
    """Return a check that ``url`` answers with a status below 500 (and that ``accept`` likes).

    Each check is one try through a lab HTTP session (``lab.http_session``: its User-Agent and
    request hooks) without retries: :func:`wait_until` polls it. ``accept(response)`` may
    raise ``ValueError`` (a body that is not the JSON expected): not ready.
    """

    def check() -> bool:
        retry = replace(RetryPolicy.from_config(), total=0)
        try:
            with http_session(retry=retry, timeout=READY_TIMEOUT) as session:
                response = session.get(url, headers=dict(headers or {}))
            if response.status_code >= 500:
                return False
            return accept is None or bool(accept(response))
        except (requests.RequestException, ValueError):  # no answer yet (lab.HttpError)
            return False

    return check


def wait_until(proc: Proc, ready: Callable[[], bool], timeout: float) -> None:
    """Wait until ``ready()`` is true, failing early if the process exits.

    Raises
    ------
    ConfigurationError
        If the process exits or is not ready in time; the message quotes its log.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not proc.alive():
            raise ConfigurationError(
                f"{proc.name} exited during start-up; its log {proc.log} ends with:\n"
                + _tail(proc.log)
            )
        time.sleep(0.2)
    raise ConfigurationError(
        f"{proc.name} was not ready after {timeout:.0f} s; its log {proc.log} ends with:\n"
        + _tail(proc.log)
    )


def ensure_alive(procs: Sequence[Proc]) -> None:
    """Check that every process started is still running once all are ready.

    A server ready early can die while later ones start (a port taken, a crash on its first
    request); the lab then says so rather than reporting a lab that is up.

    Raises
    ------
    ConfigurationError
        Naming the first process that exited, with the end of its log.
    """
    for proc in procs:
        if not proc.alive():
            raise ConfigurationError(
                f"{proc.name} exited after it was ready; its log {proc.log} ends with:\n"
                + _tail(proc.log)
            )


def _tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
