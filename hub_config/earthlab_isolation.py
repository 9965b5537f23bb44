"""Hub and gateway sides of isolated users (``earthlab hub up`` as root).

- :class:`IsolatedSpawner`: a ``LocalProcessSpawner`` whose servers run as the hub user's own
  Unix account (``lab_server.deploy._isolation.system_user``), created on first spawn with a
  private home; the lab's notebooks are copied into it *as the user* (root never writes into a
  directory a user controls: a symlink planted there would redirect the write).
- :func:`isolated_backend_class`: dask-gateway's ``LocalBackend`` (processes started as the
  cluster owner's account, not the gateway's) with the lab's caps and dashboards' front, for
  hub user names mapped to their accounts.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Dict, Unicode

from lab_server.deploy._isolation import ensure_account, system_user

__all__ = ["IsolatedSpawner", "isolated_backend_class", "run_as"]

_COPY = (
    "import json, sys\n"
    "from lab_server.hub_config.earthlab_hub import copy_notebooks\n"
    "copy_notebooks(sys.argv[1], json.loads(sys.argv[2]))\n"
)


def run_as(account_name: str, command: list[str], cwd: str) -> subprocess.CompletedProcess:
    """Run ``command`` as the Unix account ``account_name`` (from root), output captured."""
    return subprocess.run(
        command,
        preexec_fn=set_user_setuid(account_name, chdir=False),
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": cwd, "LANG": "C.UTF-8"},
        timeout=120,
    )


class IsolatedSpawner(LocalProcessSpawner):
    """Each user's server as their own Unix account, home ``homes_dir/<name>`` (mode 0700)."""

    homes_dir = Unicode(help="Directory of the users' homes (created by the lab).", config=True)
    user_python = Unicode(help="Interpreter of the user environment.", config=True)
    notebook_sources = Dict(help="{sub-folder: directory} of notebooks copied.", config=True)

    @property
    def system_name(self) -> str:
        """The Unix account of this spawner's user."""
        return system_user(self.user.name)

    @property
    def home(self) -> Path:
        """The user's home."""
        return Path(self.homes_dir) / self.user.name

    def make_preexec_fn(self, name: str) -> Any:
        """Drop to the user's own account (not the hub user's name, which is no Unix name)."""
        return set_user_setuid(self.system_name)

    def user_env(self, env: dict[str, Any]) -> dict[str, Any]:
        """``USER``, ``HOME`` and ``SHELL`` of the user's account."""
        env["USER"] = self.system_name
        env["HOME"] = str(self.home)
        env["SHELL"] = "/bin/bash"
        return env

    async def start(self) -> Any:
        """Create the account and home if missing, copy the notebooks as the user, start."""
        ensure_account(self.user.name, Path(self.homes_dir))
        if self.notebook_sources:
            done = run_as(
                self.system_name,
                [self.user_python, "-c", _COPY, str(self.home), json.dumps(self.notebook_sources)],
                str(self.home),
            )
            if done.returncode != 0:
                self.log.warning(
                    "Could not copy the lab's notebooks into %s: %s", self.home, done.stderr[-500:]
                )
        return await super().start()


def isolated_backend_class(homes_dir: str | os.PathLike[str]) -> type:
    """``LocalBackend`` with the lab's caps and front, running clusters as their owner's account.

    dask-gateway's ``LocalBackend`` takes the hub user name for the Unix account; here it is
    mapped to ``earthlab-<name>`` (created with its home on first use, as the hub does).
    """
    from dask_gateway_server.backends.local import LocalBackend
    from earthlab_gateway import DashboardFront, UserLimits  # type: ignore[import-not-found]

    homes = Path(homes_dir)

    def account(username: str) -> Any:
        return ensure_account(username, homes)

    class IsolatedLocalBackend(UserLimits, DashboardFront, LocalBackend):
        def set_file_permissions(self, paths: list[str], username: str) -> None:
            # dask-gateway-server 2025.4 passes the working directories followed by the
            # *characters* of the TLS files' paths (``paths.extend(path)``): keep the absolute
            # paths, and add the TLS certificate and key of the working directory.
            owner = account(username)
            real = [p for p in paths if os.path.isabs(p)]
            if real:
                real += [p for p in self._get_tls_paths(real[0]) if os.path.exists(p)]
            for path in dict.fromkeys(real):
                os.chown(path, owner.pw_uid, owner.pw_gid, follow_symlinks=False)

        def make_preexec_fn(self, cluster: Any) -> Any:
            owner = account(cluster.username)
            workdir = cluster.state["workdir"]
            uid, gid = owner.pw_uid, owner.pw_gid
            groups = os.getgrouplist(owner.pw_name, gid)

            def preexec() -> None:
                os.setgid(gid)
                os.setgroups(groups)
                os.setuid(uid)
                os.chdir(workdir)

            return preexec

        def get_env(self, cluster: Any) -> dict[str, str]:
            env: dict[str, str] = super().get_env(cluster)
            owner = account(cluster.username)
            env["USER"] = owner.pw_name
            env["HOME"] = owner.pw_dir
            return env

    IsolatedLocalBackend.__module__ = __name__
    return IsolatedLocalBackend
