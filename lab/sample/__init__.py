"""The embedded sample federation: four data centres around the Étang de Thau that know their truth.

See ``docs/sample-federation.md`` for the contract (layout, grid, truth). Everything is derived
from ``seed`` and ``n_dates``: two generations with the same arguments are byte-identical.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab import _config
from lab._errors import ConfigurationError, EarthLabError

__all__ = ["SampleGenerationError", "ensure_default_sample", "make_sample"]

SAMPLE_NAME = "sample-v5"
"""Cache directory name; bumped whenever the generator's output changes (v2: the dinamis centre)."""
DEFAULT_SEED = 20220125
DEFAULT_DATES = 16


class SampleGenerationError(EarthLabError, RuntimeError):
    """The sample generator's own consistency check failed (a bug or an unusable seed)."""


def make_sample(
    out: str | os.PathLike,
    *,
    n_dates: int = DEFAULT_DATES,
    seed: int = DEFAULT_SEED,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Generate the embedded sample federation into directory ``out``.

    The federation is written into a temporary sibling directory and renamed into place at
    the end, so an interrupted generation never leaves a half-written federation behind.

    Parameters
    ----------
    out : str or os.PathLike
        Target directory. It may not exist yet or be empty.
    n_dates : int, default 16
        Number of Sentinel-2 acquisitions (16 to 113); more dates shrink the 15-day interval.
    seed : int, default 20220125
        Seed of every random draw (fields, clouds, noise, in-situ sampling).
    overwrite : bool, default False
        Replace an existing sample federation in ``out``.
    progress : bool, default False
        Show a progress bar on standard error.

    Returns
    -------
    pathlib.Path
        Path of the written ``centres.yaml``.

    Raises
    ------
    ConfigurationError
        If ``out`` is a non-empty directory and ``overwrite`` is false, if it is not a sample
        federation (overwrite never deletes other data), or if ``n_dates`` is out of range.
    SampleGenerationError
        If the generator's own consistency checks fail for this seed.
    """
    from lab.sample import _generate, _scenes

    out = Path(out).expanduser().absolute()
    _check_target(out, overwrite)
    acqs = _scenes.acquisitions(n_dates)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _generate.generate(tmp, acqs, seed, progress)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "centres.yaml"


def ensure_default_sample(*, progress: bool = False) -> Path:
    """Return the default sample's ``centres.yaml``, generating it first if needed.

    The sample lives in ``<cache dir>/sample-v5`` (the ``cache_dir`` setting,
    ``EARTHLAB_CACHE_DIR``). Concurrent callers (several kernels, dask workers) wait on a file
    lock; only one generates.

    Parameters
    ----------
    progress : bool, default False
        Show a progress bar while generating.

    Returns
    -------
    pathlib.Path
        Path of ``centres.yaml`` of the default sample federation.
    """
    import fcntl

    target = _config.cache_dir() / SAMPLE_NAME
    centres = target / "centres.yaml"
    if centres.is_file():
        return centres
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{SAMPLE_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not centres.is_file():
            for stale in target.parent.glob(f".{SAMPLE_NAME}.partial-*"):
                shutil.rmtree(stale, ignore_errors=True)  # left by a killed generation
            make_sample(target, overwrite=target.exists(), progress=progress)
    return centres


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigurationError(f"sample target {out} exists and is not a directory")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise ConfigurationError(
            f"sample target {out} is not empty: choose another directory or pass "
            "overwrite=True (earthlab sample --overwrite) to replace the sample in it"
        )
    if not (out / "centres.yaml").is_file():
        raise ConfigurationError(
            f"sample target {out} is not empty and holds no centres.yaml, so it is not a "
            "sample federation: overwrite only replaces samples; remove it yourself or "
            "choose another directory"
        )
