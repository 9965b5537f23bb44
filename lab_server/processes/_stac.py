"""Jobs' results as STAC: one Item per successful job, in each user's ``results`` collection.

:func:`result_item` describes what a job produced (the files it recorded with
:meth:`~lab_server.processes._registry.JobContext.add_product`) as a STAC Item with the
processing extension:

- ``processing:expression`` holds the request that made it (``format`` ``ogcapi-processes``,
  ``expression`` ``{"process": id, "inputs": {...}}``): executing it again rebuilds the result
  (``lab.processes().rebuild(item)``);
- ``processing:software`` the lab's version, ``processing:facility`` the lab,
  ``processing:datetime`` when the job finished, ``processing:lineage`` a sentence;
- ``earthlab:job``, ``earthlab:process``: the job and its process;
- one ``derived_from`` link per input Item the job read, and its footprint (the union of theirs,
  else the ``bbox`` input) and dates (the span of theirs, else the job's end);
- assets: the files, through the service's ``results/`` route (their owner only).

:func:`stac_routes` serve them as a small STAC API (core, collections, features, item-search)
under ``stac/``: each caller sees one collection, ``results``, holding their own Items only, so
that ``lab.catalog()`` searches it as a centre of the federation (the hub writes it into users'
centres file, with the hub token for authentication).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import tornado.web

from lab import ConfigurationError, SearchQuery

__all__ = ["COLLECTION", "EXPRESSION_FORMAT", "ITEM_REL", "result_item", "stac_routes"]

COLLECTION = "results"
"""The id of every user's results collection (each caller sees their own)."""
EXPRESSION_FORMAT = "ogcapi-processes"
"""``processing:expression.format`` of result Items: an OGC API – Processes execute request."""
ITEM_REL = "describedby"
"""Relation of a successful job's link (its status document) to its Item."""
PROCESSING = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
FILE = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
_CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
GEOJSON = "application/geo+json"
JSON = "application/json"


def _version() -> str:
    try:
        return metadata.version("earthlab")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree not installed
        return "unknown"


def _union(boxes: Sequence[Sequence[float]]) -> list[float] | None:
    boxes = [b for b in boxes if b and len(b) >= 4]
    if not boxes:
        return None
    return [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[-2] for b in boxes),
        max(b[-1] for b in boxes),
    ]


def _polygon(bbox: Sequence[float]) -> dict[str, Any]:
    w, s, e, n = bbox
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _span(sources: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    stamps = []
    for source in sources:
        props = source.get("properties") or {}
        for key in ("datetime", "start_datetime", "end_datetime"):
            if props.get(key):
                stamps.append(str(props[key]))
    if not stamps:
        return None, None
    parsed = sorted(dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps)
    iso = [p.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for p in (parsed[0], parsed[-1])]
    return iso[0], iso[1]


def result_item(
    job: Mapping[str, Any],
    products: Mapping[str, Mapping[str, Any]],
    sources: Sequence[Mapping[str, Any]],
    *,
    results_url: str,
    job_url: str,
    finished: str,
    title: str = "",
    computed_on: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The STAC Item of a successful job's results (see the module's docstring).

    Parameters
    ----------
    job
        The job (``id``, ``user``, ``process_id``, ``inputs``).
    products
        ``{asset key: {"path": relative to the user's results, "type", "roles", ...}}``.
    sources
        The input Items' records (id, collection, href, bbox, properties).
    results_url
        The URL of the user's results directory through the service (ends in ``/``).
    job_url
        The job's status URL.
    finished
        When the job finished (RFC 3339).
    title
        The process's title.
    computed_on
        Where it computed (``JobContext.computed_on``): ``earthlab:computed_on``, and the
        gateway's centre in ``processing:facility``.
    """
    inputs = dict(job.get("inputs") or {})
    bbox = _union([s.get("bbox") or () for s in sources])
    if bbox is None and isinstance(inputs.get("bbox"), list) and len(inputs["bbox"]) == 4:
        bbox = [float(v) for v in inputs["bbox"]]
    start, end = _span(sources)
    when: dict[str, Any]
    if start is None:
        when = {"datetime": finished}
    elif start == end:
        when = {"datetime": start}
    else:
        when = {"datetime": None, "start_datetime": start, "end_datetime": end}
    assets = {}
    for key, product in products.items():
        asset = {k: v for k, v in product.items() if k != "path"}
        asset["href"] = results_url + str(product["path"])
        assets[key] = asset
    links = [
        {"rel": "derived_from", "href": s["href"], "type": GEOJSON, "title": str(s.get("id"))}
        for s in sources
        if s.get("href")
    ]
    links.append({"rel": "via", "href": job_url, "type": JSON, "title": "the job"})
    process = str(job["process_id"])
    centres = sorted(
        {str(c) for s in sources if (c := (s.get("properties") or {}).get("earthlab:centre"))}
    )
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [PROCESSING, FILE],
        "id": str(job["id"]),
        "collection": COLLECTION,
        "geometry": _polygon(bbox) if bbox else None,
        **({"bbox": bbox} if bbox else {}),
        "properties": {
            "title": f"{title or process} ({job['id'][:8]})",
            **when,
            "created": finished,
            "processing:facility": "Earth Analytics Lab (Data Terra)"
            + (
                f", Dask Gateway of {computed_on['centre']}"
                if computed_on and computed_on.get("kind") == "gateway"
                else ""
            ),
            **({"earthlab:computed_on": dict(computed_on)} if computed_on else {}),
            "processing:software": {"earthlab": _version()},
            "processing:datetime": finished,
            "processing:lineage": f"Process {process} of the lab's processing service, job "
            f"{job['id']}, run for {job['user']} on {len(sources)} input item(s)"
            + (f" of {', '.join(centres)}" if centres else ""),
            "processing:expression": {
                "format": EXPRESSION_FORMAT,
                "expression": {"process": process, "inputs": inputs},
            },
            "earthlab:process": process,
            "earthlab:job": str(job["id"]),
        },
        "links": links,
        "assets": assets,
    }


# --- the STAC API of the results ---------------------------------------------------------------


def _collection(items: Sequence[Mapping[str, Any]], link: Any, user: str) -> dict[str, Any]:
    boxes = [i["bbox"] for i in items if i.get("bbox")]
    stamps = sorted(
        str(v)
        for i in items
        for k in ("datetime", "start_datetime", "end_datetime")
        if (v := i["properties"].get(k))
    )
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": COLLECTION,
        "title": f"Processing results of {user}",
        "description": "What your jobs of the lab's processing service produced: one item per "
        "successful job, with the request that rebuilds it (processing:expression). Yours only.",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [_union(boxes) or [-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[stamps[0], stamps[-1]] if stamps else [None, None]]},
        },
        "links": [
            link(f"collections/{COLLECTION}", "self"),
            link("", "root"),
            link(f"collections/{COLLECTION}/items", "items", GEOJSON),
        ],
    }


class _StacHandler(tornado.web.RequestHandler):
    """Base of the STAC routes: the caller from their hub token, JSON answers and errors."""

    def initialize(self, service: Any) -> None:
        self.service = service
        self.user = ""

    async def prepare(self) -> None:
        self.user = await self.service.caller(self)

    def link(self, path: str, rel: str, kind: str = JSON) -> dict[str, str]:
        return {"href": f"{self.service.config.public_url}stac/{path}", "rel": rel, "type": kind}

    def reply(self, document: Any, kind: str = JSON) -> None:
        self.set_header("Content-Type", kind)
        self.finish(json.dumps(document))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        detail = getattr(exc, "detail", None) or getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", JSON)
        self.finish(json.dumps({"code": str(status_code), "description": str(detail)}))

    def items(self) -> list[dict[str, Any]]:
        return list(self.service.store.get_items(self.user))

    def page(self, query: SearchQuery, path: str, arguments: dict[str, Any]) -> None:
        """The caller's Items matching ``query``, a page at a time (``limit``, ``token``)."""
        import pystac

        try:
            offset = int(arguments.get("token") or 0)
        except ValueError:
            raise tornado.web.HTTPError(400, "token must be the one a next link gives") from None
        limit = query.limit or 100
        matched = [
            i for i in self.items() if query.matches(pystac.Item.from_dict(i, preserve_dict=True))
        ]
        features = matched[offset : offset + limit]
        links: list[dict[str, Any]] = [self.link(path, "self", GEOJSON), self.link("", "root")]
        if offset + limit < len(matched):
            following = {**arguments, "token": str(offset + limit)}
            if self.request.method == "POST":
                links.append(
                    {**self.link(path, "next", GEOJSON), "method": "POST", "body": following}
                )
            else:
                from urllib.parse import urlencode

                flat = {
                    k: ",".join(map(str, v)) if isinstance(v, list) else v
                    for k, v in following.items()
                }
                links.append(self.link(f"{path}?{urlencode(flat)}", "next", GEOJSON))
        self.reply(
            {
                "type": "FeatureCollection",
                "features": features,
                "numberMatched": len(matched),
                "numberReturned": len(features),
                "links": links,
            },
            GEOJSON,
        )

    def query(self, arguments: Mapping[str, Any]) -> SearchQuery:
        """The search arguments (query string or POST body) as a query, or a 400."""

        def listed(value: Any) -> Any:
            return value.split(",") if isinstance(value, str) else value

        try:
            bbox = listed(arguments.get("bbox"))
            return SearchQuery.build(
                collections=listed(arguments.get("collections")),
                ids=listed(arguments.get("ids")),
                bbox=[float(v) for v in bbox] if bbox else None,
                datetime=arguments.get("datetime"),
                intersects=arguments.get("intersects"),
                limit=int(arguments["limit"]) if arguments.get("limit") else None,
            )
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None

    def get_arguments_dict(self) -> dict[str, Any]:
        return {k: self.get_query_argument(k) for k in self.request.query_arguments}


class LandingHandler(_StacHandler):
    """``GET stac/``."""

    def get(self) -> None:
        self.reply(
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "earthlab-results",
                "title": "Your processing results",
                "description": "The results of your jobs, as STAC Items.",
                "conformsTo": _CONFORMANCE,
                "links": [
                    self.link("", "self"),
                    self.link("", "root"),
                    self.link("conformance", "conformance"),
                    self.link("collections", "data"),
                    self.link(f"collections/{COLLECTION}", "child"),
                    {**self.link("search", "search", GEOJSON), "method": "GET"},
                    {**self.link("search", "search", GEOJSON), "method": "POST"},
                ],
            }
        )


class ConformanceHandler(_StacHandler):
    """``GET stac/conformance``."""

    def get(self) -> None:
        self.reply({"conformsTo": _CONFORMANCE})


class CollectionsHandler(_StacHandler):
    """``GET stac/collections`` and ``stac/collections/results``."""

    def get(self, collection: str | None = None) -> None:
        document = _collection(self.items(), self.link, self.user)
        if collection is None:
            self.reply({"collections": [document], "links": [self.link("collections", "self")]})
        elif collection == COLLECTION:
            self.reply(document)
        else:
            raise tornado.web.HTTPError(
                404, f"no collection {collection!r}: yours is {COLLECTION!r}"
            )


class ItemsHandler(_StacHandler):
    """``GET stac/collections/results/items[/{id}]``."""

    def get(self, collection: str, item_id: str | None = None) -> None:
        if collection != COLLECTION:
            raise tornado.web.HTTPError(
                404, f"no collection {collection!r}: yours is {COLLECTION!r}"
            )
        if item_id is not None:
            item = self.service.store.get_item(item_id, self.user)
            if item is None:
                raise tornado.web.HTTPError(404, f"you have no result item {item_id!r}")
            self.reply(item, GEOJSON)
            return
        arguments = self.get_arguments_dict()
        query = self.query({**arguments, "collections": COLLECTION})
        self.page(query, f"collections/{COLLECTION}/items", arguments)


class SearchHandler(_StacHandler):
    """``GET|POST stac/search``."""

    def get(self) -> None:
        arguments = self.get_arguments_dict()
        self.page(self.query(arguments), "search", arguments)

    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError:
            raise tornado.web.HTTPError(400, "the body must be a JSON search request") from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "the body must be a JSON object")
        self.page(self.query(body), "search", body)


def stac_routes(prefix: str, args: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The STAC API's routes under ``<prefix>/stac/``."""
    p = f"{prefix}/stac"
    return [
        (rf"{p}/?", LandingHandler, args),
        (rf"{p}/conformance/?", ConformanceHandler, args),
        (rf"{p}/collections/?", CollectionsHandler, args),
        (rf"{p}/collections/([^/]+)/?", CollectionsHandler, args),
        (rf"{p}/collections/([^/]+)/items/?", ItemsHandler, args),
        (rf"{p}/collections/([^/]+)/items/([^/]+)/?", ItemsHandler, args),
        (rf"{p}/search/?", SearchHandler, args),
    ]
