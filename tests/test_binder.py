"""Binder: ``binder/`` makes an image in which the getting-started notebook is ready to run.

repo2docker (what Binder runs) installs ``binder/requirements.txt`` into the notebook
environment, runs ``binder/postBuild`` from the repository root, and starts every session
through ``binder/start``. The tests check the files, ask repo2docker for the Dockerfile it would
build (``--no-build``; it is in the ``test`` extra) and run the same steps in a clean virtual
environment (slow: it pip-installs the project).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
LAUNCH_NOTEBOOK = "docs/notebooks/01-getting-started.ipynb"
# What a clean copy of the repository needs: everything tracked, without local state.
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "out", "site", "__pycache__", "*.egg-info", ".*_cache",
    "build", "dist",
)  # fmt: skip


def _requirements() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_runtime_matches_the_projects_python() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert match, f"runtime.txt must say python-X.Y, got {runtime!r}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert match.group(1) + ".0" in SpecifierSet(requires)


def test_requirements_use_the_projects_constraints_and_parse() -> None:
    entries = _requirements()
    assert entries[0] == "-c ../constraints.txt", "pins come from the project's constraints"
    assert (BINDER / "../constraints.txt").resolve().is_file()
    names = {Requirement(entry).name for entry in entries[1:]}
    # the kernel machinery, the S3 server of the Accessible notebook, the dashboard proxy
    assert {"ipykernel", "moto", "boto3", "jupyter-server-proxy"} <= names
    assert not any(entry.startswith(("-e", ".", "/")) for entry in entries), (
        "postBuild installs the project itself"
    )


@pytest.mark.parametrize("script", ["postBuild", "start"])
def test_scripts_are_executable_bash_with_strict_mode(script: str) -> None:
    path = BINDER / script
    assert os.access(path, os.X_OK), (
        f"binder/{script} must be executable (git update-index --chmod=+x)"
    )
    text = path.read_text()
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_postbuild_installs_the_lab_its_kernel_and_the_sample() -> None:
    steps = [
        line
        for line in (BINDER / "postBuild").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "python -m pip install --no-cache-dir -c constraints.txt -e ." in steps
    assert "earthlab kernels install --sys-prefix" in steps
    assert any("lab.centres()" in step for step in steps)


def test_start_hands_over_to_the_notebook_server() -> None:
    lines = [line for line in (BINDER / "start").read_text().splitlines() if line.strip()]
    assert lines[-1] == 'exec "$@"'


def test_launch_link_opens_the_getting_started_notebook() -> None:
    """docs/users/newcomer.md links to ``binder:<notebook>``, which the docs hook turns into the
    launch URL built from mkdocs.yml's repo_url (tests/test_docs.py checks the built page)."""
    assert (ROOT / LAUNCH_NOTEBOOK).is_file()
    newcomer = (ROOT / "docs" / "users" / "newcomer.md").read_text()
    docs_path = LAUNCH_NOTEBOOK.removeprefix("docs/")
    assert f"](binder:{docs_path})" in newcomer
    assert f"urlpath=lab/tree/{LAUNCH_NOTEBOOK}" in newcomer  # the form, for forks


def _repo2docker() -> str:
    """The repo2docker executable; it is in the `test` extra, so a missing one fails the test."""
    beside_python = Path(sys.executable).parent / "repo2docker"
    executable = shutil.which("repo2docker") or (
        str(beside_python) if beside_python.exists() else None
    )
    if executable is None:
        pytest.fail(
            "repo2docker not found: jupyter-repo2docker is in the `test` extra, "
            "install it with pip install -c constraints.txt -e '.[test]'"
        )
    return executable


def test_repo2docker_dry_run(tmp_path: Path) -> None:
    executable = _repo2docker()
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("binder", "pyproject.toml", "constraints.txt", "README.md"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, repo / name)
    run = subprocess.run(
        [executable, "--no-build", "--no-run", "--debug", str(repo)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    dockerfile = run.stdout + run.stderr
    assert run.returncode == 0, dockerfile[-3000:]
    assert "python=3.11" in dockerfile
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in dockerfile
    assert "RUN ./binder/postBuild" in dockerfile
    assert 'R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile
    # requirements are installed after the whole repository is copied (they use ../constraints.txt)
    assert dockerfile.index("COPY --chown=0:0 src/ ${REPO_DIR}/") < dockerfile.index(
        'pip install --no-cache-dir -r "binder/requirements.txt"'
    )


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    run = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert run.returncode == 0, f"{' '.join(command)} failed:\n{(run.stdout + run.stderr)[-4000:]}"
    return run


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_postbuild_in_a_clean_virtual_environment(tmp_path: Path) -> None:
    """What repo2docker does, in a new venv: requirements, postBuild, start, the notebook."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=_NOT_COPIED)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    bin_dir = venv / "bin"
    python = bin_dir / "python"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EARTHLAB_", "VIRTUAL_ENV", "PYTHON", "JUPYTER"))
    }
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
        "EARTHLAB_CACHE_DIR": str(tmp_path / "cache"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    _run([str(python), "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt"],
         cwd=repo, env=env, timeout=900)  # fmt: skip
    _run(["bash", "binder/postBuild"], cwd=repo, env=env, timeout=600)

    kernel = venv / "share" / "jupyter" / "kernels" / "earth-analytics" / "kernel.json"
    assert json.loads(kernel.read_text())["argv"][0] == str(python)
    centres = tmp_path / "cache" / "sample-v5" / "centres.yaml"
    assert centres.is_file(), "postBuild generates the sample federation"

    # A session starts through binder/start, then the launch notebook runs on the python3 kernel.
    generated = centres.stat().st_mtime_ns
    execute = (
        "import nbformat, sys; from nbclient import NotebookClient; "
        "nb = nbformat.read(sys.argv[1], as_version=4); "
        "NotebookClient(nb, timeout=90, kernel_name='python3', "
        "resources={'metadata': {'path': sys.argv[2]}}).execute(); print('notebook ran')"
    )
    run = _run(
        ["bash", "binder/start", str(python), "-c", execute, LAUNCH_NOTEBOOK, str(tmp_path)],
        cwd=repo,
        env=env,
        timeout=300,
    )
    assert "notebook ran" in run.stdout
    assert centres.stat().st_mtime_ns == generated, "start reuses the sample postBuild made"
