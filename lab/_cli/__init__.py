"""The ``earthlab`` command line.

Each package contributes its commands through the ``earthlab.commands`` entry-point group
(``pyproject.toml``): the entry point's name is the command, its value a ``register(subparsers)``
function that adds the sub-command and sets ``func`` on its parser (a callable taking the parsed
namespace and returning an exit code). ``lab`` contributes ``sample``, ``search``,
``collections`` and ``quota``; ``datacubes`` contributes ``cube``; ``recipes`` ``demo``;
``lab_server`` ``hub`` and ``kernels``.

This module imports none of them: the bottom package stays below the others. A command whose
module cannot be imported is an error that names it, never a silently missing sub-command.

Exit status: 0 on success, 2 for a bad argument (argparse's own errors, and
:class:`CommandLineError`, e.g. an output path that cannot be written), 1 for any other error
the lab raises on purpose (:class:`lab.EarthLabError`) or an operating-system error (a file that
cannot be read or written), 130 when interrupted; commands document other codes they use.
Errors are one line, ``earthlab: error: ...``, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from lab._errors import ConfigurationError, EarthLabError
from lab.cli import CommandLineError, output_dir, output_parent

__all__ = [
    "COMMAND_GROUP",
    "CommandImportError",
    "CommandLineError",
    "build_parser",
    "command_entry_points",
    "main",
    "output_dir",
    "output_parent",
]

COMMAND_GROUP = "earthlab.commands"
"""The entry-point group through which packages contribute ``earthlab`` sub-commands."""


class CommandImportError(ConfigurationError):
    """A command's module failed to import (a broken or partial installation)."""


def command_entry_points() -> list[EntryPoint]:
    """Return the ``earthlab.commands`` entry points, one per command name, sorted by name.

    Raises
    ------
    ConfigurationError
        If no command is registered (earthlab is not installed, only on ``sys.path``).
    """
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=COMMAND_GROUP):
        found.setdefault(ep.name, ep)  # the first distribution on sys.path wins, as for imports
    if not found:
        raise ConfigurationError(
            f"no {COMMAND_GROUP!r} entry point is installed: install earthlab "
            "(`pip install earthlab`, or `pip install -e .` in a checkout) to get its commands"
        )
    return [found[name] for name in sorted(found)]


def _load_register(ep: EntryPoint) -> Callable[[Any], None]:
    try:
        register = ep.load()
    except Exception as exc:  # any import failure of a command module is reported, not skipped
        raise CommandImportError(
            f"the command {ep.name!r} ({ep.value}) failed to import: "
            f"{type(exc).__name__}: {exc}. Reinstall earthlab with the extras this command "
            "needs (for example `pip install 'earthlab[hub]'` for `hub` and `kernels`)."
        ) from exc
    if not callable(register):
        raise CommandImportError(f"the entry point {ep.name!r} ({ep.value}) is not callable")
    return register


def build_parser() -> argparse.ArgumentParser:
    """Build the ``earthlab`` argument parser with every registered command.

    Raises
    ------
    CommandImportError
        If a command's module fails to import; the message names the command.
    """
    parser = argparse.ArgumentParser(
        prog="earthlab",
        description="Earth Analytics Lab: federated search, datacubes and recipes.",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in command_entry_points():
        _load_register(ep)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``earthlab`` command line; return the process exit code."""
    try:
        parser = build_parser()
    except EarthLabError as exc:
        print(f"earthlab: error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CommandLineError as exc:
        print(f"earthlab: error: {exc}", file=sys.stderr)
        return 2
    except EarthLabError as exc:
        print(f"earthlab: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file that cannot be read or written: the environment, not a bug
        print(f"earthlab: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("earthlab: interrupted", file=sys.stderr)
        return 130


def _os_error(exc: OSError) -> str:
    where = " ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {reason}" if where else reason


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"earthlab {version('earthlab')}"
    except PackageNotFoundError:
        return "earthlab (not installed)"
