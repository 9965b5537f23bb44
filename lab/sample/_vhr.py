"""The ``dinamis`` centre: Pléiades-like 2 m multispectral scenes, restricted to a hub group.

A 1.2 km × 1.2 km window on the north shore of the lagoon near Bouzigues, on a 2 m grid
aligned with the 20 m scene grid (10 × 10 pixels per Sentinel-2 pixel), seen on three clear
dates. Water reads the same truth model as the Sentinel-2 scenes (red from the truth
turbidity through Nechad 2009 inverted), land is a vegetation / bare-soil mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from pyproj import Geod
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from scipy import ndimage

from lab.sample import _grid, _scenes
from lab.sample._fields import TruthModel, days

CENTRE = "dinamis"
COLLECTION = "pleiades-ms"
GROUP = "dinamis"
ACCESS_URL = "https://dinamis.data-terra.org/"
RESOLUTION = 2.0
SHAPE = (600, 600)  # rows, cols: 1.2 km x 1.2 km
CENTRE_LONLAT = (3.6386, 43.4351)  # on the north shore, north-west of THAU04 (Bouzigues)
DATES = (
    datetime(2021, 10, 18, 10, 27, tzinfo=UTC),
    datetime(2022, 1, 16, 10, 31, tzinfo=UTC),
    datetime(2022, 4, 16, 10, 24, tzinfo=UTC),
)
PLATFORMS = ("pleiades-1a", "pleiades-1b")
NOISE_SIGMA = 0.0005
# key, band name, common name, centre wavelength (µm), full width at half maximum (µm)
BANDS = (
    ("blue", "B0", "blue", 0.490, 0.120),
    ("green", "B1", "green", 0.560, 0.120),
    ("red", "B2", "red", 0.650, 0.120),
    ("nir", "B3", "nir", 0.840, 0.200),
)
_S2_INDEX = (0, 1, 2, 4)  # the same bands among the Sentinel-2 sample's seven
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Window:
    """The 2 m grid of the very-high-resolution scenes (upper-left corner on the 20 m grid)."""

    x0: float
    y0: float

    @classmethod
    def default(cls, grid: _grid.Grid) -> Window:
        """The window centred near :data:`CENTRE_LONLAT`, snapped to the 20 m scene grid."""
        cx, cy = _grid.to_utm(*CENTRE_LONLAT)
        half = SHAPE[1] * RESOLUTION / 2
        step = _grid.RESOLUTION
        x0 = grid.x0 + round((cx - half - grid.x0) / step) * step
        y0 = grid.y0 - round((grid.y0 - (cy + half)) / step) * step
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

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Easting (1, cols) and northing (rows, 1) of pixel centres."""
        x = self.x0 + (np.arange(SHAPE[1]) + 0.5) * RESOLUTION
        y = self.y0 - (np.arange(SHAPE[0]) + 0.5) * RESOLUTION
        return x[None, :], y[:, None]

    def footprint(self) -> list[list[float]]:
        """The window's corners in WGS84 (closed ring, anticlockwise)."""
        xmin, ymin, xmax, ymax = self.bounds
        corners = [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)]
        return [[round(c, 7) for c in _grid.to_lonlat(x, y)] for x, y in corners]


def footprint_km2(ring: Sequence[Sequence[float]]) -> float:
    """Geodesic area (WGS84 ellipsoid) of a lon/lat ring, in km²."""
    lons, lats = zip(*ring, strict=True)
    area, _ = _GEOD.polygon_area_perimeter(lons, lats)
    return abs(area) / 1e6


def item_id(when: datetime, platform: str) -> str:
    """Id of a scene, e.g. ``PHR1A_MS_20211018T102700_THAU``."""
    sat = "PHR1A" if platform.endswith("1a") else "PHR1B"
    return f"{sat}_MS_{when:%Y%m%dT%H%M%S}_THAU"


def render(
    window: Window, model: TruthModel, land: np.ndarray, when: datetime, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """DN (band first, uint16, 10000 ρ) and the truth turbidity (NaN on land) of one date."""
    x, y = window.centres()
    water = _grid.lagoon_radius(x, y) <= 1.0
    t = days(when)
    turbidity = np.where(water, model.turbidity(t, x, y), np.nan)
    chl = np.where(water, model.chlorophyll_a(t, x, y), np.nan)
    rho = land.copy()
    spectrum = _scenes.water_spectrum(turbidity[water], chl[water])
    rho[:, water] = spectrum[list(_S2_INDEX)]
    rho += rng.normal(0.0, NOISE_SIGMA, size=rho.shape)
    dn = np.clip(np.rint(rho * 10000), 1, 65535).astype(np.uint16)
    return dn, turbidity.astype(np.float32)


def land_cover(rng: np.random.Generator) -> np.ndarray:
    """Static land reflectance (band first): fields of vegetation and bare soil, 2 m texture."""
    coarse = ndimage.gaussian_filter(rng.normal(size=(SHAPE[0] // 20 + 2,) * 2), 1.5)
    fields = ndimage.zoom(coarse, 20, order=0)[: SHAPE[0], : SHAPE[1]]  # 40 m parcels
    veg = (fields > np.median(fields)).astype(float)
    grain = ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.0)
    texture = 1 + 0.08 * grain / grain.std()
    idx = list(_S2_INDEX)
    mix = veg * _scenes.VEGETATION[idx, None, None] + (1 - veg) * _scenes.BARE_SOIL[idx, None, None]
    return mix * texture


def write_scene(dn: np.ndarray, window: Window, directory: Path) -> dict[str, int]:
    """One COG per band; return the size in bytes of each, by asset key."""
    directory.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for index, (key, *_) in enumerate(BANDS):
        path = directory / f"{key}.tif"
        with rasterio.open(
            path,
            "w",
            driver="COG",
            width=SHAPE[1],
            height=SHAPE[0],
            count=1,
            dtype="uint16",
            crs=_grid.CRS,
            transform=window.transform,
            nodata=0,
            compress="DEFLATE",
            level=3,
            predictor="STANDARD",
            blocksize=256,
            overview_resampling="average",
        ) as dst:
            dst.write(dn[index], 1)
        sizes[key] = path.stat().st_size
    return sizes


def scene_item(
    window: Window, when: datetime, platform: str, directory: Path, sizes: dict[str, int]
) -> pystac.Item:
    """STAC item of one scene, its assets pointing at the COGs in ``directory``."""
    ring = window.footprint()
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    processed = pystac.utils.datetime_to_str(when + timedelta(hours=6))
    item = pystac.Item(
        id=item_id(when, platform),
        geometry={"type": "Polygon", "coordinates": [ring]},
        bbox=[min(lons), min(lats), max(lons), max(lats)],
        datetime=when,
        properties={
            "created": processed,
            "updated": processed,
            "platform": platform,
            "constellation": "pleiades",
            "instruments": ["hiri"],
            "gsd": RESOLUTION,
            "earthlab:footprint_km2": round(footprint_km2(ring), 6),
        },
        collection=COLLECTION,
    )
    EOExtension.ext(item, add_if_missing=True).cloud_cover = 0.0
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code=_grid.CRS,
        shape=list(SHAPE),
        transform=list(window.transform)[:6],
        bbox=list(window.bounds),
    )
    for key, name, common_name, wavelength, fwhm in BANDS:
        asset = pystac.Asset(
            str(directory / f"{key}.tif"),
            title=f"{common_name.capitalize()} ({name})",
            media_type=pystac.MediaType.COG,
            roles=["data", "reflectance"],
        )
        item.add_asset(key, asset)
        EOExtension.ext(asset, add_if_missing=True).bands = [
            Band.create(
                name=name,
                common_name=common_name,
                center_wavelength=wavelength,
                full_width_half_max=fwhm,
            )
        ]
        RasterExtension.ext(asset, add_if_missing=True).bands = [
            RasterBand.create(
                nodata=0,
                data_type=DataType.UINT16,
                spatial_resolution=RESOLUTION,
                scale=0.0001,
                offset=0.0,
            )
        ]
        FileExtension.ext(asset, add_if_missing=True).size = sizes[key]
    return item


def generate(
    root: Path, grid: _grid.Grid, model: TruthModel, rng: np.random.Generator
) -> tuple[list[pystac.Item], dict]:
    """Write the scenes of the ``dinamis`` centre under ``root``; return items and a record."""
    window = Window.default(grid)
    land_rng, noise_rng = rng.spawn(2)
    land = land_cover(land_rng)
    items, record_dates = [], []
    for index, (when, scene_rng) in enumerate(zip(DATES, noise_rng.spawn(len(DATES)), strict=True)):
        platform = PLATFORMS[index % 2]
        dn, turbidity = render(window, model, land, when, scene_rng)
        directory = root / COLLECTION / item_id(when, platform)
        sizes = write_scene(dn, window, directory)
        items.append(scene_item(window, when, platform, directory, sizes))
        record_dates.append(
            {
                "item_id": item_id(when, platform),
                "datetime": f"{when:%Y-%m-%dT%H:%M:%SZ}",
                "platform": platform,
                "turbidity_range": [
                    round(float(np.nanmin(turbidity)), 3),
                    round(float(np.nanmax(turbidity)), 3),
                ],
            }
        )
    x, y = window.centres()
    record = {
        "centre": CENTRE,
        "collection": COLLECTION,
        "restricted_to_group": GROUP,
        "crs": _grid.CRS,
        "resolution": RESOLUTION,
        "shape": list(SHAPE),
        "transform": list(window.transform)[:6],
        "bounds": list(window.bounds),
        "footprint_km2": round(footprint_km2(window.footprint()), 6),
        "water_fraction": round(float((_grid.lagoon_radius(x, y) <= 1.0).mean()), 4),
        "noise_sigma": NOISE_SIGMA,
        "bands": [{"asset": k, "name": n, "common_name": c} for k, n, c, *_ in BANDS],
        "acquisitions": record_dates,
    }
    return items, record
