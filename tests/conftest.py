"""Shared fixtures: the reference data in tests/data/reference and the sample federation.

The sample federation is generated once per test session into a temporary directory
(about 30 s). To iterate faster locally, point ``EARTHLAB_TEST_SAMPLE`` at a directory made
by ``earthlab sample --out DIR`` and it is reused as is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "reference"


@pytest.fixture(autouse=True)
def _restore_dask_scheduler_config():
    """Undo a global ``scheduler = "dask.distributed"`` that a test's clients left behind.

    distributed's ``Client(set_as_default=True)`` sets the scheduler in dask's global config
    and restores the *previous* value on close: closing two default clients in creation order
    leaves ``dask.distributed`` with no client, which breaks every later ``.compute()``.
    """
    import dask

    saved = {key: dask.config.config.get(key, _MISSING) for key in ("scheduler", "shuffle")}
    yield
    for key, value in saved.items():
        if value is _MISSING:
            dask.config.config.pop(key, None)
        else:
            dask.config.config[key] = value


_MISSING = object()


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The reference data (real provider files) kept in the repository, see its SOURCES.md."""
    return REFERENCE


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the embedded sample federation (generated once per session)."""
    reuse = os.environ.get("EARTHLAB_TEST_SAMPLE")
    if reuse:
        path = Path(reuse)
        if not (path / "centres.yaml").is_file():
            import lab

            lab.make_sample(path)
        return path
    import lab

    out = tmp_path_factory.mktemp("sample")
    lab.make_sample(out)
    return out


@pytest.fixture(scope="session")
def sample_truth(sample_dir: Path) -> dict:
    """The generator's own record of what it wrote (``truth/generator.json``)."""
    return json.loads((sample_dir / "truth" / "generator.json").read_text())


@pytest.fixture()
def sample_centres_env(sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``EARTHLAB_CENTRES`` at the sample federation's centres file."""
    centres_file = sample_dir / "centres.yaml"
    monkeypatch.setenv("EARTHLAB_CENTRES", str(centres_file))
    return centres_file
