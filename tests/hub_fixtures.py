"""Drive a running local lab from tests: the hub's REST API, users' servers and their kernels.

``running_lab`` starts what ``earthlab hub up`` starts (same function, free ports, a temporary
run directory) and always stops it, by process id, in a ``finally`` block. ``Hub`` talks to the
hub's REST API with the admin service token; ``Kernel`` runs code in a kernel of a user's
server through the Jupyter REST API and the kernel's WebSocket channels.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from lab_server.deploy import Deployment, RunDir, down, up
from lab_server.deploy._layout import access_scope


def reachable_by_users(run_dir: Path) -> Path:
    """As root, let other accounts traverse the directories above ``run_dir`` (``o+x``).

    A lab started as root isolates its users, whose homes are under the run directory; pytest's
    temporary directories are closed to others (0700), which ``hub up`` refuses, naming the
    ``chmod o+x`` an operator would run: this is that command. Nothing becomes listable.
    """
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for directory in [*reversed(run_dir.parent.resolve().parents), run_dir.parent.resolve()]:
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    return run_dir


@contextlib.contextmanager
def running_lab(centres_file: Path, run_dir: Path, **kwargs: Any) -> Iterator[Deployment]:
    """Start the whole local lab on free ports; stop everything on exit.

    As root (CI), the lab isolates its users: each hub user the tests create gets a Unix
    account ``earthlab-<name>``, and ``run_dir``'s parents are made traversable for them.
    """
    reachable_by_users(run_dir)
    try:
        deployment = up(centres_file, run_dir=run_dir, port=0, **kwargs)
        # when up returns, every gateway answers through the lab's URL (the hub adds the
        # services' routes after its API answers; a request before that reached the hub: 403)
        for g in deployment.gateways:
            health = requests.get(deployment.gateway_address(g.centre) + "/api/health", timeout=30)
            assert health.status_code == 200 and health.json()["status"] == "pass", health.text
        yield deployment
    finally:
        down(run_dir)


class Hub:
    """The hub's REST API, as the ``earthlab-admin`` service."""

    def __init__(self, deployment: Deployment):
        self.deployment = deployment
        self.run = RunDir(deployment.run_dir)
        self.api = deployment.url + "hub/api"
        self._headers = {"Authorization": f"token {self.run.secret('admin-token')}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the hub's API with the admin service token."""
        return requests.request(
            method, self.api + path, headers=self._headers, timeout=30, **kwargs
        )

    def create_user(self, name: str) -> None:
        """Create a user (idempotent)."""
        response = self.request("POST", f"/users/{name}")
        assert response.status_code in (201, 409), response.text

    def account(self, name: str) -> str:
        """Give ``name`` an account of the lab's per-user passwords; return its password."""
        from lab_server.deploy._accounts import add_accounts

        return add_accounts(self.run, [name], reset=True)[name]

    def token(self, user: str, scopes: list[str], expires_in: int = 900) -> str:
        """Issue a token for ``user`` holding ``scopes``."""
        response = self.request(
            "POST",
            f"/users/{user}/tokens",
            json={"scopes": scopes, "expires_in": expires_in, "note": "test"},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def add_to_group(self, group: str, users: list[str]) -> None:
        """Add users to a hub group (the lab creates the groups restricted data is for)."""
        response = self.request("POST", f"/groups/{group}/users", json={"users": users})
        assert response.status_code == 200, response.text

    def gateway_token(self, user: str, centre: str) -> str:
        """A token of ``user`` for a centre's gateway (and nothing else)."""
        return self.token(user, [access_scope(centre)])

    def start_server(self, user: str, timeout: float = 120) -> str:
        """Start the user's server; return its URL once ready."""
        response = self.request("POST", f"/users/{user}/server")
        assert response.status_code in (201, 202, 400), response.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.request("GET", f"/users/{user}").json()["servers"].get("")
            if server and server["ready"]:
                return self.deployment.url.rstrip("/") + server["url"]
            time.sleep(0.5)
        raise TimeoutError(f"server of {user} not ready after {timeout} s")

    def contents(self, server_url: str, token: str, path: str) -> requests.Response:
        """GET a file or directory of the user's server through the Jupyter contents API."""
        return requests.get(
            server_url.rstrip("/") + f"/api/contents/{path}",
            headers={"Authorization": f"token {token}"},
            params={"content": 1},
            timeout=30,
        )

    def upload(self, server_url: str, token: str, path: str, model: dict[str, Any]) -> None:
        """PUT a contents-API model (``{"type": "notebook", "content": ...}``) at ``path``,
        creating its parent directories."""
        headers = {"Authorization": f"token {token}"}
        base = server_url.rstrip("/") + "/api/contents/"
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            response = requests.put(
                base + directory, headers=headers, json={"type": "directory"}, timeout=30
            )
            assert response.status_code in (200, 201), response.text
        response = requests.put(base + path, headers=headers, json=model, timeout=60)
        assert response.status_code in (200, 201), response.text

    def stop_server(self, user: str, timeout: float = 60) -> None:
        """Stop the user's server and wait until the hub says it stopped."""
        response = self.request("DELETE", f"/users/{user}/server")
        assert response.status_code in (202, 204), response.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.request("GET", f"/users/{user}").json()["servers"]:
                return
            time.sleep(0.5)
        raise TimeoutError(f"server of {user} still there after {timeout} s")

    def gateway_clusters(self, user: str, centre: str, token: str | None = None) -> dict:
        """The user's pending and running clusters on a centre's gateway, by name."""
        token = token or self.gateway_token(user, centre)
        response = requests.get(
            self.deployment.gateway_address(centre) + "/api/v1/clusters/",
            params={"status": "pending,running"},
            headers={"Authorization": f"jupyterhub {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Output:
    """What a cell printed, and its error if any."""

    stdout: str
    error: str | None

    def json_lines(self) -> list[Any]:
        """Lines of stdout that are JSON documents."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


@dataclass
class CellError:
    """A notebook cell that failed: its index in the notebook, source and error."""

    index: int
    source: str
    error: str

    def __str__(self) -> str:
        return f"cell {self.index}:\n{self.source}\n-> {self.error}"


class Kernel:
    """A kernel of a user's server, driven over REST and its WebSocket channels.

    Parameters
    ----------
    server_url, token
        The user's server and a token that may access it.
    name
        Kernelspec to start (default: the server's default kernel).
    path
        Path, relative to the server's root, of the notebook the kernel is for: the kernel
        starts in its directory.
    """

    def __init__(
        self, server_url: str, token: str, name: str | None = None, path: str | None = None
    ):
        import websocket

        self.base = server_url.rstrip("/") + "/"
        self.headers = {"Authorization": f"token {token}"}
        model = {k: v for k, v in {"name": name, "path": path}.items() if v is not None}
        response = requests.post(
            self.base + "api/kernels", headers=self.headers, json=model, timeout=60
        )
        assert response.status_code == 201, response.text
        self.id = response.json()["id"]
        self.name = response.json()["name"]
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            self.base.replace("http://", "ws://") + f"api/kernels/{self.id}/channels",
            header=[f"Authorization: token {token}"],
            timeout=60,
        )

    def execute(self, code: str, timeout: float = 120) -> Output:
        """Run ``code``; return its stdout and error (``ename: evalue`` and traceback)."""
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": self.session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        stdout, error = [], None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(deadline - time.monotonic(), 1))
            message = json.loads(self.ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream" and content["name"] == "stdout":
                stdout.append(content["text"])
            elif kind == "error":
                error = _ANSI.sub(
                    "",
                    f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"]),
                )
            elif kind == "status" and content["execution_state"] == "idle":
                return Output("".join(stdout), error)
        raise TimeoutError(f"cell did not finish in {timeout} s; stdout so far: {stdout}")

    def run_notebook(self, notebook: dict[str, Any], timeout: float = 300) -> list[CellError]:
        """Run a notebook's code cells in order, as "Run All" does: stop at the first error.

        Returns
        -------
        list of CellError
            Empty when every cell ran; else the failing cell (index in ``notebook["cells"]``).
        """
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            output = self.execute(source, timeout=timeout)
            if output.error is not None:
                return [CellError(index, source, output.error)]
        return []

    def close(self) -> None:
        """Close the channels and shut the kernel down."""
        with contextlib.suppress(Exception):
            self.ws.close()
        with contextlib.suppress(Exception):
            requests.delete(self.base + f"api/kernels/{self.id}", headers=self.headers, timeout=30)


def form_login(deployment: Deployment, user: str, password: str) -> requests.Response:
    """Post the hub's login form as a browser does; the answer is not followed.

    302 (to the hub) when the hub lets the user in, 403 with the form again when it does not.
    """
    import re

    session = requests.Session()
    form = session.get(deployment.url + "hub/login", timeout=30)
    data = {"username": user, "password": password}
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
    if xsrf:
        data["_xsrf"] = xsrf.group(1)
    return session.post(deployment.url + "hub/login", data=data, allow_redirects=False, timeout=30)
