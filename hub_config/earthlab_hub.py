"""The lab's additions to JupyterHub, shared by the local and Kubernetes hubs.

Depends on JupyterHub only (imported by ``jupyterhub_config.py``; the Kubernetes
hub mounts this file with ``hub.extraFiles``, see ``helm/jupyterhub.yaml``).

- :func:`gateway_service`, :func:`user_scopes`, :func:`server_token_scopes`: each centre's
  gateway is the service ``dask-gateway-<centre>``; users hold, and their servers' tokens
  carry, ``access:services!service=dask-gateway-<centre>`` for every centre.
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


def user_scopes(centres: Sequence[str]) -> list[str]:
    """Scopes of the hub's ``user`` role: their own resources and every centre's gateway."""
    return ["self", *(access_scope(c) for c in centres)]


def server_token_scopes(centres: Sequence[str]) -> list[str]:
    """Scopes of ``$JUPYTERHUB_API_TOKEN`` in single-user servers (kernels use it for gateways)."""
    return [*SERVER_SCOPES, *(access_scope(c) for c in centres)]


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
        token = user.new_api_token(
            scopes=[access_scope(c) for c in gateways],
            expires_in=300,
            note="earthlab: stop clusters after the server stopped",
        )
        headers = {"Authorization": f"jupyterhub {token}"}
        client = AsyncHTTPClient()
        try:
            for centre, base in gateways.items():
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
