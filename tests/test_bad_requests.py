"""Bad requests get a 4xx with a reason, never a 500: the STAC front (``lab_server.stac_front``),
the restricted-data service (``lab_server.restricted``) and the gateways' front
(``hub_config/earthlab_dashboards.py``), each running for real on loopback.

Every case is one request and the status class expected; the tests send them all, then list
every case that answered otherwise (a 5xx, a body without a reason, a file's content for a
path that climbs out of the asset root), so that one run shows every failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from hub_fixtures import Hub, running_lab
from stac_servers import stac_servers

from lab_server.deploy import RunDir
from lab_server.deploy._layout import access_scope

pytestmark = [pytest.mark.integration]

SERVICE_SCOPE = "access:services!service=restricted-dinamis"
JSON = {"Content-Type": "application/json"}
SECRET_MARKERS = ("root:x:0:0", "BEGIN", "-----")
REFUSED = (302, 400, 403, 404)
"""A refusal, or the hub's redirect to its login (documented for anything the hub serves)."""


@dataclass(frozen=True)
class Case:
    """One bad request and what it must get."""

    method: str
    url: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    expect: tuple[int, ...] = ()
    """Statuses allowed (default: any 4xx)."""

    def send(self) -> requests.Response:
        request = requests.Request(
            self.method, self.url, data=self.body, headers=dict(self.headers)
        ).prepare()
        request.url = self.url  # as written: keep ``..`` and encodings, as an attacker would
        with requests.Session() as session:
            return session.send(request, timeout=60, allow_redirects=False)


def reason_of(response: requests.Response) -> str:
    """The reason a refusal gives: JSON ``error``/``description``/``message``, or its text.

    A request line or headers too long for the hub's proxy (node's HTTP server) is refused
    before any of the lab's code runs, with an empty body: its status line's reason (``431
    Request Header Fields Too Large``, ``414 URI Too Long``) is the reason then.
    """
    if response.status_code in (414, 431) and not response.content:
        return response.reason or ""
    try:
        document: Any = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(document, dict):
        keys = ("error", "description", "message")
        return str(next((document[k] for k in keys if document.get(k)), ""))
    return ""


def failures(cases: list[Case], forbidden: bytes | None = None) -> list[str]:
    """Every case answered with a 5xx, an unexpected status, no reason or ``forbidden``."""
    wrong = []
    for case in cases:
        response = case.send()
        status = response.status_code
        ok = status in case.expect if case.expect else 400 <= status < 500
        reason = reason_of(response) if status >= 400 else response.headers.get("Location", "-")
        leaked = forbidden is not None and forbidden in response.content
        leaked = leaked or any(m.encode() in response.content for m in SECRET_MARKERS)
        if not ok or not reason or leaked:
            wrong.append(
                f"{case.method} {case.url[:120]} body={case.body!r:.60} -> {status} "
                f"{response.text[:200]!r}"
            )
    return wrong


# ------------------------------------------------------------------ the STAC front alone


@pytest.fixture(scope="module")
def live(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with stac_servers(sample_dir / "centres.yaml", tmp_path_factory.mktemp("front")) as f:
        yield f


def stac_cases(base: str, front: str) -> list[Case]:
    """Bad requests to one centre's STAC API through the front (``base`` ends in ``/``)."""
    gets = [
        "search?bbox=abc",
        "search?bbox=1,2,3",
        "search?bbox=0,50,1,40",
        "search?limit=abc",
        "search?limit=-1",
        "search?limit=0",  # (a limit above the maximum gets the maximum: test_stac_validation)
        "search?skip=-5",
        "search?datetime=notadate",
        "search?datetime=2020-13-45T00:00:00Z",
        "search?sortby=%2B%2B",
        "search?sortby=,",
        "search?filter=%7Bbad",
        "collections/sentinel-2-l2a/items?sortby=-datetime",
        "search?intersects=xx",
        "collections/sentinel-2-l2a/items?limit=x",
        "collections/sentinel-2-l2a/items?bbox=1,2",
        "collections/no-such-collection",
        "collections/no-such-collection/items",
        "no/such/route",
        "search?" + "a=" + "b" * 20_000,
    ]
    cases = [Case("GET", base + q) for q in gets]
    posts: list[tuple[bytes, dict[str, str]]] = [
        (b"{bad json", JSON),
        (b"[1, 2]", JSON),
        (b'"text"', JSON),
        (b"\xff\xfe\x00", JSON),
        (b'{"limit": "x"}', JSON),
        (b'{"limit": -3}', JSON),
        (b'{"limit": true}', JSON),
        (b'{"skip": -3}', JSON),
        (b'{"skip": "a"}', JSON),
        (b'{"skip": 2, "limit": "a"}', JSON),
        (b'{"skip": 1.5}', JSON),
        (b'{"bbox": "x"}', JSON),
        (b'{"bbox": [1, 2]}', JSON),
        (b'{"bbox": [0, 50, 1, 40]}', JSON),
        (b'{"datetime": "bad"}', JSON),
        (b'{"sortby": "x"}', JSON),
        (b'{"sortby": [{"field": "x", "direction": "up"}]}', JSON),
        (b'{"collections": 3}', JSON),
        (b"a=b", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"<xml/>", {"Content-Type": "text/xml"}),
    ]
    cases += [Case("POST", base + "search", b, tuple(h.items())) for b, h in posts]
    cases += [
        Case("POST", base + "collections", b"{}", tuple(JSON.items())),
        Case("PUT", base + "search", b"{}", tuple(JSON.items())),
        Case("DELETE", base + "collections/sentinel-2-l2a"),
        Case("PATCH", base, b"{}", tuple(JSON.items())),
    ]
    assets = front + "/assets/theia/"
    cases += [
        Case("GET", assets + "../../front.json"),
        Case("GET", assets + "%2e%2e/%2e%2e/front.json"),
        Case("GET", assets + "..%2f..%2ffront.json"),
        Case("GET", assets + "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        Case("GET", assets + "%00"),
        Case("GET", assets),
        Case("GET", assets + "no-such-file.tif"),
        Case("PUT", assets + "x.tif", b"x"),
        Case("DELETE", assets + "x.tif"),
        Case("POST", assets + "x.tif", b"x"),
        Case("GET", front + "/no-such-route"),
        Case("GET", front + "/stac/no-such-centre/"),
    ]
    return cases


def test_stac_front_answers_bad_requests_with_4xx_and_a_reason(live) -> None:
    base = live.urls["theia"]
    front = base.split("/stac/")[0]
    config = (Path(live.centres_file).parent / "front.json").read_bytes()
    cases = stac_cases(base, front)
    assert len(cases) >= 30
    wrong = failures(cases, forbidden=config)
    assert wrong == [], "\n".join(wrong)


def test_stac_front_still_answers_good_requests(live) -> None:
    base = live.urls["theia"]
    page = requests.get(base + "search", params={"limit": 2, "bbox": "-180,-90,180,90"}, timeout=30)
    assert page.status_code == 200 and len(page.json()["features"]) == 2
    posted = requests.post(base + "search", json={"limit": 3, "skip": 0}, timeout=30)
    assert posted.status_code == 200 and len(posted.json()["features"]) == 3
    sorted_ = requests.post(
        base + "search", json={"sortby": [{"field": "datetime", "direction": "desc"}]}, timeout=30
    )
    assert sorted_.status_code == 200 and sorted_.json()["features"]
    # rustac serve fails a GET search with bbox, sortby or fields: the front asks it in a POST
    got = requests.get(
        base + "search", params={"sortby": "-datetime", "fields": "id", "limit": 3}, timeout=30
    )
    assert got.status_code == 200, got.text
    assert [f["id"] for f in got.json()["features"]] == [
        f["id"] for f in sorted_.json()["features"][:3]
    ]
    skipped = requests.get(base + "search", params={"skip": 2, "limit": 2}, timeout=30)
    assert [f["id"] for f in skipped.json()["features"]] == [
        f["id"]
        for f in requests.post(base + "search", json={"limit": 4}, timeout=30).json()["features"][
            2:4
        ]
    ]
    refused = requests.get(base + "search?limit=0", timeout=30)
    assert refused.json() == {
        "code": "BadRequest",
        "description": "limit must be an integer between 1 and 10000, not 0",
    }
    upstream = requests.get(base + "search?datetime=notadate", timeout=30)
    assert upstream.status_code == 400
    assert upstream.json()["description"].startswith("the STAC API refused the request: ")


# ------------------------------------------------------------------ the lab's services


@pytest.fixture(scope="module")
def deployment(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with running_lab(sample_dir / "centres.yaml", tmp_path_factory.mktemp("bad")) as d:
        yield d


@pytest.fixture(scope="module")
def hub(deployment) -> Hub:
    hub = Hub(deployment)
    for user in ("erin", "frank"):
        hub.create_user(user)
    hub.add_to_group("dinamis", ["erin"])
    return hub


def signed_href(deployment, token: str) -> str:
    """A fresh signed asset URL of erin's, from a search of the restricted STAC API."""
    response = requests.post(
        deployment.restricted_service_url("dinamis") + "stac/search",
        json={"limit": 1},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(next(iter(response.json()["features"][0]["assets"].values()))["href"])


@pytest.mark.slow
def test_restricted_service_answers_bad_requests_with_4xx_and_a_reason(deployment, hub) -> None:
    erin = hub.token("erin", [SERVICE_SCOPE, access_scope("dinamis")])
    frank = hub.token("frank", [access_scope("theia")])
    service = deployment.restricted_service_url("dinamis")
    href = signed_href(deployment, erin)
    unsigned, query = href.split("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    admin_token = RunDir(deployment.run_dir).secret("admin-token").encode()

    def as_(token: str) -> tuple[tuple[str, str], ...]:
        return (("Authorization", f"token {token}"),)

    def signed(**change: str) -> str:
        return unsigned + "?" + "&".join(f"{k}={v}" for k, v in {**params, **change}.items())

    e = as_(erin)
    cases = [
        Case("GET", service + "stac/search"),  # no token
        Case("GET", service + "stac/search", headers=as_("not-a-token")),
        Case("GET", service + "stac/search", headers=(("Authorization", "Bearer"),)),
        Case("GET", service + "stac/search", headers=as_(frank), expect=(403,)),
        Case("POST", service + "stac/search", b"{bad", (*e, *JSON.items())),
        Case("POST", service + "stac/search", b'{"limit": -1}', (*e, *JSON.items())),
        Case("POST", service + "stac/search", b'{"skip": "x"}', (*e, *JSON.items())),
        Case("GET", service + "stac/search?bbox=a,b", headers=e),
        Case("GET", service + "stac/search?sortby=%2B", headers=e),
        Case("GET", service + "stac/search?limit=0", headers=e),  # above the maximum is capped
        Case("DELETE", service + "stac/search", headers=e),
        Case("PUT", service + "quota", b"{}", e),
        Case("GET", service + "no-such-route", headers=e),
        Case("GET", signed(expires="1")),  # expired
        Case("GET", signed(expires="soon")),
        Case("GET", signed(expires="9" * 40)),
        Case("GET", signed(signature="0" * 64)),  # tampered
        Case("GET", signed(user="frank")),
        Case("GET", signed(user="")),
        Case("GET", signed(user="a%2F..%2F..")),
        Case("GET", unsigned + "?signature="),
        # the hub's proxy resolves ``..`` first: outside the service, the hub's login
        Case("GET", service + "assets/../../secrets/admin-token", headers=e, expect=REFUSED),
        Case(
            "GET", service + "assets/%2e%2e/%2e%2e/secrets/admin-token", headers=e, expect=REFUSED
        ),
        Case("GET", service + "assets/..%2f..%2fsecrets%2fadmin-token", headers=e),
        Case("GET", service + "assets/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", headers=e),
        Case("GET", service + "assets/%00", headers=e),
        Case("GET", service + "assets/pleiades-ms/no-such-item/red.tif", headers=e),
        Case("PUT", unsigned, b"x", e),
        Case("GET", service + "stac/search?" + "a=" + "b" * 20_000, headers=e),
    ]
    wrong = failures(cases, forbidden=admin_token)
    assert wrong == [], "\n".join(wrong)


@pytest.mark.slow
def test_gateway_front_answers_bad_requests_with_4xx_and_a_reason(deployment, hub) -> None:
    ann = hub.gateway_token("frank", "theia")
    gateway = deployment.gateway_address("theia")
    t = (("Authorization", f"token {ann}"),)
    j = (("Authorization", f"jupyterhub {ann}"), *JSON.items())
    admin_token = RunDir(deployment.run_dir).secret("admin-token").encode()
    cases = [
        Case("GET", gateway + "/clusters/no-such-cluster/status", headers=t, expect=(404,)),
        Case("GET", gateway + "/clusters/" + "0" * 32 + "/status", headers=t, expect=(404,)),
        Case("GET", gateway + "/clusters/theia.x/status", headers=t, expect=(404,)),
        Case("GET", gateway + "/clusters/%2e%2e/status", headers=t),
        Case("GET", gateway + "/clusters/x/status", expect=(302,)),  # a browser: to the login
        Case("GET", gateway + "/clusters/x/status", headers=as_token("nope"), expect=(401,)),
        Case("DELETE", gateway + "/clusters/x/status", expect=(401,)),
        Case("GET", gateway + "/api/v1/clusters/"),  # no token
        Case("GET", gateway + "/api/v1/clusters/", headers=(("Authorization", "jupyterhub x"),)),
        Case("GET", gateway + "/api/v1/clusters/no-such-cluster", headers=j, expect=(404,)),
        # dask-gateway's DELETE is idempotent: nothing to stop is not an error
        Case("DELETE", gateway + "/api/v1/clusters/no-such-cluster", headers=j, expect=(204,)),
        Case("GET", gateway + "/api/v1/clusters/", headers=(("Authorization", "jupyterhub"),)),
        Case("GET", gateway + "/api/v1/clusters/", headers=(("Authorization", "token x"),)),
        Case("POST", gateway + "/api/v1/clusters/", b"{bad json", j),
        Case("POST", gateway + "/api/v1/clusters/", b"[1]", j),
        Case("POST", gateway + "/api/v1/clusters/", b'{"cluster_options": 3}', j),
        Case("POST", gateway + "/api/v1/clusters/", b'{"cluster_options": {"x": 1}}', j),
        Case("POST", gateway + "/api/v1/clusters/no-such/scale", b'{"count": "x"}', j),
        Case("POST", gateway + "/api/v1/clusters/no-such/adapt", b"{bad", j),
        Case("PATCH", gateway + "/api/v1/clusters/", b"{}", j),
        Case("GET", gateway + "/api/v1/no-such-route", headers=j),
        Case("GET", gateway + "/dashboard-auth/../../../hub/api/users", headers=t, expect=(403,)),
        Case("GET", gateway + "/api/v1/clusters/?" + "a=" + "b" * 20_000, headers=j),
    ]
    wrong = failures(cases, forbidden=admin_token)
    assert wrong == [], "\n".join(wrong)


def as_token(token: str) -> tuple[tuple[str, str], ...]:
    return (("Authorization", f"token {token}"),)


def test_case_reasons_are_read_from_json_or_text() -> None:
    class Fake(requests.Response):
        def __init__(self, body: bytes) -> None:
            super().__init__()
            self._content = body

    assert reason_of(Fake(json.dumps({"error": "why"}).encode())) == "why"
    assert reason_of(Fake(json.dumps({"code": "X", "description": "d"}).encode())) == "d"
    assert reason_of(Fake(b"plain reason\n")) == "plain reason"
    assert reason_of(Fake(b"[]")) == ""
