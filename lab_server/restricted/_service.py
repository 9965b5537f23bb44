"""The restricted-data service of one centre: its STAC API and assets, for group members only.

A JupyterHub service (``restricted-<centre>``) that

- identifies callers with the hub (:class:`jupyterhub.services.auth.HubAuth`: the hub token
  in ``Authorization: token ...`` or ``Bearer ...``), looks up their groups with its own
  service token, and admits members of the group the centre's collections are restricted to;
- proxies the centre's STAC API (``rustac serve`` on a private port), rewriting its links to
  the service's public URL and signing every asset href for the caller;
- serves assets, with byte ranges, to signed URLs or to members' tokens, charging each item's
  footprint to the reader's yearly quota (``lab_server.restricted._ledger`` gives the rule) and
  refusing, with used and remaining km², beyond it;
- answers ``GET quota`` with the caller's usage (``earthlab quota``).

Refusals are JSON ``{"code", "description"}`` with 401 (no or unknown token) or 403 (not a
member, token without the service's access scope, expired signature, quota exhausted); the
description of a refusal to a non-member starts with ``restricted: request access via``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import tornado.httpclient
import tornado.web

from lab import EarthLabError
from lab_server.restricted._ledger import QuotaPolicy, UsageLedger
from lab_server.restricted._signing import sign_url, verify
from lab_server.stac_front import FilesHandler, StacProxyHandler

__all__ = ["Footprint", "ServiceConfig", "make_app"]

log = logging.getLogger("earthlab.restricted")
GROUP_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Footprint:
    """What reading one asset file costs: its item and the item's footprint area."""

    collection: str
    item: str
    km2: float


@dataclass(frozen=True)
class ServiceConfig:
    """Everything one restricted-data service needs (built by ``python -m lab_server.restricted``)."""

    centre: str
    """Centre name."""
    service: str
    """JupyterHub service name (``restricted-<centre>``)."""
    prefix: str
    """URL path prefix of every route (``/services/restricted-<centre>/``)."""
    public_url: str
    """The service's URL as clients see it (through the hub's proxy), ending in ``/``."""
    upstream: str
    """Root URL of the centre's private STAC API, ending in ``/``."""
    files_root: Path
    """Directory the asset paths are relative to."""
    hub_api_url: str
    """JupyterHub's REST API."""
    api_token: str = field(repr=False)
    """The service's own hub token (looks users' groups up)."""
    signing_key: bytes = field(repr=False)
    """Key of the asset URL signatures."""
    groups: Mapping[str, str]
    """``{collection: group}`` restricted here."""
    access_url: str
    """Where to request access."""
    policy: QuotaPolicy
    """Quotas by group and signed-URL lifetime."""
    ledger_path: Path
    """The SQLite usage ledger."""
    footprints: Mapping[str, Footprint]
    """``{asset path: Footprint}`` of every asset the service serves."""
    only_user: str | None = None
    """A single-person lab (users not isolated by the operating system, so every account could
    read the restricted files on disk): the only user admitted, whatever the groups say."""

    @property
    def access_scope(self) -> str:
        """The hub scope a token needs to use this service."""
        return f"access:services!service={self.service}"

    @property
    def asset_url(self) -> str:
        """Public URL prefix of the assets."""
        return self.public_url + "assets/"


class RefusalError(EarthLabError, tornado.web.HTTPError):
    """A refusal whose description the caller sees (JSON body).

    Tornado turns it into the HTTP status; it is also an :class:`~lab.EarthLabError`, like
    every error the project raises on purpose.
    """

    def __init__(self, status: int, code: str, description: str):
        super().__init__(status, reason=None)
        self.code = code
        self.description = description


@dataclass(frozen=True)
class Caller:
    """An identified, admitted caller."""

    user: str
    groups: frozenset[str]


class Gatekeeper:
    """Who is calling and whether they may read: hub token or signature, group, scope."""

    def __init__(self, config: ServiceConfig):
        from jupyterhub.services.auth import HubAuth

        self.config = config
        self.hub_auth = HubAuth(
            api_url=config.hub_api_url, api_token=config.api_token, cache_max_age=10
        )
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    def restricted(self, reason: str) -> RefusalError:
        """A 403 telling a non-member where to request access."""
        what = ", ".join(sorted(self.config.groups))
        groups = ", ".join(sorted(set(self.config.groups.values())))
        return RefusalError(
            403,
            "Restricted",
            f"restricted: request access via {self.config.access_url}; {what} is for members "
            f"of the hub group {groups} ({reason})",
        )

    async def from_token(self, handler: tornado.web.RequestHandler) -> Caller:
        """Identify the caller by the hub token in the request, and admit members only."""
        header = handler.request.headers.get("Authorization", "")
        match = self.hub_auth.auth_header_pat.match(header)
        if not match:
            raise RefusalError(
                401,
                "Unauthorized",
                f"restricted: request access via {self.config.access_url}; then send your hub "
                "token (Authorization: token <token>; in the lab, $JUPYTERHUB_API_TOKEN)",
            )
        model = await self.hub_auth.user_for_token(match.group(1), sync=False)
        if not model or model.get("kind", "user") != "user":
            raise RefusalError(401, "Unauthorized", "the hub does not know this token (expired?)")
        caller = await self.member(model["name"])
        scopes = set(model.get("scopes") or ())
        if not scopes & {"access:services", self.config.access_scope}:
            raise RefusalError(
                403,
                "Forbidden",
                f"your token lacks the scope {self.config.access_scope}; your group gives it: "
                "restart your server (or ask a new token) after joining the group",
            )
        return caller

    async def from_signature(self, handler: tornado.web.RequestHandler, path: str) -> Caller:
        """Identify the reader of a signed asset URL (the user it was signed for)."""
        user = handler.get_query_argument("user", "")
        why = verify(
            self.config.signing_key,
            user,
            path,
            handler.get_query_argument("expires", ""),
            handler.get_query_argument("signature", ""),
        )
        if why:
            raise RefusalError(403, "Forbidden", f"signed asset URL refused: {why}")
        return await self.member(user)

    async def member(self, user: str) -> Caller:
        """Admit ``user`` if they belong to a group the collections are restricted to."""
        if self.config.only_user is not None and user != self.config.only_user:
            raise RefusalError(
                403,
                "Restricted",
                f"restricted: this is a single-person lab (not started as root, so its users "
                f"are not isolated from each other and could read the restricted files on "
                f"disk): {', '.join(sorted(self.config.groups))} is for its owner "
                f"{self.config.only_user} only; for a lab of several people, start it as root "
                "(`earthlab hub up`), which gives each user their own Unix account",
            )
        groups = await self.groups_of(user)
        if not groups & set(self.config.groups.values()):
            raise self.restricted(f"{user} is not a member")
        return Caller(user, groups)

    async def groups_of(self, user: str) -> frozenset[str]:
        """The user's hub groups (asked with the service token, cached a few seconds)."""
        cached = self._groups.get(user)
        if cached and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        response = await tornado.httpclient.AsyncHTTPClient().fetch(
            f"{self.config.hub_api_url}/users/{quote(user, safe='')}",
            headers={"Authorization": f"token {self.config.api_token}"},
            raise_error=False,
            request_timeout=20,
        )
        if response.code == 404:
            groups: frozenset[str] = frozenset()
        elif response.code != 200:
            raise RefusalError(
                502, "BadGateway", f"the hub did not say who {user} is ({response.code})"
            )
        else:
            groups = frozenset(json.loads(response.body).get("groups") or ())
        self._groups[user] = (time.monotonic(), groups)
        return groups


class _JsonErrors(tornado.web.RequestHandler):
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, RefusalError):
            body = {"code": exc.code, "description": exc.description}
        else:
            body = {"code": "Error", "description": self._reason}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class StacHandler(StacProxyHandler, _JsonErrors):
    """The centre's STAC API for members, asset hrefs signed for the caller."""

    def initialize(self, config: ServiceConfig, gate: Gatekeeper) -> None:  # type: ignore[override]
        super().initialize(config.upstream, config.public_url + "stac/", transform=self._sign)
        self.config = config
        self.gate = gate

    async def prepare(self) -> None:
        """Admit members only; the API's description (``stac/api``) is public, as elsewhere."""
        if self.path_args and self.path_args[0] == "api":
            # Clients and validators read the OpenAPI document before they authenticate (and
            # stac-api-validator fetches it without its session's headers); it holds no data.
            return
        self.caller = await self.gate.from_token(self)

    def _sign(self, document: Any, handler: Any) -> Any:
        features = document.get("features") if isinstance(document, dict) else None
        if document.get("type") == "Feature":
            features = [document]
        base = self.config.asset_url
        for feature in features or ():
            for asset in (feature.get("assets") or {}).values():
                href = asset.get("href", "")
                if href.startswith(base):
                    asset["href"] = sign_url(
                        href,
                        href[len(base) :],
                        self.config.signing_key,
                        self.caller.user,
                        self.config.policy.signed_url_lifetime,
                    )
        return document


class AssetHandler(FilesHandler, _JsonErrors):
    """Asset files for signed URLs or members' tokens, each item charged to the quota."""

    def initialize(  # type: ignore[override]
        self, config: ServiceConfig, gate: Gatekeeper, ledger: UsageLedger
    ) -> None:
        super().initialize(path=str(config.files_root))
        self.config = config
        self.gate = gate
        self.ledger = ledger

    async def get(self, path: str, include_body: bool = True) -> None:
        """Check who reads and their quota, charge, then send the bytes (ranges allowed)."""
        if self.get_query_argument("signature", None) is not None:
            caller = await self.gate.from_signature(self, path)
        else:
            caller = await self.gate.from_token(self)
        footprint = self.config.footprints.get(path)
        if footprint is None:
            raise tornado.web.HTTPError(404)
        quota = self.config.policy.quota_for(caller.groups)
        if quota is None:
            raise self.gate.restricted(f"no quota is set for the groups of {caller.user}")
        charge = self.ledger.charge(
            caller.user,
            footprint.collection,
            footprint.item,
            footprint.km2,
            quota,
            dry_run=not include_body,
        )
        if not charge.allowed:
            remaining = max(quota - charge.used_km2, 0.0)
            raise RefusalError(
                403,
                "QuotaExceeded",
                f"quota exceeded: {caller.user} used {charge.used_km2:.3f} km² of a yearly "
                f"quota of {quota:.3f} km² of restricted imagery ({remaining:.3f} km² remaining); "
                f"item {footprint.item} needs {footprint.km2:.3f} km²; ask for more via "
                f"{self.config.access_url}",
            )
        if charge.charged:
            log.info("charged %s %.3f km2 for %s", caller.user, footprint.km2, footprint.item)
        await super().get(path, include_body=include_body)


class QuotaHandler(_JsonErrors):
    """``GET quota``: the caller's usage this year."""

    def initialize(self, config: ServiceConfig, gate: Gatekeeper, ledger: UsageLedger) -> None:
        self.config = config
        self.gate = gate
        self.ledger = ledger

    async def get(self) -> None:
        """Answer the caller's usage."""
        caller = await self.gate.from_token(self)
        usage = self.ledger.usage(caller.user)
        quota = self.config.policy.quota_for(caller.groups) or 0.0
        self.finish(
            {
                "centre": self.config.centre,
                "user": caller.user,
                "groups": sorted(caller.groups),
                "year": usage.year,
                "quota_km2": quota,
                "used_km2": round(usage.used_km2, 6),
                "remaining_km2": round(max(quota - usage.used_km2, 0.0), 6),
                "items": usage.items,
                "charges": list(usage.charges),
                "rule": "each item's footprint, once per user, item and UTC day",
            }
        )


class HealthHandler(tornado.web.RequestHandler):
    """``GET health``: the service runs (no authentication)."""

    def get(self) -> None:
        """Say so."""
        self.finish({"status": "ok"})


def make_app(config: ServiceConfig) -> tornado.web.Application:
    """Build the service's application (routes under ``config.prefix``).

    Parameters
    ----------
    config
        What to serve and to whom.

    Returns
    -------
    tornado.web.Application
        ``stac/...``, ``assets/...``, ``quota`` and ``health``.
    """
    gate = Gatekeeper(config)
    ledger = UsageLedger(config.ledger_path)
    p = config.prefix
    return tornado.web.Application(
        [
            (rf"{p}stac/(.*)", StacHandler, {"config": config, "gate": gate}),
            (
                rf"{p}assets/(.*)",
                AssetHandler,
                {"config": config, "gate": gate, "ledger": ledger},
            ),
            (rf"{p}quota", QuotaHandler, {"config": config, "gate": gate, "ledger": ledger}),
            (rf"{p}health", HealthHandler),
        ],
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log without query strings (signed URLs carry signatures)."""
    request = handler.request
    log.info(
        "%d %s %s %.1fms",
        handler.get_status(),
        request.method,
        request.path,
        1000.0 * request.request_time(),
    )
