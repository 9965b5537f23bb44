"""``earthlab kernels install``: the Earth Analytics kernel (GDAL and Dask settings) for Jupyter."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``kernels`` command group."""
    parser = subparsers.add_parser(
        "kernels",
        help="install the lab's Jupyter kernels",
        description="Install the 'Earth Analytics' kernelspec: this environment's Python with "
        "the GDAL settings for cloud-optimised reads and the Dask settings of the lab.",
    )
    actions = parser.add_subparsers(dest="kernels_action", metavar="ACTION")
    install = actions.add_parser("install", help="install a kernelspec")
    install.add_argument("--name", default="earth-analytics", help="kernel (default: %(default)s)")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for the current user only")
    where.add_argument(
        "--sys-prefix", action="store_true", help="into this environment (sys.prefix)"
    )
    where.add_argument("--prefix", help="under PREFIX/share/jupyter")
    install.set_defaults(func=run_install)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_install(args: argparse.Namespace) -> int:
    """Install the kernelspec and say where."""
    from lab_server.deploy._kernels import install_kernel

    prefix = sys.prefix if args.sys_prefix else args.prefix
    path = install_kernel(args.name, user=args.user, prefix=prefix)
    print(f"installed kernel {args.name!r} in {path}")
    return 0
