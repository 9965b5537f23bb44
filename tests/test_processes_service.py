"""The lab's processing service (OGC API – Processes), started by ``hub up``, used as users do.

Issue 17. The real hub, its proxy and the service (``python -m lab_server.processes``, as the
service account when the lab runs as root) on loopback; clients are plain HTTP with users'
hub tokens and the SDK's ``lab.processes()``. One test per requirement class the service
declares (Part 1: core, ogc-process-description, json, job-list, dismiss, oas30), then what
users must get: progress, cancellation, jobs private to their owner, jobs kept across a restart
of the service, and a real cube build whose values equal the same build run directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import requests
import xarray as xr
import yaml
from hub_fixtures import Hub, Kernel, reachable_by_users, running_lab
from s3_server import KEY, KEY_ENV, REGION, SECRET, SECRET_ENV, Bucket, s3_server  # noqa: F401

import lab
from lab_server.deploy import restart, status
from lab_server.deploy._lab import JOBS_DATABASE_PASSWORD
from lab_server.deploy._layout import gateway_env_names

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
SCOPE = ["access:services!service=processes"]
ASYNC = {"Prefer": "respond-async"}
PROCESSES = {"echo", "cube-build", "water-quality-crossing", "water-quality-maps"}


@pytest.fixture(scope="module")
def jobs_database(postgres: Any) -> tuple[str, str]:
    """The PostgreSQL database the lab keeps its jobs in (URL, password), as operators give it."""
    return tuple(postgres.new_database())  # type: ignore[return-value]


@pytest.fixture(scope="module")
def results_bucket(s3_server: str) -> Bucket:  # noqa: F811
    """The bucket of the lab's object storage (a real S3 server on loopback)."""
    bucket = Bucket(f"lab-{uuid.uuid4().hex[:10]}", s3_server)
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket


def _centres_with_storage(sample_dir: Path, bucket: Bucket, directory: Path) -> Path:
    """The sample's centres, ``theia`` with object storage (where the lab keeps results)."""
    document = yaml.safe_load((sample_dir / "centres.yaml").read_text(encoding="utf-8"))
    for centre in document["centres"]:
        centre["catalog"]["href"] = str(sample_dir / centre["catalog"]["href"])
        centre["static_catalog"] = str(sample_dir / centre["static_catalog"])
        if centre["name"] == "theia":
            centre["storage"] = {
                "url": f"{bucket.url}/lab",
                "endpoint_url": bucket.endpoint,
                "key_env": KEY_ENV,
                "secret_env": SECRET_ENV,
                "region": REGION,
            }
    path = directory / "centres.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    reachable_by_users(directory)  # as the sample's: the service's jobs read it (derived_from)
    directory.chmod(0o755)
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def deployment(
    sample_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    jobs_database: tuple[str, str],
    results_bucket: Bucket,
) -> Iterator[Any]:
    """A lab as operators run one: jobs in PostgreSQL, results on S3-compatible storage."""
    url, password = jobs_database
    centres = _centres_with_storage(sample_dir, results_bucket, tmp_path_factory.mktemp("centres"))
    exported = {JOBS_DATABASE_PASSWORD: password, KEY_ENV: KEY, SECRET_ENV: SECRET}
    os.environ.update(exported)  # what the operator exports for hub up
    try:
        lab_context = running_lab(
            centres,
            tmp_path_factory.mktemp("processes"),
            jobs_database=url,
            results_storage="theia",
        )
        d = lab_context.__enter__()
    finally:
        for name in exported:
            del os.environ[name]
    try:
        yield d
    finally:
        lab_context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def hub(deployment) -> Hub:
    hub = Hub(deployment)
    for user in ("alice", "bob", "carol"):
        hub.create_user(user)
    return hub


@pytest.fixture(scope="module")
def api(deployment, hub) -> dict[str, Any]:
    """``api["alice"](method, path, ...)``: a request with that user's token."""

    def caller(user: str, scopes: list[str]) -> Any:
        headers = {"Authorization": f"token {hub.token(user, scopes)}"}

        def call(method: str, path: str, **kwargs: Any) -> requests.Response:
            return requests.request(
                method,
                deployment.processes_url + path,
                headers={**headers, **kwargs.pop("headers", {})},
                timeout=120,
                **kwargs,
            )

        return call

    return {
        "alice": caller("alice", SCOPE),
        "bob": caller("bob", SCOPE),
        "carol-without-scope": caller("carol", ["read:users:name!user=carol"]),
    }


def wait_for(api_call: Any, job_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api_call("GET", f"jobs/{job_id}").json()
        if job["status"] in states:
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not {states} after {timeout} s: {job}")


def assert_exception(response: requests.Response, status: int, kind: str) -> dict:
    """An OGC exception document (type, title, status, detail) with that status."""
    assert response.status_code == status, response.text
    document = response.json()
    assert document["status"] == status and document["type"].endswith(kind), document
    assert document["detail"], document
    return dict(document)


# --- requirement classes --------------------------------------------------------------------


def test_core_landing_page_and_conformance(deployment, api) -> None:
    landing = requests.get(deployment.processes_url, timeout=30)
    assert landing.status_code == 200
    rels = {link["rel"]: link["href"] for link in landing.json()["links"]}
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/conformance"] == (
        deployment.processes_url + "conformance"
    )
    assert rels["service-desc"] == deployment.processes_url + "openapi"
    declared = requests.get(deployment.processes_url + "conformance", timeout=30).json()
    assert sorted(declared["conformsTo"]) == sorted(
        SPEC + c
        for c in ("core", "ogc-process-description", "json", "job-list", "dismiss", "oas30")
    )
    # everything else needs the user's hub token, with the service's scope
    assert_exception(requests.get(deployment.processes_url + "processes", timeout=30), 401, "")
    assert_exception(api["carol-without-scope"]("GET", "processes"), 403, "")


def test_oas30_the_api_definition(deployment) -> None:
    answer = requests.get(deployment.processes_url + "openapi", timeout=30)
    assert answer.headers["Content-Type"].startswith("application/vnd.oai.openapi+json")
    document = answer.json()
    assert document["openapi"].startswith("3.0")
    assert document["servers"][0]["url"].rstrip("/") == deployment.processes_url.rstrip("/")
    for path in ("/processes", "/processes/{processID}/execution", "/jobs/{jobId}/results"):
        assert path in document["paths"], sorted(document["paths"])


def test_ogc_process_description_of_echo_and_cube_build(api) -> None:
    listed = api["alice"]("GET", "processes").json()["processes"]
    assert {p["id"] for p in listed} == PROCESSES
    echo = api["alice"]("GET", "processes/echo").json()
    assert echo["inputs"]["stringInput"]["schema"] == {"type": "string"}
    assert echo["inputs"]["pause"]["schema"]["x-ogc-unit"] == "s"
    assert "async-execute" in echo["jobControlOptions"] and "dismiss" in echo["jobControlOptions"]
    build = api["alice"]("GET", "processes/cube-build").json()
    assert build["inputs"]["spec"]["minOccurs"] == 1
    assert build["outputs"]["cube"]["schema"]["properties"]["bytes_written"]["x-ogc-unit"] == "By"
    assert_exception(api["alice"]("GET", "processes/nope"), 404, "no-such-process")


def test_json_synchronous_echo_and_bad_inputs(api) -> None:
    inputs = {
        "stringInput": "Thau",
        "doubleInput": 12.5,
        "arrayInput": [1, 2, 3],
        "measureInput": {"measurement": 3.2, "uom": "FNU"},
    }
    answer = api["alice"]("POST", "processes/echo/execution", json={"inputs": inputs})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "stringOutput": "Thau",
        "doubleOutput": 12.5,
        "arrayOutput": [1, 2, 3],
        "measureOutput": {"measurement": 3.2, "uom": "FNU"},
    }
    assert answer.headers["Location"].startswith(api_url(api) + "jobs/")
    bad = api["alice"]("POST", "processes/echo/execution", json={"inputs": {"doubleInput": "x"}})
    assert "doubleInput" in assert_exception(bad, 400, "InvalidParameterValue")["detail"]
    unknown = api["alice"]("POST", "processes/echo/execution", json={"inputs": {"size": 1}})
    assert (
        "unknown inputs ['size']"
        in assert_exception(unknown, 400, "InvalidParameterValue")["detail"]
    )
    missing = api["alice"]("POST", "processes/cube-build/execution", json={"inputs": {}})
    assert_exception(missing, 400, "MissingParameterValue")
    garbled = api["alice"]("POST", "processes/echo/execution", data=b"{not json")
    assert_exception(garbled, 400, "invalid-request")


def api_url(api: dict[str, Any]) -> str:
    return str(api["alice"]("GET", "").url)


def test_job_list_asynchronous_job_with_progress(api) -> None:
    started = api["alice"](
        "POST",
        "processes/echo/execution",
        json={"inputs": {"stringInput": "later", "pause": 3}},
        headers=ASYNC,
    )
    assert started.status_code == 201, started.text
    assert started.headers["Preference-Applied"] == "respond-async"
    job_id = started.json()["jobID"]
    assert started.headers["Location"].endswith(f"/jobs/{job_id}")
    assert started.json()["status"] in ("accepted", "running")
    running = wait_for(api["alice"], job_id, {"running"}, 30)
    seen = set()
    while running["status"] == "running":
        seen.add(running.get("progress"))
        time.sleep(0.3)
        running = api["alice"]("GET", f"jobs/{job_id}").json()
    assert running["status"] == "successful", running
    assert running["progress"] == 100
    assert len({p for p in seen if p is not None and 0 < p < 100}) >= 2, seen  # it moved
    assert api["alice"]("GET", f"jobs/{job_id}/results").json() == {"stringOutput": "later"}
    listed = api["alice"]("GET", "jobs").json()
    assert job_id in [j["jobID"] for j in listed["jobs"]]
    assert all(j["processID"] in PROCESSES for j in listed["jobs"])


def test_dismiss_stops_a_running_job(deployment, api) -> None:
    started = api["alice"](
        "POST", "processes/echo/execution", json={"inputs": {"pause": 120}}, headers=ASYNC
    )
    job_id = started.json()["jobID"]
    wait_for(api["alice"], job_id, {"running"}, 30)
    workers = job_processes(deployment)
    assert len(workers) == 1  # the job's own process
    dismissed = api["alice"]("DELETE", f"jobs/{job_id}")
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    psutil.wait_procs(workers, timeout=20)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
    time.sleep(1)
    assert api["alice"]("GET", f"jobs/{job_id}").json()["status"] == "dismissed"
    assert_exception(api["alice"]("GET", f"jobs/{job_id}/results"), 404, "no-such-job")


def job_processes(deployment: Any) -> list[psutil.Process]:
    """The job processes of the service: the children of its fork server."""
    (service,) = [p for p, alive in status(deployment.run_dir) if p.name == "processes" and alive]
    (server,) = [
        child
        for child in psutil.Process(service.pid).children()
        if "forkserver" in " ".join(child.cmdline())
    ]
    return list(server.children())


# --- what users must get ---------------------------------------------------------------------


def test_a_users_jobs_are_invisible_to_others(api) -> None:
    """The attack: bob reads, lists, dismisses and asks the results of alice's job."""
    done = api["alice"]("POST", "processes/echo/execution", json={"inputs": {"stringInput": "a"}})
    job_id = done.headers["Location"].rsplit("/", 1)[1]
    assert api["alice"]("GET", f"jobs/{job_id}").json()["status"] == "successful"
    for method, path in (
        ("GET", f"jobs/{job_id}"),
        ("GET", f"jobs/{job_id}/results"),
        ("DELETE", f"jobs/{job_id}"),
    ):
        assert_exception(api["bob"](method, path), 404, "no-such-job")
    assert job_id not in [j["jobID"] for j in api["bob"]("GET", "jobs").json()["jobs"]]
    assert api["alice"]("GET", f"jobs/{job_id}/results").json() == {"stringOutput": "a"}


def test_jobs_survive_a_restart_of_the_service(deployment, api) -> None:
    done = api["alice"]("POST", "processes/echo/execution", json={"inputs": {"stringInput": "k"}})
    kept = done.headers["Location"].rsplit("/", 1)[1]
    running = api["alice"](
        "POST", "processes/echo/execution", json={"inputs": {"pause": 120}}, headers=ASYNC
    ).json()["jobID"]
    wait_for(api["alice"], running, {"running"}, 30)
    restart("processes", deployment.run_dir)
    assert api["alice"]("GET", f"jobs/{kept}/results").json() == {"stringOutput": "k"}
    interrupted = api["alice"]("GET", f"jobs/{running}").json()
    assert interrupted["status"] == "failed"
    assert "processing service stopped while the job ran: run it again" in (interrupted["message"])
    names = [proc.name for proc, alive in status(deployment.run_dir) if alive]
    assert "processes" in names


def test_jobs_are_kept_in_the_labs_postgresql_database(deployment, api, jobs_database) -> None:
    import psycopg

    url, password = jobs_database
    job_id = api["alice"](
        "POST", "processes/echo/execution", json={"inputs": {"stringInput": "pg"}}, headers=ASYNC
    ).json()["jobID"]
    wait_for(api["alice"], job_id, {"successful"}, 60)
    with psycopg.connect(url, password=password) as conn:
        row = conn.execute(
            'SELECT "user", status, results FROM jobs WHERE id = %s', (job_id,)
        ).fetchone()
    assert row == ("alice", "successful", json.dumps({"stringOutput": "pg"}))
    run = Path(deployment.run_dir)
    assert not (run / "processes" / "jobs.sqlite").exists()
    # the password is a secret of the service: in no file of the lab but that one, nor a log
    secret = run / "secrets" / "processes-db-password"
    assert secret.read_text().strip() == password
    for path in run.rglob("*"):
        if path.is_file() and path != secret and path.stat().st_size < 5_000_000:
            assert password.encode() not in path.read_bytes(), path


def test_cube_build_job_equals_the_build_run_directly(
    deployment, hub, api, tmp_path, results_bucket
) -> None:
    import datacubes

    started = api["alice"](
        "POST",
        "processes/cube-build/execution",
        json={"inputs": {"spec": "thau-lagoon-sample", "target": "thau.zarr"}},
        headers=ASYNC,
    )
    assert started.status_code == 201, started.text
    job = wait_for(api["alice"], started.json()["jobID"], {"successful", "failed"}, 600)
    assert job["status"] == "successful", job
    cube = api["alice"]("GET", f"jobs/{job['jobID']}/results").json()["cube"]
    assert cube["complete"] and cube["regions_written"] == cube["regions_total"] > 0
    # its Item links the 16 scenes the cube is made of, in theia's STAC API
    item = (
        lab.processes(deployment.processes_url, token=hub.token("alice", SCOPE))
        .job(job["jobID"])
        .item()
    )
    sources = [link for link in item.links if link.rel == "derived_from"]
    assert len(sources) == 16 and all(link.href.startswith("http") for link in sources)
    assert item.assets["cube"].media_type == "application/vnd+zarr"
    # computed by Alice's cluster on the gateway of theia, written by the service
    computed = item.properties["earthlab:computed_on"]
    assert (computed["kind"], computed["centre"]) == ("gateway", "theia"), computed
    # written straight to the lab's object storage, under Alice's results
    assert cube["url"] == f"{results_bucket.url}/lab/results/alice/thau.zarr"
    assert not list((Path(deployment.run_dir) / "processes").rglob("*.zarr"))
    # the same spec built here, from the same federation: the same values
    with lab.config.set(centres=deployment.centres_file):
        direct = datacubes.build("thau-lagoon-sample", target=str(tmp_path / "direct.zarr"))
    assert direct.complete
    served = xr.open_zarr(cube["url"], storage_options=results_bucket.storage_options())
    mine = xr.open_zarr(tmp_path / "direct.zarr")
    assert sorted(served.data_vars) == sorted(mine.data_vars)
    for name in mine.data_vars:
        np.testing.assert_array_equal(served[name].values, mine[name].values)
    # its owner opens it through the service with her hub token, nobody else does
    assert cube["href"] == deployment.processes_url + "results/thau.zarr"
    alice = {"Authorization": f"token {hub.token('alice', SCOPE)}"}
    remote = xr.open_zarr(cube["href"], storage_options={"headers": alice}, consolidated=True)
    for name in mine.data_vars:
        np.testing.assert_array_equal(remote[name].values, mine[name].values)
    meta = ".zmetadata" if (tmp_path / "direct.zarr" / ".zmetadata").exists() else "zarr.json"
    assert requests.get(f"{cube['href']}/{meta}", headers=alice, timeout=30).status_code == 200
    bob = {"Authorization": f"token {hub.token('bob', SCOPE)}"}
    for url in (
        f"{cube['href']}/{meta}",  # bob's own results directory has no such store
        deployment.processes_url + f"results/..%2Falice%2Fthau.zarr%2F{meta}",
        deployment.processes_url + "results/%2E%2E/alice/thau.zarr/" + meta,
    ):
        refused = requests.get(url, headers=bob, timeout=30)
        assert refused.status_code in (403, 404), (url, refused.status_code)
        assert "chunks" not in refused.text and "zarr_format" not in refused.text
    assert requests.get(f"{cube['href']}/{meta}", timeout=30).status_code == 401
    # building again into the same target resumes: nothing rewritten
    again = api["alice"](
        "POST",
        "processes/cube-build/execution",
        json={"inputs": {"spec": "thau-lagoon-sample", "target": "thau.zarr"}},
    )
    assert again.status_code == 200, again.text
    assert again.json()["cube"]["regions_written"] == 0


def test_water_quality_crossing_job_equals_the_recipe_called_directly(
    deployment, api, tmp_path, results_bucket
) -> None:
    from recipes.crossing import water_quality_crossing

    # on THEIA's MAJA products, served over HTTP like the rest: the collection is an input
    maja = "sentinel2-l2a-theia"
    inputs = {"max_dt": "3h", "window": 5, "name": "thau-crossing", "collection": maja}
    started = api["alice"](
        "POST", "processes/water-quality-crossing/execution", json={"inputs": inputs}, headers=ASYNC
    )
    assert started.status_code == 201, started.text
    job = wait_for(api["alice"], started.json()["jobID"], {"successful", "failed"}, 900)
    assert job["status"] == "successful", job["message"]
    outputs = api["alice"]("GET", f"jobs/{job['jobID']}/results").json()
    direct = water_quality_crossing(
        tmp_path / "direct",
        centres=deployment.centres_file,
        collection=maja,
        max_dt="3h",
        window=5,
        progress=None,
    )
    assert all(item.id.startswith("SENTINEL2") for item in direct.items[:16])
    expected = json.loads(direct.files["validation"].read_text())
    assert outputs["validation"] == expected
    assert outputs["validation"]["turbidity"]["n"] > 0
    assert set(outputs["files"]) == {str(k) for k in direct.files}
    # uploaded to the lab's object storage; the outputs name them through the service
    report = deployment.processes_url + "results/thau-crossing/report.html"
    assert outputs["files"]["report"] == report
    assert "lab/results/alice/thau-crossing/report.html" in set(results_bucket.keys())
    assert not list((Path(deployment.run_dir) / "processes").rglob("report.html"))
    page = api["alice"]("GET", "results/thau-crossing/report.html")
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html"
    assert page.content == (direct.files["report"]).read_bytes() or b"<html" in page.content
    assert outputs["federation"] == {k: str(v) for k, v in direct.federation.items()}
    assert outputs["federation"]["theia"] == "ok"
    item = api["alice"]("GET", f"stac/collections/results/items/{job['jobID']}").json()
    computed = item["properties"]["earthlab:computed_on"]
    assert (computed["kind"], computed["centre"]) == ("gateway", "theia"), computed


def _cog(href: str, token: str) -> np.ndarray:
    import rasterio
    from rasterio.io import MemoryFile

    answer = requests.get(href, headers={"Authorization": f"token {token}"}, timeout=60)
    assert answer.status_code == 200, (href, answer.status_code)
    with MemoryFile(answer.content) as memory, memory.open() as cog:
        assert isinstance(cog, rasterio.io.DatasetReader)
        return np.asarray(cog.read(1))


def test_maps_job_results_are_a_stac_item_searched_by_the_federation_and_rebuilt(
    deployment, hub, api, monkeypatch, results_bucket
) -> None:
    """Item 4 of the issue: the job's STAC Item (processing extension, inputs' items linked),
    in Alice's ``results`` collection that ``lab.catalog()`` searches as a centre, hers only;
    its own ``processing:expression`` rebuilds the same maps."""
    alice, bob = hub.token("alice", SCOPE), hub.token("bob", SCOPE)
    client = lab.processes(deployment.processes_url, token=alice)
    inputs = {"products": ["turbidity", "chlorophyll_a"], "composite": "median", "name": "maps"}
    job = client.execute("water-quality-maps", inputs, asynchronous=True)
    assert isinstance(job, lab.Job)
    job.wait(timeout=600, progress=False)
    outputs = job.results()
    assert set(outputs["maps"]) == {"turbidity", "chlorophyll_a"}
    assert len(outputs["scenes"]) == 16

    item = job.item()
    assert item.id == job.job_id and item.collection_id == "results"
    expression = item.properties["processing:expression"]
    assert expression["expression"] == {"process": "water-quality-maps", "inputs": inputs}
    sources = [link for link in item.links if link.rel == "derived_from"]
    assert sorted(link.title for link in sources) == sorted(outputs["scenes"])
    first = requests.get(sources[0].href, timeout=30).json()  # the scene in theia's STAC API
    assert first["id"] == sources[0].title and first["collection"] == "sentinel-2-l2a"
    href = item.assets["turbidity"].href
    assert href == outputs["maps"]["turbidity"]["href"]
    before = _cog(href, alice)
    assert np.isfinite(before).sum() > 100_000
    # kept on the lab's object storage; read through the service with byte ranges, as GDAL
    # reads a COG where it lies
    key = f"lab/results/alice/{outputs['maps']['turbidity']['path'].split('/results/')[-1]}"
    stored = results_bucket.client().get_object(Bucket=results_bucket.name, Key=key)
    stored_bytes = stored["Body"].read()
    ranged = requests.get(
        href, headers={"Authorization": f"token {alice}", "Range": "bytes=100-163"}, timeout=30
    )
    assert ranged.status_code == 206 and ranged.content == stored_bytes[100:164]
    assert ranged.headers["Content-Range"] == f"bytes 100-163/{len(stored_bytes)}"
    tail = requests.get(
        href, headers={"Authorization": f"token {alice}", "Range": "bytes=-10"}, timeout=30
    )
    assert tail.status_code == 206 and tail.content == stored_bytes[-10:]
    outside = requests.get(
        href, headers={"Authorization": f"token {alice}", "Range": "bytes=999999999-"}, timeout=30
    )
    assert outside.status_code == 416
    head = requests.head(href, headers={"Authorization": f"token {alice}"}, timeout=30)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(stored_bytes)
    import rasterio

    with (
        rasterio.Env(GDAL_HTTP_HEADERS=f"Authorization: token {alice}"),
        rasterio.open(href) as remote,
    ):
        np.testing.assert_array_equal(remote.read(1), before)
    refused = requests.get(href, headers={"Authorization": f"token {bob}"}, timeout=30)
    assert refused.status_code in (403, 404) and not refused.content.startswith(b"II*")

    # the federated catalogue finds it, with the token of its owner only
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", alice)
    federation = lab.catalog(deployment.centres_file)
    found = federation.search(collections="results", bbox=[3.55, 43.35, 3.6, 43.4])
    assert item.id in [i.id for i in found] and found.federation["results"].status == "ok"
    assert len(federation.search(collections="results", bbox=[0, 0, 1, 1])) == 0
    assert federation.search(collections="sentinel-2-l2a").federation["results"].status == (
        "skipped"
    )
    landing = requests.get(
        deployment.processes_url + "stac/", headers={"Authorization": f"token {alice}"}, timeout=30
    ).json()
    assert "https://api.stacspec.org/v1.0.0/item-search" in landing["conformsTo"]
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", bob)
    theirs = lab.catalog(deployment.centres_file).search(collections="results")
    assert item.id not in [i.id for i in theirs]
    assert api["bob"]("GET", f"stac/collections/results/items/{item.id}").status_code == 404
    assert requests.get(deployment.processes_url + "stac/search", timeout=30).status_code == 401

    # rebuilt from its own metadata: the same request, the same maps
    again = client.rebuild(item)
    assert isinstance(again, lab.Job) and again.job_id != job.job_id
    again.wait(timeout=600, progress=False)
    rebuilt = again.item()
    assert rebuilt.properties["processing:expression"] == expression
    np.testing.assert_array_equal(_cog(rebuilt.assets["turbidity"].href, alice), before)
    with pytest.raises(lab.ProcessingError, match="no request to rebuild"):
        client.rebuild(first)


def test_a_job_computes_on_the_gateway_next_to_its_data_as_its_owner(
    deployment, hub, tmp_path, monkeypatch
) -> None:
    """Item 3 of the issue: the maps job's cluster is Alice's, on the gateway of the centre
    holding the scenes (theia), started with a token the service made for this job only; its
    progress is the fraction of the cluster's tasks done; her caps apply as in a notebook."""
    from recipes.maps import water_quality_maps

    hub.create_user("dora")
    client = lab.processes(deployment.processes_url, token=hub.token("dora", SCOPE))
    dora_gateway, bob_gateway = (
        hub.gateway_token("dora", "theia"),
        hub.gateway_token("bob", "theia"),
    )
    inputs = {"products": ["turbidity"], "composite": "median", "name": "on-gateway"}
    job = client.execute("water-quality-maps", inputs, asynchronous=True)
    assert isinstance(job, lab.Job)
    seen, seen_by_bob, messages = set(), set(), set()
    deadline = time.monotonic() + 600
    while not (status := job.status()).done and time.monotonic() < deadline:
        messages.add(status.message)
        seen |= set(hub.gateway_clusters("dora", "theia", dora_gateway))
        seen_by_bob |= set(hub.gateway_clusters("bob", "theia", bob_gateway))
        time.sleep(0.3)
    assert status.status == "successful", status.message
    item = job.item()
    computed = item.properties["earthlab:computed_on"]
    assert computed["kind"] == "gateway" and computed["centre"] == "theia"
    assert computed["cluster"] in seen  # listed by Dora's gateway token while the job ran
    assert computed["cluster"] not in seen_by_bob
    assert item.properties["processing:facility"].endswith("Dask Gateway of theia")
    assert any("Dask tasks done on the gateway of theia" in m for m in messages), messages
    # the cluster ends with the job, and so does the token the service made for it
    assert hub.gateway_clusters("dora", "theia", dora_gateway) == {}
    tokens = hub.request("GET", "/users/dora/tokens").json()["api_tokens"]
    assert not [t for t in tokens if job.job_id in (t.get("note") or "")]
    # the values are those of the same maps computed here, locally
    direct = water_quality_maps(
        tmp_path, centres=deployment.centres_file, products=["turbidity"], progress=None
    )
    import rasterio

    with rasterio.open(direct.files["turbidity"]) as cog:
        expected = cog.read(1)
    served = _cog(item.assets["turbidity"].href, hub.token("dora", SCOPE))
    np.testing.assert_allclose(served, expected, rtol=1e-6, equal_nan=True)

    # dismissed while it computes on its cluster: the cluster and the job's token go too
    running = client.execute(
        "water-quality-maps", {**inputs, "name": "dismissed"}, asynchronous=True
    )
    assert isinstance(running, lab.Job)
    deadline = time.monotonic() + 300
    while not hub.gateway_clusters("dora", "theia", dora_gateway):
        assert time.monotonic() < deadline and not running.status().done
        time.sleep(0.2)
    assert running.dismiss().status == "dismissed"
    deadline = time.monotonic() + 60
    while hub.gateway_clusters("dora", "theia", dora_gateway):
        assert time.monotonic() < deadline, "the dismissed job's cluster still runs"
        time.sleep(0.5)
    tokens = hub.request("GET", "/users/dora/tokens").json()["api_tokens"]
    assert not [t for t in tokens if running.job_id in (t.get("note") or "")]

    # at her cap of clusters on that gateway (two, started from "a notebook"), the job fails
    # with the gateway's own message
    for var, value in zip(
        gateway_env_names("theia"),
        (deployment.gateway_address("theia"), deployment.gateway_proxy_address("theia")),
        strict=True,
    ):
        monkeypatch.setenv(var, value)
    mine = [
        lab.cluster(
            centre="theia", workers=0, centres_file=deployment.centres_file, token=dora_gateway
        )
        for _ in range(2)
    ]
    try:
        capped = client.execute("water-quality-maps", inputs, asynchronous=True)
        assert isinstance(capped, lab.Job)
        with pytest.raises(lab.ProcessingError, match=r"already has 2 cluster\(s\).*cap 2"):
            capped.wait(timeout=300, progress=False)
    finally:
        for started in mine:
            started.cluster.shutdown()
            started.close()


def test_subscriptions_through_the_api_and_the_cli(deployment, hub, api) -> None:
    """Item 5 of the issue, as users reach it: subscribe (runs once now), list, cancel; the
    service's own federated search finds the baseline of a new-items subscription; another
    user neither sees nor cancels it. The triggers themselves: tests/test_subscriptions.py."""
    client = lab.processes(deployment.processes_url, token=hub.token("alice", SCOPE))
    scheduled = client.subscribe("echo", {"stringInput": "hourly"}, every=3600)
    assert scheduled["status"] == "active" and len(scheduled["jobs"]) == 1
    first = client.job(scheduled["jobs"][0]).wait(timeout=60, progress=False)
    assert first.status == "successful"
    watching = client.subscribe(
        "echo",
        {"stringInput": "a new scene"},
        new_items={"collections": ["sentinel-2-l2a"], "bbox": [3.5, 43.3, 3.7, 43.5]},
    )
    assert watching["message"].startswith("subscribed with 16 items known"), watching
    mine = {s["id"]: s for s in client.subscriptions()}
    assert {scheduled["id"], watching["id"]} <= set(mine)

    with pytest.raises(lab.ProcessingError, match="at least 60 s"):
        client.subscribe("echo", {}, every=1)
    refused = api["alice"]("POST", "subscriptions", json={"process": "echo", "inputs": {"x": 1}})
    assert_exception(refused, 400, "InvalidParameterValue")
    bob = api["bob"]
    assert bob("GET", f"subscriptions/{scheduled['id']}").status_code == 404
    assert bob("DELETE", f"subscriptions/{scheduled['id']}").status_code == 404
    assert scheduled["id"] not in str(bob("GET", "subscriptions").json())

    env = {
        **os.environ,
        "EARTHLAB_PROCESSES__URL": deployment.processes_url,
        "JUPYTERHUB_API_TOKEN": hub.token("alice", SCOPE),
    }
    earthlab = [str(Path(sys.executable).parent / "earthlab"), "process"]
    listed = subprocess.run(
        [*earthlab, "subscriptions"], capture_output=True, text=True, env=env, timeout=60
    )
    assert listed.returncode == 0 and "every 3600 s" in listed.stdout, listed.stderr
    assert "new items of sentinel-2-l2a" in listed.stdout
    for sub in (scheduled, watching):
        cancelled = subprocess.run(
            [*earthlab, "unsubscribe", sub["id"]],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout, cancelled.stderr
    assert {s["id"]: s["status"] for s in client.subscriptions()}[scheduled["id"]] == "cancelled"


def test_lab_processes_in_a_users_notebook(hub) -> None:
    """In a kernel of the user's server: ``lab.processes()`` with no argument (the hub set the
    service's URL and the server's token carries its scope), a job waited for."""
    server = hub.start_server("alice")
    kernel = Kernel(server, hub.token("alice", ["access:servers!user=alice"]))
    try:
        output = kernel.execute(
            "import lab\n"
            "service = lab.processes()\n"
            "print(sorted(p.id for p in service.list()))\n"
            "job = service.execute('echo', {'stringInput': 'from a notebook', 'pause': 1}, "
            "asynchronous=True)\n"
            "print(job.wait(timeout=60, progress=False).status, job.results())\n",
            timeout=120,
        )
    finally:
        kernel.close()
    assert output.error is None, output.error
    lines = output.stdout.strip().splitlines()
    assert lines[0] == str(sorted(PROCESSES))
    assert lines[1] == "successful {'stringOutput': 'from a notebook'}"


def test_an_independent_client_owslib(deployment, hub) -> None:
    """OWSLib's OGC API – Processes client (another project's reading of the standard)."""
    from owslib.ogcapi.processes import Processes

    token = hub.token("bob", SCOPE)
    client = Processes(deployment.processes_url, headers={"Authorization": f"token {token}"})
    assert set(client.conformance()["conformsTo"]) >= {SPEC + "core", SPEC + "job-list"}
    assert {p["id"] for p in client.processes()} == PROCESSES
    assert client.process("echo")["inputs"]["doubleInput"]["schema"] == {"type": "number"}
    assert client.execute("echo", {"stringInput": "OWSLib", "doubleInput": 0.5}) == {
        "stringOutput": "OWSLib",
        "doubleOutput": 0.5,
    }
    started = client.execute("echo", {"stringInput": "later"}, async_=True)
    assert started["status"] in ("accepted", "running", "successful"), started


def test_the_earthlab_process_commands_against_the_service(deployment, hub) -> None:
    """From a shell with a hub token in the environment, as a user outside the lab does."""
    env = {
        **os.environ,
        "EARTHLAB_PROCESSES__URL": deployment.processes_url,
        "JUPYTERHUB_API_TOKEN": hub.token("bob", SCOPE),
    }
    command = [str(Path(sys.executable).parent / "earthlab"), "process"]

    def earthlab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120, env=env, check=False
        )

    listed = earthlab("list")
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in PROCESSES)
    ran = earthlab("run", "echo", "-i", "stringInput=shell", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"stringOutput": "shell"}
    submitted = earthlab("run", "echo", "-i", "stringInput=later", "--async", "--json")
    job_id = json.loads(submitted.stdout)["jobID"]
    waited = earthlab("status", job_id, "--wait", "--json")
    assert json.loads(waited.stdout)["status"] == "successful", waited.stdout
    assert "later" in earthlab("results", job_id).stdout
    env["JUPYTERHUB_API_TOKEN"] = hub.token("alice", SCOPE)  # another user: not found
    refused = earthlab("status", job_id)
    assert refused.returncode != 0 and "404" in refused.stderr + refused.stdout
