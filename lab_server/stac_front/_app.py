"""The lab's HTTP front of the open centres: their STAC APIs and their files, on loopback.

One process (``python -m lab_server.stac_front CONFIG.json``) serves, for each centre of its JSON
configuration (``{"ip", "port", "centres": {name: {"stac", "files", "delay"}}}``):

- ``/stac/<centre>/``: a reverse proxy to the centre's STAC API (``rustac serve`` on a private
  port), whose links are rewritten to the proxy's address so that clients follow pagination
  back through it. ``rustac serve`` 0.9.8 ignores ``skip`` in POST search bodies (it answers
  the first page again, with the same ``next`` link, forever): the proxy pages for it, asking
  for ``skip + limit`` items and returning the last ``limit``;
- ``/assets/<centre>/``: the centre's files with byte ranges, so that GDAL reads
  cloud-optimised GeoTIFFs over HTTP as it would from object storage;
- ``delay``: seconds added before every STAC answer of that centre (tests and benchmarks slow
  a centre down with it; zero in the lab).

The restricted-data service (``lab_server.restricted``) builds on the same handlers.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.httpclient
import tornado.web

__all__ = ["FilesHandler", "StacProxyHandler", "make_app", "rewrite_links"]

JSON_TYPES = ("application/json", "application/geo+json")
DEFAULT_PAGE = 10  # rustac serve's page size when a request gives no limit
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def rewrite_links(document: Any, old: str, new: str) -> Any:
    """Replace the prefix ``old`` by ``new`` in every link ``href`` of a STAC document.

    Parameters
    ----------
    document
        A decoded STAC JSON document (landing page, collection(s), item(s), search page).
    old, new
        URL prefixes, both ending in ``/``.

    Returns
    -------
    Any
        The same document, changed in place.
    """
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "links" and isinstance(value, list):
                for link in value:
                    href = link.get("href") if isinstance(link, dict) else None
                    if not isinstance(href, str):
                        continue
                    if href.startswith(old):
                        link["href"] = new + href[len(old) :]
                    elif href + "/" == old:
                        link["href"] = new
            else:
                rewrite_links(value, old, new)
    elif isinstance(document, list):
        for value in document:
            rewrite_links(value, old, new)
    return document


class FilesHandler(tornado.web.StaticFileHandler):
    """Files of one directory, with HEAD and byte ranges; nothing listed, nothing cached."""

    def set_extra_headers(self, path: str) -> None:
        """Ask clients not to cache (access may change)."""
        self.set_header("Cache-Control", "no-store")


class StacProxyHandler(tornado.web.RequestHandler):
    """Forward GET and POST to a STAC API, rewriting its links to this proxy's address.

    ``initialize`` arguments: ``upstream`` (the API's root URL, ending in ``/``), ``public``
    (this proxy's STAC root as clients see it, ending in ``/``), ``delay`` (seconds) and
    ``transform`` (a function of the decoded document and the handler, for subclasses).
    """

    def initialize(
        self,
        upstream: str,
        public: str,
        delay: float = 0.0,
        transform: Callable[[Any, tornado.web.RequestHandler], Any] | None = None,
    ) -> None:
        self.upstream = upstream
        self.public = public
        self.delay = delay
        self.transform = transform

    async def get(self, path: str) -> None:
        """Proxy a GET."""
        await self._forward("GET", path)

    async def post(self, path: str) -> None:
        """Proxy a POST (JSON body)."""
        await self._forward("POST", path)

    async def _forward(self, method: str, path: str) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        url = self.upstream + path
        if self.request.query:
            url += "?" + self.request.query
        headers = {"Accept": self.request.headers.get("Accept", "application/json")}
        body = self.request.body if method == "POST" else None
        paging = None
        if method == "POST" and path == "search":
            headers["Content-Type"] = "application/json"
            body, paging = _page_for_upstream(self.request.body)
        try:
            response = await tornado.httpclient.AsyncHTTPClient().fetch(
                url,
                method=method,
                body=body,
                headers=headers,
                raise_error=False,
                request_timeout=60,
            )
        except OSError as exc:  # refused, reset: the API itself does not answer
            self.set_status(502)
            self.finish(
                {"code": "BadGateway", "description": f"the STAC API does not answer: {exc}"}
            )
            return
        if response.code == 599:
            self.set_status(502)
            self.finish(
                {
                    "code": "BadGateway",
                    "description": f"the STAC API does not answer: {response.error}",
                }
            )
            return
        self.set_status(response.code)
        kind = response.headers.get("Content-Type", "")
        if kind.split(";")[0].strip() in JSON_TYPES and response.body:
            document = json.loads(response.body)
            rewrite_links(document, self.upstream, self.public)
            if paging is not None and response.code == 200:
                _page_for_client(document, paging, self.public + path)
            if self.transform is not None:
                document = self.transform(document, self)
            self.set_header("Content-Type", kind)
            self.finish(json.dumps(document))
            return
        for name, value in response.headers.get_all():
            if name.lower() not in _HOP_HEADERS:
                self.set_header(name, value)
        self.finish(response.body or b"")


def _page_for_upstream(raw: bytes) -> tuple[bytes, dict[str, Any] | None]:
    """A POST search body for rustac: ``skip`` folded into ``limit`` (it ignores ``skip``)."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return raw, None
    skip = body.pop("skip", None) if isinstance(body, dict) else None
    if not skip:
        return raw, None
    limit = int(body.get("limit") or DEFAULT_PAGE)
    return json.dumps({**body, "limit": int(skip) + limit}).encode(), {
        "skip": int(skip),
        "limit": limit,
        "body": body,
    }


def _page_for_client(document: dict[str, Any], paging: dict[str, Any], href: str) -> None:
    """Keep the page asked for and give it the ``next`` link of the page after."""
    skip, limit = paging["skip"], paging["limit"]
    features = document.get("features") or []
    document["features"] = features[skip : skip + limit]
    document["numberReturned"] = len(document["features"])
    links = [link for link in document.get("links", []) if link.get("rel") not in ("next", "prev")]
    if len(features) >= skip + limit:
        body = {**paging["body"], "limit": limit, "skip": skip + limit}
        links.append(
            {
                "rel": "next",
                "href": href,
                "method": "POST",
                "type": "application/geo+json",
                "body": body,
            }
        )
    document["links"] = links


def make_app(config: dict[str, Any]) -> tornado.web.Application:
    """Build the front described by ``config`` (see the module docstring).

    Parameters
    ----------
    config
        ``{"ip": str, "port": int, "centres": {name: {"stac": url | None, "files": dir |
        None, "delay": float}}}``.

    Returns
    -------
    tornado.web.Application
        Routes ``/stac/<centre>/(.*)``, ``/assets/<centre>/(.*)`` and ``/health``.
    """
    base = f"http://{config.get('ip', '127.0.0.1')}:{config['port']}"
    routes: list[Any] = []
    for name, centre in (config.get("centres") or {}).items():
        if centre.get("stac"):
            options = {
                "upstream": centre["stac"].rstrip("/") + "/",
                "public": f"{base}/stac/{name}/",
                "delay": float(centre.get("delay", 0.0)),
            }
            routes.append((rf"/stac/{name}/(.*)", StacProxyHandler, options))
        if centre.get("files"):
            routes.append((rf"/assets/{name}/(.*)", FilesHandler, {"path": centre["files"]}))
    routes.append((r"/health", _Health))
    return tornado.web.Application(routes)


class _Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish({"status": "ok"})


def main(argv: list[str] | None = None) -> None:
    """Run the front described by the JSON file given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m lab_server.stac_front CONFIG.json")
    config = json.loads(Path(args[0]).read_text(encoding="utf-8"))

    async def serve() -> None:
        make_app(config).listen(int(config["port"]), address=config.get("ip", "127.0.0.1"))
        await asyncio.Event().wait()

    asyncio.run(serve())
