"""FAIR metadata of a cube: CF attributes in the store, a STAC Item and Collection beside it.

The STAC documents use the datacube extension (``cube:dimensions``, ``cube:variables``), the
projection extension and the xarray-assets extension (how to open the Zarr asset), and carry
the spec hash, the spec itself, the source items of every time step, the software versions and
the licence.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from odc.geo.geobox import GeoBox

from datacubes._manifest import Step
from datacubes._spec import CubeSpec

DATACUBE_EXT = "https://stac-extensions.github.io/datacube/v2.2.0/schema.json"
PROJECTION_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
XARRAY_EXT = "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json"
ZARR_MEDIA_TYPE = "application/vnd+zarr"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_PACKAGES = (
    "earthlab",
    "numpy",
    "xarray",
    "zarr",
    "dask",
    "odc-stac",
    "odc-geo",
    "rasterio",
    "pystac",
    "fsspec",
    "s3fs",
)
_PERIOD_STEP = {"day": "P1D", "week": "P1W", "month": "P1M", "quarter": "P3M", "year": "P1Y"}


def software_versions() -> dict[str, str]:
    """Versions of Python, GDAL and the packages a build depends on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        import rasterio

        versions["gdal"] = str(rasterio.__gdal_version__)
    except ImportError:  # pragma: no cover
        pass
    return versions


def _lonlat_bounds(geobox: GeoBox) -> tuple[float, float, float, float]:
    box = geobox.extent.to_crs("EPSG:4326").boundingbox
    return (round(box.left, 7), round(box.bottom, 7), round(box.right, 7), round(box.top, 7))


def _iso_z(time: str) -> str:
    return time if time.endswith("Z") else f"{time}Z"


def cf_attributes(
    spec: CubeSpec, geobox: GeoBox, steps: Sequence[Step], software: Mapping[str, str]
) -> dict[str, Any]:
    """Global attributes of the store (CF 1.10 and ACDD 1.3).

    Parameters
    ----------
    spec : CubeSpec
        The cube's spec.
    geobox : GeoBox
        The cube's grid.
    steps : sequence of Step
        The cube's time steps.
    software : mapping
        Package versions (:func:`software_versions`).

    Returns
    -------
    dict
        Attributes; nested values are JSON text so that the store converts to netCDF.
    """
    west, south, east, north = _lonlat_bounds(geobox)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Conventions": "CF-1.10, ACDD-1.3",
        "title": spec.title,
        "summary": spec.description or spec.title,
        "license": spec.licence,
        "keywords": ", ".join(spec.keywords),
        "source": f"STAC items of {', '.join(spec.source.collections)}"
        + (f" from {', '.join(sorted({c for s in steps for c in s.centres}))}" if steps else ""),
        "history": f"{now} earthlab cube build of spec {spec.name} ({spec.hash})",
        "date_created": now,
        "geospatial_lon_min": west,
        "geospatial_lon_max": east,
        "geospatial_lat_min": south,
        "geospatial_lat_max": north,
        "time_coverage_start": _iso_z(steps[0].time) if steps else "",
        "time_coverage_end": _iso_z(steps[-1].time) if steps else "",
        "earthlab_name": spec.name,
        "earthlab_spec_hash": spec.hash,
        "earthlab_spec": json.dumps(spec.to_dict(), sort_keys=True),
        "earthlab_software": json.dumps(dict(software), sort_keys=True),
    }


def coordinate_attrs(spec: CubeSpec) -> dict[str, dict[str, str]]:
    """CF attributes of the ``x``, ``y`` and ``time`` coordinates."""
    time_name = "time"
    if spec.composite is not None:
        time_name = (
            f"start of the {spec.composite.period} period of the {spec.composite.method} composite"
        )
    else:
        time_name = "acquisition time (items of one solar day fused)"
    return {
        "x": {
            "standard_name": "projection_x_coordinate",
            "long_name": "x of pixel centre",
            "units": "m",
            "axis": "X",
        },
        "y": {
            "standard_name": "projection_y_coordinate",
            "long_name": "y of pixel centre",
            "units": "m",
            "axis": "Y",
        },
        "time": {"standard_name": "time", "long_name": time_name, "axis": "T"},
        "source_items": {"long_name": "ids of the STAC items of each time step, comma-separated"},
    }


def cell_methods(spec: CubeSpec) -> str | None:
    """CF ``cell_methods`` of composited variables."""
    if spec.composite is None:
        return None
    return f"time: {spec.composite.method} (interval: 1 {spec.composite.period})"


def _crs(geobox: GeoBox) -> tuple[int | None, str]:
    """EPSG code (or None) and WKT of a grid's CRS."""
    crs = geobox.crs
    assert crs is not None  # cube grids always have one
    return crs.epsg, crs.to_wkt()


def _dimensions(spec: CubeSpec, geobox: GeoBox, steps: Sequence[Step]) -> dict[str, Any]:
    left, bottom, right, top = geobox.boundingbox
    epsg, wkt = _crs(geobox)
    reference: int | str = epsg if epsg else wkt
    res = abs(geobox.resolution.x)
    step = None
    if spec.composite is not None:
        period = spec.composite.period
        step = _PERIOD_STEP.get(period, f"P{period[:-1]}D")
    return {
        "x": {
            "type": "spatial",
            "axis": "x",
            "extent": [left, right],
            "step": res,
            "reference_system": reference,
        },
        "y": {
            "type": "spatial",
            "axis": "y",
            "extent": [bottom, top],
            "step": res,
            "reference_system": reference,
        },
        "time": {
            "type": "temporal",
            "extent": [_iso_z(steps[0].time), _iso_z(steps[-1].time)] if steps else [None, None],
            "values": [_iso_z(s.time) for s in steps],
            "step": step,
        },
    }


def _variables(variables: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out = {}
    for name, info in variables.items():
        attrs = info.get("attrs", {})
        entry: dict[str, Any] = {
            "dimensions": ["time", "y", "x"],
            "type": "data",
            "description": str(attrs.get("long_name", name)),
            "data_type": str(info.get("stored_dtype", info.get("dtype"))),
        }
        if attrs.get("units") is not None:
            entry["unit"] = str(attrs["units"])
        if "flag_values" in attrs:
            entry["values"] = [int(v) for v in attrs["flag_values"]]
        out[name] = entry
    return out


def _zarr_asset(url: str, endpoint: str | None, zarr_format: int) -> dict[str, Any]:
    asset: dict[str, Any] = {
        "href": url,
        "type": ZARR_MEDIA_TYPE,
        "title": f"Zarr {zarr_format} store",
        "roles": ["data"],
        "xarray:open_kwargs": {"engine": "zarr", "consolidated": True, "chunks": {}},
    }
    if endpoint:
        asset["xarray:storage_options"] = {"client_kwargs": {"endpoint_url": endpoint}}
    return asset


def cube_item(
    spec: CubeSpec,
    *,
    url: str,
    endpoint: str | None,
    geobox: GeoBox,
    steps: Sequence[Step],
    variables: Mapping[str, Mapping[str, Any]],
    complete: bool,
    software: Mapping[str, str],
    cogs: Mapping[str, str] | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """The cube's STAC Item (datacube, projection and xarray-assets extensions).

    Parameters
    ----------
    spec : CubeSpec
        The cube's spec.
    url : str
        URL of the Zarr store.
    endpoint : str, optional
        S3 endpoint of the store (never credentials).
    geobox : GeoBox
        The cube's grid.
    steps : sequence of Step
        Time steps with their source items.
    variables : mapping
        Per variable: ``attrs`` (CF) and ``stored_dtype``.
    complete : bool
        Whether every region is filled.
    software : mapping
        Package versions.
    cogs : mapping, optional
        COG exports: asset key to URL.
    created : str, optional
        Creation time of the cube (ISO 8601).

    Returns
    -------
    dict
        A STAC 1.1 Item.
    """
    west, south, east, north = _lonlat_bounds(geobox)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    epsg, wkt = _crs(geobox)
    left, bottom, right, top = geobox.boundingbox
    properties: dict[str, Any] = {
        "title": spec.title,
        "description": spec.description or spec.title,
        "license": spec.licence,
        "keywords": list(spec.keywords),
        "datetime": None,
        "start_datetime": _iso_z(steps[0].time) if steps else None,
        "end_datetime": _iso_z(steps[-1].time) if steps else None,
        "created": created or now,
        "updated": now,
        "cube:dimensions": _dimensions(spec, geobox, steps),
        "cube:variables": _variables(variables),
        "proj:code": f"EPSG:{epsg}" if epsg else None,
        "proj:shape": list(geobox.shape),
        "proj:transform": [float(v) for v in tuple(geobox.transform)[:6]],
        "proj:bbox": [left, bottom, right, top],
        "earthlab:spec_hash": spec.hash,
        "earthlab:spec": spec.to_dict(),
        "earthlab:software": dict(software),
        "earthlab:complete": complete,
        "earthlab:source_collections": list(spec.source.collections),
        "earthlab:steps": [s.to_dict() for s in steps],
    }
    if epsg is None:
        properties["proj:wkt2"] = wkt
    assets = {"zarr": _zarr_asset(url, endpoint, spec.target.zarr_format)}
    for key, href in sorted((cogs or {}).items()):
        assets[key] = {"href": href, "type": COG_MEDIA_TYPE, "roles": ["data"]}
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [DATACUBE_EXT, PROJECTION_EXT, XARRAY_EXT],
        "id": spec.name,
        "collection": spec.name,
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        "bbox": [west, south, east, north],
        "properties": properties,
        "links": [{"rel": "collection", "href": "./collection.json", "type": "application/json"}],
        "assets": assets,
    }


def cube_collection(
    item: Mapping[str, Any], spec: CubeSpec, steps: Sequence[Step]
) -> dict[str, Any]:
    """The cube's STAC Collection, built from its Item."""
    props = item["properties"]
    centres = sorted({c for s in steps for c in s.centres})
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": [DATACUBE_EXT, XARRAY_EXT],
        "id": spec.name,
        "title": spec.title,
        "description": spec.description or spec.title,
        "license": spec.licence,
        "keywords": list(spec.keywords),
        "providers": [{"name": name, "roles": ["producer"]} for name in centres]
        + [{"name": "Earth Analytics Lab (Data Terra)", "roles": ["processor", "host"]}],
        "extent": {
            "spatial": {"bbox": [item["bbox"]]},
            "temporal": {"interval": [[props["start_datetime"], props["end_datetime"]]]},
        },
        "cube:dimensions": props["cube:dimensions"],
        "cube:variables": props["cube:variables"],
        "summaries": {"earthlab:spec_hash": [spec.hash]},
        "links": [{"rel": "item", "href": "./item.json", "type": "application/geo+json"}],
        "assets": {"zarr": dict(item["assets"]["zarr"])},
    }


def describe(item: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> str:
    """Human summary of a cube for ``earthlab cube info``."""
    props = item["properties"]
    dims = props["cube:dimensions"]
    variables = props["cube:variables"]
    spec = props.get("earthlab:spec", {})
    target = spec.get("target", {})
    status = "complete" if props.get("earthlab:complete") else "INCOMPLETE"
    steps = props.get("earthlab:steps", [])
    x, y = dims["x"], dims["y"]
    lines = [
        f"cube {item['id']}  ({status})",
        f"  url          {item['assets']['zarr']['href']}",
        f"  title        {props.get('title', '')}",
        f"  licence      {props.get('license', '')}",
        f"  spec hash    {props.get('earthlab:spec_hash', '')}",
        f"  grid         {props.get('proj:code') or 'custom CRS'}, {x['step']:g} m pixels, "
        f"{props['proj:shape'][0]} x {props['proj:shape'][1]} "
        f"(x {x['extent'][0]:.0f}..{x['extent'][1]:.0f}, y {y['extent'][0]:.0f}..{y['extent'][1]:.0f})",
        f"  time         {len(steps)} steps, {props.get('start_datetime')} .. {props.get('end_datetime')}",
        "  variables    "
        + ", ".join(
            f"{name} ({v.get('unit', '-')}, {v.get('data_type')})" for name, v in variables.items()
        ),
        f"  layout       Zarr {target.get('zarr_format')}, chunks {target.get('chunks')}, "
        f"shards {target.get('shards')}",
    ]
    if manifest is not None:
        failed = manifest.get("failed", {})
        lines.append(f"  failures     {len(failed) or 'none'}")
        for key, entry in list(failed.items())[:5]:
            lines.append(f"    {key}: {entry['error'][:160]}")
        lines.append(f"  updated      {manifest.get('updated')}")
    software = props.get("earthlab:software", {})
    lines.append("  built with   " + ", ".join(f"{k} {v}" for k, v in software.items()))
    lines.append("  steps (time, source items):")
    for step in steps:
        centres = f" [{', '.join(step.get('centres', []))}]" if step.get("centres") else ""
        lines.append(f"    {step['time']}  {', '.join(step['items'])}{centres}")
    return "\n".join(lines)
