"""``ast.parse`` for the tests that read the project's sources, safe in a threaded session.

CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state: when a
garbage collection during the conversion runs a finaliser and lets another thread parse too
(the test session has tornado, dask and hub threads), the check at the end fails with a
spurious ``SystemError: AST constructor recursion depth mismatch`` (python/cpython#106905,
fixed in 3.12). Parsing with the collector paused runs no Python code in between; the state is
reset at every call, so one retry clears a mismatch left by another thread.
"""

from __future__ import annotations

import ast
import gc


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """Parse ``source`` like :func:`ast.parse`, without the spurious 3.11 ``SystemError``."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            return ast.parse(source, filename=filename)
        except SystemError:
            return ast.parse(source, filename=filename)
    finally:
        if enabled:
            gc.enable()
