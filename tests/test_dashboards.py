"""Dask dashboards through the hub, for their owner only (the gateways' authenticating front).

A gateway cluster's ``dashboard_link`` is ``<lab>/services/dask-gateway-<centre>/clusters/<name>/
status``. dask-gateway's proxy would serve it to anyone knowing the name; the lab's front
(hub_config/earthlab_dashboards.py, in the gateway process) lets through only the cluster's
owner, identified by the hub from a token or from the service's OAuth cookie after a browser
login, for the page, its assets and Bokeh's WebSocket.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
import websocket
from hub_fixtures import Hub, running_lab

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def deployment(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with running_lab(sample_dir / "centres.yaml", tmp_path_factory.mktemp("hub")) as d:
        yield d


@pytest.fixture(scope="module")
def hub(deployment) -> Hub:
    hub = Hub(deployment)
    for user in ("ann", "ben"):
        hub.create_user(user)
    return hub


@pytest.fixture(scope="module")
def cluster(deployment, hub):
    """A running cluster of ann's on theia's gateway, created with her token."""
    from dask_gateway import GatewayCluster
    from dask_gateway.auth import JupyterHubAuth

    cluster = GatewayCluster(
        deployment.gateway_address("theia"),
        proxy_address=deployment.gateway_proxy_address("theia"),
        auth=JupyterHubAuth(api_token=hub.gateway_token("ann", "theia")),
        shutdown_on_close=True,
    )
    try:
        yield cluster
    finally:
        cluster.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, timeout=30, allow_redirects=False, **kwargs)


def owner_page(link: str, token: str) -> requests.Response:
    """The dashboard page as its owner gets it, once the gateway routes it (hang guard)."""
    deadline = time.monotonic() + 60
    while True:
        response = get(link, headers=auth(token))
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def browser_login(deployment, user: str) -> requests.Session:
    """A browser session logged in to the hub (the user's own account and password)."""
    password = Hub(deployment).account(user)
    session = requests.Session()
    form = session.get(deployment.url + "hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
    data = {"username": user, "password": password}
    if xsrf:
        data["_xsrf"] = xsrf.group(1)
    response = session.post(deployment.url + "hub/login", data=data, timeout=30)
    assert response.status_code == 200 and session.cookies, response.text[:300]
    return session


def test_dashboard_link_opens_for_its_owner_only(deployment, hub, cluster):
    link = cluster.dashboard_link
    assert link == deployment.gateway_address("theia") + f"/clusters/{cluster.name}/status"
    ann, ben = hub.gateway_token("ann", "theia"), hub.gateway_token("ben", "theia")

    page = owner_page(link, ann)
    assert page.status_code == 200, page.text[:300]
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Bokeh" in page.text and "Dask" in page.text

    denied = get(link, headers=auth(ben))
    assert denied.status_code == 403
    assert "belongs to another user" in denied.json()["error"]
    assert "Bokeh" not in denied.text

    anonymous = get(link)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/hub/api/oauth2/authorize?")
    assert "Bokeh" not in anonymous.text
    # a client that is not a browser page is told to authenticate
    assert get(link, headers={"Authorization": "token not-a-token"}).status_code == 401

    # a token without the gateway's scope is refused even for the owner
    no_scope = hub.token("ann", ["read:users:name!user=ann"])
    assert get(link, headers=auth(no_scope)).status_code == 403

    # the page's assets likewise
    scripts = re.findall(r'<script[^>]+src="([^"]+\.js[^"]*)"', page.text)
    assert scripts, page.text[:500]
    asset = urljoin(link, scripts[0])
    assert f"/clusters/{cluster.name}/" in asset
    assert get(asset, headers=auth(ann)).status_code == 200
    assert get(asset, headers=auth(ben)).status_code == 403
    assert get(asset).status_code in (302, 401)

    # and a cluster name that does not exist says so
    missing = get(link.replace(cluster.name, "0" * 32), headers=auth(ann))
    assert missing.status_code == 404 and "no cluster" in missing.json()["error"]


def test_bokeh_websocket_for_its_owner_only(deployment, hub, cluster):
    ann, ben = hub.gateway_token("ann", "theia"), hub.gateway_token("ben", "theia")
    page = owner_page(cluster.dashboard_link, ann)
    assert page.status_code == 200
    token = re.search(r'"token":\s*"([^"]+)"', page.text) or re.search(
        r'token\s*=\s*"([^"]+)"', page.text
    )
    assert token, page.text[:500]
    ws_url = cluster.dashboard_link.replace("http://", "ws://") + "/ws"
    # the owner: Bokeh's session opens (its first message is the server's ACK)
    ws = websocket.create_connection(
        ws_url,
        header=[f"Authorization: token {ann}"],
        subprotocols=["bokeh", token.group(1)],
        timeout=30,
    )
    try:
        header = json.loads(ws.recv())
        assert header["msgtype"] == "ACK"
    finally:
        ws.close()
    for headers, status in (([f"Authorization: token {ben}"], 403), ([], 401)):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(
                ws_url, header=headers, subprotocols=["bokeh", token.group(1)], timeout=30
            )
        assert refused.value.status_code == status


def test_browser_logs_in_through_the_hub_then_sees_only_its_own_dashboard(deployment, hub, cluster):
    link = cluster.dashboard_link
    assert owner_page(link, hub.gateway_token("ann", "theia")).status_code == 200
    ann = browser_login(deployment, "ann")
    page = ann.get(link, timeout=30)  # -> hub's OAuth -> the gateway's callback -> the page
    assert page.status_code == 200 and "Bokeh" in page.text
    assert page.url == link
    assert any(c.name == "service-dask-gateway-theia" for c in ann.cookies)
    ben = browser_login(deployment, "ben")
    denied = ben.get(link, timeout=30)
    assert denied.status_code == 403 and "Bokeh" not in denied.text


def test_gateway_api_goes_through_the_front_unchanged(deployment, hub, cluster):
    ann = hub.gateway_token("ann", "theia")
    clusters = hub.gateway_clusters("ann", "theia", token=ann)
    assert cluster.name in clusters
    assert hub.gateway_clusters("ben", "theia") == {}
    health = get(deployment.gateway_address("theia") + "/api/health")
    assert health.status_code == 200 and health.json()["status"] == "pass"
