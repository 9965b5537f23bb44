"""What the ``earthlab`` commands of every package share: bad-argument errors, output checks.

Packages contribute commands through the ``earthlab.commands`` entry points (``lab._cli``);
their handlers raise :class:`CommandLineError` for an argument that cannot work (``earthlab``
then exits with status 2, as argparse does for its own errors) and check output paths with
:func:`output_dir` or :func:`output_parent` before doing any work.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from lab._errors import ConfigurationError

__all__ = ["CommandLineError", "output_dir", "output_parent"]


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
