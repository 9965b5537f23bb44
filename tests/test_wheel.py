"""The lab installed like a library: a wheel in a fresh virtual environment, used from elsewhere.

The wheel is built from this checkout, installed with its ``hub`` extra into a new virtual
environment (pinned by constraints.txt, from the package index or pip's cache), and every
documented command is run from a temporary directory that is not the checkout, with its own
home, cache and state directories: nothing may come from the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hub_fixtures import reachable_by_users

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent
CHECKOUT_PROXY_BIN = ROOT / "hub_config" / "node_modules" / ".bin"
_PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps")


@dataclass(frozen=True)
class Installed:
    """A fresh virtual environment holding the wheel, and a place to work from."""

    venv: Path
    work: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def earthlab(self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 600):
        env = {**self.env, **(extra_env or {})}
        return subprocess.run(
            [str(self.venv / "bin" / "earthlab"), *args],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _base_python() -> str:
    return getattr(sys, "_base_executable", sys.executable)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    subprocess.run(
        [*_PIP_WHEEL, "--wheel-dir", str(dist), str(ROOT)],
        check=True,
        cwd=tmp,
        timeout=600,
    )
    (wheel,) = dist.glob("earthlab-*.whl")
    venv = tmp / "venv"
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--constraint",
            str(ROOT / "constraints.txt"),
            f"earthlab[hub] @ {wheel.as_uri()}",
        ],
        check=True,
        cwd=tmp,
        timeout=1200,
    )
    work = tmp / "work"
    work.mkdir()
    # as root a lab isolates its users: they must reach the run directory and this venv
    reachable_by_users(work / "run")
    home = tmp / "home"
    home.mkdir()
    # A clean environment: the new venv first on PATH, no checkout on any path, own dirs.
    system_path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and ".venv" not in p
    )
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{system_path}",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
    }
    return Installed(venv=venv, work=work, env=env)


def test_the_packages_come_from_the_wheel_not_the_checkout(installed: Installed) -> None:
    code = (
        "import json, lab, datacubes, recipes, lab_server, lab_server.hub_config, "
        "lab_server.kernels, lab_server.notebooks; print(json.dumps({m.__name__: m.__file__ "
        "for m in (lab, datacubes, recipes, lab_server, lab_server.hub_config, "
        "lab_server.kernels, lab_server.notebooks)}))"
    )
    done = subprocess.run(
        [str(installed.python), "-c", code],
        cwd=installed.work,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    )
    files = json.loads(done.stdout)
    purelib = sysconfig.get_path("purelib", vars={"base": str(installed.venv)})
    for name, file in files.items():
        assert Path(file).is_relative_to(purelib), f"{name} imported from {file}"
        assert not Path(file).is_relative_to(ROOT)
    config = Path(files["lab_server.hub_config"]).parent
    for shipped in ("jupyterhub_config.py", "dask_gateway_config.py", "lab.yaml"):
        assert (config / shipped).is_file()
    assert not (config / "node_modules").exists(), "the npm prefix must not be in the wheel"
    assert (Path(files["lab_server.kernels"]).parent / "earth-analytics" / "kernel.json").is_file()
    shipped = Path(files["lab_server.notebooks"]).parent
    for folder in ("notebooks", "workshop"):
        expected = sorted(p.name for p in (ROOT / "docs" / folder).glob("*.ipynb"))
        assert sorted(p.name for p in (shipped / folder).glob("*.ipynb")) == expected
    for package in ("lab", "datacubes", "recipes", "lab_server"):
        assert (Path(files[package]).parent / "py.typed").is_file()


def test_the_package_list_holds_every_package_of_the_tree() -> None:
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    mapped = {
        "lab_server.hub_config": ROOT / "hub_config",
        "lab_server.kernels": ROOT / "kernels",
        "lab_server.notebooks": ROOT / "docs",
    }
    found = set(mapped)
    for top in ("lab", "datacubes", "recipes", "lab_server"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    assert listed == found


def test_every_command_is_registered(installed: Installed) -> None:
    done = installed.earthlab("--help")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ")}
    # argparse puts a long name's help on the next line: the name alone on its line
    for command in (
        "sample",
        "search",
        "collections",
        "process",
        "quota",
        "cube",
        "references",
        "demo",
        "hub",
        "kernels",
    ):
        assert command in listed, done.stdout
    version = installed.earthlab("--version")
    assert version.stdout.strip() == "earthlab 0.1.0"


def test_sample_search_cube_and_demo_from_any_directory(installed: Installed) -> None:
    sample = installed.earthlab("sample", "--out", "sample")
    assert sample.returncode == 0, sample.stderr
    centres = installed.work / "sample" / "centres.yaml"
    assert centres.is_file()
    env = {"EARTHLAB_CENTRES": str(centres)}

    search = installed.earthlab(
        "search", "-c", "sentinel-2-l2a", "-d", "2022-01/2022-03", "--json", extra_env=env
    )
    assert search.returncode == 0, search.stderr
    found = json.loads(search.stdout)
    features = found["features"] if isinstance(found, dict) else found
    assert len(features) > 0
    assert all(f["collection"] == "sentinel-2-l2a" for f in features)

    datasets = installed.earthlab("collections", "--q", "water", "--json", extra_env=env)
    assert datasets.returncode == 0, datasets.stderr
    assert [c["id"] for c in json.loads(datasets.stdout)["collections"]] == ["insitu-water-quality"]

    build = installed.earthlab(
        "cube", "build", "thau-lagoon-sample", "--target", "cubes/thau.zarr", "--quiet",
        extra_env=env,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    listing = installed.earthlab("cube", "list", "cubes", extra_env=env)
    assert listing.returncode == 0, listing.stderr
    assert "thau" in listing.stdout

    demo = installed.earthlab("demo", "--out", "demo", extra_env=env)
    assert demo.returncode == 0, demo.stderr
    assert (installed.work / "demo" / "report.html").is_file()


def test_kernels_install_names_the_venv_python(installed: Installed) -> None:
    done = installed.earthlab("kernels", "install", "--prefix", "jupyter-prefix")
    assert done.returncode == 0, done.stderr
    spec_file = installed.work / "jupyter-prefix/share/jupyter/kernels/earth-analytics/kernel.json"
    spec = json.loads(spec_file.read_text())
    assert spec["argv"][0] == str(installed.python)
    assert spec["display_name"] == "Earth Analytics"


def test_hub_without_the_proxy_names_the_command_that_installs_it(installed: Installed) -> None:
    done = installed.earthlab("hub", "--run-dir", "run-none", "up", "--port", "0", timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "earthlab hub install-proxy" in done.stderr
    assert "npm install -g configurable-http-proxy" in done.stderr


def test_hub_up_status_down_from_the_wheel(installed: Installed) -> None:
    # configurable-http-proxy on PATH, as JupyterHub's documentation installs it
    env = {"PATH": f"{CHECKOUT_PROXY_BIN}{os.pathsep}{installed.env['PATH']}"}
    run_dir = installed.work / "run"
    up = installed.earthlab(
        "hub", "--run-dir", str(run_dir), "up", "--port", "0", extra_env=env, timeout=600
    )
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        url = next(line.split()[-1] for line in up.stdout.splitlines() if "The lab runs at" in line)
        login = requests.get(url.rstrip("/") + "/hub/login", timeout=30)
        assert login.status_code == 200
        assert "earthlab" in login.text.lower() or "jupyterhub" in login.text.lower()
        status = installed.earthlab("hub", "--run-dir", str(run_dir), "status", extra_env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "running" in status.stdout
    finally:
        down = installed.earthlab("hub", "--run-dir", str(run_dir), "down", extra_env=env)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    after = installed.earthlab("hub", "--run-dir", str(run_dir), "status", extra_env=env)
    assert after.returncode == 3
