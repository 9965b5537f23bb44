"""Users isolated by the operating system on one machine (``earthlab hub up --isolate-users``).

The way The Littlest JupyterHub does it: the lab runs as root, and each hub user gets a Unix
account of their own, ``earthlab-<name>``, created on first use (first server, or first
cluster), whose home ``<run>/users/<name>`` is theirs alone (mode 0700). Their single-user
server, kernels, Dask schedulers and workers run as that account; the hub and the gateways
keep root to start them. What users run comes from the *user environment* ``<run>/userenv``:
a virtual environment of a Python that others may execute (never one inside root's home, which
others cannot enter), that sees the lab's packages through a ``.pth`` file.

Permissions of the run directory: the directory and ``users/``, ``gateways/`` may be traversed
(0711: no listing); ``share/`` (the kernelspec), ``userenv/`` and the users' centres file are
readable; ``secrets/``, ``logs/``, ``hub/``, ``stac/``, ``restricted/`` and the state are
root's only.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

from lab import ConfigurationError

__all__ = [
    "USER_PREFIX",
    "check_homes_reachable",
    "check_private",
    "close_ports",
    "ensure_account",
    "make_user_env",
    "open_ports",
    "require_root",
    "restrict_run_dir",
    "system_user",
    "unreachable_ancestor",
]

USER_PREFIX = "earthlab-"
"""Prefix of the Unix accounts of hub users."""
USERS_GROUP = "earthlab-users"
"""The Unix group of every isolated user's account (the firewall rules name it)."""
_PLAIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,22}$")


def system_user(hub_name: str) -> str:
    """The Unix account of a hub user: ``earthlab-<name>``, or a hashed form for other names.

    Hub names that are not short lower-case words (e-mail addresses from an identity provider,
    long names) get ``earthlab-<first letters>-<8 hex digits of their SHA-256>``: valid Unix
    names of at most 32 characters, distinct for distinct hub names.
    """
    if _PLAIN.match(hub_name):
        return USER_PREFIX + hub_name
    safe = re.sub(r"[^a-z0-9]", "", hub_name.lower())[:12] or "user"
    digest = hashlib.sha256(hub_name.encode("utf-8")).hexdigest()[:8]
    return f"{USER_PREFIX}{safe}-{digest}"


def require_root() -> None:
    """Refuse to isolate users without the privilege it takes (starting processes as them)."""
    if os.geteuid() != 0:
        raise ConfigurationError(
            "--isolate-users needs root: the hub and the gateways start each user's processes "
            "as the user's own Unix account; run `earthlab hub up` as root, or without "
            "--isolate-users for a single-person lab"
        )


def unreachable_ancestor(path: Path) -> Path | None:
    """The first directory of ``path`` (itself included) that others may not traverse, if any."""
    for directory in [*reversed(path.resolve().parents), path.resolve()]:
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return directory
    return None


def _must_reach(path: Path, what: str) -> None:
    blocked = unreachable_ancestor(path)
    if blocked is not None:
        raise ConfigurationError(
            f"users cannot reach {what} {path}: {blocked} is closed to others (mode "
            f"{stat.S_IMODE(os.stat(blocked).st_mode):o}); give a --run-dir and an environment "
            f"under directories others may traverse, or `chmod o+x {blocked}`"
        )


def _shared_python() -> str:
    """A Python of this environment's version that users may run (not inside root's home)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable)]
    candidates += [f"{prefix}/bin/{version}" for prefix in ("/usr/local", "/usr")]
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file() and unreachable_ancestor(path.parent) is None:
            return str(path)
    raise ConfigurationError(
        f"no {version} that users may run: this environment's interpreter "
        f"{os.path.realpath(sys.executable)} is under a directory closed to others, and "
        f"neither /usr/local/bin/{version} nor /usr/bin/{version} exists; install Debian's "
        f"{version} (apt-get install {version} {version}-venv) or a Python outside root's home"
    )


def make_user_env(run_path: Path) -> Path:
    """Create ``<run>/userenv``: a venv users may run that sees this environment's packages.

    Returns
    -------
    pathlib.Path
        Its interpreter.

    Raises
    ------
    ConfigurationError
        If no suitable Python exists, or this environment's packages are closed to others.
    """
    purelib = Path(sysconfig.get_paths()["purelib"])
    _must_reach(purelib, "the lab's packages in")
    for source in _editable_sources():
        _must_reach(source, "the lab's sources in")
    env = run_path / "userenv"
    if env.exists():
        shutil.rmtree(env)
    subprocess.run(
        [_shared_python(), "-m", "venv", "--without-pip", str(env)], check=True, capture_output=True
    )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = env / "lib" / version / "site-packages"
    # addsitedir, not a plain path: the lab's own .pth files (editable installs) are read too
    (site / "earthlab-environment.pth").write_text(
        f"import site; site.addsitedir({str(purelib)!r})\n", encoding="utf-8"
    )
    _copy_console_scripts(Path(sys.executable).parent, env / "bin")
    for path in [env, *env.rglob("*")]:
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode):
            os.chmod(
                path,
                stat.S_IMODE(mode)
                | stat.S_IROTH
                | (stat.S_IXOTH if path.is_dir() or mode & stat.S_IXUSR else 0),
            )
    return env / "bin" / "python"


def _copy_console_scripts(lab_bin: Path, user_bin: Path) -> list[str]:
    """Give the user environment the lab environment's commands (``earthlab``, ``rio``, ``dask``).

    Each Python script of ``lab_bin`` is copied with its ``#!`` line pointing at the user
    environment's interpreter (the original names one users may not run); programs that are
    not Python scripts are left out. Returns the names copied.
    """
    python = user_bin / "python"
    copied = []
    for script in sorted(lab_bin.iterdir()):
        target = user_bin / script.name
        if target.exists() or target.is_symlink() or not script.is_file():
            continue
        with open(script, "rb") as f:
            first = f.readline()
        if not first.startswith(b"#!") or b"python" not in first:
            continue
        body = script.read_bytes()[len(first) :]
        target.write_bytes(b"#!" + str(python).encode() + b"\n" + body)
        os.chmod(target, 0o755)
        copied.append(script.name)
    return copied


def _editable_sources() -> list[Path]:
    """Where the lab's packages live when installed in editable mode (the repository)."""
    import lab

    return [Path(lab.__file__).resolve().parent.parent]


def check_homes_reachable(run_path: Path) -> None:
    """Refuse a run directory under a directory others may not traverse (homes unreachable).

    Raises
    ------
    ConfigurationError
        Naming the closed directory and how to fix it.
    """
    existing = run_path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    _must_reach(existing if existing != run_path else run_path.parent, "their homes under")


def check_private(root: Path, what: str) -> None:
    """Refuse files that other users could read directly (restricted data, bypassing quotas).

    Raises
    ------
    ConfigurationError
        If ``root`` and every directory above it may be traversed by others.
    """
    if unreachable_ancestor(root) is None:
        raise ConfigurationError(
            f"{what} in {root} can be read by every user of the machine, bypassing the "
            f"restricted-data service: close it to others (`chmod o-rwx {root}`), then start "
            "the lab again"
        )


def restrict_run_dir(run_path: Path) -> None:
    """Set the run directory's permissions for isolated users (see the module docstring)."""
    check_homes_reachable(run_path)
    modes = {
        "": 0o711,
        "users": 0o711,
        "gateways": 0o711,
        "share": 0o755,
        "secrets": 0o700,
        "logs": 0o700,
        "hub": 0o700,
        "stac": 0o700,
        "restricted": 0o700,
    }
    for name, mode in modes.items():
        path = run_path / name
        if path.is_dir():
            os.chmod(path, mode)
    for path in (run_path / "share").rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    for path in (run_path / "gateways").iterdir():
        if path.is_dir():
            os.chmod(path, 0o711)
    for name in ("state.json",):
        path = run_path / name
        if path.exists():
            os.chmod(path, 0o600)


def ensure_account(hub_name: str, homes: Path) -> pwd.struct_passwd:
    """Create the Unix account of a hub user and its private home if missing; return it.

    The home is ``homes/<hub name>``, owned by the account, mode 0700. Safe to call from the
    hub and the gateways at once (an account created meanwhile is taken as it is).
    """
    name = system_user(hub_name)
    home = homes / hub_name
    _ensure_users_group()
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        done = subprocess.run(
            [
                "useradd",
                "--groups",
                USERS_GROUP,
                "--no-create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/bin/bash",
                "--user-group",
                "--comment",
                f"earthlab hub user {hub_name}",
                name,
            ],
            capture_output=True,
            text=True,
        )
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            raise ConfigurationError(
                f"could not create the Unix account {name} of hub user {hub_name}: "
                f"{done.stderr.strip() or done.returncode}"
            ) from None
    if name not in grp.getgrnam(USERS_GROUP).gr_mem:
        subprocess.run(["usermod", "--append", "--groups", USERS_GROUP, name], check=True)
    if Path(account.pw_dir) != home and not _home_of_a_running_lab(Path(account.pw_dir)):
        # left by a lab that is stopped or gone (yesterday's workshop in another run
        # directory): the account, same uid, moves to this lab's home
        subprocess.run(["usermod", "--home", str(home), name], check=True, capture_output=True)
        account = pwd.getpwnam(name)
    if Path(account.pw_dir) != home:
        raise ConfigurationError(
            f"the Unix account {name} exists with home {account.pw_dir}, not {home}: another "
            f"lab or person uses it; remove it (userdel {name}) or run one isolated lab at a time"
        )
    home.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(home)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ConfigurationError(f"{home} is not a directory: remove it")
    os.chown(home, account.pw_uid, account.pw_gid, follow_symlinks=False)
    os.chmod(home, 0o700)
    return account


def _ensure_users_group() -> None:
    try:
        grp.getgrnam(USERS_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--force", USERS_GROUP], check=True, capture_output=True)


def _iptables(*args: str) -> subprocess.CompletedProcess:
    iptables = shutil.which("iptables")
    if iptables is None:
        raise ConfigurationError(
            "--isolate-users closes the lab's private ports to users with iptables, which is "
            "missing: apt-get install iptables (make system-packages does it)"
        )
    return subprocess.run([iptables, *args], capture_output=True, text=True)


def _rule(port: int, run_path: Path) -> list[str]:
    return [
        "OUTPUT",
        "-o",
        "lo",
        "-p",
        "tcp",
        "--dport",
        str(port),
        "-m",
        "owner",
        "--gid-owner",
        USERS_GROUP,
        "--suppl-groups",
        "-m",
        "comment",
        "--comment",
        f"earthlab {run_path}",
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ]


def close_ports(run_path: Path, ports: list[int]) -> None:
    """Refuse connections from isolated users' processes to the lab's private ``ports``.

    Loopback ports have no owner: a private server (a restricted centre's catalogue, the
    pgstac database) would answer any process of the machine. The kernel's firewall rejects
    connections whose process belongs to :data:`USERS_GROUP`; the lab's own servers (root)
    still connect. :func:`open_ports` removes the rules (``hub down``).

    Raises
    ------
    ConfigurationError
        If iptables is missing or refuses the rule (no firewall in this kernel).
    """
    _ensure_users_group()
    for port in ports:
        done = _iptables("-I", *_rule(port, run_path))
        if done.returncode != 0:
            open_ports(run_path)
            raise ConfigurationError(
                f"could not close port {port} to users with iptables: {done.stderr.strip()}; "
                "isolated users need a kernel firewall (netfilter) to keep private ports private"
            )


def open_ports(run_path: Path) -> int:
    """Remove the rules :func:`close_ports` added for this run directory; return how many."""
    if shutil.which("iptables") is None:
        return 0
    listed = _iptables("-S", "OUTPUT").stdout.splitlines()
    removed = 0
    for line in listed:
        words = shlex.split(line)
        if words[:1] == ["-A"] and f"earthlab {run_path}" in words:
            _iptables("-D", *words[1:])
            removed += 1
    return removed


def _home_of_a_running_lab(home: Path) -> bool:
    """True if ``home`` is ``<run>/users/<name>`` of a lab whose servers still run.

    A home that is not a lab's (created by someone else) counts as in use.
    """
    from lab_server.deploy._procs import Proc

    if not home.exists():
        return False
    state = home.parent.parent / "state.json"
    if home.parent.name != "users" or not state.is_file():
        return True
    try:
        procs = [Proc(**p) for p in json.loads(state.read_text(encoding="utf-8"))["processes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return any(p.alive() for p in procs)
