"""mkdocs hook: write the ``earthlab`` command-line reference into ``cli.md`` at build time.

``docs/cli.md`` holds the prose and the marker line ``<!-- earthlab-cli-reference -->``; the
hook replaces the marker with the help of ``earthlab`` and of every sub-command, taken from
``lab._cli.build_parser()``, so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

MARKER = "<!-- earthlab-cli-reference -->"
WIDTH = "96"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((name, sub))
    return found


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    pages = [(path, parser)]
    for name, sub in _subcommands(parser):
        pages.extend(_walk(sub, (*path, name)))
    return pages


def cli_reference_markdown() -> str:
    """Return the Markdown reference of ``earthlab`` and all its sub-commands."""
    from lab._cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps help to the terminal width
    try:
        parser = build_parser()
        sections = []
        for path, sub in _walk(parser, ("earthlab",)):
            level = "#" * min(len(path) + 1, 4)
            text = sub.format_help().rstrip()
            sections.append(f"{level} `{' '.join(path)}`\n\n```text\n{text}\n```\n")
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(sections)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the marker of ``cli.md`` with the generated reference."""
    if page.file.src_uri != "cli.md":
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/cli.md lost its marker line {MARKER}: put it back")
    return markdown.replace(MARKER, cli_reference_markdown())
