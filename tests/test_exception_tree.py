"""One exception tree: every error and warning class the project defines is under lab's roots.

A notebook catches everything the lab raises on purpose with ``except lab.EarthLabError`` and
filters its warnings with ``lab.EarthLabWarning``; that only holds if no package defines a class
beside the tree. The test imports every module of lab, datacubes, recipes and lab_server
(hub_config and kernels included, as installed), collects the classes defined there that
subclass ``BaseException`` and checks where they hang, and that each says what it means.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ast_parsing import parse

import lab

PACKAGES = ("lab", "datacubes", "recipes", "lab_server")
# installed as subpackages of lab_server from another directory (pyproject's package-dir), which
# pkgutil.walk_packages(lab_server.__path__) does not see
MAPPED = ("lab_server.hub_config", "lab_server.kernels")
# Classes allowed outside the tree, each with the reason. None so far: keep it that way unless a
# framework insists on its own base (and then prefer inheriting from both).
ALLOWED: dict[str, str] = {}


def module_names() -> Iterator[str]:
    """Every module of the project's packages, ``__main__`` modules left out (they run)."""
    for root in (*PACKAGES, *MAPPED):
        package = importlib.import_module(root)
        yield root
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                yield info.name


def _classes_of(owner: object, module: str) -> Iterator[type]:
    """The classes defined in a module (``owner``), and the classes nested in those."""
    prefix = f"{owner.__qualname__}." if inspect.isclass(owner) else ""
    for value in vars(owner).values():
        if (
            inspect.isclass(value)
            and value.__module__ == module
            and value.__qualname__ == f"{prefix}{value.__name__}"
        ):
            yield value
            yield from _classes_of(value, module)


def exception_classes() -> dict[str, type[BaseException]]:
    """``module.QualName`` -> class, for every BaseException subclass the project defines."""
    found: dict[str, type[BaseException]] = {}
    for name in sorted(set(module_names())):
        spec = importlib.util.find_spec(name)
        if name.startswith("lab_server.hub_config.") and _config_file(spec.origin):
            continue  # needs the `c` of the application that loads it; defines no class
        module = importlib.import_module(name)  # a module that does not import fails the test
        for cls in _classes_of(module, name):
            if issubclass(cls, BaseException):
                found[f"{name}.{cls.__qualname__}"] = cls
    return found


def _config_file(path: str | None) -> bool:
    """A traitlets configuration file: it assigns ``c.<Class>.<trait> = ...`` at module level."""
    if path is None:
        return False
    for statement in parse(Path(path).read_text()).body:
        for target in getattr(statement, "targets", []):
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if root is not target and isinstance(root, ast.Name) and root.id == "c":
                return True
    return False


@pytest.fixture(scope="module")
def classes() -> dict[str, type[BaseException]]:
    return exception_classes()


def test_the_walk_sees_every_package_and_the_known_classes(
    classes: dict[str, type[BaseException]],
) -> None:
    names = set(module_names())
    for expected in (
        "lab._errors",
        "datacubes._paste",
        "recipes.insitu._core",
        "lab_server.restricted._service",
        "lab_server.hub_config.earthlab_hub",
        "lab_server.hub_config.jupyterhub_config",
        "lab_server.kernels",
    ):
        assert expected in names, expected
    for expected in (
        "lab._errors.EarthLabError",
        "datacubes._spec.SpecError",
        "recipes.insitu._core.InSituWarning",
        "lab_server.restricted._service.RefusalError",
    ):
        assert expected in classes, expected


def test_only_traitlets_configuration_files_are_left_out() -> None:
    left_out = sorted(
        name
        for name in module_names()
        if _config_file(importlib.util.find_spec(name).origin)
        or name.rsplit(".", 1)[-1] == "__main__"
    )
    assert left_out == [
        "lab_server.hub_config.dask_gateway_config",
        "lab_server.hub_config.jupyterhub_config",
    ]


def test_every_error_is_an_earthlab_error_and_every_warning_an_earthlab_warning(
    classes: dict[str, type[BaseException]],
) -> None:
    outside = []
    for name, cls in sorted(classes.items()):
        if name in ALLOWED:
            continue
        if issubclass(cls, Warning):
            if not issubclass(cls, lab.EarthLabWarning):
                outside.append(f"{name} is a warning but not a lab.EarthLabWarning")
        elif not issubclass(cls, lab.EarthLabError):
            bases = ", ".join(b.__name__ for b in cls.__bases__)
            outside.append(f"{name}({bases}) is not a lab.EarthLabError")
    assert outside == [], "\n".join(outside)


def test_the_allowed_exceptions_are_still_there(classes: dict[str, type[BaseException]]) -> None:
    assert sorted(set(ALLOWED) - set(classes)) == []


def test_every_error_and_warning_class_says_what_it_means(
    classes: dict[str, type[BaseException]],
) -> None:
    undocumented = sorted(name for name, cls in classes.items() if not vars(cls).get("__doc__"))
    assert undocumented == []


def test_no_error_class_hides_inside_a_function() -> None:
    # the walk above sees module- and class-level classes only; one defined in a function body
    # would escape it
    hidden = []
    for name in sorted(set(module_names())):
        origin = importlib.util.find_spec(name).origin
        if origin is None or not origin.endswith(".py"):
            continue
        for function in ast.walk(parse(Path(origin).read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ClassDef) and any(
                    ast.unparse(base).endswith(("Error", "Exception", "Warning"))
                    for base in node.bases
                ):
                    hidden.append(f"{name}.{function.name}.{node.name}")
    assert hidden == []
