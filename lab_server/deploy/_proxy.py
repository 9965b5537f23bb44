"""Where the local lab finds configurable-http-proxy, JupyterHub's proxy (a Node.js program).

Looked for, in order:

1. the npm prefix of a source checkout, ``hub_config/node_modules`` (``make install-test``
   runs ``npm ci --prefix hub_config``);
2. the lab's own npm prefix in the user's data directory, where ``earthlab hub install-proxy``
   puts it (``$XDG_DATA_HOME/earthlab/proxy``, default ``~/.local/share/earthlab/proxy``);
3. ``configurable-http-proxy`` on ``PATH``, as JupyterHub's documentation installs it
   (``npm install -g configurable-http-proxy``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lab import ConfigurationError
from lab_server.deploy._layout import hub_config_dir

__all__ = ["PROXY_COMMAND", "find_proxy", "install_proxy", "proxy_prefix"]

PROXY_COMMAND = "configurable-http-proxy"
_RELATIVE_BIN = Path("node_modules") / PROXY_COMMAND / "bin" / PROXY_COMMAND
_PACKAGE_FILES = ("package.json", "package-lock.json")


def proxy_prefix() -> Path:
    """Return the npm prefix where ``earthlab hub install-proxy`` installs the proxy."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "earthlab" / "proxy"


def find_proxy() -> Path:
    """Return the configurable-http-proxy executable the local lab will run.

    Raises
    ------
    ConfigurationError
        If it is nowhere (see the module docstring); the message names the command that
        installs it.
    """
    for prefix in (hub_config_dir(), proxy_prefix()):
        candidate = prefix / _RELATIVE_BIN
        if candidate.is_file():
            return candidate
    on_path = shutil.which(PROXY_COMMAND)
    if on_path:
        return Path(on_path)
    raise ConfigurationError(
        f"{PROXY_COMMAND} (JupyterHub's proxy, a Node.js program) is not installed: run "
        "`earthlab hub install-proxy` (needs node and npm), or install it on PATH as "
        f"JupyterHub's documentation does (`npm install -g {PROXY_COMMAND}`)"
    )


def install_proxy(prefix: Path | None = None, *, npm: str | None = None) -> Path:
    """Install configurable-http-proxy at the version the lab pins, with npm, into ``prefix``.

    Parameters
    ----------
    prefix
        npm prefix (default: :func:`proxy_prefix`).
    npm
        npm executable (default: ``npm`` on ``PATH``).

    Returns
    -------
    pathlib.Path
        The installed executable.

    Raises
    ------
    ConfigurationError
        If npm is missing or fails; the message quotes npm's last lines.
    """
    npm = npm or shutil.which("npm")
    if not npm:
        raise ConfigurationError(
            "npm is not installed: install Node.js and npm (Debian: `apt-get install nodejs npm`) "
            f"and run `earthlab hub install-proxy` again, or put {PROXY_COMMAND} on PATH"
        )
    prefix = prefix or proxy_prefix()
    prefix.mkdir(parents=True, exist_ok=True)
    for name in _PACKAGE_FILES:  # the pinned version and its lock file, from the package data
        shutil.copyfile(hub_config_dir() / name, prefix / name)
    done = subprocess.run(
        [npm, "ci", "--prefix", str(prefix), "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        check=False,
    )
    executable = prefix / _RELATIVE_BIN
    if done.returncode != 0 or not executable.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise ConfigurationError(
            f"`npm ci --prefix {prefix}` failed (exit {done.returncode}); npm said:\n{tail}"
        )
    return executable
