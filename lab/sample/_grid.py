"""Scene grid, surface classes and stations of the sample federation (Étang de Thau)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from affine import Affine
from pyproj import Transformer
from scipy import ndimage

from lab.sample import SampleGenerationError

CRS = "EPSG:32631"
RESOLUTION = 20.0
SHAPE = (800, 800)  # rows, cols
CENTRE_LONLAT = (3.615, 43.395)

# The lagoon is an ellipse along the real lagoon's SW-NE axis (Marseillan to Balaruc).
AXIS_DEGREES = 40.0  # anticlockwise from east
SEMI_MAJOR_M = 9500.0
SEMI_MINOR_M = 2600.0
# The sea lies south-east of the lido: beyond this distance from the axis (negative v side).
SEA_BEYOND_M = 3600.0

LAND, LAGOON, SEA = 0, 1, 2
MIN_SHORE_DISTANCE_PX = 4.0
BOX = 5  # matchup box of the default protocol

# Plausible real positions (WGS84 lon, lat); MEZE_LAND is the town of Mèze on the north shore.
STATIONS = (
    ("THAU01", 3.5600, 43.3600),  # Marseillan basin
    ("THAU02", 3.6000, 43.4050),  # off Mèze
    ("THAU03", 3.6200, 43.3950),  # centre of the Grand Étang
    ("THAU04", 3.6500, 43.4250),  # Bouzigues shellfish tables
    ("THAU05", 3.6700, 43.4300),  # off Balaruc
    ("THAU06", 3.6400, 43.3900),  # south basin, lido side
    ("MEZE_LAND", 3.6060, 43.4260),  # georeferenced at the town, on land
)


@dataclass(frozen=True)
class Grid:
    """The 20 m scene grid in UTM zone 31N.

    Attributes
    ----------
    x0, y0 : float
        Upper-left corner (metres), on the 20 m grid.
    """

    x0: float
    y0: float

    @classmethod
    def default(cls) -> Grid:
        """Return the grid centred on the lagoon, its corner snapped to the 20 m grid."""
        cx, cy = to_utm(*CENTRE_LONLAT)
        half_w = SHAPE[1] * RESOLUTION / 2
        half_h = SHAPE[0] * RESOLUTION / 2
        x0 = round((cx - half_w) / RESOLUTION) * RESOLUTION
        y0 = round((cy + half_h) / RESOLUTION) * RESOLUTION
        return cls(float(x0), float(y0))

    @property
    def transform(self) -> Affine:
        """Pixel-corner affine transform."""
        return Affine(RESOLUTION, 0.0, self.x0, 0.0, -RESOLUTION, self.y0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in metres."""
        return (
            self.x0,
            self.y0 - SHAPE[0] * RESOLUTION,
            self.x0 + SHAPE[1] * RESOLUTION,
            self.y0,
        )

    @cached_property
    def x(self) -> np.ndarray:
        """Easting of pixel centres (cols)."""
        return self.x0 + (np.arange(SHAPE[1]) + 0.5) * RESOLUTION

    @cached_property
    def y(self) -> np.ndarray:
        """Northing of pixel centres (rows)."""
        return self.y0 - (np.arange(SHAPE[0]) + 0.5) * RESOLUTION

    def rowcol(self, x: float, y: float) -> tuple[int, int]:
        """Row and column of the pixel containing point (x, y)."""
        return int((self.y0 - y) // RESOLUTION), int((x - self.x0) // RESOLUTION)


_TO_UTM = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
_TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def to_utm(lon: float, lat: float) -> tuple[float, float]:
    """Project WGS84 degrees to UTM 31N metres."""
    x, y = _TO_UTM.transform(lon, lat)
    return float(x), float(y)


def to_lonlat(x: float, y: float) -> tuple[float, float]:
    """Unproject UTM 31N metres to WGS84 degrees."""
    lon, lat = _TO_LONLAT.transform(x, y)
    return float(lon), float(lat)


def lagoon_frame(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (u along the SW-NE axis, v across, north-west positive) in metres."""
    cx, cy = to_utm(*CENTRE_LONLAT)
    a = np.deg2rad(AXIS_DEGREES)
    dx, dy = x - cx, y - cy
    return dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)


def lagoon_radius(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Normalised elliptic radius: 0 at the lagoon centre, 1 on its shore."""
    u, v = lagoon_frame(x, y)
    return np.hypot(u / SEMI_MAJOR_M, v / SEMI_MINOR_M)


def surface(grid: Grid) -> np.ndarray:
    """Surface classes on the grid: 0 land, 1 lagoon, 2 sea (uint8, rows x cols)."""
    xx, yy = np.meshgrid(grid.x, grid.y)
    _, v = lagoon_frame(xx, yy)
    out = np.full(SHAPE, LAND, dtype=np.uint8)
    out[v < -SEA_BEYOND_M] = SEA
    out[lagoon_radius(xx, yy) <= 1.0] = LAGOON
    return out


@dataclass(frozen=True)
class Station:
    """An in-situ station placed on the grid.

    Attributes
    ----------
    station_id : str
        Station code.
    lon, lat : float
        WGS84 degrees.
    x, y : float
        UTM 31N metres.
    row, col : int
        Pixel containing the station.
    """

    station_id: str
    lon: float
    lat: float
    x: float
    y: float
    row: int
    col: int

    @property
    def on_land(self) -> bool:
        """Whether the station is meant to lie on land."""
        return self.station_id.endswith("_LAND")

    def box(self) -> tuple[slice, slice]:
        """Row and column slices of the matchup box centred on the station pixel."""
        h = BOX // 2
        return slice(self.row - h, self.row + h + 1), slice(self.col - h, self.col + h + 1)


def stations(grid: Grid, surf: np.ndarray) -> tuple[Station, ...]:
    """Place the stations on the grid and check where they fall.

    Raises
    ------
    SampleGenerationError
        If a lagoon station is closer than 4 pixels to the shore or the land station's
        matchup box touches water.
    """
    shore_px = shore_distance_px(surf)
    out = []
    for sid, lon, lat in STATIONS:
        x, y = to_utm(lon, lat)
        row, col = grid.rowcol(x, y)
        st = Station(sid, lon, lat, x, y, row, col)
        if st.on_land:
            if (surf[st.box()] != LAND).any():
                raise SampleGenerationError(f"land station {sid} has water in its matchup box")
        elif shore_px[row, col] < MIN_SHORE_DISTANCE_PX:
            raise SampleGenerationError(
                f"station {sid} at ({lon}, {lat}) is {shore_px[row, col]:.1f} px from the shore, "
                f"less than {MIN_SHORE_DISTANCE_PX}: move it into the lagoon"
            )
        out.append(st)
    return tuple(out)


def shore_distance_px(surf: np.ndarray) -> np.ndarray:
    """Distance of each lagoon pixel to the nearest non-lagoon pixel, in pixels."""
    return ndimage.distance_transform_edt(surf == LAGOON)


def sampling_point(grid: Grid, surf: np.ndarray, station: Station) -> tuple[float, float]:
    """Where a station's water is really sampled (UTM metres).

    A water station is sampled where it stands; a land station (georeferenced at the town, as
    happens in real registers) is sampled at the nearest lagoon pixel centre.
    """
    if not station.on_land:
        return station.x, station.y
    _, (rows, cols) = ndimage.distance_transform_edt(surf != LAGOON, return_indices=True)
    row, col = rows[station.row, station.col], cols[station.row, station.col]
    return float(grid.x[col]), float(grid.y[row])
