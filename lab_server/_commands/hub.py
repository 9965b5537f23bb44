"""``earthlab hub up|down|status``: the whole lab on this machine, on loopback."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from pathlib import Path
from typing import Any

RUN_DIR_HELP = (
    "where the lab keeps its state, secrets and logs (default for `up`: $EARTHLAB_HUB_DIR or "
    "~/.local/state/earthlab/hub; for `down` and `status`: the run directory of the last "
    "`earthlab hub up`, else that default)"
)

CURRENT_HUB = "current-hub"
"""File in ``$XDG_STATE_HOME/earthlab/`` naming the run directory of the last ``hub up``."""


def register(subparsers: Any) -> None:
    """Add the ``hub`` command group."""
    parser = subparsers.add_parser(
        "hub",
        help="start, stop or inspect the local lab (JupyterHub + one Dask Gateway per centre)",
        description="Run the Earth Analytics Lab on this machine: JupyterHub, its proxy and one "
        "Dask Gateway per data centre, all on 127.0.0.1. See docs/deployment.md. "
        "--run-dir may come before or after the action. `hub up` records its run directory "
        "(in $XDG_STATE_HOME/earthlab/current-hub) so that `hub status` and `hub down` find "
        "the lab without --run-dir; `hub down` forgets it.",
    )
    parser.add_argument("--run-dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    actions = parser.add_subparsers(dest="hub_action", metavar="ACTION")
    start = actions.add_parser(
        "up",
        help="start the lab and print its URL and how to log in",
        description="Start the lab and print its URL, how to log in and the command that "
        "stops it. Exit status: 0 when it runs, 1 if it could not start (everything started "
        "is stopped again).",
    )
    start.add_argument(
        "--centres",
        dest="centres_file",
        help="centres file; each centre gets a gateway (default: $EARTHLAB_CENTRES or the sample)",
    )
    start.add_argument(
        "--port", type=int, default=8000, help="public port (default 8000; 0 for any free port)"
    )
    start.add_argument(
        "--catalogue",
        choices=("memory", "pgstac"),
        default="memory",
        help="where the centres' catalogues live: memory (rustac serve, the default) or pgstac "
        "(PostgreSQL + PostGIS + pgstac served by stac-fastapi-pgstac, as data centres run "
        "them; needs the Debian packages postgresql and postgresql-15-postgis-3)",
    )
    start.add_argument(
        "--auth",
        choices=("password", "oidc"),
        default="password",
        help="how users log in: password (the default) or oidc (single sign-on with OpenID "
        "Connect; groups from the provider's claims, mapped by auth.oidc of lab.yaml)",
    )
    start.add_argument(
        "--oidc-issuer",
        metavar="URL",
        help="with --auth oidc: the identity provider's issuer URL (the hub's client secret is "
        "read from $EARTHLAB_OIDC_CLIENT_SECRET, or the variable auth.oidc.client_secret_env "
        "names)",
    )
    start.add_argument(
        "--oidc-users",
        metavar="FILE",
        help="with --auth oidc: run a test identity provider on loopback seeded with FILE's "
        "users (tests and rehearsals only: anyone reaching it may sign in as a seeded user)",
    )
    start.add_argument(
        "--jobs-database",
        metavar="URL",
        help="keep the processing service's jobs and subscriptions in this PostgreSQL database "
        "(postgresql://user@host:port/database; the password in "
        "$EARTHLAB_JOBS_DATABASE_PASSWORD, never in the URL) instead of an SQLite file in the "
        "run directory",
    )
    start.add_argument(
        "--results-storage",
        metavar="CENTRE",
        help="keep users' processing results on the object storage of this centre (its "
        "storage in the centres file, under results/; credentials from the variables it "
        "names) instead of the run directory; users read them through the service",
    )
    start.set_defaults(func=run_up)
    stop = actions.add_parser(
        "down",
        help="stop everything `hub up` started",
        description="Stop every server `hub up` started, by process id. Exit status: 0 when "
        "the lab is stopped, including when nothing was running (said on stdout), so that "
        "`down` can be repeated; 2 if --run-dir is not a lab's run directory.",
    )
    stop.set_defaults(func=run_down)
    report = actions.add_parser(
        "status",
        help="say what runs",
        description="Print each server of the lab and whether it runs. Exit status: 0 when "
        "every server runs, 3 when some or all are stopped (no lab runs), 2 if --run-dir is "
        "not a lab's run directory.",
    )
    report.set_defaults(func=run_status)
    accounts = actions.add_parser(
        "accounts",
        help="create, list or remove the accounts of the lab's per-user passwords",
        description="Accounts of the lab's per-user passwords (the default login): a trainer "
        "creates a workshop's accounts in one command and hands out the passwords. Accounts "
        "can log in at once, also while the lab runs. Exit status 2 on a bad name or an "
        "existing account (nothing is written then).",
    )
    accounts.add_argument("accounts_action", choices=("add", "list", "remove"))
    accounts.add_argument("names", nargs="*", metavar="NAME", help="user names")
    accounts.add_argument(
        "--from",
        dest="names_file",
        metavar="FILE",
        help="add or remove the names of FILE (one per line, or a CSV whose first column is the "
        "name)",
    )
    accounts.add_argument(
        "--out",
        metavar="FILE",
        help="add: write `user,password` lines to FILE (mode 0600) instead of printing them",
    )
    accounts.add_argument(
        "--reset", action="store_true", help="add: give existing accounts a new password"
    )
    accounts.set_defaults(func=run_accounts)
    for action in (start, stop, report, accounts):
        # the same option after the action; SUPPRESS keeps the one given before it otherwise
        action.add_argument(
            "--run-dir",
            dest="action_run_dir",
            metavar="RUN_DIR",
            default=argparse.SUPPRESS,
            help=RUN_DIR_HELP,
        )
    proxy = actions.add_parser(
        "install-proxy",
        help="install configurable-http-proxy (JupyterHub's proxy) with npm for this user",
        description="Install the configurable-http-proxy version the lab pins, with npm, into "
        "the lab's npm prefix in your data directory (no global install). Needs node and npm.",
    )
    proxy.add_argument("--prefix", help="npm prefix (default: ~/.local/share/earthlab/proxy)")
    proxy.set_defaults(func=run_install_proxy)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def given_run_dir(args: argparse.Namespace) -> Path | None:
    """Return the ``--run-dir`` given before or after the action, if any.

    Raises
    ------
    CommandLineError
        If both are given and differ.
    """
    from lab.cli import CommandLineError

    before = getattr(args, "run_dir", None)
    after = getattr(args, "action_run_dir", None)
    paths = {Path(p).expanduser().resolve() for p in (before, after) if p}
    if len(paths) > 1:
        raise CommandLineError(f"--run-dir is given twice, as {before} and {after}: give it once")
    return paths.pop() if paths else None


def current_hub_file() -> Path:
    """Return the file recording the run directory of the last ``earthlab hub up``.

    Returns
    -------
    pathlib.Path
        ``$XDG_STATE_HOME/earthlab/current-hub`` (default ``~/.local/state/earthlab/...``).
    """
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "earthlab" / CURRENT_HUB


def recorded_run_dir() -> Path | None:
    """Return the run directory the last ``hub up`` recorded, if it still holds a lab."""
    try:
        text = current_hub_file().read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text:
        return None
    from lab_server.deploy import RunDir

    run = RunDir(text)
    return run.path if run.lab_json.is_file() else None


def _record(run_dir: Path) -> None:
    path = current_hub_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{run_dir}\n", encoding="utf-8")
    except OSError as exc:  # the lab runs; only the shortcut is lost
        print(
            f"earthlab: warning: could not record the run directory in {path} "
            f"({exc.strerror}); pass --run-dir {shlex.quote(str(run_dir))} to `hub down`",
            file=sys.stderr,
        )


def _forget(run_dir: Path) -> None:
    """Drop the record of the last ``hub up`` if it names ``run_dir`` or no lab any more."""
    path = current_hub_file()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return
    if not text or Path(text).expanduser().resolve() == run_dir or recorded_run_dir() is None:
        with contextlib.suppress(OSError):
            path.unlink()


def _lab_run_dir(args: argparse.Namespace) -> Path:
    """The run directory ``down`` and ``status`` act on.

    An explicit ``--run-dir`` must be a lab's run directory; otherwise the configured one
    (``hub_dir``, ``EARTHLAB_HUB_DIR``: a setting the user chose wins over a record), else the
    one the last ``hub up`` recorded, else the default.
    """
    from lab import config
    from lab.cli import CommandLineError
    from lab_server.deploy import RunDir, default_run_dir

    explicit = given_run_dir(args)
    if explicit is None:
        if config.get("hub_dir"):
            return default_run_dir()
        return recorded_run_dir() or default_run_dir()
    if not explicit.is_dir():
        raise CommandLineError(
            f"argument --run-dir: {explicit} does not exist: give the run directory "
            "`earthlab hub up` printed"
        )
    if not RunDir(explicit).lab_json.is_file():
        raise CommandLineError(
            f"argument --run-dir: {explicit} is not the run directory of a lab (no lab.json): "
            "give the run directory `earthlab hub up` printed"
        )
    return explicit


def stop_command(run_dir: Path) -> str:
    """Return the exact command that stops the lab of ``run_dir``."""
    from lab_server.deploy import default_run_dir

    if run_dir == default_run_dir():
        return "earthlab hub down"
    return f"earthlab hub down --run-dir {shlex.quote(str(run_dir))}"


def run_up(args: argparse.Namespace) -> int:
    """Start the lab."""
    from lab.cli import output_dir
    from lab_server.deploy import RunDir, up

    run_dir = given_run_dir(args)
    if run_dir is not None:
        output_dir(run_dir, "--run-dir")
    deployment = up(
        args.centres_file,
        run_dir=run_dir,
        port=args.port,
        catalogue=args.catalogue,
        auth=args.auth,
        oidc_issuer=args.oidc_issuer,
        oidc_users=args.oidc_users,
        jobs_database=args.jobs_database,
        results_storage=args.results_storage,
    )
    run = RunDir(deployment.run_dir)
    _record(run.path)
    print(f"The lab runs at {deployment.url}")
    if deployment.auth == "oidc":
        print(f"Log in through the OpenID provider {deployment.oidc_issuer}")
        if deployment.oidc_port is not None:
            print(
                "  (a test provider seeded from the users file: anyone reaching it may sign in "
                "as any of its users; use --oidc-issuer with a real provider for people)"
            )
    else:
        print(
            f"Log in as {deployment.owner} with the password in {run.secret_path('password')}\n"
            f"  (e.g. `cat {run.secret_path('password')}`); other people get their own "
            "account: `earthlab hub accounts add NAME...`"
        )
    print("Gateways (JupyterHub services):")
    for g in deployment.gateways:
        print(f"  {g.service:<28} {deployment.gateway_address(g.centre)}")
    print(f"Centres file of the notebooks: {deployment.centres_file}")
    if deployment.isolated:
        print(
            f"Users isolated: each runs as the Unix account earthlab-NAME, home "
            f"{run.path / 'users'}/NAME (0700), environment {deployment.user_python}"
        )
    else:
        print(
            f"A single-person lab: every server, kernel and Dask worker runs as your Unix "
            f"account, so restricted collections are granted to {deployment.owner} only; for "
            "a lab of several people (a workshop), start it as root: each user then gets their "
            "own Unix account"
        )
    if deployment.pgstac_port is not None:
        print(
            f"Catalogues: pgstac (PostgreSQL at {deployment.ip}:{deployment.pgstac_port}, "
            "one database and one stac-fastapi-pgstac per centre)"
        )
    if deployment.jobs_database:
        print(f"Processing jobs kept in PostgreSQL: {deployment.jobs_database}")
    if deployment.results_storage:
        print(f"Processing results kept in {deployment.results_storage['url']}")
    print(f"Run directory: {run.path}")
    print(f"Logs: {run.logs_dir}")
    print(f"Stop with: {stop_command(run.path)}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    """Stop the lab; exit 0 also when nothing was running (``down`` can be repeated)."""
    from lab_server.deploy import down

    run_dir = _lab_run_dir(args)
    stopped = down(run_dir) if run_dir.is_dir() else []
    _forget(run_dir)
    if stopped:
        print("stopped: " + ", ".join(stopped))
    else:
        print(f"nothing to stop: no lab runs from {run_dir}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print what runs; exit 0 only if every server of the lab runs, else 3."""
    from lab_server.deploy import status

    run_dir = _lab_run_dir(args)
    processes = status(run_dir)
    if not processes:
        print(f"no lab runs from {run_dir}")
        return 3
    for proc, alive in processes:
        state = "running" if alive else "stopped"
        print(f"{proc.name:<20} {state:<8} pid {proc.pid:<8} {proc.url}")
    return 0 if all(alive for _, alive in processes) else 3


def run_install_proxy(args: argparse.Namespace) -> int:
    """Install configurable-http-proxy and say where."""
    from lab_server.deploy import install_proxy

    path = install_proxy(Path(args.prefix) if args.prefix else None)
    print(f"installed configurable-http-proxy: {path}")
    return 0


def run_accounts(args: argparse.Namespace) -> int:
    """Add, list or remove accounts of the lab's per-user passwords."""
    from lab import ConfigurationError
    from lab.cli import CommandLineError
    from lab_server.deploy import RunDir
    from lab_server.deploy._accounts import (
        accounts_file,
        add_accounts,
        read_accounts,
        read_names,
        remove_accounts,
        write_password_sheet,
    )

    run = RunDir(_lab_run_dir(args))
    if not run.lab_json.is_file():
        raise CommandLineError(
            f"no lab in {run.path}: start one with `earthlab hub up`, or give its --run-dir"
        )
    names = list(args.names) + (read_names(args.names_file) if args.names_file else [])
    try:
        if args.accounts_action == "list":
            for name in sorted(read_accounts(accounts_file(run))):
                print(name)
            return 0
        if args.accounts_action == "remove":
            removed = remove_accounts(run, names)
            missing = [n for n in names if n not in removed]
            print(f"removed: {', '.join(removed) or 'none'}")
            if missing:
                print(f"no such account: {', '.join(missing)}", file=sys.stderr)
                return 1
            return 0
        passwords = add_accounts(run, names, reset=args.reset)
    except ConfigurationError as error:
        raise CommandLineError(str(error)) from error
    if args.out:
        write_password_sheet(args.out, passwords)
        print(f"{len(passwords)} account(s); their passwords are in {args.out} (mode 0600)")
    else:
        for name, password in passwords.items():
            print(f"{name} {password}")
    return 0
