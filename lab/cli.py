"""What the ``earthlab`` commands of every package share: bad-argument errors, output checks.

Packages contribute commands through the ``earthlab.commands`` entry points (``lab._cli``);
their handlers raise :class:`CommandLineError` for an argument that cannot work (``earthlab``
then exits with status 2, as argparse does for its own errors) and check output paths with
:func:`output_dir` or :func:`output_parent` before doing any work.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab._errors import ConfigurationError

__all__ = [
    "CommandLineError",
    "add_federation_options",
    "bbox",
    "cql2_filter",
    "datetime_interval",
    "int_range",
    "non_negative_int",
    "output_dir",
    "output_parent",
    "positive_float",
    "positive_int",
]


class CommandLineError(ConfigurationError):
    """A command-line argument is invalid; ``earthlab`` exits with status 2, as argparse does."""


def output_dir(path: str | os.PathLike[str], option: str) -> Path:
    """Check that the output directory ``path`` can be created and written, leaving nothing.

    Commands call this before any work, so that a wrong ``--out`` fails at once with a clear
    message instead of a traceback after minutes of computing.

    Parameters
    ----------
    path
        The directory given on the command line.
    option
        The option that gave it (``--out``), for the message.

    Returns
    -------
    pathlib.Path
        The directory.

    Raises
    ------
    CommandLineError
        If it is not a directory, cannot be created or is not writable.
    """
    directory = Path(path).expanduser()
    if directory.exists() and not directory.is_dir():
        raise CommandLineError(
            f"argument {option}: {directory} exists and is not a directory: give a directory"
        )
    missing = []  # the directories this check creates, removed again afterwards
    ancestor = directory
    while not ancestor.exists() and ancestor != ancestor.parent:
        missing.append(ancestor)
        ancestor = ancestor.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".earthlab-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CommandLineError(
            f"argument {option}: cannot write to {directory} ({reason}): give a directory you "
            "can write to"
        ) from None
    finally:
        for created in missing:  # deepest first: a failed command leaves nothing behind
            with contextlib.suppress(OSError):
                created.rmdir()
    return directory


def output_parent(path: str | os.PathLike[str], option: str) -> Path:
    """Check that ``path`` (a file or store to be written) can be created: its parent directory.

    Nothing is created; ``path`` itself is left alone. URLs (``s3://...``) are not
    checked (returned as given).

    Raises
    ------
    CommandLineError
        If the parent directory cannot be created or written to.
    """
    text = os.fspath(path)
    if "://" in text:
        return Path(text)
    target = Path(text).expanduser()
    output_dir(target.parent, option)
    return target


# --- argparse type= functions: a bad value is argparse's error (exit 2), never a traceback ---


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` accepting an integer in ``low..high`` (no upper bound if None).

    Examples
    --------
    >>> int_range(16, 113)("20")
    20
    """

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except (AttributeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            wanted = f">= {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be an integer {wanted}, got {text!r}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


positive_int = int_range(1)
"""argparse ``type=``: an integer >= 1 (``--workers``, ``--max-items``)."""

non_negative_int = int_range(0)
"""argparse ``type=``: an integer >= 0 (``--retries``)."""


def positive_float(text: str) -> float:
    """Check a finite number > 0 (argparse ``type=`` for ``--timeout`` in seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def bbox(text: str) -> tuple[float, float, float, float]:
    """Check ``west,south,east,north`` in degrees, west < east, south < north (``type=``)."""
    from lab._query import SearchQuery

    example = "give west,south,east,north in degrees, e.g. 3.5,43.3,3.8,43.5"
    try:
        numbers = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not four numbers ({example})") from None
    try:
        box = SearchQuery.build(bbox=numbers).bbox
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(f"{exc} ({example})") from None
    assert box is not None
    west, south, east, north = box
    if not (west < east and south < north):
        raise argparse.ArgumentTypeError(
            f"bbox {text!r} is empty: west must be < east and south < north ({example})"
        )
    return box


def datetime_interval(text: str) -> str:
    """Check an RFC 3339 instant or interval, ``2022-01/2022-03`` or ``2022-01-15/..`` (``type=``).

    Returns the text as given, once checked.
    """
    from lab._query import SearchQuery

    try:
        SearchQuery.build(datetime=text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cql2_filter(text: str) -> dict[str, Any]:
    """Check a CQL2 filter given as CQL2 text or CQL2-JSON; return it as CQL2-JSON (``type=``).

    ``"eo:cloud_cover < 20 AND platform = 'sentinel-2a'"`` and
    ``'{"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}'`` are the same filter.
    """
    import json

    import cql2

    from lab._query import SearchQuery

    stripped = text.strip()
    try:
        if stripped.startswith("{"):
            document = json.loads(stripped)
        else:
            document = cql2.parse_text(stripped).to_json()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid CQL2-JSON: {exc}") from None
    except Exception as exc:  # cql2's ParseError
        where = str(exc).strip().splitlines()
        raise argparse.ArgumentTypeError(
            f"not valid CQL2 text ({' '.join(line.strip() for line in where[:1] + where[-1:])}); "
            "write e.g. \"eo:cloud_cover < 20 AND platform = 'sentinel-2a'\" or CQL2-JSON"
        ) from None
    try:
        SearchQuery.build(filter=document)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return dict(document)


def add_federation_options(parser: argparse.ArgumentParser) -> None:
    """``--centre`` (repeatable), ``--centres`` and ``--timeout``: which centres, how long."""
    parser.add_argument(
        "--centre", action="append", dest="only", help="only this centre (repeatable)"
    )
    parser.add_argument(
        "--centres",
        dest="centres_file",
        help="centres file (default: $EARTHLAB_CENTRES or the sample)",
    )
    parser.add_argument("--timeout", type=positive_float, help="seconds allowed per centre")
