"""Users isolated by the operating system on one machine (``earthlab hub up`` as root).

The way The Littlest JupyterHub does it: the lab runs as root, and each hub user gets a Unix
account of their own, ``earthlab-<name>``, created on first use (first server, or first
cluster), whose home ``<run>/users/<name>`` is theirs alone (mode 0700). Their single-user
server, kernels, Dask schedulers and workers run as that account; the hub and the gateways
keep root to start them. What users run comes from the *user environment* ``<run>/userenv``:
a virtual environment of a Python that others may execute (never one inside root's home, which
others cannot enter), that sees the lab's packages through a ``.pth`` file.

The services that need no privilege (STAC front, restricted-data services, catalogue servers,
the test identity provider) run as the service account :data:`SERVICE_ACCOUNT`, from the same
user environment, in ``<run>/services``.

Permissions of the run directory: the directory and ``users/``, ``gateways/`` may be traversed
(0711: no listing); ``share/`` (the kernelspec), ``userenv/`` and the users' centres file are
readable; ``logs/``, ``hub/`` and the state are root's only; ``secrets/`` and ``stac/`` are
root's, readable by the service account's group where it needs them (its own secrets, the
served catalogues); ``restricted/`` (the quota ledgers) and ``services/`` are the service
account's. Restricted files are readable by root and the service account's group only.
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
    "SERVICE_ACCOUNT",
    "USER_PREFIX",
    "check_homes_reachable",
    "check_private",
    "check_services_reach",
    "close_ports",
    "ensure_account",
    "ensure_service_account",
    "give_to_services",
    "make_user_env",
    "open_ports",
    "resolve_isolation",
    "restrict_run_dir",
    "system_user",
    "unreachable_ancestor",
]

USER_PREFIX = "earthlab-"
"""Prefix of the Unix accounts of hub users."""
SERVICE_ACCOUNT = "earthlab"
"""The Unix account of the lab's services that need no privilege (STAC front, restricted-data
services, catalogue servers, the test identity provider). Never a hub user's: theirs are
``earthlab-<name>``."""
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


def resolve_isolation(isolate_users: bool | None) -> bool:
    """Whether the lab isolates its users: always as root, never otherwise.

    Parameters
    ----------
    isolate_users
        ``None``: decide from the privilege this process has.

    Raises
    ------
    ConfigurationError
        ``True`` without root (starting processes as other accounts takes root), or ``False``
        as root (every user's server would run as root: a root shell for everyone).
    """
    root = os.geteuid() == 0
    if isolate_users is None:
        return root
    if isolate_users and not root:
        raise ConfigurationError(
            "isolating users needs root: the hub and the gateways start each user's processes "
            "as the user's own Unix account; run `earthlab hub up` as root for a lab of "
            "several people, or as yourself for a single-person lab"
        )
    if not isolate_users and root:
        raise ConfigurationError(
            "a lab started as root isolates its users (otherwise every user's server, kernel "
            "and Dask worker would run as root); run `earthlab hub up` as an ordinary account "
            "for a single-person lab"
        )
    return isolate_users


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


def check_services_reach(path: Path, what: str) -> None:
    """Refuse files the lab's services, running as :data:`SERVICE_ACCOUNT`, cannot reach.

    Raises
    ------
    ConfigurationError
        If a directory of ``path`` may not be traversed by others; the message names it.
    """
    blocked = unreachable_ancestor(path)
    if blocked is not None:
        raise ConfigurationError(
            f"the lab's services (Unix account {SERVICE_ACCOUNT}) cannot reach {what} in "
            f"{path}: {blocked} is closed to others (mode "
            f"{stat.S_IMODE(os.stat(blocked).st_mode):o}); `chmod o+x {blocked}` (traversal "
            "only: nothing becomes listable), or keep the files elsewhere"
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


def ensure_service_account() -> pwd.struct_passwd:
    """Create the lab's service account :data:`SERVICE_ACCOUNT` if missing; return it.

    A system account with a group of its own, no login shell, no home of its own (the lab
    gives its processes ``<run>/services``). It can never be a hub user's account: those are
    ``earthlab-<name>``.
    """
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        done = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "earthlab services (STAC front, restricted data, catalogues)",
                SERVICE_ACCOUNT,
            ],
            capture_output=True,
            text=True,
        )
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        raise ConfigurationError(
            f"could not create the lab's service account {SERVICE_ACCOUNT}: "
            f"{done.stderr.strip() or done.returncode}"
        ) from None


def give_to_services(root: Path, what: str) -> None:
    """Let the service account read ``root`` (restricted files), still closed to everyone else.

    Files that root owns (the operator's, or the sample the lab generated) get the service
    account's group, with group read (and traverse for directories); other bits are kept, so
    they stay unreadable to users. Files of another account are that account's to share.

    Raises
    ------
    ConfigurationError
        If ``root`` is not root's and the service account cannot read it; the message gives the
        command that shares it.
    """
    group = grp.getgrnam(SERVICE_ACCOUNT).gr_gid
    owner = os.stat(root).st_uid
    if owner != 0:
        if os.stat(root).st_gid == group and os.stat(root).st_mode & stat.S_IRGRP:
            return
        raise ConfigurationError(
            f"{what} in {root} belong to {pwd.getpwuid(owner).pw_name}, and the lab's "
            f"restricted-data service runs as {SERVICE_ACCOUNT}: share them with its group "
            f"(`chgrp -R {SERVICE_ACCOUNT} {root} && chmod -R g+rX,o-rwx {root}`), then start "
            "the lab again"
        )
    for path in [root, *root.rglob("*")]:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != 0:
            continue
        os.chown(path, -1, group, follow_symlinks=False)
        extra = stat.S_IRGRP | (stat.S_IXGRP if stat.S_ISDIR(info.st_mode) else 0)
        os.chmod(path, stat.S_IMODE(info.st_mode) | extra)


def restrict_run_dir(run_path: Path, service_secrets: list[str]) -> None:
    """Set the run directory's permissions for isolated users (see the module docstring).

    Parameters
    ----------
    run_path
        The run directory.
    service_secrets
        Names of the secrets the services running as :data:`SERVICE_ACCOUNT` read (the
        restricted-data services' hub tokens and signing keys): readable by its group.
    """
    check_homes_reachable(run_path)
    service = ensure_service_account()
    modes = {
        "": 0o711,
        "users": 0o711,
        "gateways": 0o711,
        "share": 0o755,
        "secrets": 0o710,
        "logs": 0o700,
        "hub": 0o700,
        "stac": 0o750,
        "restricted": 0o700,
        "services": 0o700,
        "processes": 0o700,
    }
    for name in ("services", "processes"):
        (run_path / name).mkdir(exist_ok=True)
    for name, mode in modes.items():
        path = run_path / name
        if path.is_dir():
            os.chmod(path, mode)
    # what the services read: root's, their group's; what they write: theirs
    for name in ("secrets", "stac"):
        os.chown(run_path / name, 0, service.pw_gid)
    for path in (run_path / "stac").rglob("*"):
        os.chown(path, 0, service.pw_gid, follow_symlinks=False)
        os.chmod(path, 0o750 if path.is_dir() else 0o640)
    for name in service_secrets:
        path = run_path / "secrets" / name
        os.chown(path, 0, service.pw_gid)
        os.chmod(path, 0o640)
    for name in ("restricted", "services", "processes"):
        for path in [run_path / name, *(run_path / name).rglob("*")]:
            os.chown(path, service.pw_uid, service.pw_gid, follow_symlinks=False)
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
            "a lab started as root closes its private ports to users with iptables, which is "
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
