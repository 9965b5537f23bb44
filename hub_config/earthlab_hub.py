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
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

SERVER_SCOPES = ("users:activity!user", "access:servers!server")
"""What a single-user server's token holds by default (JupyterHub's ``server`` role)."""


def service_name(centre: str) -> str:
    """Name of a centre's gateway as a JupyterHub service."""
    return f"dask-gateway-{centre}"


def access_scope(centre: str) -> str:
    """The scope a token needs to use a centre's gateway."""
    return f"access:services!service={service_name(centre)}"


def gateway_service(centre: str, url: str, api_token: str) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry of a centre's gateway (routed at /services/<name>/)."""
    return {
        "name": service_name(centre),
        "url": url,
        "api_token": api_token,
        "display": False,
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


def group_roles(
    restricted: Mapping[str, Sequence[str]], services: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """One role per hub group giving its members the restricted centres it opens.

    Parameters
    ----------
    restricted
        ``{centre: [groups its restricted collections are for]}``.
    services
        Centres that have a restricted-data service (its scope is given too).
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
            "groups": [group],
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
