"""The repository stands alone: no test reads a file outside it.

The test modules, their helpers and the benchmarks are parsed (never imported): every path
expression that can be followed statically (``Path(__file__)``, ``.parent``, ``.parents[n]``,
``/``, ``joinpath``, ``os.path``, module names bound to those) must stay inside the
repository, and no string may name the old sibling reference folder or an absolute path of a
machine. The real provider files the tests need live in ``tests/data/reference/``, each one
listed with its origin and licence in that folder's ``SOURCES.md``.
"""

from __future__ import annotations

import ast
import os.path
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ast_parsing import parse

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("tests", "benchmarks")
REFERENCE = ROOT / "tests" / "data" / "reference"
SOURCES = REFERENCE / "SOURCES.md"

SHARED = "shared"  # the sibling folder the reference data used to be read from
# that folder as a segment of a written path (next to a slash), in text other than URLs; the
# bare word is flagged only where it is joined to a path
SHARED_SEGMENT = re.compile(r"(?:^|[\\/])" + SHARED + r"[\\/]|[\\/]" + SHARED + r"(?![\w-])")
# an absolute path under a directory of a machine (not a URL path such as "/users/x/tokens")
MACHINE_PATH = re.compile(
    r"(?<![\w.:/~-])/(?:work|home|Users|root|mnt|media|srv|opt|scratch|nfs)(?:/|$)"
)
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S*", re.IGNORECASE)
PATH_CLASSES = {"Path", "PurePath", "PosixPath", "PurePosixPath"}
SAME_PATH_METHODS = {"resolve", "absolute", "expanduser"}
OS_PATH_SAME = {"abspath", "realpath", "normpath"}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    why: str
    code: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.file}:{self.line}: {self.why}{detail}: {self.code}"


def _inside(path: str, root: Path) -> bool:
    normal = os.path.normpath(path)
    return normal == str(root) or normal.startswith(str(root) + os.sep)


def _is_os_path(func: ast.expr, name: str) -> bool:
    """``func`` is ``os.path.<name>`` (or ``path.<name>`` after ``from os import path``)."""
    if not (isinstance(func, ast.Attribute) and func.attr == name):
        return False
    owner = func.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "path") or (
        isinstance(owner, ast.Name) and owner.id == "path"
    )


def _is_path_call(func: ast.expr) -> bool:
    """``func`` builds a path from its arguments (``Path``, ``joinpath``, ``os.path.join``)."""
    if isinstance(func, ast.Name):
        return func.id in PATH_CLASSES
    return isinstance(func, ast.Attribute) and (
        func.attr == "joinpath" or func.attr in PATH_CLASSES or _is_os_path(func, "join")
    )


class _PathChecker(ast.NodeVisitor):
    """Follows the path expressions of one module and records the ones leaving ``root``."""

    def __init__(self, module: Path, root: Path, source: str):
        self.module = module
        self.root = root
        self.lines = source.splitlines()
        self.names: dict[str, str] = {}
        self.findings: list[Finding] = []
        self.rel = (
            module.relative_to(root).as_posix() if _inside(str(module), root) else str(module)
        )

    # -- evaluation: an absolute path string, or None when it cannot be followed statically --
    def path_of(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            if node.id == "__file__":
                return str(self.module)
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            base = self.path_of(node.value)
            return None if base is None else os.path.dirname(os.path.normpath(base))
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            index = node.slice
            if (
                node.value.attr == "parents"
                and isinstance(index, ast.Constant)
                and isinstance(index.value, int)
            ):
                base = self.path_of(node.value.value)
                if base is None:
                    return None
                return os.path.normpath(os.path.join(base, *[".."] * (index.value + 1)))
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            base = self.path_of(node.left)
            part = self._text(node.right)
            return None if base is None or part is None else os.path.join(base, part)
        if isinstance(node, ast.Call):
            return self._call_path(node)
        return None

    def _text(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return self.path_of(node)

    def _joined(self, args: list[ast.expr], relative_to: str | None) -> str | None:
        parts = [text for text in map(self._text, args) if text is not None]
        if not parts or len(parts) != len(args):
            return None
        joined = os.path.join(*parts)
        if not os.path.isabs(joined):
            if relative_to is None:
                return None
            joined = os.path.join(relative_to, joined)
        return joined

    def _call_path(self, node: ast.Call) -> str | None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "pathlib"
        ):
            name = func.attr
        if name in PATH_CLASSES:
            # a relative Path is read from the working directory: the repository when tested
            return self._joined(node.args, str(self.root))
        if isinstance(func, ast.Attribute):
            if func.attr in SAME_PATH_METHODS and not node.args:
                return self.path_of(func.value)
            if func.attr == "joinpath":
                base = self.path_of(func.value)
                return None if base is None else self._joined(node.args, base)
            if _is_os_path(func, "dirname") and len(node.args) == 1:
                base = self.path_of(node.args[0])
                return None if base is None else os.path.dirname(os.path.normpath(base))
            if _is_os_path(func, "join"):
                return self._joined(node.args, None)
            for same in OS_PATH_SAME:
                if _is_os_path(func, same) and len(node.args) == 1:
                    return self.path_of(node.args[0])
        return None

    # -- walking ----------------------------------------------------------------------------
    def report(self, node: ast.AST, why: str, detail: str = "", offset: int = 0) -> None:
        """Record ``why`` at the node's line (+ ``offset``), once per line (outermost node)."""
        line = getattr(node, "lineno", 0) + offset
        code = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        if all((f.line, f.why) != (line, why) for f in self.findings):
            self.findings.append(Finding(self.rel, line, why, code, detail))

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        value = self.path_of(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                if value is None:
                    self.names.pop(target.id, None)
                else:
                    self.names[target.id] = value

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        if isinstance(node.target, ast.Name) and node.value is not None:
            value = self.path_of(node.value)
            if value is None:
                self.names.pop(node.target.id, None)
            else:
                self.names[node.target.id] = value

    def visit_Constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, str):
            return
        text = URL.sub(lambda m: " " * len(m.group()), node.value)
        for pattern, why in (
            (SHARED_SEGMENT, f"names the sibling '{SHARED}' folder"),
            (MACHINE_PATH, "absolute path of a machine"),
        ):
            found = pattern.search(text)
            if found:  # the line within a multi-line string
                self.report(node, why, offset=text.count("\n", 0, found.start()))

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.expr) and not isinstance(node, ast.Constant):
            self._check_expression(node)
        super().generic_visit(node)

    def _check_expression(self, node: ast.expr) -> None:
        joined: list[ast.expr] = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            joined = [node.right]
        elif isinstance(node, ast.Call) and _is_path_call(node.func):
            joined = node.args
        if any(isinstance(a, ast.Constant) and a.value == SHARED for a in joined):
            self.report(node, f"joins the sibling '{SHARED}' folder")
        if isinstance(node, ast.Name):
            return  # a name is checked where its value was computed
        path = self.path_of(node)
        if path is not None and not _inside(path, self.root):
            self.report(node, "path outside the repository", os.path.normpath(path))


def check_source(source: str, module: Path, root: Path = ROOT) -> list[Finding]:
    """Findings of one module's ``source``, read as if it were the file ``module``."""
    checker = _PathChecker(module, root, source)
    checker.visit(parse(source, filename=str(module)))
    return checker.findings


def scanned_modules() -> Iterator[Path]:
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def test_no_test_module_refers_outside_the_repository() -> None:
    modules = list(scanned_modules())
    assert any(m.name == "conftest.py" for m in modules) and len(modules) > 10
    findings = [str(f) for m in modules for f in check_source(m.read_text(encoding="utf-8"), m)]
    assert not findings, "paths outside the repository:\n" + "\n".join(findings)


def test_reference_fixture_is_inside_the_repository(reference_dir: Path) -> None:
    assert reference_dir.is_dir()
    assert reference_dir.resolve() == REFERENCE


# Snippets are read as if they were tests/test_example.py; their text is built from parts so
# that this module does not trip its own check.
UP = ".."
OUTSIDE = [
    f'REFERENCE = Path(__file__).resolve().parent.parent.parent / "{SHARED}"',
    'DATA = Path(__file__).resolve().parents[2] / "data"',
    'ROOT = Path(__file__).resolve().parent.parent\nREF = ROOT.parent / "x" / "reference"',
    f'REF = (ROOT := Path(__file__).parent) / "{SHARED}"',
    f'DATA = Path("/" "work/{SHARED}") / "reference"',
    f'DATA = Path(__file__).parent / "{UP}/{UP}/data"',
    f'DATA = Path(__file__).parent.joinpath("{UP}", "{UP}", "data")',
    f'DATA = os.path.join(os.path.dirname(__file__), "{UP}", "{UP}", "data")',
    f'DATA = Path("{UP}/data")',
    f'"""Reads ``{UP}/{SHARED}/reference/stac``."""',
    f'"""Fixtures: the reference data of {UP}/{SHARED} and the sample."""',
    'DATA = "/" "home/me/data.json"',
    f'DATA = os.path.join(base, "{SHARED}", "reference")',
    f'DATA = somewhere / "{SHARED}" / "reference"',
]
ALLOWED = [
    'ROOT = Path(__file__).resolve().parent.parent\nBINDER = ROOT / "binder"\n'
    f'PINS = BINDER / "{UP}/constraints.txt"',
    'DOCS = Path(__file__).parent.parent / "docs"',
    'DATA = Path(__file__).resolve().parents[1] / "tests" / "data"',
    f"HTML = '<a href=\"{UP}/cli.md\">cli</a>'",
    'TEXT = "2 ' + SHARED + " cores, a " + SHARED + '-password authenticator"',
    "ROUTE = '/users/frank/tokens'",
    f'MODE = "{SHARED}"',
    f'CONFIG = {{"{SHARED}": True, "scheduler": "threads"}}',
    f'URL = "https://example.invalid/{SHARED}/x.json"',
    'OUT = tmp_path.parent / "out"',
    'CFG = Path(__file__).parent.parent / "hub_config" / "lab.yaml"',
]


@pytest.mark.parametrize("source", OUTSIDE)
def test_check_flags_paths_outside(source: str) -> None:
    findings = check_source(source, ROOT / "tests" / "test_example.py")
    assert findings, f"not flagged: {source}"
    assert {f.file for f in findings} == {"tests/test_example.py"}


@pytest.mark.parametrize("source", ALLOWED)
def test_check_allows_paths_inside_and_plain_text(source: str) -> None:
    assert check_source(source, ROOT / "tests" / "test_example.py") == []


def test_finding_in_a_docstring_shows_its_line() -> None:
    source = f'"""Tests.\n\nThe pages are in ``{UP}/{SHARED}/reference/stac-api``.\n"""\n'
    (finding,) = check_source(source, ROOT / "tests" / "test_example.py")
    assert finding.line == 3 and finding.code.startswith("The pages are in")


def test_finding_shows_file_and_line() -> None:
    source = f'import pathlib\n\nX = pathlib.Path(__file__).parents[2] / "{SHARED}"\n'
    shown = [str(f) for f in check_source(source, ROOT / "benchmarks" / "bench_x.py")]
    outside = "benchmarks/bench_x.py:3: path outside the repository ("
    assert any(s.startswith(outside) and s.endswith(source.splitlines()[2]) for s in shown)


# -- tests/data/reference/SOURCES.md --------------------------------------------------------
PLACEHOLDERS = {"", "-", "?", "todo", "tbd", "unknown"}


def sources_rows() -> dict[str, dict[str, str]]:
    """The rows of SOURCES.md's tables, by the file path of their first cell."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "file":
            header = [c.lower() for c in cells]
            continue
        if header is None or set(cells[0]) <= set("-: "):
            continue
        match = re.fullmatch(r"`([^`]+)`", cells[0])
        assert match, f"SOURCES.md: first cell is not a `path`: {line}"
        rows[match.group(1)] = dict(zip(header, cells, strict=False))
    return rows


def reference_files() -> set[str]:
    return {
        p.relative_to(REFERENCE).as_posix()
        for p in REFERENCE.rglob("*")
        if p.is_file() and p != SOURCES
    }


def test_every_reference_file_is_listed_with_a_licence() -> None:
    rows = sources_rows()
    files = reference_files()
    assert files, f"no reference data in {REFERENCE}"
    unlisted = sorted(files - rows.keys())
    assert not unlisted, f"not listed in {SOURCES.relative_to(ROOT)}: {unlisted}"
    no_licence = sorted(
        name for name, row in rows.items() if row.get("licence", "").lower() in PLACEHOLDERS
    )
    assert not no_licence, f"listed without a licence: {no_licence}"


def test_every_listed_reference_file_exists_with_its_size() -> None:
    rows = sources_rows()
    missing = sorted(name for name in rows if not (REFERENCE / name).is_file())
    assert not missing, f"listed in {SOURCES.relative_to(ROOT)} but absent: {missing}"
    sizes = {
        name: (row["bytes"], (REFERENCE / name).stat().st_size)
        for name, row in rows.items()
        if "bytes" in row and row["bytes"] != str((REFERENCE / name).stat().st_size)
    }
    assert not sizes, f"stated bytes differ from the file (stated, actual): {sizes}"
