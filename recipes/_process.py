"""``water-quality-crossing``: the flagship crossing as a process of the lab's service.

Contributed to the processing service (``lab_server.processes``) through the entry point
``earthlab.processes``: ``WATER_QUALITY_CROSSING`` has the OGC process description (pygeoapi's
``PROCESS_METADATA`` format) and ``execute(data, context)``, where ``context.work_dir`` is the
job's owner's results directory and ``context.progress(fraction, message)`` reports the steps.
"""

from __future__ import annotations

import json
import re
from typing import Any

from recipes.crossing import water_quality_crossing

__all__ = ["WATER_QUALITY_CROSSING", "WaterQualityCrossingProcess"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_STEP = re.compile(r"^(\d)/(\d) ")
_METRICS = {
    "type": "object",
    "properties": {
        "n": {"type": "integer", "minimum": 0},
        "log_bias": {"type": ["number", "null"]},
        "mdsa": {"type": ["number", "null"], "x-ogc-unit": "%"},
        "r2": {"type": ["number", "null"]},
    },
}


def _metadata() -> dict[str, Any]:
    return {
        "id": "water-quality-crossing",
        "title": "Water quality: Sentinel-2 against in-situ stations",
        "description": "Searches every centre for Sentinel-2 L2A scenes and in-situ stations, "
        "masks clouds, computes turbidity (Nechad), chlorophyll-a (NDCI) and SPM, extracts "
        "matchups (Bailey & Werdell 2006: a box of pixels around each station, a time window), "
        "computes the validation statistics and recalibrates the algorithms regionally, and "
        "writes the cube (Zarr), maps (COG), matchups (Parquet) and an HTML report in the "
        "requesting user's results directory (the same recipe as `earthlab demo`).",
        "version": "1.0.0",
        "keywords": ["water quality", "matchups", "Sentinel-2", "in-situ", "validation"],
        "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
        "outputTransmission": ["value"],
        "inputs": {
            "bbox": {
                "title": "Bounding box",
                "description": "West, south, east, north in WGS84 degrees (default: the whole "
                "extent of the collections).",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 4,
                    "maxItems": 4,
                    "x-ogc-unit": "deg",
                },
            },
            "datetime": {
                "title": "Dates",
                "description": "RFC 3339 instant or interval (start/end, '..' open).",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {"type": "string"},
            },
            "max_dt": {
                "title": "Matchup time window",
                "description": "Largest time between a scene and an in-situ sample (pandas "
                "duration: '3h', '1D').",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {"type": "string", "pattern": r"^\d+(\.\d+)?\s*(s|min|h|D)$"},
            },
            "window": {
                "title": "Matchup box",
                "description": "Side of the box of pixels around a station (odd).",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {"type": "integer", "minimum": 1, "maximum": 15, "x-ogc-unit": "px"},
            },
            "name": {
                "title": "Output folder",
                "description": "Folder of the outputs in your results directory (default: "
                "crossing).",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {"type": "string", "pattern": _NAME},
            },
        },
        "outputs": {
            "validation": {
                "title": "Validation statistics",
                "description": "Per parameter: n, log bias, MdSA (%), r2; the reasons of "
                "rejected candidates; the recalibrated coefficients beside the published ones.",
                "schema": {
                    "type": "object",
                    "properties": {"turbidity": _METRICS, "chlorophyll_a": _METRICS},
                },
            },
            "files": {
                "title": "Written files",
                "description": "Path of each output by role (cube, matchups, validation, "
                "report, maps).",
                "schema": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "federation": {
                "title": "Centres",
                "description": "What each centre answered to the satellite search.",
                "schema": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "example": {"inputs": {"max_dt": "3h", "window": 5}},
    }


class WaterQualityCrossingProcess:
    """The ``water-quality-crossing`` process (see the module's docstring)."""

    @property
    def metadata(self) -> dict[str, Any]:
        """The OGC process description."""
        return _metadata()

    def execute(self, data: dict[str, Any], context: Any) -> dict[str, Any]:
        """Run the crossing into ``context.work_dir / name``; the figures as outputs."""
        name = str(data.get("name") or "crossing")
        if not re.match(_NAME, name) or ".." in name:
            raise ValueError(f"name must be a folder name, got {name!r}")

        def step(line: str) -> None:
            found = _STEP.match(line)
            if found:  # "3/6 writing the cube": 2 of 6 steps done
                context.progress((int(found.group(1)) - 1) / int(found.group(2)), line[4:])

        bbox = data.get("bbox")
        result = water_quality_crossing(
            context.work_dir / name,
            bbox=tuple(bbox) if bbox else None,
            datetime=data.get("datetime"),
            max_dt=str(data.get("max_dt") or "3h"),
            window=int(data.get("window") or 5),
            progress=step,
        )
        validation = json.loads(result.files["validation"].read_text(encoding="utf-8"))
        return {
            "validation": validation,
            "files": {role: str(path) for role, path in result.files.items()},
            "federation": {k: str(v) for k, v in result.federation.items()},
        }


WATER_QUALITY_CROSSING = WaterQualityCrossingProcess()
