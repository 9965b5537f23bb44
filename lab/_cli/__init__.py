"""The ``earthlab`` command line.

One module per command group (``_sample``, ``_search``, ...). Each exposes
``register(subparsers)`` which adds its sub-command(s) and sets ``func`` on the parser
(a callable taking the parsed namespace and returning an exit code).

This package is the only place in ``lab`` allowed to import ``datacubes`` and ``recipes``
(and only inside the command functions, so ``import lab`` stays light).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lab._errors import EarthLabError

# Command-group modules, in the order they appear in ``earthlab --help``.
_COMMAND_MODULES = (
    "lab._cli._sample",
    "lab._cli._search",
    "lab._cli._quota",
    "lab._cli._demo",
    "lab._cli._hub",
    "lab._cli._kernels",
    "lab._cli._cube",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``earthlab`` argument parser with every registered command group."""
    parser = argparse.ArgumentParser(
        prog="earthlab",
        description="Earth Analytics Lab: federated search, datacubes and recipes.",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a command group not written yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``earthlab`` command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EarthLabError as exc:
        print(f"earthlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("earthlab: interrupted", file=sys.stderr)
        return 130


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"earthlab {version('earthlab')}"
    except PackageNotFoundError:
        return "earthlab (not installed)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
