"""The authenticating front of a gateway: Dask dashboards for their owner only.

dask-gateway's HTTP proxy routes ``<prefix>/clusters/<name>/...`` to the cluster's scheduler
dashboard without any authentication: the cluster name is the only secret. The front listens
at the gateway's public HTTP address (where the hub's proxy sends ``/services/<service>/``)
and forwards to the gateway's proxy, kept private:

- ``<prefix>/clusters/<name>/...`` (the dashboard pages, their assets and Bokeh's WebSocket) is
  forwarded only for the cluster's owner. The caller is identified through the hub, as any
  JupyterHub service does: an ``Authorization: token <t>`` header, or the service's OAuth
  cookie for a browser (a browser without it is sent to the hub's login, then back); the
  token must hold the gateway's access scope. The owner is the cluster's ``username`` in the
  gateway's own records (the front runs in the gateway process, see
  ``earthlab_gateway.DashboardFront``). No credentials: 401 (302 to the login for a browser
  page); another user: 403; no such cluster: 404.
- ``<prefix>/dashboard-auth`` answers the same question for Traefik's ForwardAuth (the
  Kubernetes gateways, whose Traefik routes dashboards itself, see ``helm/``);
- everything else (``<prefix>/api/...``: the gateway's REST API) is forwarded as it is: the
  gateway authenticates those requests itself.

Errors are JSON ``{"error": "..."}`` with a 4xx status saying why; an unreachable gateway
proxy is a 502.

Depends on tornado and JupyterHub's service authentication (``jupyterhub.services.auth``),
imported only when the front starts.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from jupyterhub.services.auth import (
    HubOAuth,
    HubOAuthCallbackHandler,
    HubOAuthenticated,
    UserNotAllowed,
)
from tornado import httputil, web, websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

log = logging.getLogger("earthlab.dashboards")

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Content-Length",
        "Host",
    )
)
"""Headers that belong to one connection, not to the request (RFC 9110, 7.6.1)."""

WEBSOCKET_HEADERS = frozenset(
    h.lower()
    for h in (
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Accept",
    )
)

CONNECT_TIMEOUT = 10.0
"""Seconds to reach the gateway's proxy."""
REQUEST_TIMEOUT = 300.0
"""Seconds an answer of the gateway's proxy may take (the API holds ``?wait`` requests)."""

OwnerLookup = Callable[[str], Awaitable[tuple[str, str] | None]]
"""``cluster name -> (owner, status) or None``: the gateway's record of a cluster."""


class _JsonErrors(web.RequestHandler):
    """Errors as ``{"error": reason}``, never a traceback."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        self.clear_header("Content-Encoding")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason}))


CREDENTIALS = frozenset(("authorization", "cookie"))
"""What identifies the caller to the hub: never passed on to a cluster's dashboard."""


def _forward_headers(
    headers: httputil.HTTPHeaders, *, websocket: bool = False, credentials: bool = True
) -> dict[str, str]:
    drop = HOP_BY_HOP | (WEBSOCKET_HEADERS if websocket else frozenset())
    if not credentials:
        drop |= CREDENTIALS
    out: dict[str, str] = {}
    for name, value in headers.get_all():
        if name.lower() in drop:
            continue
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


class _Forwarder(_JsonErrors):
    """Forward a request to the gateway's proxy and send back its answer."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
    pass_credentials = True
    """Whether the caller's Authorization and cookies go to the gateway's proxy."""

    def initialize(self, upstream: str, **_: Any) -> None:
        self.upstream = upstream.rstrip("/")

    async def forward(self) -> None:
        """Send this request to the gateway's proxy; copy its answer."""
        method = self.request.method or "GET"
        request = HTTPRequest(
            self.upstream + (self.request.uri or "/"),
            method=method,
            headers=_forward_headers(self.request.headers, credentials=self.pass_credentials),
            body=self.request.body if method in ("POST", "PUT", "PATCH") else None,
            follow_redirects=False,
            decompress_response=False,
            allow_nonstandard_methods=True,
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=REQUEST_TIMEOUT,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            raise web.HTTPError(502, "the gateway's proxy did not answer: %s", exc) from None
        if response.code == 599:
            raise web.HTTPError(
                502, "the gateway's proxy did not answer: %s", response.error
            ) from None
        replaced = self._answer(response.code, response.reason or "", response.body or b"")
        if replaced is not None:
            code, reason, body = replaced
            self.set_status(code, reason)
            self.set_header("Content-Type", "application/json")
            await self.finish(body)
            return
        self.set_status(response.code, response.reason or "Unknown")
        self._headers = httputil.HTTPHeaders()
        for name, value in response.headers.get_all():
            if name.lower() not in HOP_BY_HOP:
                self.add_header(name, value)
        if response.body and response.code not in (204, 304) and method != "HEAD":
            self.write(response.body)
        await self.finish()

    def _answer(self, code: int, reason: str, body: bytes) -> tuple[int, str, bytes] | None:
        """An answer of the front's own instead of the proxy's (``None``: the proxy's)."""
        return None

    get = head = post = put = delete = patch = options = forward


class GatewayHandler(_Forwarder):
    """The gateway's API and anything that is not a dashboard: forwarded as is.

    Except what dask-gateway-server would answer with a 500: an ``Authorization`` header that
    is not ``jupyterhub <token>`` (401), a token the hub does not know (the gateway's
    authenticator reports the hub's refusal as a 500; the front answers 401) and an API body
    that is not a JSON object (400).
    """

    API_AUTH = re.compile(r"^jupyterhub \S+$")

    async def forward(self) -> None:
        """Check what the gateway would fail on, then forward."""
        path = self.request.path
        api = "/api/" in path and not path.endswith("/api/health")
        if api:
            header = self.request.headers.get("Authorization")
            if header is not None and not self.API_AUTH.match(header):
                raise web.HTTPError(
                    401,
                    "send your hub token as 'Authorization: jupyterhub <token>' (in the lab, "
                    "$JUPYTERHUB_API_TOKEN; lab.cluster() does it)",
                )
            if self.request.method in ("POST", "PUT", "PATCH") and self.request.body:
                try:
                    body = json.loads(self.request.body)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise web.HTTPError(400, "the request body is not JSON: %s", exc) from None
                if not isinstance(body, dict):
                    raise web.HTTPError(
                        400, "the request body must be a JSON object, not %s", type(body).__name__
                    )
        await super().forward()

    get = head = post = put = delete = patch = options = forward

    def _answer(self, code: int, reason: str, body: bytes) -> tuple[int, str, bytes] | None:
        if code == 500 and b"verifying user's JupyterHub API token" in body:
            return (
                401,
                "Unauthorized",
                json.dumps(
                    {
                        "error": "the hub refused this token (unknown or expired): log in "
                        "again, or use a fresh $JUPYTERHUB_API_TOKEN"
                    }
                ).encode(),
            )
        return None


class DashboardHandler(HubOAuthenticated, websocket.WebSocketHandler, _Forwarder):
    """A cluster's dashboard (HTTP and WebSocket), for the cluster's owner only."""

    pass_credentials = False

    def initialize(self, upstream: str, **kwargs: Any) -> None:
        _Forwarder.initialize(self, upstream)
        self.hub_auth = kwargs["hub_auth"]
        self.lookup: OwnerLookup = kwargs["lookup"]
        self._upstream_ws: websocket.WebSocketClientConnection | None = None
        self._pending: list[str | bytes] = []

    def _is_websocket(self) -> bool:
        return self.request.headers.get("Upgrade", "").lower() == "websocket"

    async def prepare(self) -> None:
        """Let the request through only for the cluster's owner."""
        await self.authorize(self.path_args[0])

    async def authorize(self, name: str) -> None:
        """Raise a 401/403/404 unless the caller owns the running cluster ``name``."""
        try:
            model = await self.hub_auth.get_user(self, sync=False)
            if model:
                model = self.check_hub_user(model)
        except UserNotAllowed as exc:
            raise web.HTTPError(
                403,
                "%s may not use this gateway: the token or login lacks the scope %s",
                exc.model.get("name"),
                ", ".join(sorted(self.hub_auth.access_scopes)),
            ) from None
        if not model:
            browser_page = (
                self.request.method == "GET"
                and not self._is_websocket()
                and "Authorization" not in self.request.headers
            )
            if browser_page:
                self.redirect(self.get_login_url())
                return
            raise web.HTTPError(
                401,
                "log in to the hub, or send 'Authorization: token <your hub token>', to open "
                "the dashboard of cluster %s",
                name,
            )
        self._hub_auth_user_cache = model
        record = await self.lookup(name)
        if record is None:
            raise web.HTTPError(404, "no cluster %s on this gateway", name)
        owner, status = record
        if owner != model["name"]:
            raise web.HTTPError(
                403, "cluster %s belongs to another user: only its owner sees its dashboard", name
            )
        if status != "RUNNING":
            raise web.HTTPError(404, "cluster %s has no dashboard: it is %s", name, status)

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """A page or asset of the dashboard, or its WebSocket (Bokeh's ``/ws``)."""
        if not self._is_websocket():
            await self.forward()
            return
        offered = self.request.headers.get("Sec-WebSocket-Protocol", "")
        protocols = [p.strip() for p in offered.split(",") if p.strip()]
        url = "ws" + self.upstream.removeprefix("http") + self.request.uri
        try:
            self._upstream_ws = await websocket.websocket_connect(
                HTTPRequest(
                    url,
                    headers=_forward_headers(
                        self.request.headers, websocket=True, credentials=False
                    ),
                    connect_timeout=CONNECT_TIMEOUT,
                ),
                on_message_callback=self._from_upstream,
                subprotocols=protocols or None,
            )
        except (OSError, HTTPClientError, websocket.WebSocketError) as exc:
            raise web.HTTPError(502, "the dashboard's WebSocket did not answer: %s", exc) from None
        await websocket.WebSocketHandler.get(self, *args, **kwargs)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Accept what the dashboard's server accepted (Bokeh sends its token as one)."""
        chosen = self._upstream_ws.selected_subprotocol if self._upstream_ws else None
        return chosen or (subprotocols[0] if subprotocols else None)

    def check_origin(self, origin: str) -> bool:
        """Same-origin only (the hub's address): cookies must not open it from another site."""
        return bool(super().check_origin(origin))

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Send what the dashboard's server sent before the browser's side was open."""
        pending, self._pending = self._pending, []
        for message in pending:
            self.write_message(message, binary=isinstance(message, bytes))

    def _from_upstream(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
        elif self.ws_connection is None:
            self._pending.append(message)
        else:
            try:
                self.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                if self._upstream_ws is not None:
                    self._upstream_ws.close()

    async def on_message(self, message: str | bytes) -> None:
        """Browser to dashboard."""
        if self._upstream_ws is not None:
            try:
                await self._upstream_ws.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                self.close()

    def on_close(self) -> None:
        """The browser left: close the dashboard's side too."""
        if self._upstream_ws is not None:
            self._upstream_ws.close()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        _Forwarder.write_error(self, status_code, **kwargs)


class ForwardAuthHandler(DashboardHandler):
    """``GET <prefix>/dashboard-auth``: Traefik's ForwardAuth check of a dashboard request.

    On Kubernetes the gateway's Traefik routes dashboards straight to the schedulers; its
    ForwardAuth middleware on those routes (``helm/dashboards-forward-auth.yaml``) asks this
    endpoint first about every request, with the original path in ``X-Forwarded-Uri`` and the
    caller's Authorization and cookies: 204 lets the request through (any path that is not a
    cluster's dashboard, the API included), anything else is the answer.
    """

    _CLUSTER = re.compile(r"/clusters/([^/?]+)")

    async def prepare(self) -> None:
        """Check the original request's cluster (not this one's path)."""
        uri = self.request.headers.get("X-Forwarded-Uri", "")
        match = self._CLUSTER.search(uri.split("?", 1)[0])
        if match is None:
            return  # not a dashboard: the gateway authenticates its API itself
        self.request.uri = uri  # the login sends the browser back there
        await self.authorize(match.group(1))

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Allowed."""
        self.set_status(204)
        await self.finish()


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    """The end of the hub's OAuth login: sets the service cookie, back to the dashboard."""

    def initialize(self, hub_auth: HubOAuth) -> None:
        self.hub_auth = hub_auth


class NotFoundHandler(_JsonErrors):
    """Anything outside the gateway's prefix."""

    def prepare(self) -> None:
        raise web.HTTPError(404, "no such route: %s", self.request.path)


def hub_oauth(
    service_name: str, hub_api_url: str, api_token: str, access_scopes: set[str]
) -> HubOAuth:
    """The OAuth client of the service ``service_name``, as the hub registers it.

    The hub makes every service with a URL an OAuth client ``service-<name>`` redirecting to
    ``/services/<name>/oauth_callback``; its secret is the service's token.
    """
    prefix = f"/services/{service_name}/"
    return HubOAuth(
        api_url=hub_api_url,
        api_token=api_token,
        oauth_client_id=f"service-{service_name}",
        oauth_redirect_uri=prefix + "oauth_callback",
        base_url=prefix,
        hub_prefix="/hub/",
        access_scopes=access_scopes,
    )


def make_app(
    *,
    service_name: str,
    upstream: str,
    lookup: OwnerLookup,
    hub_api_url: str,
    api_token: str,
    access_scopes: set[str],
) -> web.Application:
    """The front's tornado application.

    Parameters
    ----------
    service_name
        The gateway's hub service (``dask-gateway-<centre>``); routes are under
        ``/services/<service_name>/``, the gateway proxy's prefix.
    upstream
        The gateway's HTTP proxy (``http://host:port``), not reachable by users.
    lookup
        The gateway's record of a cluster: ``name -> (owner, status)``, ``None`` if unknown.
    hub_api_url, api_token
        The hub's API and the service's token (also its OAuth client secret).
    access_scopes
        Scopes a caller must hold (the gateway's access scope).
    """
    prefix = f"/services/{service_name}"
    auth = hub_oauth(service_name, hub_api_url, api_token, access_scopes)
    common = {"upstream": upstream}
    return web.Application(
        [
            (prefix + "/oauth_callback", OAuthCallbackHandler, {"hub_auth": auth}),
            (
                prefix + "/dashboard-auth",
                ForwardAuthHandler,
                {**common, "hub_auth": auth, "lookup": lookup},
            ),
            (
                prefix + r"/clusters/([^/]+)(?:/.*)?",
                DashboardHandler,
                {**common, "hub_auth": auth, "lookup": lookup},
            ),
            (prefix + r"(?:/.*)?", GatewayHandler, common),
            (r".*", NotFoundHandler, {}),
        ],
        cookie_secret=secrets.token_bytes(32),
        websocket_ping_interval=30,
        log_function=_log_request,
    )


def _log_request(handler: web.RequestHandler) -> None:
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING
    log.log(level, "%d %s %s", status, handler.request.method, handler.request.path)
