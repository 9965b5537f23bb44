"""The project's own promises about packaging and layout."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import yaml
from ast_parsing import parse
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$")
NOT_PACKAGES = {"python", "pip", "nodejs", "-e"}


def _split(requirement: str) -> tuple[str, str]:
    match = _NAME.match(requirement)
    assert match, requirement
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(3).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in ("hub", "test", "docs"):
        requirements += project["optional-dependencies"][extra]
    return dict(_split(r) for r in requirements)


def _environment_requirements() -> dict[str, str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    found: dict[str, str] = {}
    for entry in environment["dependencies"]:
        entries = entry["pip"] if isinstance(entry, dict) else [entry]
        for requirement in entries:
            if requirement.startswith("-e"):
                continue
            name, spec = _split(requirement)
            if name not in NOT_PACKAGES:
                found[name] = spec
    return found


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    pyproject = _pyproject_requirements()
    environment = _environment_requirements()
    assert sorted(set(pyproject) - set(environment)) == [], "missing from environment.yml"
    assert sorted(set(environment) - set(pyproject)) == [], "missing from pyproject.toml"
    differing = {
        n: (pyproject[n], environment[n]) for n in pyproject if pyproject[n] != environment[n]
    }
    assert differing == {}, "version specifiers differ (pyproject, environment.yml)"


def _constraints_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_constraints_pin_every_direct_dependency() -> None:
    missing = sorted(set(_pyproject_requirements()) - set(_constraints_pins()))
    assert missing == [], f"constraints.txt lacks pins for {missing}: regenerate it with pip freeze"


def test_constraints_pins_satisfy_the_declared_versions() -> None:
    pins = _constraints_pins()
    outside = {
        name: (f"=={pins[name]}", spec)
        for name, spec in _pyproject_requirements().items()
        if name in pins and not SpecifierSet(spec).contains(pins[name], prereleases=True)
    }
    assert outside == {}, "constraints.txt pins outside pyproject.toml's specifiers (pin, declared)"


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _imported_top_levels(path: Path) -> set[str]:
    tree = parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def test_dependencies_flow_recipes_to_datacubes_to_lab() -> None:
    forbidden = {"lab": {"datacubes", "recipes"}, "datacubes": {"recipes"}, "recipes": set()}
    offenders = []
    for package, banned in forbidden.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if package == "lab" and "_cli" in path.relative_to(ROOT / package).parts:
                continue  # the CLI is the one place allowed to import all three
            bad = _imported_top_levels(path) & banned
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []
