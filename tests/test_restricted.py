"""Restricted imagery: the quota ledger and URL signatures alone, then end to end with the lab
(hub, proxy, gateways, STAC APIs, the restricted-data service of ``dinamis``) on loopback, a
member and an outsider of the hub group ``dinamis``.

In the lab the quota is lowered to 3 km² (through ``EARTHLAB_POLICY_FILE``), so that two of the
sample's three 1.44 km² scenes fit and the third does not. Expected areas come from the
sample's own record (``truth/generator.json``), computed by the generator. The lab tests share
erin's usage: keep their order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import rasterio
import requests
import yaml
from hub_fixtures import Hub, running_lab

import lab
from lab._cli import main
from lab._errors import ConfigurationError
from lab_server.deploy import RunDir, status
from lab_server.deploy._lab import restart
from lab_server.deploy._layout import access_scope
from lab_server.restricted._ledger import QuotaPolicy, UsageLedger, footprint_km2
from lab_server.restricted._signing import sign_url, verify

QUOTA_KM2 = 3.0
ACCESS_URL = "https://dinamis.data-terra.org/"
SERVICE_SCOPE = "access:services!service=restricted-dinamis"
RESULTS_SCOPE = "access:services!service=processes"
"""Every server's token holds it: users' processing results are a centre of their federation."""


# ------------------------------------------------------------------ ledger and signatures


def test_ledger_charges_each_item_once_a_day_and_refuses_beyond_the_quota(tmp_path) -> None:
    ledger = UsageLedger(tmp_path / "usage.sqlite")
    day = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    first = ledger.charge("erin", "c", "a", 1.5, 4.0, day)
    again = ledger.charge("erin", "c", "a", 1.5, 4.0, day + dt.timedelta(hours=5))
    assert (first.allowed, first.charged, first.used_km2) == (True, True, 1.5)
    assert (again.allowed, again.charged, again.used_km2) == (True, False, 1.5)
    next_day = ledger.charge("erin", "c", "a", 1.5, 4.0, day + dt.timedelta(days=1))
    assert next_day.charged and next_day.used_km2 == 3.0  # a new day, a new charge
    probe = ledger.charge("erin", "c", "b", 1.0, 4.0, day, dry_run=True)
    assert probe.allowed and not probe.charged and probe.used_km2 == 3.0  # nothing charged
    over = ledger.charge("erin", "c", "b", 1.5, 4.0, day)
    assert (over.allowed, over.charged, over.used_km2) == (False, False, 3.0)
    assert ledger.charge("frank", "c", "b", 1.5, 4.0, day).allowed  # each user their own
    new_year = ledger.charge("erin", "c", "b", 1.5, 4.0, dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert new_year.allowed and new_year.used_km2 == 1.5  # the quota is per calendar year
    usage = ledger.usage("erin", day)
    assert (usage.year, usage.items, usage.used_km2) == (2026, 2, 3.0)
    ledger.close()
    reopened = UsageLedger(tmp_path / "usage.sqlite")  # survives closing the database
    assert reopened.usage("erin", day).used_km2 == 3.0


def test_footprint_area_is_geodesic(scenes: dict) -> None:
    # a 1 degree x 1 degree cell at the equator: 12 308.8 km² on the WGS84 ellipsoid
    cell = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    assert footprint_km2(cell) == pytest.approx(12308.778, rel=1e-5)
    # the sample's VHR window: 1.2 km x 1.2 km on the UTM grid, scale factor 0.99963 there
    assert scenes["footprint_km2"] == pytest.approx(1.44 / 0.99963**2, rel=2e-4)
    with pytest.raises(ConfigurationError, match="Polygon footprint"):
        footprint_km2({"type": "Point", "coordinates": [3.6, 43.4]})


def test_quota_policy_reads_lab_yaml_and_names_bad_keys() -> None:
    policy = QuotaPolicy.from_policy(
        {"restricted": {"quota_km2_per_year": {"dinamis": 2000, "pleiades-plus": 5000}}}
    )
    assert policy.quota_for(["dinamis"]) == 2000 and policy.signed_url_lifetime == 3600
    assert policy.quota_for(["dinamis", "pleiades-plus", "staff"]) == 5000  # the largest
    assert policy.quota_for(["staff"]) is None
    with pytest.raises(ConfigurationError, match=r"quota_km2_per_year\.dinamis"):
        QuotaPolicy.from_policy({"restricted": {"quota_km2_per_year": {"dinamis": -1}}})
    with pytest.raises(ConfigurationError, match=r"unknown key.*restricted\.quota"):
        QuotaPolicy.from_policy({"restricted": {"quota": 1}})


def test_signed_urls_bind_user_path_and_expiry() -> None:
    key = b"k" * 32
    url = sign_url("http://h/assets/c/i/red.tif", "c/i/red.tif", key, "erin", 60)
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    assert query["user"] == "erin"
    assert verify(key, "erin", "c/i/red.tif", query["expires"], query["signature"]) is None
    assert verify(key, "frank", "c/i/red.tif", query["expires"], query["signature"])
    assert verify(key, "erin", "c/i/nir.tif", query["expires"], query["signature"])
    assert verify(b"x" * 32, "erin", "c/i/red.tif", query["expires"], query["signature"])
    expired = sign_url("http://h/a", "a", key, "erin", -1).split("expires=")[1].split("&")[0]
    assert "expired" in verify(key, "erin", "a", expired, "0" * 64)


# ------------------------------------------------------------------ the lab, end to end


@pytest.fixture(scope="module")
def deployment(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("restricted")
    text = (Path(__file__).parent.parent / "hub_config" / "lab.yaml").read_text()
    policy = root / "lab.yaml"
    policy.write_text(text.replace("    dinamis: 2000\n", f"    dinamis: {QUOTA_KM2}\n"))
    assert policy.read_text() != text
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EARTHLAB_POLICY_FILE", str(policy))  # read by every server the lab starts
        with running_lab(sample_dir / "centres.yaml", root / "run") as d:
            yield d


@pytest.fixture(scope="module")
def hub(deployment) -> Hub:
    hub = Hub(deployment)
    for user in ("erin", "frank"):
        hub.create_user(user)
    hub.add_to_group("dinamis", ["erin"])
    return hub


@pytest.fixture(scope="module")
def erin(hub: Hub) -> str:
    return hub.token("erin", [SERVICE_SCOPE, access_scope("dinamis"), RESULTS_SCOPE])


@pytest.fixture(scope="module")
def frank(hub: Hub) -> str:
    return hub.token("frank", [access_scope("theia"), RESULTS_SCOPE])


@pytest.fixture(scope="module")
def scenes(sample_truth: dict) -> dict:
    return sample_truth["dinamis"]


def quota(deployment, token: str) -> dict:
    url = deployment.restricted_service_url("dinamis") + "quota"
    response = requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def search(deployment, token: str, monkeypatch, **query):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
    return lab.catalog(deployment.centres_file).search(**query)


@pytest.mark.integration
@pytest.mark.slow
def test_member_searches_with_signed_asset_urls_and_is_charged_once(
    deployment, hub, erin, scenes, sample_dir, monkeypatch
) -> None:
    result = search(deployment, erin, monkeypatch)
    assert {c: r.status for c, r in result.federation.items()} == {
        "theia": "ok",
        "odatis": "ok",
        "dinamis": "ok",
        "aeris": "ok",
        "results": "ok",  # her processing results: none
    }
    assert len(result) == 32 + 7 + 92 + 3 + 92 and result.federation_missing == []
    vhr = [i for i in result if i.properties["earthlab:centre"] == "dinamis"]
    assert [i.id for i in vhr] == [a["item_id"] for a in scenes["acquisitions"]]
    first = vhr[0]
    href = first.assets["red"].href
    base = deployment.restricted_service_url("dinamis") + "assets/pleiades-ms/"
    assert href.startswith(base + f"{first.id}/red.tif?user=erin&expires=")
    assert "signature=" in href
    local = sample_dir / "dinamis" / "pleiades-ms" / first.id / "red.tif"
    body = requests.get(href, timeout=30)  # no token: the signature is the pass
    assert body.status_code == 200 and body.content == local.read_bytes()
    window = ((0, 64), (0, 64))
    with (
        rasterio.open(first.assets["nir"].href) as src,  # GDAL over HTTP: same item, same day
        rasterio.open(local.with_name("nir.tif")) as ref,
    ):
        assert np.array_equal(src.read(1, window=window), ref.read(1, window=window))
    usage = quota(deployment, erin)
    assert usage["user"] == "erin" and usage["groups"] == ["dinamis"]
    assert usage["items"] == 1  # two bands and many ranges of one item, one charge
    assert usage["used_km2"] == pytest.approx(scenes["footprint_km2"], abs=1e-6)
    assert usage["quota_km2"] == QUOTA_KM2
    assert usage["charges"][0]["item"] == first.id


@pytest.mark.integration
@pytest.mark.slow
def test_outsider_sees_a_restricted_entry_and_gets_403(
    deployment, hub, erin, frank, monkeypatch, capsys
) -> None:
    result = search(deployment, frank, monkeypatch)
    report = result.federation["dinamis"]
    assert report.status == "restricted" and report.attempts == 1
    assert report.error.startswith(f"restricted: request access via {ACCESS_URL}")
    assert "frank is not a member" in report.error
    assert result.federation_missing == ["dinamis"] and len(result) == 32 + 7 + 92 + 92
    assert main(["search", "--centres", deployment.centres_file, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["federation:missing"] == ["dinamis"]
    # the assets refuse him too, whatever he tries
    item = search(deployment, erin, monkeypatch, collections="pleiades-ms")[0]
    signed = item.assets["red"].href
    unsigned = signed.split("?")[0]
    own = requests.get(unsigned, headers={"Authorization": f"token {frank}"}, timeout=30)
    assert own.status_code == 403
    assert own.json()["description"].startswith(f"restricted: request access via {ACCESS_URL}")
    assert requests.get(unsigned, timeout=30).status_code == 401
    forged = requests.get(signed.replace("user=erin", "user=frank"), timeout=30)
    assert forged.status_code == 403 and "invalid signature" in forged.json()["description"]
    # ... and the hub does not give him the service's scope
    refused = hub.request(
        "POST", "/users/frank/tokens", json={"scopes": [SERVICE_SCOPE], "expires_in": 60}
    )
    assert refused.status_code in (400, 403) and "not held" in refused.text
    monkeypatch.setenv("FRANK_TOKEN", frank)
    code = main(["quota", "--centres", deployment.centres_file, "--token-env", "FRANK_TOKEN"])
    assert code == 1
    assert f"dinamis: restricted: request access via {ACCESS_URL}" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.slow
def test_gateway_of_dinamis_admits_only_members(deployment, hub, erin, frank) -> None:
    url = deployment.gateway_address("dinamis") + "/api/v1/clusters/"
    member = requests.get(url, headers={"Authorization": f"jupyterhub {erin}"}, timeout=30)
    assert member.status_code == 200 and member.json() == {}
    outsider = requests.get(url, headers={"Authorization": f"jupyterhub {frank}"}, timeout=30)
    assert outsider.status_code == 401
    theia = deployment.gateway_address("theia") + "/api/v1/clusters/"
    assert requests.get(theia, headers={"Authorization": f"jupyterhub {frank}"}, timeout=30).ok
    refused = hub.request(
        "POST", "/users/frank/tokens", json={"scopes": [access_scope("dinamis")], "expires_in": 60}
    )
    assert refused.status_code in (400, 403)


@pytest.mark.integration
@pytest.mark.slow
def test_loads_count_and_the_quota_refuses_beyond_it(
    deployment, erin, scenes, monkeypatch, capsys
) -> None:
    import datacubes

    first, second, third = search(deployment, erin, monkeypatch, collections="pleiades-ms")
    cube = datacubes.load([second], ["red"])
    assert float(cube["red"].mean().compute()) > 0
    footprint = scenes["footprint_km2"]
    usage = quota(deployment, erin)
    assert usage["items"] == 2 and usage["used_km2"] == pytest.approx(2 * footprint, abs=1e-6)
    refused = requests.get(third.assets["red"].href, timeout=30)
    assert refused.status_code == 403
    message = refused.json()["description"]
    used, remaining = 2 * footprint, QUOTA_KM2 - 2 * footprint
    assert message.startswith(
        f"quota exceeded: erin used {used:.3f} km² of a yearly quota of {QUOTA_KM2:.3f} km² "
        f"of restricted imagery ({remaining:.3f} km² remaining); item {third.id} needs "
        f"{footprint:.3f} km²"
    )
    # the loader says why the server refused, not only its status
    with pytest.raises(lab.AssetReadError, match=r"refused it \(HTTP 403\): quota exceeded: erin"):
        datacubes.load([third], ["red"])["red"].compute()
    # what was charged today stays readable
    assert requests.get(first.assets["blue"].href, timeout=30).status_code == 200
    assert quota(deployment, erin)["items"] == 2
    monkeypatch.setenv("ERIN_TOKEN", erin)
    assert main(["quota", "--centres", deployment.centres_file, "--token-env", "ERIN_TOKEN"]) == 0
    assert f"dinamis: erin used {used:.3f} km² of {QUOTA_KM2:.3f} km²" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.slow
def test_usage_survives_a_restart_of_the_service(deployment, erin, monkeypatch) -> None:
    before = quota(deployment, erin)
    ledger = Path(deployment.run_dir) / "restricted" / "dinamis" / "usage.sqlite"
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT COUNT(*) FROM charges WHERE user = 'erin'").fetchone() == (2,)
    old = next(p for p, _ in status(deployment.run_dir) if p.name == "restricted-dinamis")
    # restarted from a shell without the lab's policy file (issue 16: it came back with the
    # default quota of 2000 km²): the copy the lab was started with is kept in the run directory
    kept = RunDir(deployment.run_dir).policy_file
    assert f"    dinamis: {QUOTA_KM2}\n" in kept.read_text(encoding="utf-8")
    monkeypatch.delenv("EARTHLAB_POLICY_FILE")
    new = restart("restricted-dinamis", deployment.run_dir)
    assert new.pid != old.pid and not old.alive()
    assert quota(deployment, erin) == before
    third = search(deployment, erin, monkeypatch, collections="pleiades-ms")[2]
    assert requests.get(third.assets["red"].href, timeout=30).status_code == 403


# ------------------------------------------------------------------ local hub and Helm layer


def test_local_hub_and_helm_layer_restrict_dinamis_the_same_way(tmp_path, monkeypatch) -> None:
    """The hub configuration `earthlab hub up` loads and helm/jupyterhub-dinamis.yaml agree."""
    import sys

    import yaml
    from traitlets.config import PyFileConfigLoader

    from lab_server.deploy import Deployment, GatewayPorts, RunDir
    from lab_server.deploy._catalogues import CatalogueServer
    from lab_server.deploy._layout import SECRET_NAMES

    hub_config = Path(__file__).resolve().parent.parent / "hub_config"
    centres_file = tmp_path / "centres.yaml"
    centres_file.write_text(
        "version: 1\ncentres:\n"
        "  - {name: theia, catalog: {kind: stac-static, href: theia/catalog.json}}\n"
        "  - {name: odatis, catalog: {kind: stac-static, href: odatis/catalog.json}}\n"
        "  - name: dinamis\n    catalog: {kind: stac-geoparquet, href: dinamis/items.parquet}\n"
        "    restricted: {pleiades-ms: dinamis}\n"
        "  - {name: aeris, catalog: {kind: stac-static, href: aeris/catalog.json}}\n"
    )
    run = RunDir(tmp_path / "run")
    run.create()
    for name in (*SECRET_NAMES, "restricted-dinamis-token"):
        run.new_secret(name)
    gateways = tuple(
        GatewayPorts(c, 9100 + 10 * i, 9101 + 10 * i, 9102 + 10 * i, 9103 + 10 * i)
        for i, c in enumerate(("theia", "odatis", "dinamis", "aeris"))
    )
    for g in gateways:
        run.new_secret(f"{g.service}-token")
    run.write_deployment(
        Deployment(
            run_dir=str(run.path),
            port=8000,
            proxy_api_port=8001,
            hub_api_port=8081,
            gateways=gateways,
            centres_file=str(run.path / "centres.yaml"),
            source_centres_file=str(centres_file),
            catalogues=(CatalogueServer("dinamis", 9200, 9201),),
            hub_config=str(hub_config),
            bin_dir=str(Path(sys.executable).parent),
            user_python=sys.executable,  # users isolated: a lab of several people
            owner="solo",
        )
    )
    monkeypatch.setenv("EARTHLAB_HUB_RUN_DIR", str(run.path))
    monkeypatch.syspath_prepend(str(hub_config))
    c = PyFileConfigLoader("jupyterhub_config.py", path=str(hub_config)).load_config()
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["restricted-dinamis"]["url"] == "http://127.0.0.1:9201"
    assert services["restricted-dinamis"]["api_token"] == run.secret("restricted-dinamis-token")
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == [
        "self",
        access_scope("theia"),
        access_scope("odatis"),
        access_scope("aeris"),
    ]
    assert roles["restricted-data-dinamis"]["groups"] == ["dinamis"]
    assert set(roles["restricted-data-dinamis"]["scopes"]) == {
        SERVICE_SCOPE,
        access_scope("dinamis"),
    }
    assert c.JupyterHub.load_groups == {"dinamis": {"users": []}}
    assert "admin:groups" in roles["earthlab-admin"]["scopes"]
    # the Kubernetes layer says the same
    layer = yaml.safe_load((hub_config / "helm" / "jupyterhub-dinamis.yaml").read_text())["hub"]
    assert set(layer["services"]) == {"dask-gateway-dinamis", "restricted-dinamis"}
    helm_roles = layer["loadRoles"]
    assert helm_roles["restricted-data-dinamis"]["groups"] == ["dinamis"]
    assert set(helm_roles["restricted-data-dinamis"]["scopes"]) == set(
        roles["restricted-data-dinamis"]["scopes"]
    )
    assert (
        helm_roles["restricted-data-services"]["scopes"]
        == (roles["restricted-data-services"]["scopes"])
    )
    assert layer["config"]["Spawner"]["server_token_scopes"] == c.Spawner.server_token_scopes
    # a single-person lab (users not isolated): the owner only, whatever the groups say
    run.write_deployment(dataclasses.replace(run.deployment(), user_python=""))
    c = PyFileConfigLoader("jupyterhub_config.py", path=str(hub_config)).load_config()
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["restricted-data-dinamis"]["users"] == ["solo"]
    assert "groups" not in roles["restricted-data-dinamis"]


@pytest.mark.integration
@pytest.mark.slow
def test_only_the_api_description_is_public(deployment) -> None:
    """``stac/api`` (the OpenAPI document) answers anyone; every other STAC path needs a token."""
    root = deployment.catalogue_url("dinamis")
    openapi = "application/vnd.oai.openapi+json;version=3.0"
    described = requests.get(root + "api", headers={"Accept": openapi}, timeout=30)
    assert described.status_code == 200, described.text
    assert described.headers["Content-Type"].startswith("application/vnd.oai.openapi+json")
    document = yaml.safe_load(described.text)  # rustac serve's OpenAPI document is YAML
    assert document["openapi"].startswith("3.") and "/search" in document["paths"]
    assert "127.0.0.1" not in described.text  # no address of the private catalogue
    for path in ("", "collections", "search", "collections/pleiades-ms/items", "api/../search"):
        assert requests.get(root + path, timeout=30).status_code == 401, path


@pytest.mark.integration
@pytest.mark.slow
def test_a_processing_job_reads_restricted_imagery_as_its_owner(
    deployment, hub, erin, scenes
) -> None:
    """Issue 17, item 3: a job reads DINAMIS with its owner's membership and quota.

    Runs after the quota test: erin has been charged the first two scenes today (readable
    again at no cost) and has no quota left for the third.
    """
    acquisitions = scenes["acquisitions"]

    def spec(day: str) -> dict:
        return {
            "version": 1,
            "name": "bouzigues-vhr",
            "title": "Bouzigues, Pléiades red and near infrared",
            "licence": "proprietary",
            "source": {"centres": ["dinamis"], "collections": ["pleiades-ms"], "datetime": day},
            "bands": ["red", "nir"],
            "grid": {"crs": "EPSG:32631", "resolution": 20, "bounds": scenes["bounds"]},
            "target": {"url": "vhr.zarr", "zarr_format": 3},
        }

    def run(user: str, day: str, target: str) -> lab.Job:
        token = hub.token(user, [RESULTS_SCOPE])
        client = lab.processes(deployment.processes_url, token=token)
        job = client.execute("cube-build", {"spec": spec(day), "target": target}, asynchronous=True)
        assert isinstance(job, lab.Job)
        with contextlib.suppress(lab.ProcessingError):  # failed: its status says why
            job.wait(timeout=300, progress=False)
        return job

    before = quota(deployment, erin)
    first = run("erin", acquisitions[0]["datetime"][:10], "first.zarr")
    assert first.status().status == "successful", first.status().message
    cube = first.results()["cube"]
    assert cube["complete"] and cube["steps"] == 1
    assert quota(deployment, erin)["items"] == before["items"]  # charged to her already today

    third = run("erin", acquisitions[2]["datetime"][:10], "third.zarr")
    status = third.status()
    assert status.status == "failed"
    assert "quota exceeded: erin used" in status.message, status.message
    assert quota(deployment, erin)["used_km2"] == before["used_km2"]

    outsider = run("frank", acquisitions[0]["datetime"][:10], "first.zarr")
    refused = outsider.status()
    assert refused.status == "failed"
    assert "dinamis: restricted: request access via https://dinamis.data-terra.org/" in (
        refused.message
    )
    # the tokens the service made for these jobs are gone with them
    for user in ("erin", "frank"):
        tokens = hub.request("GET", f"/users/{user}/tokens").json()["api_tokens"]
        assert not [t for t in tokens if "earthlab processing job" in (t.get("note") or "")]
