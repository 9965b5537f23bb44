"""The OpenAPI 3.0 definition of the processing service (requirement class ``oas30``)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_EXCEPTION = {"$ref": "#/components/responses/Exception"}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _any(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {}}}}


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    secured: dict[str, Any] = {} if op_id in _PUBLIC else {"security": [{"hubToken": []}]}
    return {
        "operationId": op_id,
        "summary": summary,
        "responses": {**responses, "default": _EXCEPTION},
        **secured,
        **extra,
    }


_PUBLIC = {"getLandingPage", "getConformanceClasses", "getAPI"}
_ID = {"in": "path", "required": True, "schema": {"type": "string"}}


def openapi_document(public_url: str) -> dict[str, Any]:
    """The definition, its server being the service's public URL."""
    link = {
        "type": "object",
        "required": ["href"],
        "properties": {k: {"type": "string"} for k in ("href", "rel", "type", "title")},
    }
    status_info = {
        "type": "object",
        "required": ["jobID", "status", "type"],
        "properties": {
            "type": {"type": "string", "enum": ["process"]},
            "processID": {"type": "string"},
            "jobID": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["accepted", "running", "successful", "failed", "dismissed"],
            },
            "message": {"type": "string"},
            "created": {"type": "string", "format": "date-time"},
            "started": {"type": "string", "format": "date-time"},
            "finished": {"type": "string", "format": "date-time"},
            "updated": {"type": "string", "format": "date-time"},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "links": {"type": "array", "items": {"$ref": "#/components/schemas/link"}},
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Earth Analytics Lab processing (OGC API - Processes)",
            "version": "1.0.0",
            "description": "The lab's recipes as OGC API - Processes Part 1 (Core, OGC Process "
            "Description, JSON, Job list, Dismiss). Every path but /, /conformance and "
            "/openapi needs a JupyterHub token: Authorization: token <token>.",
        },
        "servers": [{"url": public_url.rstrip("/")}],
        "paths": {
            "/": {"get": _op("getLandingPage", "landing page", {"200": _any("links")})},
            "/conformance": {
                "get": _op("getConformanceClasses", "conformance", {"200": _any("conformsTo")})
            },
            "/openapi": {"get": _op("getAPI", "this definition", {"200": _any("OpenAPI")})},
            "/processes": {
                "get": _op("getProcesses", "process summaries", {"200": _any("processes")})
            },
            "/processes/{processID}": {
                "get": _op(
                    "getProcessDescription",
                    "process description",
                    {"200": _any("an OGC process description")},
                    parameters=[{"name": "processID", **_ID}],
                )
            },
            "/processes/{processID}/execution": {
                "post": _op(
                    "execute",
                    "execute (Prefer: respond-async for a job)",
                    {
                        "200": _any("results, by output id"),
                        "201": {
                            **_json("statusInfo", "job created (asynchronous)"),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                    },
                    parameters=[
                        {"name": "processID", **_ID},
                        {"name": "Prefer", "in": "header", "schema": {"type": "string"}},
                    ],
                    requestBody={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "inputs": {"type": "object"},
                                        "outputs": {"type": "object"},
                                        "response": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                )
            },
            "/jobs": {
                "get": _op(
                    "getJobs",
                    "your jobs, newest first",
                    {"200": _any("jobs")},
                    parameters=[
                        {"name": n, "in": "query", "schema": {"type": t}}
                        for n, t in (
                            ("limit", "integer"),
                            ("offset", "integer"),
                            ("status", "string"),
                            ("processID", "string"),
                        )
                    ],
                )
            },
            "/jobs/{jobId}": {
                "get": _op(
                    "getStatus",
                    "job status",
                    {"200": _json("statusInfo", "status")},
                    parameters=[{"name": "jobId", **_ID}],
                ),
                "delete": _op(
                    "dismiss",
                    "dismiss (stops a running job)",
                    {"200": _json("statusInfo", "dismissed")},
                    parameters=[{"name": "jobId", **_ID}],
                ),
            },
            "/jobs/{jobId}/results": {
                "get": _op(
                    "getResult",
                    "results of a successful job",
                    {"200": _any("results, by output id")},
                    parameters=[{"name": "jobId", **_ID}],
                )
            },
            "/subscriptions": {
                "get": _op("getSubscriptions", "your subscriptions", {"200": _any("them")}),
                "post": _op(
                    "subscribe",
                    "run a process now, then on a schedule ({every: s}) or on new items "
                    "({new_items: {collections, bbox, datetime}})",
                    {"201": _any("the subscription (Location: its URL)")},
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                ),
            },
            "/subscriptions/{subscriptionId}": {
                "get": _op(
                    "getSubscription",
                    "a subscription and its runs",
                    {"200": _any("it")},
                    parameters=[{"name": "subscriptionId", **_ID}],
                ),
                "delete": _op(
                    "unsubscribe",
                    "cancel it (runs already started go on)",
                    {"200": _any("it, cancelled")},
                    parameters=[{"name": "subscriptionId", **_ID}],
                ),
            },
            "/stac/search": {
                "get": _op(
                    "searchResults",
                    "your results as STAC Items (STAC API item-search: collections, ids, "
                    "bbox, datetime, limit)",
                    {"200": _any("a FeatureCollection")},
                )
            },
        },
        "components": {
            "securitySchemes": {
                "hubToken": {"type": "apiKey", "in": "header", "name": "Authorization"}
            },
            "schemas": {
                "link": link,
                "statusInfo": status_info,
                "exception": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                },
            },
            "responses": {
                "Exception": {
                    "description": "an error",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/exception"}
                        }
                    },
                }
            },
        },
    }
