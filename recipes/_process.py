"""``water-quality-crossing``: the flagship crossing as a process of the lab's service.

Contributed to the processing service (``lab_server.processes``) through the entry point
``earthlab.processes``: ``WATER_QUALITY_CROSSING`` has the OGC process description (pygeoapi's
``PROCESS_METADATA`` format) and ``execute(data, context)``, where ``context.work_dir`` is the
job's owner's results directory and ``context.progress(fraction, message)`` reports the steps.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from recipes.crossing import SATELLITE_COLLECTION, water_quality_crossing
from recipes.maps import COMPOSITES, MAP_PRODUCTS, find_scenes, water_quality_maps

__all__ = [
    "WATER_QUALITY_CROSSING",
    "WATER_QUALITY_MAPS",
    "WaterQualityCrossingProcess",
    "WaterQualityMapsProcess",
]

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


_SEARCH_INPUTS: dict[str, Any] = {
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
}


def _name_input(default: str) -> dict[str, Any]:
    return {
        "title": "Output folder",
        "description": f"Folder of the outputs in your results directory (default: {default}).",
        "minOccurs": 0,
        "maxOccurs": 1,
        "schema": {"type": "string", "pattern": _NAME},
    }


def _folder(data: dict[str, Any], default: str) -> str:
    name = str(data.get("name") or default)
    if not re.match(_NAME, name) or ".." in name:
        raise ValueError(f"name must be a folder name, got {name!r}")
    return name


_COLLECTION_INPUT: dict[str, Any] = {
    "title": "Sentinel-2 L2A collection",
    "description": "Which processing of the scenes: 'sentinel-2-l2a' (Sen2Cor, scene "
    "classification) or THEIA's 'sentinel2-l2a-theia' (MAJA, bit masks); clouds and water "
    "come from each product's own masks.",
    "minOccurs": 0,
    "maxOccurs": 1,
    "schema": {"type": "string", "default": SATELLITE_COLLECTION, "minLength": 1},
}


def _collection(data: dict[str, Any]) -> str:
    return str(data.get("collection") or SATELLITE_COLLECTION)


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
            **_SEARCH_INPUTS,
            "collection": _COLLECTION_INPUT,
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
            "name": _name_input("crossing"),
            "workers": _workers_input("computes the cube; the service writes it"),
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


def _near(context: Any, scenes: Any, data: dict[str, Any]) -> Any:
    """The job's cluster next to the scenes (``workers`` of them), or nothing (local threads)."""
    near = getattr(context, "cluster", None)
    if near is None:
        return contextlib.nullcontext()
    return near(list(scenes), workers=int(data.get("workers") or 1))


def _workers_input(what: str) -> dict[str, Any]:
    return {
        "title": "Workers",
        "description": "Dask workers of the job's cluster, on the gateway of the centre "
        f"holding the scenes (within your caps there, as for your notebooks); it {what}.",
        "minOccurs": 0,
        "maxOccurs": 1,
        "schema": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1},
    }


_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
_MEDIA = {
    ".tif": (_COG, "data"),
    ".zarr": ("application/vnd+zarr", "data"),
    ".parquet": ("application/vnd.apache.parquet", "data"),
    ".json": ("application/json", "metadata"),
    ".html": ("text/html", "overview"),
    ".png": ("image/png", "thumbnail"),
}


def _steps(context: Any) -> Any:
    """A recipe's ``progress`` reporting its numbered steps as the job's progress."""

    def step(line: str) -> None:
        found = _STEP.match(line)
        if found:  # "3/6 writing the cube": 2 of 6 steps done
            context.progress((int(found.group(1)) - 1) / int(found.group(2)), line[4:])

    return step


class WaterQualityCrossingProcess:
    """The ``water-quality-crossing`` process (see the module's docstring)."""

    @property
    def metadata(self) -> dict[str, Any]:
        """The OGC process description."""
        return _metadata()

    def execute(self, data: dict[str, Any], context: Any) -> dict[str, Any]:
        """Run the crossing into ``context.work_dir / name``; the figures as outputs."""
        name = _folder(data, "crossing")

        bbox = tuple(data["bbox"]) if data.get("bbox") else None
        on_cluster = hasattr(context, "cluster")
        scenes: Any = (
            find_scenes(bbox=bbox, datetime=data.get("datetime"), collection=_collection(data))
            if on_cluster
            else []
        )
        # on the owner's cluster next to the scenes: it computes the cube, this job writes it
        with _near(context, scenes, data):
            result = water_quality_crossing(
                context.work_dir / name,
                bbox=bbox,
                datetime=data.get("datetime"),
                collection=_collection(data),
                max_dt=str(data.get("max_dt") or "3h"),
                window=int(data.get("window") or 5),
                progress=_steps(context),
            )
        validation = json.loads(result.files["validation"].read_text(encoding="utf-8"))
        if hasattr(context, "add_product"):  # the job's STAC Item
            for role, path in result.files.items():
                media, kind = _MEDIA.get(path.suffix, ("application/octet-stream", "data"))
                context.add_product(role, path, media, roles=(kind,))
            context.add_sources(result.items)
        return {
            "validation": validation,
            "files": {role: str(path) for role, path in result.files.items()},
            "federation": {k: str(v) for k, v in result.federation.items()},
        }


WATER_QUALITY_CROSSING = WaterQualityCrossingProcess()


def _maps_metadata() -> dict[str, Any]:
    return {
        "id": "water-quality-maps",
        "title": "Water quality maps from Sentinel-2",
        "description": "Searches every centre for Sentinel-2 L2A scenes, masks clouds, "
        "computes turbidity (Nechad 2009, FNU), chlorophyll-a (NDCI, µg/L) and suspended "
        "particulate matter (Nechad 2010, g/m³) on water pixels, composes the dates (median, "
        "mean, max or the latest clear date) and writes one Cloud-Optimised GeoTIFF per "
        "product in the requesting user's results directory.",
        "version": "1.0.0",
        "keywords": ["water quality", "maps", "Sentinel-2", "COG", "composite"],
        "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
        "outputTransmission": ["value"],
        "inputs": {
            **_SEARCH_INPUTS,
            "collection": _COLLECTION_INPUT,
            "products": {
                "title": "Products",
                "description": "Products to map (default: all three).",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(MAP_PRODUCTS)},
                    "minItems": 1,
                    "uniqueItems": True,
                },
            },
            "composite": {
                "title": "Composite",
                "description": "Per pixel over the clear-water dates: median, mean, max, or "
                "the latest date whose water is at least 90 % clear.",
                "minOccurs": 0,
                "maxOccurs": 1,
                "schema": {"type": "string", "enum": list(COMPOSITES), "default": "median"},
            },
            "name": _name_input("maps"),
            "workers": _workers_input("computes the maps"),
        },
        "outputs": {
            "maps": {
                "title": "Maps",
                "description": "Per product: the COG's path, its URL through the service "
                "(href: yours only, with your hub token) and its units.",
                "schema": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "href": {"type": "string", "format": "uri"},
                            "units": {"type": "string"},
                        },
                    },
                },
            },
            "dates": {
                "title": "Dates composed",
                "description": "Dates (YYYY-MM-DD) of the scenes in the composite.",
                "schema": {"type": "array", "items": {"type": "string", "format": "date"}},
            },
            "scenes": {
                "title": "Scenes",
                "description": "Ids of the Sentinel-2 items read.",
                "schema": {"type": "array", "items": {"type": "string"}},
            },
        },
        "example": {"inputs": {"products": ["turbidity"], "composite": "median"}},
    }


class WaterQualityMapsProcess:
    """The ``water-quality-maps`` process (see :mod:`recipes.maps`)."""

    @property
    def metadata(self) -> dict[str, Any]:
        """The OGC process description."""
        return _maps_metadata()

    def execute(self, data: dict[str, Any], context: Any) -> dict[str, Any]:
        """Write the maps into ``context.work_dir / name``; where they are as outputs."""
        name = _folder(data, "maps")
        bbox = tuple(data["bbox"]) if data.get("bbox") else None
        context.progress(0.0, "searching the data centres")
        scenes = list(
            find_scenes(bbox=bbox, datetime=data.get("datetime"), collection=_collection(data))
        )
        with _near(context, scenes, data):
            result = water_quality_maps(
                context.work_dir / name,
                bbox=bbox,
                scenes=scenes,
                products=list(data.get("products") or MAP_PRODUCTS),
                composite=str(data.get("composite") or "median"),
                progress=_steps(context),
            )
        if hasattr(context, "add_product"):  # the job's STAC Item
            for product, path in result.files.items():
                context.add_product(
                    product, path, _COG, f"{MAP_PRODUCTS[product]}, {result.composite}"
                )
            context.add_sources(result.items)
        base = getattr(context, "results_url", "")
        return {
            "maps": {
                product: {
                    "path": str(path),
                    **({"href": f"{base}{name}/{path.name}"} if base else {}),
                    "units": result.units[product],
                }
                for product, path in result.files.items()
            },
            "dates": list(result.dates),
            "scenes": list(result.scenes),
        }


WATER_QUALITY_MAPS = WaterQualityMapsProcess()
