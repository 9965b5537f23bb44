"""Cube specs: a YAML file describing one analysis-ready cube, read into frozen dataclasses.

A spec says where the data comes from (centres, collections, area, dates, filters), what to
compute (bands, grid, cloud mask, optional temporal composite, encoding) and where to write it
(target URL, Zarr format, chunks, shards). It is validated once, when read: an error names the
file and the field (``grid.resolution must be a positive number``).

The *spec hash* identifies what the values and the layout of a cube depend on (source, bands,
grid, mask, composite, encoding, Zarr format, chunks and shards) and not what can change
without touching a pixel (name, title, description, licence, keywords, target URL). A store
remembers the hash of the spec that built it and refuses another one.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from lab import ConfigurationError

__all__ = [
    "Chunks",
    "CompositeSpec",
    "CubeSpec",
    "EncodingSpec",
    "GridSpec",
    "InlineCatalog",
    "SourceSpec",
    "SpecError",
    "TargetSpec",
]

SPEC_VERSION = 1
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TILE_RE = re.compile(r"^(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z])([A-HJ-NP-V])$")
_PERIOD_RE = re.compile(r"^(day|week|month|quarter|year|[1-9]\d{0,2}d)$")
COMPOSITE_METHODS = ("median", "mean", "min", "max")
CLASS_BANDS = frozenset({"scl", "qa_pixel"})
"""Bands holding classes, not measurements: kept as integers, never composited."""
_INT_DTYPES = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
_FLOAT_DTYPES = ("float32", "float64")
_CATALOG_KINDS = ("stac-api", "stac-static", "stac-geoparquet")


class SpecError(ConfigurationError):
    """A cube spec is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class InlineCatalog:
    """A catalogue named in the spec itself, for sources outside the lab's centres file."""

    kind: str
    """``stac-api``, ``stac-static`` or ``stac-geoparquet``."""
    href: str
    """URL or path of the catalogue (API root, ``catalog.json`` or parquet file)."""
    name: str = "spec-source"
    """Name given to this source in reports and in the items' ``earthlab:centre``."""

    def __post_init__(self) -> None:
        _check(self.kind in _CATALOG_KINDS, "kind", f"must be one of {', '.join(_CATALOG_KINDS)}")
        _check(isinstance(self.href, str) and bool(self.href), "href", "must be a URL or a path")
        _check(bool(re.match(r"^[a-z][a-z0-9-]{0,62}$", self.name)), "name", "must be lower-case")


@dataclass(frozen=True)
class SourceSpec:
    """Which STAC items feed the cube."""

    collections: tuple[str, ...]
    """Collection ids to search."""
    centres: tuple[str, ...] | None = None
    """Centres of the lab's federation to search (default: all of them)."""
    catalog: InlineCatalog | None = None
    """A catalogue given in the spec instead of the lab's centres (exclusive with ``centres``)."""
    bbox: tuple[float, float, float, float] | None = None
    """Search area ``(west, south, east, north)`` in degrees (default: the grid's extent)."""
    datetime: str | None = None
    """Search interval, RFC 3339 (``2021-10-01/2022-06-30``, ``2022-01-01/..``)."""
    filter: Mapping[str, Any] | None = None
    """A CQL2-JSON filter passed to catalogues that support it."""
    max_cloud_cover: float | None = None
    """Keep items whose ``eo:cloud_cover`` is at most this (percent); checked on every item."""

    def __post_init__(self) -> None:
        _check(
            len(self.collections) > 0 and all(isinstance(c, str) and c for c in self.collections),
            "collections",
            "must be a non-empty list of collection ids",
        )
        _check(
            not (self.centres and self.catalog),
            "centres",
            "is exclusive with catalog: name centres of the lab or give one catalogue",
        )
        if self.centres is not None:
            _check(
                len(self.centres) > 0 and all(isinstance(c, str) and c for c in self.centres),
                "centres",
                "must be a non-empty list of centre names",
            )
        from lab import SearchQuery

        for name, kwargs in (
            ("bbox", {"bbox": self.bbox}),
            ("datetime", {"datetime": self.datetime}),
        ):
            try:
                SearchQuery.build(**kwargs)
            except ConfigurationError as exc:
                raise SpecError(f"{name}: {exc}") from None
        if self.filter is not None:
            _check(isinstance(self.filter, Mapping), "filter", "must be a CQL2-JSON mapping")
        if self.max_cloud_cover is not None:
            _check(
                _is_number(self.max_cloud_cover) and 0 <= self.max_cloud_cover <= 100,
                "max_cloud_cover",
                "must be a percentage between 0 and 100",
            )
            object.__setattr__(self, "max_cloud_cover", float(self.max_cloud_cover))


@dataclass(frozen=True)
class GridSpec:
    """The output pixel grid: CRS, pixel size and extent (exactly one of bbox, bounds, tile).

    The extent is widened to the cube's pixel edges: those of the items' own grid when the
    cube is in their CRS at their pixel size and they share one grid (the cube then copies
    their pixels, as :func:`datacubes.load` does), else multiples of the resolution. The build
    chooses them from its items and records them in the cube's manifest.
    """

    resolution: float
    """Pixel size in CRS units (metres for UTM)."""
    crs: str | None = None
    """Output CRS, e.g. ``EPSG:32631`` (implied by ``tile``)."""
    bounds: tuple[float, float, float, float] | None = None
    """``(xmin, ymin, xmax, ymax)`` in CRS units, on multiples of ``resolution`` (widened to
    the items' pixel edges when the cube keeps their grid, e.g. half a Landsat pixel)."""
    bbox: tuple[float, float, float, float] | None = None
    """``(west, south, east, north)`` in degrees, widened to the enclosing pixel edges."""
    tile: str | None = None
    """A Sentinel-2 (MGRS) tile such as ``31TEJ``: its UTM zone, and the extent of its items'
    own grid (only items of that tile are used)."""

    def __post_init__(self) -> None:
        _check(
            _is_number(self.resolution) and math.isfinite(self.resolution) and self.resolution > 0,
            "resolution",
            f"must be a positive number (pixel size in CRS units), got {self.resolution!r}",
        )
        object.__setattr__(self, "resolution", float(self.resolution))
        given = [n for n in ("bounds", "bbox", "tile") if getattr(self, n) is not None]
        _check(len(given) == 1, "extent", f"give exactly one of bounds, bbox or tile (got {given})")
        if self.tile is not None:
            match = _TILE_RE.match(str(self.tile))
            _check(
                bool(match) and 1 <= int(match.group(1)) <= 60,  # type: ignore[union-attr]
                "tile",
                f"{self.tile!r} is not an MGRS tile like 31TEJ",
            )
            epsg = tile_epsg(self.tile)
            if self.crs is not None:
                _check(
                    _epsg_code(self.crs) == epsg,
                    "crs",
                    f"{self.crs!r} is not the CRS of tile {self.tile} (EPSG:{epsg}); drop crs",
                )
            object.__setattr__(self, "crs", f"EPSG:{epsg}")
        _check(self.crs is not None, "crs", "is required with bounds or bbox (e.g. EPSG:32631)")
        try:
            from pyproj import CRS

            CRS.from_user_input(self.crs)
        except Exception as exc:
            raise SpecError(f"crs: {self.crs!r} is not a valid CRS ({exc})") from None
        if self.bounds is not None:
            xmin, ymin, xmax, ymax = self.bounds
            _check(xmin < xmax and ymin < ymax, "bounds", "must be (xmin, ymin, xmax, ymax)")
            for value in self.bounds:
                _check(
                    _on_grid(value, self.resolution),
                    "bounds",
                    f"{value:g} is not a multiple of the resolution {self.resolution:g}; "
                    "give the bounds of a cube on multiples of its pixel size",
                )
        if self.bbox is not None:
            from lab import SearchQuery

            try:
                SearchQuery.build(bbox=self.bbox)
            except ConfigurationError as exc:
                raise SpecError(f"bbox: {exc}") from None


@dataclass(frozen=True)
class CompositeSpec:
    """A temporal composite: one time step per period, reduced over the period's dates."""

    period: str
    """``day``, ``week`` (Monday start), ``month``, ``quarter``, ``year`` or ``<N>d`` (bins of
    N days counted from 1970-01-01)."""
    method: str = "median"
    """``median``, ``mean``, ``min`` or ``max`` of the valid (unmasked) values."""

    def __post_init__(self) -> None:
        _check(
            bool(_PERIOD_RE.match(str(self.period))),
            "period",
            "must be day, week, month, quarter, year or a number of days like 10d",
        )
        _check(
            self.method in COMPOSITE_METHODS,
            "method",
            f"must be one of {', '.join(COMPOSITE_METHODS)}",
        )


@dataclass(frozen=True)
class EncodingSpec:
    """How measurement bands are stored (class bands such as ``scl`` keep their integer type)."""

    dtype: str = "float32"
    """``float32``/``float64`` (NaN for no data), or an integer type packed with
    ``scale_factor``/``add_offset`` (CF packing) and ``nodata``."""
    scale_factor: float | None = None
    """Packing scale: stored integer = round((value - add_offset) / scale_factor)."""
    add_offset: float | None = None
    """Packing offset (default 0 with a scale_factor)."""
    nodata: float | None = None
    """Stored value for no data: required for integer types, NaN for floats."""

    def __post_init__(self) -> None:
        _check(
            self.dtype in _FLOAT_DTYPES or self.dtype in _INT_DTYPES,
            "dtype",
            f"must be one of {', '.join([*_FLOAT_DTYPES, *_INT_DTYPES])}",
        )
        if self.dtype in _FLOAT_DTYPES:
            _check(
                self.scale_factor is None and self.add_offset is None,
                "scale_factor",
                f"packing is for integer types, not {self.dtype}",
            )
            _check(
                self.nodata is None or (_is_number(self.nodata) and math.isnan(self.nodata)),
                "nodata",
                "float cubes store no data as NaN: leave nodata out",
            )
            return
        _check(
            _is_number(self.scale_factor) and self.scale_factor > 0,  # type: ignore[operator]
            "scale_factor",
            f"is required with dtype {self.dtype} (e.g. 0.0001 for reflectance)",
        )
        _check(
            self.add_offset is None or _is_number(self.add_offset),
            "add_offset",
            "must be a number",
        )
        for name in ("scale_factor", "add_offset", "nodata"):
            if _is_number(getattr(self, name)):
                object.__setattr__(self, name, float(getattr(self, name)))
        low, high = _INT_DTYPES[self.dtype]
        nodata = self.nodata
        _check(
            nodata is not None
            and _is_number(nodata)
            and float(nodata).is_integer()
            and low <= nodata <= high,
            "nodata",
            f"is required with dtype {self.dtype}: an integer in {low}..{high} never used by data",
        )


@dataclass(frozen=True)
class Chunks:
    """Sizes along ``time``, ``y`` and ``x``."""

    time: int
    """Time steps."""
    y: int
    """Rows."""
    x: int
    """Columns."""

    def __post_init__(self) -> None:
        for name in ("time", "y", "x"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value > 0,
                name,
                "must be a positive integer",
            )

    def as_dict(self) -> dict[str, int]:
        """Sizes by dimension name."""
        return {"time": self.time, "y": self.y, "x": self.x}


@dataclass(frozen=True)
class TargetSpec:
    """Where and how the cube is written."""

    url: str | None = None
    """``s3://bucket/path/name.zarr`` or a local path ending in ``.zarr`` (relative paths are
    relative to the working directory). Default: ``<name>.zarr`` in ``centre``'s storage, or in
    the working directory."""
    centre: str | None = None
    """A centre of the lab whose ``storage`` (URL and credentials) holds the cube."""
    zarr_format: int = 3
    """Zarr format, 3 (default) or 2."""
    chunks: Chunks = field(default_factory=lambda: Chunks(4, 512, 512))
    """Chunk sizes (default 4 x 512 x 512: 4 MB of float32)."""
    shards: Chunks | None = None
    """Shard sizes, multiples of ``chunks`` (Zarr 3 only): fewer, larger objects."""

    def __post_init__(self) -> None:
        if self.url is not None:
            _check(
                isinstance(self.url, str) and self.url.rstrip("/").endswith(".zarr"),
                "url",
                f"{self.url!r} must end with .zarr (metadata and COGs are written beside it)",
            )
        _check(self.zarr_format in (2, 3), "zarr_format", "must be 2 or 3")
        if self.shards is not None:
            _check(self.zarr_format == 3, "shards", "need zarr_format 3")
            for name in ("time", "y", "x"):
                _check(
                    getattr(self.shards, name) % getattr(self.chunks, name) == 0,
                    "shards",
                    f"{name} ({getattr(self.shards, name)}) must be a multiple of the chunk "
                    f"size ({getattr(self.chunks, name)})",
                )

    @property
    def write_unit(self) -> Chunks:
        """The unit regions are aligned to: the shard when sharding, else the chunk."""
        return self.shards or self.chunks


@dataclass(frozen=True)
class CubeSpec:
    """Everything needed to build one analysis-ready cube; read it with :func:`read_spec`."""

    name: str
    """Short identifier (lower case, digits, ``-``, ``_``): the cube's STAC id and file name."""
    licence: str
    """Licence of the cube (SPDX id such as ``CC-BY-4.0``, or ``other``)."""
    source: SourceSpec
    """Which items feed the cube."""
    bands: tuple[str, ...]
    """Bands by common name or provider key (as for :func:`datacubes.load`)."""
    grid: GridSpec
    """Output grid."""
    target: TargetSpec = field(default_factory=TargetSpec)
    """Where the cube is written."""
    cloud_mask: str | tuple[int, ...] | None = None
    """``clouds`` (Sentinel-2 SCL 0, 1, 3, 8, 9, 10), a list of SCL classes, or none."""
    composite: CompositeSpec | None = None
    """Optional temporal composite."""
    encoding: EncodingSpec = field(default_factory=EncodingSpec)
    """Storage type of measurement bands."""
    title: str = ""
    """Human title (default: the name)."""
    description: str = ""
    """What the cube is for; goes into the CF ``summary`` and the STAC description."""
    keywords: tuple[str, ...] = ()
    """Keywords for catalogues."""
    path: str | None = field(default=None, compare=False)
    """File the spec was read from, if any."""

    def __post_init__(self) -> None:
        _check(
            bool(_NAME_RE.match(str(self.name))),
            "name",
            "must be lower-case letters, digits, - or _",
        )
        _check(
            isinstance(self.licence, str) and bool(self.licence),
            "licence",
            "is required (e.g. CC-BY-4.0)",
        )
        _check(
            len(self.bands) > 0 and all(isinstance(b, str) and b for b in self.bands),
            "bands",
            "must be a non-empty list of band names",
        )
        _check(len(set(self.bands)) == len(self.bands), "bands", "are repeated")
        if isinstance(self.cloud_mask, str):
            _check(
                self.cloud_mask == "clouds",
                "cloud_mask",
                "must be 'clouds', a list of SCL classes or null",
            )
        elif self.cloud_mask is not None:
            _check(
                len(self.cloud_mask) > 0
                and all(isinstance(c, int) and 0 <= c <= 11 for c in self.cloud_mask),
                "cloud_mask",
                "classes must be Sentinel-2 SCL values 0..11",
            )
        if self.composite is not None:
            classes = sorted(CLASS_BANDS & {b.lower() for b in self.bands})
            _check(
                not classes,
                "composite",
                f"cannot reduce class bands ({', '.join(classes)}): drop them from bands",
            )
        if not self.title:
            object.__setattr__(self, "title", self.name)

    @property
    def hash(self) -> str:
        """SHA-256 of what the cube's values and layout depend on (hex, 16 characters)."""
        content = self.to_dict()
        for key in ("name", "title", "description", "licence", "keywords"):
            content.pop(key, None)
        content["target"] = {
            k: v for k, v in content["target"].items() if k not in ("url", "centre")
        }
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (the YAML document, with defaults filled in)."""
        out = _plain(self)
        out.pop("path", None)
        return {"version": SPEC_VERSION, **out}

    def to_yaml(self) -> str:
        """The spec as a YAML document."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise SpecError(f"{name}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _on_grid(value: float, resolution: float) -> bool:
    ratio = value / resolution
    return math.isclose(ratio, round(ratio), abs_tol=1e-6)


def _epsg_code(crs: str) -> int | None:
    from pyproj import CRS

    try:
        return CRS.from_user_input(crs).to_epsg()
    except Exception:
        return None


def tile_epsg(tile: str) -> int:
    """EPSG code of the UTM zone of an MGRS tile (326zz north of the equator, 327zz south)."""
    match = _TILE_RE.match(tile)
    if not match:
        raise SpecError(f"tile: {tile!r} is not an MGRS tile like 31TEJ")
    zone, band = int(match.group(1)), match.group(2)
    return (32600 if band >= "N" else 32700) + zone


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
