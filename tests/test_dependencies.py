"""Every third-party package the project imports directly is declared in pyproject.toml.

A package that happens to be installed because something else pulls it in works until that
something drops it. The SDK (lab, datacubes, recipes) may only import what ``[project]
.dependencies`` declares; the server side (lab_server, with hub_config/ and kernels/ installed
as its subpackages) may also import the ``hub`` extra. Imports are read from the source (AST),
including the ones inside functions and ``importlib.import_module("...")`` with a literal name.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from ast_parsing import parse

ROOT = Path(__file__).resolve().parent.parent
SDK = ("lab", "datacubes", "recipes")
SERVER = ("lab_server", "hub_config", "kernels")
# hub_config/*.py import each other by bare name (JupyterHub and the gateway put the directory
# on sys.path when they load their configuration files).
OWN = {"lab", "datacubes", "recipes", "lab_server"} | {
    p.stem for p in (ROOT / "hub_config").glob("*.py")
}
_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)")


def _normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    names = set()
    for requirement in requirements:
        match = _NAME.match(requirement)
        assert match, requirement
        names.add(_normalise(match.group(1)))
    return names


def _sources(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "node_modules" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Dotted names of the absolute imports of one module."""
    tree = parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            names.add(node.args[0].value)
    return names


def _third_party(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Dotted third-party import -> the project files that import it."""
    found: dict[str, set[str]] = {}
    for package in packages:
        for path in _sources(package):
            for name in _imports(path):
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in OWN or top == "__future__":
                    continue
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


_PACKAGES = importlib.metadata.packages_distributions()


def _files(distribution: str) -> list[str]:
    return [str(f) for f in importlib.metadata.distribution(distribution).files or []]


def _providers(name: str) -> set[str]:
    """Normalised names of the installed distributions that provide the module ``name``.

    Several distributions can share a top-level name: a namespace package (``odc.geo``,
    ``odc.stac``, ``odc.loader``) is resolved on its second level from the files each one
    installs; a regular package split over several distributions (``pystac``: a meta package,
    its core and its extensions) keeps them all, any one of them declared is enough.
    """
    parts = name.split(".")
    candidates = _PACKAGES.get(parts[0], [])
    if len(set(candidates)) > 1 and len(parts) > 1:
        namespace = not any(f"{parts[0]}/__init__.py" in _files(d) for d in candidates)
        if namespace:
            prefix = f"{parts[0]}/{parts[1]}"
            candidates = [
                d
                for d in candidates
                if any(f.startswith((f"{prefix}/", f"{prefix}.")) for f in _files(d))
            ]
    return {_normalise(d) for d in candidates}


def _undeclared(packages: tuple[str, ...], allowed: set[str]) -> list[str]:
    """One line per undeclared distribution (or uninstalled module), naming who imports it."""
    undeclared: dict[str, set[str]] = {}
    for name, where in _third_party(packages).items():
        providers = _providers(name)
        if not providers:
            problem = f"module {name.split('.')[0]} is not installed"
        elif not providers & allowed:
            problem = f"{' / '.join(sorted(providers))} is not declared in pyproject.toml"
        else:
            continue
        undeclared.setdefault(problem, set()).update(where)
    return [
        f"{problem} (imported by {sorted(where)})" for problem, where in sorted(undeclared.items())
    ]


def test_the_sdk_imports_only_its_declared_dependencies() -> None:
    problems = _undeclared(SDK, _declared())
    assert problems == [], "\n".join(problems)


def test_the_server_side_imports_only_the_dependencies_and_the_hub_extra() -> None:
    problems = _undeclared(SERVER, _declared("hub"))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("packages", [SDK, SERVER])
def test_the_scan_sees_the_imports(packages: tuple[str, ...]) -> None:
    # guard against a scan that finds nothing and so passes trivially
    found = {name.split(".")[0] for name in _third_party(packages)}
    expected = {"numpy", "xarray"} if packages == SDK else {"tornado", "jupyterhub"}
    assert expected <= found


def test_namespace_packages_resolve_to_the_distribution_of_the_subpackage() -> None:
    assert _providers("odc.geo.geobox") == {"odc-geo"}
    assert _providers("odc.loader") == {"odc-loader"}
    assert "pystac" in _providers("pystac.extensions.eo")
    assert _providers("yaml") == {"pyyaml"}


def test_an_undeclared_import_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "mod.py").write_text("def f():\n    import numpy\n    import yaml.loader\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    problems = _undeclared(("fakepkg",), {"numpy"})
    assert problems == ["pyyaml is not declared in pyproject.toml (imported by ['fakepkg/mod.py'])"]
