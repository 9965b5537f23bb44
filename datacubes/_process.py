"""``cube-build``: the incremental, resumable cube build as a process of the lab's service.

Contributed to the processing service (``lab_server.processes``) through the entry point
``earthlab.processes`` (the server side does not import this package): ``CUBE_BUILD`` has the
OGC process description (pygeoapi's ``PROCESS_METADATA`` format) and
``execute(data, context)``, where ``context`` gives the job's owner's results directory
(``context.work_dir``) and ``context.progress(fraction, message)``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import fields
from typing import Any

from datacubes._build import IncompleteBuildError, build
from datacubes._spec import CubeSpec
from datacubes._spec_read import read_spec, shipped_specs
from datacubes._steps import search_source

__all__ = ["CUBE_BUILD", "CubeBuildProcess"]

_TARGET = r"^[A-Za-z0-9][A-Za-z0-9._-]*\.zarr$"


def _metadata() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    return {
        "id": "cube-build",
        "title": "Build an analysis-ready cube",
        "description": "Builds, resumes or extends the Zarr cube a spec describes (the same "
        "build as `earthlab cube build`): finished regions of an earlier run are kept, new "
        "time steps appended, nothing rewritten when nothing changed. The cube is written in "
        "the requesting user's results directory of the service.",
        "version": "1.0.0",
        "keywords": ["datacube", "zarr", "analysis-ready"],
        "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
        "outputTransmission": ["value"],
        "inputs": {
            "spec": {
                "title": "Cube spec",
                "description": "The name of a spec shipped with the lab, or a spec inline "
                "(the YAML document as JSON: version, name, source, bands, grid, target; see "
                "docs/datacubes.md). Its target.url is replaced by 'target'.",
                "minOccurs": 1,
                "maxOccurs": 1,
                "schema": {
                    "oneOf": [
                        {"type": "string", "enum": sorted(shipped_specs())},
                        {
                            "type": "object",
                            "required": ["name", "source", "bands", "grid"],
                            "properties": {
                                "name": {"type": "string"},
                                "grid": {
                                    "type": "object",
                                    "properties": {
                                        "resolution": {"type": "number", "x-ogc-unit": "m"}
                                    },
                                },
                            },
                        },
                    ]
                },
            },
            "target": {
                "title": "Target store",
                "description": "Name of the Zarr store in your results directory (default: "
                "<spec name>.zarr). Building again into the same target resumes or extends.",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {"type": "string", "pattern": _TARGET},
            },
            "cog": {
                "title": "COG export",
                "description": "Also write one COG per band and time step.",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {"type": "boolean", "default": False},
            },
            "overwrite": {
                "title": "Overwrite",
                "description": "Replace a target built from another spec.",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {"type": "boolean", "default": False},
            },
            "workers": {
                "title": "Workers",
                "description": "Dask workers of the job's cluster, on the gateway of the "
                "centre holding the spec's data (within your caps there, as for your "
                "notebooks); the workers compute the regions, the service writes them.",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1},
            },
        },
        "outputs": {
            "cube": {
                "title": "The build's report",
                "description": "Where the cube is (href: the Zarr store through the "
                "service, readable by you only with your hub token) and what this run did.",
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "url": {"type": "string"},
                        "href": {"type": "string", "format": "uri"},
                        "steps": count,
                        "steps_added": count,
                        "steps_refilled": count,
                        "regions_total": count,
                        "regions_written": count,
                        "regions_skipped": count,
                        "complete": {"type": "boolean"},
                        "bytes_written": {**count, "x-ogc-unit": "By"},
                        "seconds": {"type": "number", "minimum": 0, "x-ogc-unit": "s"},
                    },
                },
            },
            "summary": {
                "title": "Summary",
                "description": "The build's report as text.",
                "schema": {"type": "string"},
            },
        },
        "example": {"inputs": {"spec": "thau-lagoon-sample", "target": "thau.zarr"}},
    }


def _near(spec: CubeSpec) -> list[Any]:
    """The items the build's source finds (where its cluster goes).

    Raises what the build itself would: a centre refusing (restricted, with how to request
    access) or not answering, or no item.
    """
    if spec.source.catalog is not None:  # outside the lab's centres: no gateway of the lab
        return []
    return list(search_source(spec, None, None).items)


class CubeBuildProcess:
    """The ``cube-build`` process (see the module's docstring)."""

    @property
    def metadata(self) -> dict[str, Any]:
        """The OGC process description."""
        return _metadata()

    def execute(self, data: dict[str, Any], context: Any) -> dict[str, Any]:
        """Build into ``context.work_dir / target``; the report as outputs."""
        spec = read_spec(data["spec"] if isinstance(data["spec"], dict) else str(data["spec"]))
        target = data.get("target") or f"{spec.name}.zarr"
        if not re.match(_TARGET, target) or ".." in target:
            raise ValueError(f"target must be a store name ending in .zarr, got {target!r}")
        context.progress(0.0, f"building {spec.name} into {target}")
        # on the lab's object storage the cube is written there directly (and resumed there)
        store, storage_options = (
            context.store(target)
            if hasattr(context, "store")
            else (str(context.work_dir / target), {})
        )
        near = getattr(context, "cluster", None)
        items = _near(spec) if near else []
        try:
            with (
                near(items, workers=int(data.get("workers") or 1))
                if near and items
                else contextlib.nullcontext()
            ) as client:
                report = build(
                    spec,
                    target=store,
                    cog=bool(data.get("cog", False)),
                    overwrite=bool(data.get("overwrite", False)),
                    storage_options=storage_options or None,
                    # on the owner's gateway cluster: it computes, the service writes (the
                    # workers never get the store's credentials)
                    client=client,
                    write_from_client=client is not None,
                )
        except IncompleteBuildError as exc:
            raise IncompleteBuildError(exc.report.summary(), exc.report) from exc
        cube = {f.name: getattr(report, f.name) for f in fields(report) if f.name != "sources"}
        cube.update(notes=list(report.notes), failed=dict(report.failed))
        if getattr(context, "results_url", ""):  # the store through the service, owner only
            cube["href"] = context.results_url + target
        if hasattr(context, "add_product"):  # the job's STAC Item
            context.add_sources(report.sources)
            context.add_product(
                "cube",
                store,
                "application/vnd+zarr",
                spec.title or spec.name,
                **({"description": spec.description} if spec.description else {}),
            )
        return {"cube": cube, "summary": report.summary()}


CUBE_BUILD = CubeBuildProcess()
