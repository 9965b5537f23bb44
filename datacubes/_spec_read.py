"""Reading cube specs: YAML files (or shipped spec names) into validated :class:`CubeSpec`.

Every error names the file and the field, with the dotted path of the field in the document
(``grid.resolution: must be a positive number``); unknown fields are errors, not ignored.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from datacubes._spec import (
    SPEC_VERSION,
    Chunks,
    CompositeSpec,
    CubeSpec,
    EncodingSpec,
    GridSpec,
    InlineCatalog,
    SourceSpec,
    SpecError,
    TargetSpec,
    _is_number,
)

# --- reading --------------------------------------------------------------------------------


def shipped_specs() -> dict[str, Path]:
    """Specs shipped with the package, by name (``datacubes/specs/*.yaml``).

    Returns
    -------
    dict of str to pathlib.Path
        File of each shipped spec.
    """
    folder = resources.files("datacubes") / "specs"
    return {
        Path(str(entry)).stem: Path(str(entry))
        for entry in folder.iterdir()
        if str(entry).endswith(".yaml")
    }


def read_spec(spec: str | os.PathLike[str] | Mapping[str, Any] | CubeSpec) -> CubeSpec:
    """Read and validate a cube spec.

    Parameters
    ----------
    spec : str, os.PathLike, mapping or CubeSpec
        A YAML file, the name of a shipped spec (``thau-lagoon-sample``), the parsed document
        as a mapping, or a spec (returned as is).

    Returns
    -------
    CubeSpec
        The frozen, validated spec.

    Raises
    ------
    SpecError
        The file is missing or not YAML, or a field is invalid (the message names it).
    """
    if isinstance(spec, CubeSpec):
        return spec
    where = "cube spec"
    path = None
    if isinstance(spec, Mapping):
        document: Any = dict(spec)
    else:
        path = _spec_path(spec)
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
            _reject_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), "")
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"{where}: not valid YAML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SpecError(f"{where}: cannot be read ({reason}): give a UTF-8 YAML file") from None
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
    try:
        return _parse(document, str(path) if path else None)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def _reject_duplicate_keys(node: Any, where: str) -> None:
    """Raise on a key given twice in one mapping (YAML would silently keep the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError(
                    f"{where or 'the spec'}: a key must be text "
                    f"(line {key_node.start_mark.line + 1})"
                )
            key = str(key_node.value)
            child = f"{where}.{key}" if where else key
            if key in seen:
                raise SpecError(
                    f"{child}: the key {key!r} is given twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); keep one"
                )
            seen[key] = key_node.start_mark.line
            _reject_duplicate_keys(value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _reject_duplicate_keys(item, f"{where}[{index}]")


def _spec_path(spec: str | os.PathLike[str]) -> Path:
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    shipped = shipped_specs()
    if isinstance(spec, str) and spec in shipped:
        return shipped[spec]
    raise SpecError(
        f"cube spec {spec!s} is neither a file nor a shipped spec "
        f"(shipped: {', '.join(sorted(shipped)) or 'none'})"
    )


def _parse(document: Any, path: str | None) -> CubeSpec:
    doc = _mapping(document, "", CubeSpec, extra=("version",))
    version = doc.pop("version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise SpecError(f"version: {version!r} is not supported (use {SPEC_VERSION})")
    for key in ("name", "licence", "source", "bands", "grid"):
        if key not in doc:
            raise SpecError(f"{key}: is required")
    doc["source"] = _source(doc["source"])
    doc["grid"] = _build(
        GridSpec, _mapping(doc["grid"], "grid", GridSpec), "grid", tuples=("bounds", "bbox")
    )
    doc["bands"] = _tuple(doc["bands"], "bands")
    if "target" in doc:
        doc["target"] = _target(doc["target"])
    if doc.get("composite") is not None:
        doc["composite"] = _build(
            CompositeSpec, _mapping(doc["composite"], "composite", CompositeSpec), "composite"
        )
    if doc.get("encoding") is not None:
        doc["encoding"] = _build(
            EncodingSpec, _mapping(doc["encoding"], "encoding", EncodingSpec), "encoding"
        )
    else:
        doc.pop("encoding", None)
    if isinstance(doc.get("cloud_mask"), list):
        doc["cloud_mask"] = tuple(doc["cloud_mask"])
    if "keywords" in doc:
        doc["keywords"] = _tuple(doc["keywords"], "keywords")
    for key in ("name", "title", "description", "licence"):
        if key in doc and doc[key] is not None and not isinstance(doc[key], str):
            raise SpecError(f"{key}: must be text, got {doc[key]!r}")
    return _build(CubeSpec, {**doc, "path": path}, "")


def _source(value: Any) -> SourceSpec:
    doc = _mapping(value, "source", SourceSpec)
    if "collections" not in doc:
        raise SpecError("source.collections: is required")
    doc["collections"] = _tuple(doc["collections"], "source.collections")
    if doc.get("centres") is not None:
        doc["centres"] = _tuple(doc["centres"], "source.centres")
    if doc.get("catalog") is not None:
        doc["catalog"] = _build(
            InlineCatalog,
            _mapping(doc["catalog"], "source.catalog", InlineCatalog),
            "source.catalog",
        )
    if isinstance(doc.get("datetime"), dt.date):
        doc["datetime"] = doc["datetime"].isoformat()
    return _build(SourceSpec, doc, "source", tuples=("bbox",))


def _target(value: Any) -> TargetSpec:
    doc = _mapping(value, "target", TargetSpec)
    for key in ("chunks", "shards"):
        if doc.get(key) is not None:
            sizes = _mapping(doc[key], f"target.{key}", Chunks)
            missing = [d for d in ("time", "y", "x") if d not in sizes]
            if missing:
                raise SpecError(f"target.{key}: give sizes for time, y and x (missing {missing})")
            doc[key] = _build(Chunks, sizes, f"target.{key}")
    return _build(TargetSpec, doc, "target")


def _mapping(value: Any, where: str, cls: type, extra: Sequence[str] = ()) -> dict[str, Any]:
    label = where or "the spec"
    if not isinstance(value, Mapping):
        raise SpecError(f"{label}: must be a mapping, got {type(value).__name__}")
    known = {f.name for f in fields(cls) if f.name != "path"} | set(extra)
    unknown = sorted(set(value) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise SpecError(
            f"{prefix}{unknown[0]}: unknown field; known fields: {', '.join(sorted(known))}"
        )
    return dict(value)


def _tuple(value: Any, where: str) -> tuple[Any, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise SpecError(f"{where}: must be a list, got {value!r}")
    return tuple(value)


def _build(cls: type, doc: dict[str, Any], where: str, tuples: Sequence[str] = ()) -> Any:
    for key in tuples:
        if doc.get(key) is not None:
            values = _tuple(doc[key], f"{where}.{key}")
            if len(values) != 4 or not all(_is_number(v) and math.isfinite(v) for v in values):
                raise SpecError(f"{where}.{key}: must be four finite numbers, got {doc[key]!r}")
            doc[key] = tuple(float(v) for v in values)
    try:
        return cls(**doc)
    except SpecError as exc:
        prefix = f"{where}." if where else ""
        raise SpecError(f"{prefix}{exc}") from None
    except TypeError as exc:
        raise SpecError(f"{where or 'spec'}: {exc}") from None
