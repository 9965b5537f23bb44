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

A bad request gets a 4xx with a reason, never a 500: the front checks what it knows of a search
(``limit``, ``skip``, ``bbox``, the JSON body, ``sortby`` and ``fields``, which ``rustac serve``
cannot take in a GET and answers with a 500) before forwarding, passes the API's own 4xx on
with its reason, and every error of its own is JSON ``{"code", "description"}``, as STAC APIs
answer them. A ``limit`` above the maximum (10,000) is not an error: the front asks for the
maximum, as the STAC API specification says (stac-api-validator checks it).

The restricted-data service (``lab_server.restricted``) builds on the same handlers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.httpclient
import tornado.web

from lab import EarthLabError

__all__ = [
    "BadRequestError",
    "FilesHandler",
    "JsonErrorsMixin",
    "StacProxyHandler",
    "check_query",
    "check_search_body",
    "make_app",
    "rewrite_links",
    "search_body_from_query",
]

JSON_TYPES = ("application/json", "application/geo+json")
DEFAULT_PAGE = 10  # rustac serve's page size when a request gives no limit
MAX_LIMIT = 10_000  # the STAC API's OpenAPI bound of ``limit``
MAX_URL = 8_192  # characters of a request's path and query
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


class BadRequestError(EarthLabError, tornado.web.HTTPError):
    """A request the front refuses (or the API refused): status and the reason clients see."""

    def __init__(self, description: str, status: int = 400, code: str = "BadRequest"):
        super().__init__(status)
        self.code = code
        self.description = description


_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    414: "URITooLong",
    415: "UnsupportedMediaType",
}


class JsonErrorsMixin(tornado.web.RequestHandler):
    """Errors as JSON ``{"code", "description"}`` (STAC APIs' form), never an HTML page."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Say why, in JSON."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        code = getattr(exc, "code", None)
        description = getattr(exc, "description", None)
        if not isinstance(code, str) or not isinstance(description, str):
            code = _CODES.get(status_code, "Error")
            description = self._reason
            if status_code == 405:
                description = f"{self.request.method} is not allowed on {self.request.path}"
            elif isinstance(exc, tornado.web.HTTPError) and exc.log_message:
                description = exc.log_message % exc.args if exc.args else exc.log_message
        self.clear_header("Content-Encoding")
        self.clear_header("Content-Range")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": code, "description": description}))


class FilesHandler(JsonErrorsMixin, tornado.web.StaticFileHandler):
    """Files of one directory, with HEAD and byte ranges; nothing listed, nothing cached."""

    def set_extra_headers(self, path: str) -> None:
        """Ask clients not to cache (access may change)."""
        self.set_header("Cache-Control", "no-store")

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        """Refuse, with a reason, what is not a file under the root (``..``, NUL, folders)."""
        if "\0" in absolute_path:
            raise tornado.web.HTTPError(400, "an asset path may not contain a NUL byte")
        try:
            return super().validate_absolute_path(root, absolute_path)
        except tornado.web.HTTPError as exc:
            if exc.status_code == 403:
                raise tornado.web.HTTPError(
                    403, "not an asset: only files under the centre's asset root are served"
                ) from None
            if exc.status_code == 404:
                raise tornado.web.HTTPError(404, "no such asset: %s", self.path_args[0]) from None
            raise
        except (OSError, ValueError) as exc:
            raise tornado.web.HTTPError(400, "not an asset path: %s", exc) from None


class StacProxyHandler(JsonErrorsMixin, tornado.web.RequestHandler):
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
        if len(self.request.uri or "") > MAX_URL:
            raise BadRequestError(
                f"the URL is longer than {MAX_URL} characters: use POST /search with a JSON "
                "body for long queries",
                414,
                "URITooLong",
            )
        raw = self.request.body
        query = self.request.query
        if path.endswith("/items"):
            asked = self.request.query_arguments.get("limit")
            check_query(self.request.query_arguments, get=method == "GET")
            if self.request.query_arguments.get("limit") != asked:  # a limit above the maximum
                query = urllib.parse.urlencode(self.request.query_arguments, doseq=True)
        elif path == "search" and method == "GET":
            # rustac serve answers a GET search with bbox, sortby or fields with a 500: the
            # front asks it the same search as a POST
            raw = json.dumps(search_body_from_query(self.request.query_arguments)).encode()
            method = "POST"
        if self.delay:
            await asyncio.sleep(self.delay)
        url = self.upstream + path
        if query and not (path == "search" and method == "POST"):
            url += "?" + query
        headers = {"Accept": self.request.headers.get("Accept", "application/json")}
        body = raw if method == "POST" else None
        paging = None
        if method == "POST" and path == "search":
            headers["Content-Type"] = "application/json"
            body, paging = _page_for_upstream(raw)
        elif method == "POST":
            raise BadRequestError(
                f"POST is not allowed on {self.request.path}: only /search takes POST", 405
            )
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
        kind = response.headers.get("Content-Type", "")
        if 400 <= response.code < 500 and kind.split(";")[0].strip() not in JSON_TYPES:
            text = (response.body or b"").decode("utf-8", "replace").strip()
            raise BadRequestError(
                f"the STAC API refused the request: {text or response.reason}",
                response.code,
                _CODES.get(response.code, "Error"),
            )
        if response.code >= 500:
            # The API answered: its status is passed on (a 500 is the server refusing this
            # request, not retried by clients; a 502 here would read as a gateway failing).
            text = (response.body or b"").decode("utf-8", "replace").strip()
            try:
                upstream = json.loads(text)
            except ValueError:
                upstream = None
            if isinstance(upstream, dict) and isinstance(upstream.get("description"), str):
                text = upstream["description"]
            raise BadRequestError(
                f"the STAC API failed on this request: {text[:500]}",
                response.code,
                _CODES.get(response.code, "InternalServerError"),
            )
        self.set_status(response.code)
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


def _integer(
    name: str, value: Any, low: int, high: int | None = None, *, clamp: bool = False
) -> int:
    """``value`` as an integer in ``[low, high]``, or a 400 saying what is expected.

    With ``clamp``, a value above ``high`` is ``high`` (the STAC API's ``limit``: a server
    answers a limit above its maximum with the maximum, never with an error).
    """
    bound = f"between {low} and {high}" if high is not None else f"of at least {low}"
    try:
        number = int(value)
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
    except (TypeError, ValueError, OverflowError):
        raise BadRequestError(f"{name} must be an integer {bound}, not {value!r}") from None
    if clamp and high is not None and number > high:
        return high
    if number < low or (high is not None and number > high):
        raise BadRequestError(f"{name} must be an integer {bound}, not {number}")
    return number


def _bbox(value: Any) -> None:
    """A 400 unless ``value`` is 4 or 6 numbers, west <= east... as the STAC API asks."""
    numbers = value
    if isinstance(value, str):
        numbers = value.split(",")
    try:
        floats = [float(v) for v in numbers] if isinstance(numbers, list) else []
    except (TypeError, ValueError):
        floats = []
    if len(floats) not in (4, 6) or any(f != f or abs(f) == float("inf") for f in floats):
        raise BadRequestError(f"bbox must be 4 (or 6) numbers west,south,east,north, not {value!r}")
    half = len(floats) // 2
    if floats[1] > floats[half + 1]:
        raise BadRequestError(f"bbox: south ({floats[1]}) is above north ({floats[half + 1]})")


def check_query(arguments: dict[str, list[bytes]], *, get: bool) -> None:
    """Refuse, with a reason, search parameters of a query string the API would fail on.

    Parameters
    ----------
    arguments
        The request's query arguments (``tornado``'s ``query_arguments``).
    get
        Whether the request is a GET of a collection's items (``rustac serve`` answers one
        with ``bbox``, ``sortby`` or ``fields`` with a 500).

    A ``limit`` above the maximum is replaced by the maximum in ``arguments``: a STAC API
    answers it with at most its maximum number of items, not with an error.
    """

    def one(name: str) -> str | None:
        values = arguments.get(name)
        return values[-1].decode("utf-8", "replace") if values else None

    if (limit := one("limit")) is not None:
        arguments["limit"] = [str(_integer("limit", limit, 1, MAX_LIMIT, clamp=True)).encode()]
    if (skip := one("skip")) is not None:
        _integer("skip", skip, 0)
    if (bbox := one("bbox")) is not None:
        _bbox(bbox)
    if get:
        for name in ("bbox", "sortby", "fields"):
            if name in arguments:
                raise BadRequestError(
                    f"{name} is not supported on a collection's items by this catalogue: "
                    f"search instead (GET /search?collections=...&{name}=..., or POST /search "
                    f'with {{"collections": [...], "{name}": ...}})'
                )


def search_body_from_query(arguments: dict[str, list[bytes]]) -> dict[str, Any]:
    """The POST search body of a GET search's query string (STAC API item search, GET form).

    Parameters
    ----------
    arguments
        The request's query arguments (``tornado``'s ``query_arguments``).

    Returns
    -------
    dict
        ``limit``, ``skip``, ``bbox``, ``datetime``, ``collections``, ``ids``, ``intersects``,
        ``filter`` (and ``filter-lang``), ``sortby``, ``fields`` and ``query`` as the POST
        form has them; a 400 names a value that cannot be read.
    """

    def one(name: str) -> str | None:
        values = arguments.get(name)
        return values[-1].decode("utf-8", "replace") if values else None

    def listed(text: str) -> list[str]:
        return [part.strip() for part in text.split(",") if part.strip()]

    def decoded(name: str, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise BadRequestError(f"{name} must be JSON: {exc}") from None

    check_query(arguments, get=False)
    body: dict[str, Any] = {}
    if (limit := one("limit")) is not None:
        body["limit"] = int(limit)
    if (skip := one("skip")) is not None:
        body["skip"] = int(skip)
    if (bbox := one("bbox")) is not None:
        body["bbox"] = [float(v) for v in bbox.split(",")]
    for name in ("datetime", "filter-lang", "filter-crs"):
        if (value := one(name)) is not None:
            body[name] = value
    for name in ("collections", "ids"):
        if (value := one(name)) is not None:
            body[name] = listed(value)
    for name in ("intersects", "query"):
        if (value := one(name)) is not None:
            body[name] = decoded(name, value)
    if (text := one("filter")) is not None:
        json_filter = body.get("filter-lang") == "cql2-json" or text.lstrip().startswith("{")
        body["filter"] = decoded("filter", text) if json_filter else text
        body.setdefault("filter-lang", "cql2-json" if json_filter else "cql2-text")
    if (sortby := one("sortby")) is not None:
        fields = listed(sortby)
        if not fields or any(not f.lstrip("+-") for f in fields):
            raise BadRequestError(
                f"sortby must be comma-separated field names, each with an optional + or -, "
                f"not {sortby!r}"
            )
        body["sortby"] = [
            {"field": f.lstrip("+-"), "direction": "desc" if f.startswith("-") else "asc"}
            for f in fields
        ]
    if (fields_ := one("fields")) is not None:
        names = listed(fields_)
        body["fields"] = {
            "include": [n.lstrip("+") for n in names if not n.startswith("-")],
            "exclude": [n[1:] for n in names if n.startswith("-")],
        }
    return check_search_body(json.dumps(body).encode())


def check_search_body(raw: bytes) -> dict[str, Any]:
    """The decoded POST search body, or a 400 saying what is wrong with it."""
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the search body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError(f"the search body must be a JSON object, not {type(body).__name__}")
    if body.get("limit") is not None:
        body["limit"] = _integer("limit", body["limit"], 1, MAX_LIMIT, clamp=True)
    if body.get("skip") is not None:
        _integer("skip", body["skip"], 0)
    if body.get("bbox") is not None:
        _bbox(body["bbox"])
    sortby = body.get("sortby")
    if sortby is not None and not (
        isinstance(sortby, list)
        and all(
            isinstance(s, dict)
            and isinstance(s.get("field"), str)
            and s.get("direction", "asc") in ("asc", "desc")
            for s in sortby
        )
    ):
        raise BadRequestError(
            'sortby must be a list of {"field": name, "direction": "asc" | "desc"}, '
            f"not {sortby!r}"
        )
    return body


def _page_for_upstream(raw: bytes) -> tuple[bytes, dict[str, Any] | None]:
    """A POST search body for rustac: ``skip`` folded into ``limit`` (it ignores ``skip``)."""
    body = check_search_body(raw)
    skip = body.pop("skip", None)
    if not skip:
        return json.dumps(body).encode(), None
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
    return tornado.web.Application(routes, default_handler_class=NotFoundHandler)


class _Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish({"status": "ok"})


class NotFoundHandler(JsonErrorsMixin):
    """Any route the front does not serve: a 404 naming what it serves."""

    def prepare(self) -> None:
        """Refuse."""
        raise BadRequestError(
            f"no such route: {self.request.path} (the front serves /stac/<centre>/, "
            "/assets/<centre>/ and /health)",
            404,
            "NotFound",
        )


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
