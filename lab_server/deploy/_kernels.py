"""Install the lab's kernelspecs (``lab_server.kernels``: ``<name>/kernel.json``) for Jupyter.

The repository's kernelspec says ``python``; the installed copy names this environment's
interpreter, so that the kernel runs with the lab's packages wherever Jupyter runs from.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from lab import ConfigurationError

__all__ = ["DEFAULT_KERNEL", "install_kernel", "kernel_spec", "kernels_dir"]

DEFAULT_KERNEL = "earth-analytics"


def kernels_dir() -> Path:
    """Return the directory of the lab's kernelspecs (package data ``lab_server.kernels``).

    Raises
    ------
    ConfigurationError
        If the package data is missing (a broken installation).
    """
    path = Path(str(resources.files("lab_server.kernels"))).resolve()
    if not any(path.glob("*/kernel.json")):
        raise ConfigurationError(
            f"no kernelspec in {path}: the installation of earthlab is incomplete; "
            "reinstall it (`pip install --force-reinstall earthlab`)"
        )
    return path


def kernel_spec(name: str = DEFAULT_KERNEL) -> dict[str, object]:
    """Return a kernelspec of the repository, as written in ``kernels/<name>/kernel.json``.

    Raises
    ------
    ConfigurationError
        If there is no such kernel; the message lists the ones there are.
    """
    base = kernels_dir()
    path = base / name / "kernel.json"
    if not path.is_file():
        known = sorted(p.parent.name for p in base.glob("*/kernel.json"))
        raise ConfigurationError(f"no kernel {name!r} in {base}; kernels: {', '.join(known)}")
    spec: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return spec


def install_kernel(
    name: str = DEFAULT_KERNEL,
    *,
    user: bool = False,
    prefix: str | None = None,
    python: str | None = None,
    quiet: bool = False,
) -> Path:
    """Install a kernelspec of the repository for Jupyter.

    Parameters
    ----------
    name
        Kernel directory under ``kernels/``.
    user
        Install for the current user (``~/.local/share/jupyter``).
    prefix
        Install under ``PREFIX/share/jupyter`` (``sys.prefix`` for ``--sys-prefix``).
        With neither ``user`` nor ``prefix``, the system-wide location is used.
    python
        Interpreter the kernel runs (default: this one).
    quiet
        Do not warn that ``prefix`` is not on Jupyter's search path (the caller sets
        ``JUPYTER_PATH``, as the hub does).

    Returns
    -------
    pathlib.Path
        Directory of the installed kernelspec.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    if user and prefix:
        raise ConfigurationError("give either user=True (--user) or a prefix, not both")
    spec = kernel_spec(name)
    argv = list(spec["argv"])  # type: ignore[call-overload]
    argv[0] = python or sys.executable
    spec["argv"] = argv
    source = kernels_dir() / name
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        shutil.copytree(source, staged)
        (staged / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        manager = KernelSpecManager()
        if quiet:
            manager.log = logging.getLogger("lab.kernels")
            manager.log.setLevel(logging.ERROR)
        installed = manager.install_kernel_spec(
            str(staged), kernel_name=name, user=user, prefix=prefix
        )
    return Path(installed)
