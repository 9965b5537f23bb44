"""Single sign-on: the hub logs users in with OpenID Connect, groups from the provider's claims.

Issue 16, item 1. A real ``earthlab hub up --auth oidc --oidc-users tests/data/sso/users.yaml``
on loopback: the lab runs a test OpenID provider (oidc-provider-mock: signed ID tokens, the
authorization-code flow, a login page) seeded with four users, and the hub is its client
(GenericOAuthenticator). A real headless Chromium logs in through the provider's page and lands
in JupyterLab; plain HTTP walks the same flow for the other users. Membership of the DINAMIS
group, which opens the restricted centre, is the provider's decision: its claims of adhesion and
charter acceptance, not the hub admin's; a change at the provider counts at the next login.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import tornado.web
import yaml
from hub_fixtures import Hub, Kernel, reachable_by_users, running_lab

import lab
from lab_server.deploy import up
from lab_server.deploy._identity import read_oidc_users

HERE = Path(__file__).resolve().parent
USERS = HERE / "data" / "sso" / "users.yaml"
sys.path.insert(0, str(HERE.parent / "hub_config"))
import earthlab_hub  # noqa: E402

pytest_plugins = ["browser_fixtures"]

RESTRICTED = [
    "access:services!service=restricted-dinamis",
    "access:services!service=dask-gateway-dinamis",
]


def mapping() -> dict[str, Any]:
    policy = yaml.safe_load((HERE.parent / "hub_config" / "lab.yaml").read_text())
    return earthlab_hub.oidc_mapping(policy)


# --- the claims mapping ------------------------------------------------------------------------


def test_groups_come_from_the_claims_and_dinamis_needs_adhesion_and_charter() -> None:
    m = mapping()
    users = {u["sub"]: u for u in read_oidc_users(USERS)}
    assert earthlab_hub.groups_from_claims(users["alice"], m) == ["dinamis", "earthlab-users"]
    # listed in the group by the provider, charter not accepted: not a member
    assert earthlab_hub.groups_from_claims(users["bob"], m) == ["earthlab-users"]
    no_adhesion = {**users["alice"], "dinamis_adhesion": False}
    assert earthlab_hub.groups_from_claims(no_adhesion, m) == ["earthlab-users"]
    missing = {k: v for k, v in users["alice"].items() if k != "dinamis_charter_accepted"}
    assert earthlab_hub.groups_from_claims(missing, m) == ["earthlab-users"]
    # claims alone never make a member: the provider must list the group
    assert earthlab_hub.groups_from_claims({**users["bob"], "groups": ["earthlab-users"]}, m) == [
        "earthlab-users"
    ]
    assert earthlab_hub.groups_from_claims({"groups": "earthlab-users"}, m) == ["earthlab-users"]
    assert earthlab_hub.groups_from_claims({}, m) == []


def test_the_mapping_is_checked_with_what_to_write() -> None:
    policy = yaml.safe_load((HERE.parent / "hub_config" / "lab.yaml").read_text())
    with pytest.raises(ValueError, match=r"no auth\.oidc section"):
        earthlab_hub.oidc_mapping({})
    bad = {"auth": {"oidc": {**policy["auth"]["oidc"], "group_claim": "groups"}}}
    with pytest.raises(ValueError, match=r"unknown key\(s\) group_claim; known: client_id"):
        earthlab_hub.oidc_mapping(bad)
    bad = {"auth": {"oidc": {**policy["auth"]["oidc"], "allowed_groups": "earthlab-users"}}}
    with pytest.raises(ValueError, match="allowed_groups must be a list, not 'earthlab-users'"):
        earthlab_hub.oidc_mapping(bad)
    bad = {"auth": {"oidc": {**policy["auth"]["oidc"], "restricted_groups": {"dinamis": {}}}}}
    with pytest.raises(ValueError, match=r"restricted_groups\.dinamis must map each claim"):
        earthlab_hub.oidc_mapping(bad)


def test_settings_from_the_discovery_document() -> None:
    discovery = {
        "authorization_endpoint": "https://sso.example.org/auth",
        "token_endpoint": "https://sso.example.org/token",
        "userinfo_endpoint": "https://sso.example.org/userinfo",
        "end_session_endpoint": "https://sso.example.org/logout",
    }
    settings = earthlab_hub.oidc_settings(discovery, mapping(), "https://lab.example.org/", "s3")
    assert settings["oauth_callback_url"] == "https://lab.example.org/hub/oauth_callback"
    assert settings["userdata_url"] == "https://sso.example.org/userinfo"
    assert settings["manage_groups"] is True and settings["enable_auth_state"] is True
    assert settings["refresh_pre_spawn"] is True and settings["auth_refresh_age"] == 300
    assert settings["allowed_groups"] == {"earthlab-users"} and "allow_all" not in settings
    assert settings["admin_groups"] == {"earthlab-admins"}
    assert settings["logout_redirect_url"] == (
        "https://sso.example.org/logout?post_logout_redirect_uri="
        "https%3A%2F%2Flab.example.org%2Fhub%2Flogin&client_id=earthlab-lab"
    )
    username = settings["username_claim"]
    assert username({"preferred_username": "alice", "sub": "x"}) == "alice"
    with pytest.raises(tornado.web.HTTPError) as refused:
        username({"sub": "x"})
    assert refused.value.status_code == 403 and "no 'preferred_username' claim" in str(
        refused.value
    )
    groups = settings["auth_state_groups_key"]
    assert groups({"oauth_user": {"groups": ["earthlab-users", "dinamis"]}}) == ["earthlab-users"]


def test_bad_auth_arguments_stop_hub_up_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(lab.ConfigurationError, match="auth must be one of password, oidc"):
        up(run_dir=tmp_path / "a", auth="ldap")
    with pytest.raises(lab.ConfigurationError, match="--auth oidc needs one of --oidc-issuer"):
        up(run_dir=tmp_path / "b", auth="oidc")
    with pytest.raises(lab.ConfigurationError, match="go with --auth oidc"):
        up(run_dir=tmp_path / "c", oidc_users=USERS)
    users = tmp_path / "users.yaml"
    users.write_text("users:\n  - sub: a\n  - preferred_username: b\n")
    with pytest.raises(lab.ConfigurationError, match=r"users.yaml: user 2 has no `sub`"):
        up(run_dir=tmp_path / "d", auth="oidc", oidc_users=users)
    assert not (tmp_path / "d").exists()


def test_a_real_provider_needs_the_client_secret_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path
) -> None:
    monkeypatch.delenv("EARTHLAB_OIDC_CLIENT_SECRET", raising=False)
    with pytest.raises(lab.ConfigurationError, match=r"\$EARTHLAB_OIDC_CLIENT_SECRET, which is"):
        up(
            sample_dir / "centres.yaml",
            run_dir=reachable_by_users(tmp_path / "run"),  # as root, users are isolated
            port=0,
            auth="oidc",
            oidc_issuer="https://sso.example.org/realms/dataterra",
        )


# --- a lab with single sign-on -----------------------------------------------------------------


REFRESH_AGE = 2
"""auth.oidc.refresh_age of the lab below (300 s in lab.yaml)."""


@pytest.fixture(scope="module")
def deployment(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sso")
    text = (HERE.parent / "hub_config" / "lab.yaml").read_text()
    policy = root / "lab.yaml"
    policy.write_text(text.replace("    refresh_age: 300\n", f"    refresh_age: {REFRESH_AGE}\n"))
    assert policy.read_text() != text
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EARTHLAB_POLICY_FILE", str(policy))
        with running_lab(
            sample_dir / "centres.yaml", root / "run", auth="oidc", oidc_users=USERS
        ) as d:
            yield d


@pytest.fixture(scope="module")
def hub(deployment) -> Hub:
    return Hub(deployment)


def login(deployment, user: str) -> requests.Response:
    """Walk the authorization-code flow as a browser would; return the hub's callback answer."""
    session = requests.Session()
    start = session.get(deployment.url + "hub/oauth_login", allow_redirects=False, timeout=30)
    assert start.status_code == 302, start.text
    authorize = start.headers["Location"]
    assert authorize.startswith(deployment.oidc_issuer + "/oauth2/authorize?")
    granted = session.post(authorize, data={"sub": user}, allow_redirects=False, timeout=30)
    assert granted.status_code == 302, granted.text
    callback = granted.headers["Location"]
    assert callback.startswith(deployment.url + "hub/oauth_callback?code=")
    return session.get(callback, allow_redirects=False, timeout=60)


def groups(hub: Hub, user: str) -> list[str]:
    response = hub.request("GET", f"/users/{user}")
    assert response.status_code == 200, response.text
    return sorted(response.json()["groups"])


@pytest.mark.integration
@pytest.mark.slow
def test_a_user_logs_in_through_the_provider_in_a_browser_and_lands_in_jupyterlab(
    open_browser, deployment, hub
) -> None:
    browser = open_browser("alice", deployment.url)
    browser.sso_login("alice", deployment.oidc_issuer)
    browser.wait_for_lab()
    assert groups(hub, "alice") == ["dinamis", "earthlab-users"]
    assert hub.request("GET", "/users/alice").json()["admin"] is False
    # the provider said alice is a DINAMIS member: her tokens open the restricted centre
    token = hub.token("alice", RESTRICTED)
    result = lab.catalog(deployment.centres_file).search(collections="pleiades-ms")
    assert result.federation["dinamis"].status != "ok"  # without her token
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTERHUB_API_TOKEN", token)
        result = lab.catalog(deployment.centres_file).search(collections="pleiades-ms")
    assert result.federation["dinamis"].status == "ok" and len(result) == 3
    # logging out ends the hub session and sends the browser to the provider's logout
    browser.driver.get(deployment.url + "hub/logout")
    browser.wait(
        "the provider's end of session",
        lambda: browser.driver.current_url.startswith(
            deployment.oidc_issuer + "/oauth2/end_session"
        ),
    )
    browser.driver.get(deployment.url + "hub/home")
    browser.wait("the hub's login page", lambda: browser.path() == "/hub/login")


@pytest.mark.integration
@pytest.mark.slow
def test_dinamis_membership_is_the_providers_decision_and_follows_its_changes(
    deployment, hub
) -> None:
    answer = login(deployment, "bob")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/hub/")
    # listed in dinamis by the provider, but its charter claim is false: not a member
    assert groups(hub, "bob") == ["earthlab-users"]
    refused = hub.request(
        "POST", "/users/bob/tokens", json={"scopes": RESTRICTED, "expires_in": 60}
    )
    assert refused.status_code in (400, 403), refused.text
    # the hub admin cannot make bob a member: the next login puts the provider's groups back
    hub.request("POST", "/groups/dinamis/users", json={"users": ["bob"]})
    assert login(deployment, "bob").status_code == 302
    assert groups(hub, "bob") == ["earthlab-users"]
    # bob accepts the charter at the provider: member at the next login
    changed = requests.put(
        f"{deployment.oidc_issuer}/users/bob",
        json={
            **{u["sub"]: u for u in read_oidc_users(USERS)}["bob"],
            "dinamis_charter_accepted": True,
        },
        timeout=30,
    )
    assert changed.status_code == 204
    assert login(deployment, "bob").status_code == 302
    assert groups(hub, "bob") == ["dinamis", "earthlab-users"]
    assert hub.token("bob", RESTRICTED)


@pytest.mark.integration
@pytest.mark.slow
def test_admins_come_from_the_provider_and_outsiders_are_refused(deployment, hub) -> None:
    assert login(deployment, "carol").status_code == 302
    assert hub.request("GET", "/users/carol").json()["admin"] is True
    # authenticated by the provider, in none of the allowed groups
    refused = login(deployment, "mallory")
    assert refused.status_code == 403
    assert hub.request("GET", "/users/mallory").status_code == 404
    # a subject the provider does not know: no user name claim, refused saying so
    unknown = login(deployment, "nobody")
    assert unknown.status_code == 403
    assert "gave no &#39;preferred_username&#39; claim for this account" in unknown.text


@pytest.mark.integration
@pytest.mark.slow
def test_a_change_at_the_provider_counts_at_the_next_refresh_for_the_services(
    deployment, hub
) -> None:
    """The provider withdraws alice's charter claim: her token loses DINAMIS at its next use."""
    assert login(deployment, "alice").status_code == 302
    assert groups(hub, "alice") == ["dinamis", "earthlab-users"]
    token = hub.token("alice", RESTRICTED)
    quota = deployment.restricted_service_url("dinamis") + "quota"
    headers = {"Authorization": f"token {token}"}
    assert requests.get(quota, headers=headers, timeout=30).status_code == 200
    alice = {u["sub"]: u for u in read_oidc_users(USERS)}["alice"]
    changed = requests.put(
        f"{deployment.oidc_issuer}/users/alice",
        json={**alice, "dinamis_charter_accepted": False},
        timeout=30,
    )
    assert changed.status_code == 204
    time.sleep(REFRESH_AGE + 1)  # older than the refresh age: the next request refreshes
    me = requests.get(deployment.hub_api_url + "/user", headers=headers, timeout=30)
    assert me.status_code == 200 and sorted(me.json()["groups"]) == ["earthlab-users"]
    assert groups(hub, "alice") == ["earthlab-users"]
    # the restricted-data service (its token cache keeps an answer 10 s) refuses her then
    deadline = time.monotonic() + 60  # a hang guard
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = requests.get(quota, headers=headers, timeout=30).status_code
        time.sleep(0.5)
    assert status == 403


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="users are isolated when the lab runs as root (CI)")
def test_a_notebook_cannot_make_its_user_a_member_at_the_test_provider(deployment, hub) -> None:
    """The test provider's ``/users`` API rewrites anyone's claims: closed to users' kernels."""
    assert login(deployment, "dave").status_code == 302
    kernel = Kernel(hub.start_server("dave"), hub.token("dave", ["access:servers!user=dave"]))
    try:
        dave = {u["sub"]: u for u in read_oidc_users(USERS)}["dave"]
        forged = json.dumps(
            {
                **dave,
                "groups": ["earthlab-users", "dinamis"],
                "dinamis_adhesion": True,
                "dinamis_charter_accepted": True,
            }
        )
        output = kernel.execute(
            "import json, urllib.request\n"
            f"request = urllib.request.Request({deployment.oidc_issuer + '/users/dave'!r}, "
            f"data={forged!r}.encode(), method='PUT', "
            "headers={'Content-Type': 'application/json'})\n"
            "try:\n"
            "    print(urllib.request.urlopen(request, timeout=10).status)\n"
            "except OSError as error:\n"
            "    print('refused', type(error).__name__)\n"
        )
    finally:
        kernel.close()
    assert output.error is None, output.error
    assert output.stdout.strip().startswith("refused"), output.stdout
    assert login(deployment, "dave").status_code == 302
    assert "dinamis" not in groups(hub, "dave")
