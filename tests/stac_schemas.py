"""Offline JSON-schema validation of STAC documents against tests/data/stac-schemas/.

The folder holds copies of the published schemas (see its ``SOURCES.md``), laid out as their
URLs: ``https://<host>/<path>`` is ``tests/data/stac-schemas/<host>/<path>``. :func:`validate`
checks a STAC item, collection or catalogue against the core schema of the version it declares
and the schema of every extension it lists, with a ``referencing`` registry that resolves every
``$ref`` from those files; a schema that is not stored raises :class:`SchemaNotStoredError`
(never a download). :func:`local_schema` maps a URL to its stored file, for the offline
wrapper of stac-api-validator (``tests/stac_api_validator_offline.py``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
    FormatChecker,
)
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable, Unretrievable

SCHEMAS = Path(__file__).resolve().parent / "data" / "stac-schemas"
"""The stored schemas, one folder per host."""

CORE = {
    "Feature": "item-spec/json-schema/item.json",
    "Collection": "collection-spec/json-schema/collection.json",
    "Catalog": "catalog-spec/json-schema/catalog.json",
}
"""Core schema of each STAC object type, relative to ``https://schemas.stacspec.org/v<version>/``."""


MESSAGE_LIMIT = 300
"""Longest message kept (jsonschema's quote the whole offending value)."""


class SchemaNotStoredError(LookupError):
    """A schema (or a ``$ref`` of one) is not in tests/data/stac-schemas: no download here."""


@dataclass(frozen=True)
class Violation:
    """One schema error: where in the document, which schema, and what."""

    path: str
    """JSON path of the offending value in the document (``$.assets.B04.raster:bands[0]``)."""
    schema: str
    """URL of the schema that rejected it."""
    message: str
    """jsonschema's message."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message} ({self.schema})"


def local_schema(url: str) -> Path | None:
    """The stored file of a schema URL (``http`` or ``https``, fragment ignored), if stored."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or ".." in parts.path:
        return None
    path = SCHEMAS / parts.hostname / parts.path.lstrip("/")
    return path if path.is_file() else None


META_SCHEMAS = {
    str(v.META_SCHEMA.get("$id", v.META_SCHEMA.get("id"))).rstrip("#"): v.META_SCHEMA
    for v in (
        Draft4Validator,
        Draft6Validator,
        Draft7Validator,
        Draft201909Validator,
        Draft202012Validator,
    )
}
"""JSON Schema's own meta-schemas (``collection.json`` refers to draft-07's), as jsonschema ships them."""


def _retrieve(uri: str) -> Resource[Any]:
    if uri.rstrip("#") in META_SCHEMAS:
        return Resource.from_contents(META_SCHEMAS[uri.rstrip("#")])
    path = local_schema(uri)
    if path is None:
        raise SchemaNotStoredError(
            f"schema {uri} is not stored in tests/data/stac-schemas/ (add it, with its row in "
            "SOURCES.md): the tests never download schemas"
        )
    return Resource.from_contents(json.loads(path.read_text(encoding="utf-8")))


@functools.cache
def registry() -> Registry[Any]:
    """Registry resolving schema URLs to the stored files only."""
    return Registry(retrieve=_retrieve)  # type: ignore[call-arg]


def schema_urls(document: Mapping[str, Any]) -> list[str]:
    """The schemas a STAC document must satisfy: its core schema, then its extensions'."""
    kind = document.get("type")
    version = document.get("stac_version")
    if kind not in CORE or not isinstance(version, str):
        raise ValueError(f"not a STAC item, collection or catalogue: type={kind!r}")
    core = f"https://schemas.stacspec.org/v{version}/{CORE[kind]}"
    return [core, *document.get("stac_extensions", [])]


def _json_path(error_path: Iterator[Any]) -> str:
    out = "$"
    for part in error_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate(document: Mapping[str, Any]) -> list[Violation]:
    """Every schema violation of ``document`` (empty when it is valid).

    Raises
    ------
    SchemaNotStoredError
        If a schema it needs is not stored.
    """
    violations = []
    for url in schema_urls(document):
        try:
            schema = registry().get_or_retrieve(url).value.contents
        except (NoSuchResource, Unretrievable) as exc:  # _retrieve's error, wrapped
            raise SchemaNotStoredError(str(exc.__cause__ or exc)) from exc
        cls = validator_for(schema)
        validator = cls(schema, registry=registry(), format_checker=FormatChecker())
        try:
            errors = list(validator.iter_errors(document))
        except Unresolvable as exc:  # a $ref inside the schema that is not stored
            raise SchemaNotStoredError(f"{url}: {exc}") from exc
        violations += [_violation(error, url) for error in errors]
    return violations


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    if not error.context:
        yield error
    for sub in error.context:
        yield from _leaves(sub)


def _violation(error: ValidationError, url: str) -> Violation:
    """The error, down to its deepest sub-error (``oneOf``, ``anyOf`` give one error at the top)."""
    precise = max(_leaves(error), key=lambda e: len(e.absolute_path))
    message = precise.message
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 3] + "..."
    return Violation(_json_path(iter(precise.absolute_path)), url, message)
