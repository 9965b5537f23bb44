"""The output grid of a cube: from spec bounds, a lon/lat box, or a Sentinel-2 (MGRS) tile.

A cube built at its items' own pixel size and in their CRS copies their pixels, as
:func:`datacubes.load` does: its pixel edges are those of the items' grid when the items share
one (:func:`pixel_origins`), such as Landsat's, whose edges are 15 m off the multiples of 30 m.
Otherwise (another CRS or pixel size, or items on several grids) the pixel edges are on
multiples of the pixel size, as the Sentinel-2 tiles' own 10, 20 and 60 m grids are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from datacubes._spec import GridSpec, SpecError, tile_epsg
from lab import ConfigurationError

_PIXEL_TOLERANCE = 1e-6
"""Largest difference, in pixels, between two pixel edges taken as one."""

_BANDS = "CDEFGHJKLMNPQRSTUVWX"
_ROWS = "ABCDEFGHJKLMNPQRSTUV"
_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
S2_TILE_SIZE = 109_800.0
"""Width of a Sentinel-2 tile in metres (100 km MGRS square plus 9.8 km overlap)."""


def mgrs_square(tile: str) -> tuple[int, tuple[float, float, float, float]]:
    """EPSG code and UTM bounds ``(xmin, ymin, xmax, ymax)`` of an MGRS 100 km square.

    Parameters
    ----------
    tile : str
        Zone, latitude band and square letters, e.g. ``31TEJ``.

    Returns
    -------
    tuple
        ``(epsg, bounds)``. A Sentinel-2 tile of that name starts at the square's west edge and
        north edge (give or take 40 m) and spans :data:`S2_TILE_SIZE` metres.
    """
    epsg = tile_epsg(tile)
    zone, band, column, row = int(tile[:-3]), tile[-3], tile[-2], tile[-1]
    letters = _COLUMNS[(zone - 1) % 3]
    if column not in letters:
        raise SpecError(f"tile: {tile!r}: column letter {column} does not exist in UTM zone {zone}")
    xmin = (letters.index(column) + 1) * 100_000.0
    offset = 0 if zone % 2 == 1 else 5
    base = ((_ROWS.index(row) - offset) % 20) * 100_000.0
    south, north = _band_latitudes(band)
    low, high = sorted(_northing(lat, zone, epsg) for lat in (south, north))
    best, overlap = None, 0.0
    for cycle in range(6):
        ymin = base + cycle * 2_000_000.0
        shared = min(ymin + 100_000.0, high) - max(ymin, low)
        if shared > overlap:
            best, overlap = ymin, shared
    if best is None:
        raise SpecError(f"tile: {tile!r}: square {column}{row} is not in latitude band {band}")
    return epsg, (xmin, best, xmin + 100_000.0, best + 100_000.0)


def _band_latitudes(band: str) -> tuple[float, float]:
    south = -80.0 + 8.0 * _BANDS.index(band)
    return south, south + (12.0 if band == "X" else 8.0)


def _northing(lat: float, zone: int, epsg: int) -> float:
    from pyproj import Transformer

    lon = -183.0 + 6.0 * zone
    transformer = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    return float(transformer.transform(lon, max(min(lat, 84.0), -80.0))[1])


def tile_search_bbox(tile: str) -> tuple[float, float, float, float]:
    """Lon/lat box covering a Sentinel-2 tile, for searching its items."""
    from odc.geo.geom import BoundingBox

    epsg, (xmin, _, _, ymax) = mgrs_square(tile)
    margin = 1_000.0
    box = BoundingBox(
        xmin - margin,
        ymax - S2_TILE_SIZE - margin,
        xmin + S2_TILE_SIZE + margin,
        ymax + margin,
        crs=f"EPSG:{epsg}",
    ).to_crs("EPSG:4326")
    return (box.left, box.bottom, box.right, box.top)


def item_tile(item: pystac.Item) -> str | None:
    """MGRS tile of an item from ``s2:mgrs_tile``, ``grid:code`` or the ``mgrs:`` fields."""
    props = item.properties
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"]).upper().lstrip("T")
    code = str(props.get("grid:code", ""))
    if code.upper().startswith("MGRS-"):
        return code[5:].upper()
    zone, band, square = (
        props.get(f"mgrs:{k}") for k in ("utm_zone", "latitude_band", "grid_square")
    )
    if zone and band and square:
        return f"{int(zone)}{band}{square}".upper()
    return None


def items_of_tile(items: Sequence[pystac.Item], tile: str) -> tuple[list[pystac.Item], int]:
    """Items of one MGRS tile, and how many others were left out.

    Raises
    ------
    ConfigurationError
        An item does not say its tile.
    """
    wanted = tile.upper().lstrip("0")
    kept = []
    for item in items:
        found = item_tile(item)
        if found is None:
            raise ConfigurationError(
                f"item {item.id!r} does not say its MGRS tile (s2:mgrs_tile, grid:code or "
                "mgrs:*): build it on grid.bounds or grid.bbox instead of grid.tile"
            )
        if found.lstrip("0") == wanted:
            kept.append(item)
    return kept, len(items) - len(kept)


def spec_geobox(
    grid: GridSpec,
    extent: tuple[float, float, float, float] | None = None,
    origin: tuple[float, float] | None = None,
) -> GeoBox:
    """The output grid of a spec.

    Parameters
    ----------
    grid : GridSpec
        The spec's grid.
    extent : tuple of 4 floats, optional
        Bounds in CRS units, required for ``tile`` grids (the tile items' own extent, from
        :func:`items_extent`, or the one a store recorded).
    origin : tuple of 2 floats, optional
        A pixel corner ``(x, y)`` of the pixel grid to keep, in CRS units: the items' own (from
        :func:`pixel_origins`) for a cube that copies their pixels. Default: ``(0, 0)``, pixel
        edges on multiples of the resolution.

    Returns
    -------
    odc.geo.geobox.GeoBox
        North-up grid whose pixel edges are ``origin`` plus whole pixels, covering the spec's
        extent widened to those edges.
    """
    from affine import Affine
    from odc.geo.geom import BoundingBox

    crs = str(grid.crs)
    res = float(grid.resolution)
    if grid.bounds is not None:
        bounds = grid.bounds
    elif grid.bbox is not None:
        box = BoundingBox(*grid.bbox, crs="EPSG:4326").to_crs(crs)
        bounds = (box.left, box.bottom, box.right, box.top)
    elif extent is not None:
        bounds = extent
    else:
        raise ConfigurationError(f"grid.tile {grid.tile}: the tile's extent is needed")
    x0, y0 = origin or (0.0, 0.0)
    xmin = x0 + math.floor(_round((bounds[0] - x0) / res)) * res
    ymin = y0 + math.floor(_round((bounds[1] - y0) / res)) * res
    xmax = x0 + math.ceil(_round((bounds[2] - x0) / res)) * res
    ymax = y0 + math.ceil(_round((bounds[3] - y0) / res)) * res
    shape = (round((ymax - ymin) / res), round((xmax - xmin) / res))
    return GeoBox(shape, Affine(res, 0.0, xmin, 0.0, -res, ymax), crs)


def pixel_origins(
    items: Sequence[pystac.Item], bands: Sequence[str], crs: str, resolution: float
) -> list[tuple[float, float]]:
    """The pixel grids of the items' assets whose pixels a cube would copy.

    Only the assets of ``bands`` (chosen as :func:`datacubes.load` chooses them) whose pixels a
    cube copies count: north-up, in ``crs`` and ``resolution`` pixels (by ``proj:code`` or
    ``proj:epsg`` and ``proj:transform``). Two assets are on one grid when their pixel edges
    are whole pixels apart.

    Parameters
    ----------
    items : sequence of pystac.Item
        The cube's items.
    bands : sequence of str
        The cube's bands.
    crs : str
        The cube's CRS.
    resolution : float
        The cube's pixel size, in CRS units.

    Returns
    -------
    list of (float, float)
        Per grid, in item order, the upper-left pixel corner of its first asset: one entry when
        the items share a grid, none when no asset is in ``crs`` at ``resolution``.

    Raises
    ------
    datacubes.BandNotFoundError, lab.ConfigurationError
        A band is not in some item, or means different things across items (as for ``load``).
    """
    from odc.geo import CRS

    from datacubes._plan import plan_items

    wanted = CRS(crs)
    res = float(resolution)
    in_crs: dict[str, bool] = {}
    origins: list[tuple[float, float]] = []
    for plan in plan_items(items, list(bands), res):
        for entry in plan:
            if entry.crs is None or entry.transform is None:
                continue
            if entry.crs not in in_crs:
                in_crs[entry.crs] = CRS(entry.crs) == wanted
            a, b, c, d, e, f = entry.transform
            if not in_crs[entry.crs] or b != 0 or d != 0:
                continue
            if not (math.isclose(a, res, rel_tol=1e-9) and math.isclose(-e, res, rel_tol=1e-9)):
                continue
            if not any(same_grid((c, f), other, res) for other in origins):
                origins.append((c, f))
    return origins


def same_grid(corner: tuple[float, float], other: tuple[float, float], resolution: float) -> bool:
    """Whether two pixel corners are whole pixels of ``resolution`` apart (one pixel grid)."""
    return all(_whole(a - b, resolution) for a, b in zip(corner, other, strict=True))


def _whole(distance: float, resolution: float) -> bool:
    pixels = distance / resolution
    return abs(pixels - round(pixels)) <= _PIXEL_TOLERANCE


def _round(value: float) -> float:
    nearest = round(value)
    return float(nearest) if math.isclose(value, nearest, abs_tol=1e-6) else value


def items_extent(items: Sequence[pystac.Item], crs: str) -> tuple[float, float, float, float]:
    """Union of the items' native grids (``proj:transform`` and ``proj:shape``) in ``crs``.

    Raises
    ------
    ConfigurationError
        An item is in another CRS or does not describe its grid.
    """
    from odc.geo import CRS

    wanted = CRS(crs)
    boxes = []
    for item in items:
        for key, asset in item.assets.items():
            transform = asset.extra_fields.get("proj:transform") or item.properties.get(
                "proj:transform"
            )
            shape = asset.extra_fields.get("proj:shape") or item.properties.get("proj:shape")
            code = (
                asset.extra_fields.get("proj:code")
                or item.properties.get("proj:code")
                or _epsg(asset.extra_fields.get("proj:epsg") or item.properties.get("proj:epsg"))
            )
            if not (transform and shape and code) or "data" not in (asset.roles or ["data"]):
                continue
            if CRS(code) != wanted:
                raise ConfigurationError(
                    f"item {item.id!r} asset {key!r} is in {code}, not in the tile's {crs}"
                )
            a, _, c, _, e, f = (float(v) for v in transform[:6])
            rows, cols = int(shape[0]), int(shape[1])
            boxes.append((c, f + e * rows, c + a * cols, f))
    if not boxes:
        raise ConfigurationError(
            "the tile's items do not describe their grid (proj:transform, proj:shape): build "
            "on grid.bounds instead of grid.tile"
        )
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _epsg(value: object) -> str | None:
    return f"EPSG:{int(value)}" if value else None  # type: ignore[call-overload]


def lonlat_bbox(geobox: GeoBox) -> tuple[float, float, float, float]:
    """Lon/lat box enclosing a grid (for searches and loads)."""
    box = geobox.extent.to_crs("EPSG:4326").boundingbox
    return (box.left, box.bottom, box.right, box.top)


def crop(cube: xr.Dataset, box: GeoBox) -> xr.Dataset:
    """The part of a loaded cube on grid ``box`` (same CRS, resolution and pixel edges).

    Raises
    ------
    ConfigurationError
        The loaded grid is not aligned with the cube's (pixel edges differ).
    """
    src = cube.odc.geobox
    res = box.resolution.x
    col = (box.transform.c - src.transform.c) / res
    row = (src.transform.f - box.transform.f) / res
    rows, cols = box.shape
    aligned = (
        src.crs == box.crs
        and math.isclose(src.resolution.x, res)
        and math.isclose(src.resolution.y, box.resolution.y)
        and math.isclose(col, round(col), abs_tol=1e-3)
        and math.isclose(row, round(row), abs_tol=1e-3)
        and round(col) >= 0
        and round(row) >= 0
        and round(row) + rows <= src.shape[0]
        and round(col) + cols <= src.shape[1]
    )
    if not aligned:
        crs = f"EPSG:{src.crs.epsg}" if src.crs is not None and src.crs.epsg else "its CRS"
        raise ConfigurationError(
            f"the items' pixel grid ({crs}, pixel corner {_number(src.transform.c)}, "
            f"{_number(src.transform.f)}, pixel {_number(src.resolution.x)}) does not line up "
            f"with the cube grid (pixel corner {_number(box.transform.c)}, "
            f"{_number(box.transform.f)}, pixel {_number(res)}): their pixels would be "
            "resampled. Build at the items' own pixel size in their CRS (the cube then keeps "
            "their grid), from items that all lie on one pixel grid, or in another CRS"
        )
    return cube.isel(y=slice(round(row), round(row) + rows), x=slice(round(col), round(col) + cols))


def _number(value: float) -> str:
    return f"{value:.12g}"
