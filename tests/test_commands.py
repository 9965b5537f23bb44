"""Commands come from each package's ``earthlab.commands`` entry points, and never go missing."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

import recipes
from lab._cli import COMMAND_GROUP, CommandImportError, build_parser, command_entry_points, main

ROOT = Path(__file__).resolve().parent.parent


def _fake_distribution(tmp_path: Path, name: str, value: str) -> None:
    info = tmp_path / "earthlab_fake_plugin-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: earthlab-fake-plugin\nVersion: 0.0\n"
    )
    (info / "entry_points.txt").write_text(f"[{COMMAND_GROUP}]\n{name} = {value}\n")


def test_each_package_contributes_its_commands() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    by_package = {name: value.split(".")[0] for name, value in declared[COMMAND_GROUP].items()}
    assert by_package == {
        "sample": "lab",
        "search": "lab",
        "collections": "lab",
        "process": "lab",
        "quota": "lab",
        "cube": "datacubes",
        "references": "datacubes",
        "demo": "recipes",
        "hub": "lab_server",
        "kernels": "lab_server",
    }
    assert [ep.name for ep in command_entry_points()] == sorted(by_package)


def test_a_command_module_that_fails_to_import_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "earthlab_broken_command.py").write_text("import a_module_that_is_not_there\n")
    _fake_distribution(tmp_path, "broken", "earthlab_broken_command:register")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CommandImportError, match=r"the command 'broken' .* failed to import"):
        build_parser()
    assert main(["--help"]) == 1
    err = capsys.readouterr().err
    assert "earthlab: error: the command 'broken'" in err
    assert "ModuleNotFoundError" in err
    assert "Traceback" not in err


def test_a_command_that_is_not_callable_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "earthlab_odd_command.py").write_text("register = 42\n")
    _fake_distribution(tmp_path, "odd", "earthlab_odd_command:register")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CommandImportError, match="not callable"):
        build_parser()


def test_no_command_registered_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import lab._cli

    monkeypatch.setattr(lab._cli, "entry_points", lambda group: [])
    with pytest.raises(lab.ConfigurationError, match="pip install"):
        command_entry_points()


def test_every_documented_recipes_module_is_an_attribute() -> None:
    for name in ("crossing", "insitu", "matchup", "validation", "water_quality"):
        module = getattr(recipes, name)
        assert module.__name__ == f"recipes.{name}"
        assert module is sys.modules[f"recipes.{name}"]
    with pytest.raises(AttributeError):
        _ = recipes.no_such_recipe  # type: ignore[attr-defined]
