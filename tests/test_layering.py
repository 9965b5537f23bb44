"""The packages' boundaries, read from their import graph (AST), as a reviewer would check them.

- ``lab`` (the SDK) < ``datacubes`` < ``recipes``; ``lab_server`` (server side) sits on ``lab``.
  A package imports only the packages below it (``lab_server`` only ``lab``).
- No module imports a private (``_name``) module of another package: the others' public API
  (their ``__init__`` and public submodules) is all a package may use.
- Within a package, no import cycle between modules, deferred (function-level) imports included:
  a cycle hidden in a function is still a tangle. A package's ``__init__`` importing its own
  submodules, and imports for type checkers only, do not count.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest
from ast_parsing import parse

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {
    "lab": ROOT / "lab",
    "datacubes": ROOT / "datacubes",
    "recipes": ROOT / "recipes",
    "lab_server": ROOT / "lab_server",
    "lab_server.hub_config": ROOT / "hub_config",
    "lab_server.kernels": ROOT / "kernels",
}
# What each top-level package may import (besides itself).
ALLOWED = {
    "lab": set(),
    "datacubes": {"lab"},
    "recipes": {"lab", "datacubes"},
    "lab_server": {"lab"},
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for prefix, base in PACKAGE_DIRS.items():
        for path in sorted(base.rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the nodes under ``if TYPE_CHECKING:`` (imports for type checkers only)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                inside.update(id(n) for n in ast.walk(stmt))
    return inside


def _imports(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, run at run time) for every import of ``path``.

    Imports under ``if TYPE_CHECKING:`` are listed with ``False``: they never run.
    """
    tree = parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    type_only = _type_checking_nodes(tree)
    out: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        runs = id(node) not in type_only
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno, runs) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.append((module, node.lineno, runs))
            # `from pkg import _private` imports a module too when it is one
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if candidate in MODULES:
                    out.append((candidate, node.lineno, runs))
    return out


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_walker_sees_every_package() -> None:
    assert {"lab", "datacubes", "recipes", "lab_server"} <= {_top(m) for m in MODULES}
    assert "lab_server.hub_config.jupyterhub_config" in MODULES
    assert len(MODULES) > 60


def test_no_upward_or_sideways_import() -> None:
    bad = []
    for name, path in MODULES.items():
        own = _top(name)
        for imported, line, _ in _imports(name, path):
            other = _top(imported)
            if other in ALLOWED and other != own and other not in ALLOWED[own]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_of_another_package_private_module() -> None:
    bad = []
    for name, path in MODULES.items():
        own = _top(name)
        for imported, line, _ in _imports(name, path):
            if _top(imported) == own or _top(imported) not in ALLOWED:
                continue
            if any(part.startswith("_") for part in imported.split(".")[1:]):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not bad, "imports of other packages' private modules:\n" + "\n".join(bad)


def test_no_import_cycle_within_a_package() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in MODULES.items():
        for imported, _, runs in _imports(name, path):
            # a package's __init__ importing its own submodules is not a cycle
            own_submodule = imported.startswith(name + ".")
            if runs and imported in MODULES and imported != name and not own_submodule:
                graph[name].add(imported)
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in list(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("package", ["lab", "datacubes", "recipes", "lab_server"])
def test_each_package_ships_py_typed(package: str) -> None:
    assert (PACKAGE_DIRS[package] / "py.typed").is_file()
