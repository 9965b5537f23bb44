"""``earthlab hub up|down|status``: the whole lab on this machine, on loopback."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``hub`` command group."""
    parser = subparsers.add_parser(
        "hub",
        help="start, stop or inspect the local lab (JupyterHub + one Dask Gateway per centre)",
        description="Run the Earth Analytics Lab on this machine: JupyterHub, its proxy and one "
        "Dask Gateway per data centre, all on 127.0.0.1. See docs/deployment.md.",
    )
    parser.add_argument(
        "--run-dir",
        help="where the lab keeps its state, secrets and logs "
        "(default: $EARTHLAB_HUB_DIR or ~/.local/state/earthlab/hub)",
    )
    actions = parser.add_subparsers(dest="hub_action", metavar="ACTION")
    start = actions.add_parser("up", help="start the lab and print its URL and how to log in")
    start.add_argument(
        "--centres",
        dest="centres_file",
        help="centres file; each centre gets a gateway (default: $EARTHLAB_CENTRES or the sample)",
    )
    start.add_argument(
        "--port", type=int, default=8000, help="public port (default 8000; 0 for any free port)"
    )
    start.set_defaults(func=run_up)
    actions.add_parser("down", help="stop everything `hub up` started").set_defaults(func=run_down)
    actions.add_parser("status", help="say what runs").set_defaults(func=run_status)
    proxy = actions.add_parser(
        "install-proxy",
        help="install configurable-http-proxy (JupyterHub's proxy) with npm for this user",
        description="Install the configurable-http-proxy version the lab pins, with npm, into "
        "the lab's npm prefix in your data directory (no global install). Needs node and npm.",
    )
    proxy.add_argument("--prefix", help="npm prefix (default: ~/.local/share/earthlab/proxy)")
    proxy.set_defaults(func=run_install_proxy)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_up(args: argparse.Namespace) -> int:
    """Start the lab."""
    from lab_server.deploy import RunDir, up

    deployment = up(args.centres_file, run_dir=args.run_dir, port=args.port)
    run = RunDir(deployment.run_dir)
    print(f"The lab runs at {deployment.url}")
    print(
        f"Log in with any user name and the password in {run.secret_path('password')}\n"
        f"  (e.g. `cat {run.secret_path('password')}`)"
    )
    print("Gateways (JupyterHub services):")
    for g in deployment.gateways:
        print(f"  {g.service:<28} {deployment.gateway_address(g.centre)}")
    print(f"Centres file of the notebooks: {deployment.centres_file}")
    print(f"Logs: {run.logs_dir}    Stop with: earthlab hub down")
    return 0


def run_down(args: argparse.Namespace) -> int:
    """Stop the lab."""
    from lab_server.deploy import down

    stopped = down(args.run_dir)
    print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print what runs; exit 0 only if every server of the lab runs."""
    from lab_server.deploy import default_run_dir, status

    processes = status(args.run_dir)
    if not processes:
        print(f"no lab runs from {args.run_dir or default_run_dir()}")
        return 3
    for proc, alive in processes:
        state = "running" if alive else "stopped"
        print(f"{proc.name:<20} {state:<8} pid {proc.pid:<8} {proc.url}")
    return 0 if all(alive for _, alive in processes) else 3


def run_install_proxy(args: argparse.Namespace) -> int:
    """Install configurable-http-proxy and say where."""
    from pathlib import Path

    from lab_server.deploy import install_proxy

    path = install_proxy(Path(args.prefix) if args.prefix else None)
    print(f"installed configurable-http-proxy: {path}")
    return 0
