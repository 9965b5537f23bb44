"""``lab.processes()`` against an independent OGC API – Processes server: pygeoapi on loopback.

pygeoapi (the OGC reference implementation in Python) runs its Flask application with its own
``hello-world`` and ``echo`` processes and its TinyDB job manager; the client must list,
describe, run synchronously and asynchronously, follow a job to its results, read the server's
refusals, and the ``earthlab process`` commands must do the same from a shell.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import lab
from lab_server.deploy._procs import free_port, http_ready, start, stop, wait_until

pytestmark = [pytest.mark.integration]

IP = "127.0.0.1"

SERVE = """
import sys
from pygeoapi.flask_app import APP
APP.run(host=sys.argv[1], port=int(sys.argv[2]), threaded=True)
"""


def pygeoapi_config(port: int, jobs: Path) -> dict:
    """A pygeoapi configuration: its two example processes and a TinyDB job manager."""
    url = f"http://{IP}:{port}"
    return {
        "server": {
            "bind": {"host": IP, "port": port},
            "url": url,
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": 50},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": ""},
            "manager": {"name": "TinyDB", "connection": str(jobs), "output_dir": str(jobs.parent)},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "test processes",
                "description": "pygeoapi for earthlab's tests",
                "keywords": ["test"],
                "keywords_type": "theme",
                "terms_of_service": "https://creativecommons.org/licenses/by/4.0/",
                "url": url,
            },
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "earthlab tests", "url": url},
            "contact": {"name": "tests", "email": "tests@example.org"},
        },
        "resources": {
            "hello-world": {"type": "process", "processor": {"name": "HelloWorld"}},
            "echo": {"type": "process", "processor": {"name": "Echo"}},
        },
    }


@pytest.fixture(scope="module")
def pygeoapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The landing page of a pygeoapi serving hello-world and echo on loopback."""
    directory = tmp_path_factory.mktemp("pygeoapi")
    port = free_port(IP)
    config = directory / "pygeoapi.yml"
    config.write_text(yaml.safe_dump(pygeoapi_config(port, directory / "jobs.db")))
    openapi = directory / "openapi.yml"
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "pygeoapi"), "openapi", "generate", str(config), "-of", str(openapi)],
        env=env,
        check=True,
        capture_output=True,
    )
    proc = start(
        "pygeoapi",
        [sys.executable, "-c", SERVE, IP, str(port)],
        directory / "pygeoapi.log",
        env,
        directory,
    )
    url = f"http://{IP}:{port}/"
    try:
        wait_until(proc, http_ready(url + "processes?f=json"), timeout=60)
        yield url
    finally:
        stop(proc, timeout=10)


def test_lists_and_describes_the_servers_processes(pygeoapi: str):
    client = lab.processes(pygeoapi)
    assert {p.id for p in client.list()} == {"hello-world", "echo"}
    hello = client.describe("hello-world")
    assert hello.title == "Hello World"
    assert set(hello.inputs) == {"name", "message"}
    assert hello.required_inputs == ("name",)
    assert hello.inputs["name"]["schema"] == {"type": "string"}
    assert set(hello.outputs) == {"echo"}
    assert "async-execute" in hello.job_control
    conformance = client.conformance()
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core" in conformance


def test_synchronous_execution_gives_the_outputs(pygeoapi: str):
    results = lab.processes(pygeoapi).execute("hello-world", {"name": "Data Terra"})
    # pygeoapi answers its single output as {"id", "value"} (not the standard's {"echo": ...})
    assert results == {"id": "echo", "value": "Hello Data Terra!"}


def test_asynchronous_job_is_followed_to_its_results(pygeoapi: str):
    client = lab.processes(pygeoapi)
    job = client.execute("hello-world", {"name": "ODATIS", "message": "bonjour"}, asynchronous=True)
    assert isinstance(job, lab.Job)
    final = job.wait(timeout=60, poll=0.2, progress=False)
    assert final.status == "successful"
    assert final.job_id == job.job_id
    assert final.progress == 100
    assert job.results() == {"id": "echo", "value": "Hello ODATIS! bonjour"}
    assert job.job_id in {j.job_id for j in client.jobs()}
    dismissed = job.dismiss()
    assert dismissed.status == "dismissed"
    with pytest.raises(lab.ProcessingError, match="404"):
        job.status()


def test_the_servers_refusals_are_quoted(pygeoapi: str):
    client = lab.processes(pygeoapi)
    with pytest.raises(lab.ProcessingError, match=r"HTTP 404.*(not found|NoSuchProcess)") as e:
        client.describe("no-such-process")
    assert "processes/no-such-process" in str(e.value)
    with pytest.raises(lab.ProcessingError, match="HTTP 400"):
        client.execute("hello-world", {"message": "no name"})
    with pytest.raises(lab.ProcessingError, match="HTTP 404"):
        client.job("0123456789abcdef").status()
    with pytest.raises(lab.ConfigurationError, match="not a process or job identifier"):
        client.describe("../jobs")


def test_without_a_url_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("EARTHLAB_PROCESSES__URL", raising=False)
    with pytest.raises(lab.ConfigurationError, match="EARTHLAB_PROCESSES__URL"):
        lab.processes()
    monkeypatch.setenv("EARTHLAB_PROCESSES__URL", "ftp://nowhere")
    with pytest.raises(lab.ConfigurationError, match="http"):
        lab.processes()


def test_token_is_sent_as_the_hubs(pygeoapi: str, monkeypatch: pytest.MonkeyPatch):
    seen: list[str | None] = []

    def hook(request) -> None:
        seen.append(request.headers.get("Authorization"))

    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "abc123")
    lab.add_request_hook(hook)
    try:
        lab.processes(pygeoapi).describe("echo")
    finally:
        lab.remove_request_hook(hook)
    assert seen == ["token abc123"]


def earthlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "earthlab"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_lists_describes_runs_and_follows_jobs(pygeoapi: str):
    env = {"EARTHLAB_PROCESSES__URL": pygeoapi}
    listed = earthlab("process", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "hello-world" in listed.stdout and "echo" in listed.stdout

    described = earthlab("process", "describe", "hello-world", env=env)
    assert described.returncode == 0, described.stderr
    assert "name" in described.stdout and "required" in described.stdout

    ran = earthlab("process", "run", "hello-world", "-i", "name=CLI", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "Hello CLI!" in json.dumps(json.loads(ran.stdout))

    submitted = earthlab(
        "process", "run", "hello-world", "-i", "name=later", "--async", "--json", env=env
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["jobID"]
    status = earthlab("process", "status", job_id, "--wait", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "successful"
    results = earthlab("process", "results", job_id, env=env)
    assert results.returncode == 0, results.stderr
    assert "Hello later!" in results.stdout
    dismissed = earthlab("process", "dismiss", job_id, env=env)
    assert dismissed.returncode == 0, dismissed.stderr
    assert "dismissed" in dismissed.stdout

    bad = earthlab("process", "run", "hello-world", "-i", "no-equals-sign", env=env)
    assert bad.returncode == 2
    assert "name=value" in bad.stderr
    unknown = earthlab("process", "describe", "nope", env=env)
    assert unknown.returncode == 1
    assert "HTTP 404" in unknown.stderr
