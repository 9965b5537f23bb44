"""The lab's additions to JupyterHub, shared by the local and Kubernetes hubs.

Depends on JupyterHub only (imported by ``jupyterhub_config.py``; the Kubernetes
hub mounts this file with ``hub.extraFiles``, see ``helm/jupyterhub.yaml``).

- :func:`gateway_service`, :func:`user_scopes`, :func:`server_token_scopes`: each centre's
  gateway is the service ``dask-gateway-<centre>``; users hold, and their servers' tokens
  carry, ``access:services!service=dask-gateway-<centre>`` for every centre.
- :func:`restricted_service`, :func:`group_roles`: a centre with restricted collections is
  served by the service ``restricted-<centre>``; only members of the collections' hub group
  hold ``access:services!service=restricted-<centre>`` and the scope of that centre's gateway
  (a role given to the group, not to every user), so the gateway admits only them and the
  service, which checks the group itself too, sees their tokens.
- :func:`stop_clusters_hook`: a ``Spawner.post_stop_hook`` that stops the user's clusters on
  every gateway when their server stops (whether they stopped it, the culler did, or it died),
  so that no cluster outlives the notebook that started it.
- :func:`copy_notebooks`, :func:`copy_notebooks_hook`, :func:`welcome_url`,
  :func:`login_announcement`: a first login lands somewhere useful. Each start of a user's
  server copies the lab's notebooks and workshop into ``~/earthlab-notebooks/`` (only files that
  are not there yet: the user's edits are never overwritten) with a welcome page, which
  JupyterLab opens first; the login page says what the lab is.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

SERVER_SCOPES = ("users:activity!user", "access:servers!server")
"""What a single-user server's token holds by default (JupyterHub's ``server`` role)."""


def service_name(centre: str) -> str:
    """Name of a centre's gateway as a JupyterHub service."""
    return f"dask-gateway-{centre}"


def access_scope(centre: str) -> str:
    """The scope a token needs to use a centre's gateway."""
    return f"access:services!service={service_name(centre)}"


def gateway_service(centre: str, url: str, api_token: str) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry of a centre's gateway (routed at /services/<name>/).

    The gateway is also the hub OAuth client ``service-<name>`` (the hub makes one for every
    service with a URL): a browser opening a cluster's dashboard logs in through the hub, with
    no confirmation page (the gateway is part of the lab), and the gateway's front lets only
    the cluster's owner in.
    """
    return {
        "name": service_name(centre),
        "url": url,
        "api_token": api_token,
        "display": False,
        "oauth_no_confirm": True,
    }


def restricted_service_name(centre: str) -> str:
    """Name of a centre's restricted-data service."""
    return f"restricted-{centre}"


def restricted_scope(centre: str) -> str:
    """The scope a token needs to use a centre's restricted-data service."""
    return f"access:services!service={restricted_service_name(centre)}"


def restricted_service(centre: str, url: str, api_token: str) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry of a centre's restricted-data service."""
    return {
        "name": restricted_service_name(centre),
        "url": url,
        "api_token": api_token,
        "display": False,
    }


def restricted_service_role(centres: Sequence[str]) -> dict[str, Any]:
    """Role of the restricted-data services: read users' names and groups (nothing else)."""
    return {
        "name": "restricted-data-services",
        "description": "Restricted-data services look up the groups of who calls them",
        "scopes": ["read:users:name", "read:users:groups"],
        "services": [restricted_service_name(c) for c in centres],
    }


def processes_service_role(service: str) -> dict[str, Any]:
    """Role of the processing service: make short-lived tokens of a job's owner for its cluster.

    A job computes on the Dask Gateway next to its data *as its owner*: the service asks the
    hub for a token of the owner holding only that gateway's access scope (the hub refuses a
    scope the owner does not hold), and deletes it when the job ends. The ``tokens`` scope this
    needs lets the service make tokens of any user: its own token is readable by the service
    account only.
    """
    return {
        "name": "processes-service",
        "description": "The processing service makes tokens of jobs' owners for their clusters",
        "scopes": ["tokens", "read:users:name"],
        "services": [service],
    }


def group_roles(
    restricted: Mapping[str, Sequence[str]],
    services: Sequence[str] = (),
    only_user: str | None = None,
) -> list[dict[str, Any]]:
    """One role per hub group giving its members the restricted centres it opens.

    Parameters
    ----------
    restricted
        ``{centre: [groups its restricted collections are for]}``.
    services
        Centres that have a restricted-data service (its scope is given too).
    only_user
        A single-person lab (users not isolated: anyone could read the restricted files on
        disk): the roles go to this user only, whatever the groups say.
    """
    by_group: dict[str, list[str]] = {}
    for centre, groups in restricted.items():
        for group in groups:
            by_group.setdefault(group, []).append(centre)
    return [
        {
            "name": f"restricted-data-{group}",
            "description": f"Members of {group}: restricted data of {', '.join(centres)}",
            "scopes": [
                *(restricted_scope(c) for c in centres if c in services),
                *(access_scope(c) for c in centres),
            ],
            **({"users": [only_user]} if only_user is not None else {"groups": [group]}),
        }
        for group, centres in sorted(by_group.items())
    ]


def user_scopes(centres: Sequence[str]) -> list[str]:
    """Scopes of the hub's ``user`` role: their own resources and each open centre's gateway."""
    return ["self", *(access_scope(c) for c in centres)]


def server_token_scopes(
    centres: Sequence[str], restricted_centres: Sequence[str] = ()
) -> list[str]:
    """Scopes of ``$JUPYTERHUB_API_TOKEN`` in single-user servers (kernels use it for gateways).

    Every centre's gateway and every restricted-data service is asked for; the hub gives each
    server only those its user holds (members of a group get its restricted centres).
    """
    return [
        *SERVER_SCOPES,
        *(access_scope(c) for c in centres),
        *(restricted_scope(c) for c in restricted_centres),
    ]


def stop_clusters_hook(gateways: Mapping[str, str], timeout: float = 20.0) -> Callable[[Any], Any]:
    """Make a ``post_stop_hook`` stopping the user's clusters on every gateway.

    Parameters
    ----------
    gateways
        ``{centre: base URL of its gateway API}`` as the hub reaches it (ending in
        ``/services/dask-gateway-<centre>``).
    timeout
        Seconds allowed for each request.

    The hook makes a short-lived token for the user holding only the gateways' access scopes,
    lists the user's pending and running clusters on each gateway and stops them, then deletes
    the token. A gateway that does not answer is logged and skipped: its idle timeout still
    ends the clusters.
    """

    async def stop_user_clusters(spawner: Any) -> None:
        from jupyterhub import orm
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        user = spawner.user
        held = _held_scopes(user, [access_scope(c) for c in gateways])
        token = user.new_api_token(
            scopes=held,
            expires_in=300,
            note="earthlab: stop clusters after the server stopped",
        )
        headers = {"Authorization": f"jupyterhub {token}"}
        client = AsyncHTTPClient()
        try:
            for centre, base in gateways.items():
                if access_scope(centre) not in held:
                    continue  # a restricted centre the user may not use: no cluster there
                try:
                    listing = await client.fetch(
                        HTTPRequest(
                            f"{base}/api/v1/clusters/?status=pending,running",
                            headers=headers,
                            request_timeout=timeout,
                        )
                    )
                    names = list(json.loads(listing.body))
                    for name in names:
                        await client.fetch(
                            HTTPRequest(
                                f"{base}/api/v1/clusters/{name}",
                                method="DELETE",
                                headers=headers,
                                request_timeout=timeout,
                            )
                        )
                    if names:
                        spawner.log.info(
                            "Stopped %d cluster(s) of %s on %s: %s",
                            len(names),
                            user.name,
                            service_name(centre),
                            ", ".join(names),
                        )
                except Exception as exc:
                    spawner.log.warning(
                        "Could not stop the clusters of %s on %s: %s (its idle timeout will)",
                        user.name,
                        service_name(centre),
                        exc,
                    )
        finally:
            orm_token = orm.APIToken.find(user.db, token)
            if orm_token is not None:
                user.db.delete(orm_token)
                user.db.commit()

    return stop_user_clusters


def _held_scopes(user: Any, scopes: Sequence[str]) -> list[str]:
    """The ``scopes`` the user holds (a token may not be given more than its owner has)."""
    from jupyterhub.scopes import expand_scopes, get_scopes_for

    owner = get_scopes_for(user.orm_user)
    return [s for s in scopes if expand_scopes({s}, owner=user.orm_user) <= owner]


NOTEBOOKS_FOLDER = "earthlab-notebooks"
"""Folder of each user's home that receives the lab's notebooks."""
WELCOME_NAME = "WELCOME.md"
"""The welcome page, in :data:`NOTEBOOKS_FOLDER`."""

WELCOME = """\
# Welcome to the Earth Analytics Lab

This lab searches the catalogues of the Data Terra data centres at once, loads what it finds
as lazy xarray cubes, crosses satellite images with in-situ measurements and runs Dask
clusters next to the data centre that holds the data.

## Where to start

- `notebooks/01-getting-started.ipynb`: search every centre at once and read the federation
  report; then `02` (a datacube), `03` (water quality, satellite against in situ) and `04`
  (scaling out on a cluster near the data).
- `workshop/`: the FAIR workshop, one notebook per letter (Findable, Accessible,
  Interoperable, Reusable), with exercises and hidden solutions.

Open a notebook and run its cells in order (Shift+Enter). Notebooks run on the
**Earth Analytics** kernel, which already knows the lab's data centres and their gateways:
`lab.catalog()` and `lab.cluster()` need no configuration.

## Your copies are yours

These files are copies, made when your server first started. Edit them freely: a restart
never overwrites them, it only puts back files that are missing. To get a fresh copy of a
notebook, rename (or delete) yours and restart your server (File > Hub Control Panel > Stop
My Server, then Start My Server): the original comes back next to your renamed one. Rename
the whole `earthlab-notebooks` folder to get a fresh copy of everything.

## Restricted data

Some collections (DINAMIS very-high-resolution imagery) are for members of a hub group: a
search reports them as `restricted` with where to request access. `earthlab quota` (in a
terminal) shows what you have read against your yearly quota.
"""
"""Text of the welcome page (Markdown)."""


def welcome_url(folder: str = NOTEBOOKS_FOLDER) -> str:
    """The ``Spawner.default_url`` opening the welcome page in JupyterLab."""
    return f"/lab/tree/{folder}/{WELCOME_NAME}"


def copy_notebooks(
    home: str | os.PathLike[str],
    sources: Mapping[str, str | os.PathLike[str]],
    folder: str = NOTEBOOKS_FOLDER,
    welcome: str = WELCOME,
) -> list[Path]:
    """Copy the lab's notebooks into a user's home, never overwriting a file that is there.

    Parameters
    ----------
    home
        The user's home directory (created if missing).
    sources
        ``{sub-folder: directory}``: the ``*.ipynb`` of each directory go to
        ``HOME/FOLDER/<sub-folder>/``.
    folder
        Folder of the home receiving them.
    welcome
        Text of ``FOLDER/WELCOME.md``, written if missing.

    Returns
    -------
    list of pathlib.Path
        The files written (none when everything was already there).

    Notes
    -----
    A file is created exclusively (``open(..., "x")``): a user's file of the same name always
    wins, even one saved while the copy runs. When run as root (a hub spawning system users),
    what is created belongs to the owner of ``home``.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    owner = home.stat()
    target = home / folder
    written: list[Path] = []

    def make_dir(path: Path) -> None:
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            _give(path, owner)

    def write(path: Path, data: bytes) -> None:
        try:
            with open(path, "xb") as out:
                out.write(data)
        except FileExistsError:
            return
        _give(path, owner)
        written.append(path)

    make_dir(target)
    write(target / WELCOME_NAME, welcome.encode("utf-8"))
    for sub, directory in sources.items():
        notebooks = sorted(Path(directory).glob("*.ipynb"))
        if not notebooks:
            continue
        make_dir(target / sub)
        for notebook in notebooks:
            write(target / sub / notebook.name, notebook.read_bytes())
    return written


def _give(path: Path, owner: os.stat_result) -> None:
    """Make ``path`` belong to ``owner``'s user and group when running as root."""
    if hasattr(os, "geteuid") and os.geteuid() == 0 and owner.st_uid != 0:
        shutil.chown(path, owner.st_uid, owner.st_gid)


def copy_notebooks_hook(
    sources: Mapping[str, str | os.PathLike[str]], folder: str = NOTEBOOKS_FOLDER
) -> Callable[[Any], None]:
    """Make a ``Spawner.pre_spawn_hook`` running :func:`copy_notebooks` on the user's home.

    The home is the spawner's ``home_dir`` (``SimpleLocalProcessSpawner``), else the system
    user's home (``~name``). A failed copy is logged and the server starts anyway.
    """

    def copy_to_home(spawner: Any) -> None:
        home = getattr(spawner, "home_dir", None) or os.path.expanduser(f"~{spawner.user.name}")
        try:
            written = copy_notebooks(home, sources, folder)
        except OSError as exc:
            spawner.log.warning("Could not copy the lab's notebooks into %s: %s", home, exc)
            return
        if written:
            spawner.log.info("Copied %d file(s) into %s/%s", len(written), home, folder)

    return copy_to_home


def login_announcement(centres: Mapping[str, str]) -> str:
    """HTML shown above the login form: what the lab is and which centres it federates.

    Parameters
    ----------
    centres
        ``{name: title}`` of the lab's data centres, in order.
    """
    listed = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(title)}</li>"
        for name, title in centres.items()
    )
    return (
        "<p><b>Earth Analytics Lab</b> of Data Terra: a Pangeo notebook environment that "
        "searches the catalogues of every data centre at once, loads satellite and in-situ "
        "data as lazy cubes and runs Dask clusters next to the data.</p>"
        f"<p>Data centres:</p><ul style='text-align:left'>{listed}</ul>"
        "<p>New here? After signing in, <code>earthlab-notebooks/WELCOME.md</code> shows "
        "where to start.</p>"
    )


# --- single sign-on (OpenID Connect) ------------------------------------------------------------

OIDC_KEYS = {
    "client_id": str,
    "client_secret_env": str,
    "scope": list,
    "username_claim": str,
    "groups_claim": str,
    "allowed_groups": list,
    "admin_groups": list,
    "restricted_groups": dict,
}
"""The keys of ``auth.oidc`` in ``lab.yaml`` and their types."""

OIDC_REFRESH_AGE = 300
"""Seconds after which the hub asks the provider again, unless ``auth.oidc.refresh_age``."""


def oidc_mapping(policy: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``auth.oidc`` of the lab's policy, checked.

    Raises
    ------
    ValueError
        Naming the key that is missing, unknown or of the wrong type, and what it should be.
    """
    mapping = (policy.get("auth") or {}).get("oidc")
    if not isinstance(mapping, Mapping):
        raise ValueError("lab.yaml has no auth.oidc section: copy the one of the lab's lab.yaml")
    unknown = sorted(set(mapping) - set(OIDC_KEYS) - {"refresh_age"})
    if unknown:
        raise ValueError(
            f"lab.yaml auth.oidc: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(OIDC_KEYS)}"
        )
    for key, kind in OIDC_KEYS.items():
        if not isinstance(mapping.get(key), kind):
            raise ValueError(
                f"lab.yaml auth.oidc.{key} must be a {kind.__name__}, not {mapping.get(key)!r}"
            )
    refresh = mapping.get("refresh_age", OIDC_REFRESH_AGE)
    if not isinstance(refresh, int) or isinstance(refresh, bool) or refresh < 1:
        raise ValueError(
            f"lab.yaml auth.oidc.refresh_age must be a number of seconds >= 1, not {refresh!r}"
        )
    for group, claims in mapping["restricted_groups"].items():
        if not isinstance(claims, Mapping) or not claims:
            raise ValueError(
                f"lab.yaml auth.oidc.restricted_groups.{group} must map each claim the provider "
                "must assert to its required value (e.g. dinamis_charter_accepted: true)"
            )
    return {**mapping, "refresh_age": refresh}


def groups_from_claims(claims: Mapping[str, Any], mapping: Mapping[str, Any]) -> list[str]:
    """The hub groups of a user, from the identity provider's claims.

    Every group the provider lists in the ``groups_claim`` claim, except a restricted group
    (``restricted_groups``: DINAMIS) whose required claims the provider does not all assert
    with the required value: membership of restricted data is the provider's decision (the
    user's entity adheres, the user accepted the charter), never the hub admin's.
    """
    listed = claims.get(mapping["groups_claim"]) or []
    if isinstance(listed, str):
        listed = [listed]
    restricted = mapping["restricted_groups"]
    groups = set()
    for group in listed:
        required = restricted.get(group)
        if required and any(claims.get(name) != value for name, value in required.items()):
            continue
        groups.add(str(group))
    return sorted(groups)


def username_from_claims(claim: str) -> Callable[[Mapping[str, Any]], str]:
    """``GenericOAuthenticator.username_claim``: the claim's value, or a 403 saying what is missing.

    oauthenticator answers 500 when the claim is absent (an account the provider knows but
    does not describe); the user is told which claim the lab needs instead.
    """

    def username(claims: Mapping[str, Any]) -> str:
        from tornado.web import HTTPError

        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise HTTPError(
                403,
                f"the identity provider gave no {claim!r} claim for this account: the lab "
                "needs it as your user name; ask the provider's administrators to release it",
            )
        return value

    return username


def oidc_groups_key(mapping: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], list[str]]:
    """``GenericOAuthenticator.auth_state_groups_key``: groups from the userinfo claims."""

    def groups(auth_state: Mapping[str, Any]) -> list[str]:
        return groups_from_claims(auth_state.get("oauth_user") or {}, mapping)

    return groups


def oidc_settings(
    discovery: Mapping[str, Any],
    mapping: Mapping[str, Any],
    lab_url: str,
    client_secret: str,
) -> dict[str, Any]:
    """``GenericOAuthenticator`` settings from the provider's discovery document.

    Parameters
    ----------
    discovery
        ``<issuer>/.well-known/openid-configuration``.
    mapping
        :func:`oidc_mapping` of the lab's policy.
    lab_url
        The lab's public URL, ending in ``/``.
    client_secret
        The hub's client secret at the provider.

    After ``refresh_age`` seconds (``auth.oidc.refresh_age``, default
    :data:`OIDC_REFRESH_AGE`) the hub asks the provider again at the user's next request (its
    browser, or a token, such as the gateways and restricted-data services check): a change
    of groups at the provider counts then, or at the next login.
    """
    settings: dict[str, Any] = {
        "client_id": mapping["client_id"],
        "client_secret": client_secret,
        "oauth_callback_url": f"{lab_url}hub/oauth_callback",
        "authorize_url": discovery["authorization_endpoint"],
        "token_url": discovery["token_endpoint"],
        "userdata_url": discovery["userinfo_endpoint"],
        "scope": list(mapping["scope"]),
        "username_claim": username_from_claims(mapping["username_claim"]),
        "login_service": "Data Terra single sign-on",
        "manage_groups": True,
        "auth_state_groups_key": oidc_groups_key(mapping),
        "admin_groups": set(mapping["admin_groups"]),
        "enable_auth_state": True,
        "refresh_pre_spawn": True,
        "auth_refresh_age": mapping["refresh_age"],
    }
    if mapping["allowed_groups"]:
        settings["allowed_groups"] = set(mapping["allowed_groups"])
    else:
        settings["allow_all"] = True  # anyone the provider authenticates
    if discovery.get("end_session_endpoint"):  # logging out also ends the provider's session
        query = urlencode(
            {"post_logout_redirect_uri": f"{lab_url}hub/login", "client_id": mapping["client_id"]}
        )
        settings["logout_redirect_url"] = f"{discovery['end_session_endpoint']}?{query}"
    return settings
