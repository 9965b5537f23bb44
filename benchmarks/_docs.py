"""What the benchmark scripts share: writing their section of docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(section: str, text: str) -> None:
    """Replace (or append) one benchmark's section (``## ...``) of docs/benchmarks.md.

    ``text`` starts with the ``section`` heading; the other sections are left as they are.
    """
    current = DOCS.read_text(encoding="utf-8") if DOCS.is_file() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    DOCS.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")
