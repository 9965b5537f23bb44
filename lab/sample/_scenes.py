"""Sentinel-2 L2A-like scenes: acquisition dates, reflectance, clouds, SCL and COG writing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
from scipy import ndimage

from lab._errors import ConfigurationError
from lab.sample import _grid
from lab.sample._fields import TruthModel, days

FIRST_ACQUISITION = datetime(2021, 10, 3, 10, 40, tzinfo=UTC)
DEFAULT_INTERVAL_DAYS = 15
MIN_DATES = 16
MIN_SPAN_DAYS = 183  # over six months
BASELINE_04_00 = datetime(2022, 1, 25, tzinfo=UTC)
MGRS_TILE = "31TEJ"

# Nechad et al. 2009 turbidity at 665 nm and Mishra & Mishra 2012 NDCI polynomial.
NECHAD_A, NECHAD_C = 282.95, 0.1728
NDCI_COEFFS = (14.039, 86.115, 194.325)  # chl = c0 + c1 N + c2 N^2
NOISE_SIGMA = 0.0003  # reflectance

# key, band name, common name, centre wavelength (µm), full width at half maximum (µm)
BANDS = (
    ("blue", "B02", "blue", 0.490, 0.098),
    ("green", "B03", "green", 0.560, 0.045),
    ("red", "B04", "red", 0.665, 0.038),
    ("rededge1", "B05", "rededge", 0.705, 0.019),
    ("nir", "B08", "nir", 0.842, 0.145),
    ("nir08", "B8A", "nir08", 0.865, 0.033),
    ("swir16", "B11", "swir16", 1.610, 0.143),
)
VEGETATION = np.array([0.035, 0.065, 0.040, 0.110, 0.320, 0.330, 0.190])
BARE_SOIL = np.array([0.090, 0.130, 0.170, 0.200, 0.240, 0.250, 0.320])
CLOUD = np.array([0.72, 0.71, 0.70, 0.70, 0.69, 0.68, 0.50])
CIRRUS_ADD = 0.05
SHADOW_FACTOR = 0.35

SCL_NODATA, SCL_SHADOW, SCL_VEGETATION, SCL_SOIL, SCL_WATER = 0, 3, 4, 5, 6
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS = 8, 9, 10


@dataclass(frozen=True)
class Acquisition:
    """One Sentinel-2 overpass of the sample.

    Attributes
    ----------
    index : int
        Position in the time series.
    datetime : datetime.datetime
        Acquisition time (UTC).
    platform : str
        ``sentinel-2a`` or ``sentinel-2b`` (they alternate).
    """

    index: int
    datetime: datetime
    platform: str

    @property
    def baseline(self) -> str:
        """Processing baseline: ``04.00`` from 2022-01-25 on, ``03.01`` before."""
        return "04.00" if self.datetime >= BASELINE_04_00 else "03.01"

    @property
    def dn_offset(self) -> int:
        """Digital-number offset added on writing (1000 from baseline 04.00)."""
        return 1000 if self.baseline == "04.00" else 0

    @property
    def item_id(self) -> str:
        """Earth Search style item id."""
        sat = "S2A" if self.platform == "sentinel-2a" else "S2B"
        return f"{sat}_{MGRS_TILE}_{self.datetime:%Y%m%d}_0_L2A"


def acquisitions(n_dates: int) -> tuple[Acquisition, ...]:
    """Acquisition dates: every 15 days from 2021-10-03 (denser when ``n_dates`` > 16).

    Raises
    ------
    ConfigurationError
        If ``n_dates`` is below 16 or so large that the span would fall under six months.
    """
    if n_dates < MIN_DATES:
        raise ConfigurationError(f"n_dates={n_dates} is too small: the sample needs at least 16")
    interval = DEFAULT_INTERVAL_DAYS * (MIN_DATES - 1) // (n_dates - 1)
    if interval * (n_dates - 1) < MIN_SPAN_DAYS:
        raise ConfigurationError(
            f"n_dates={n_dates} is too large: at most 113 daily-or-slower acquisitions fit "
            "the six-month span; ask for fewer dates"
        )
    step = timedelta(days=interval)
    return tuple(
        Acquisition(i, FIRST_ACQUISITION + i * step, ("sentinel-2a", "sentinel-2b")[i % 2])
        for i in range(n_dates)
    )


def nechad_reflectance(turbidity: np.ndarray) -> np.ndarray:
    """Red water-leaving reflectance giving ``turbidity`` through Nechad 2009 (inverted)."""
    return turbidity / (NECHAD_A + turbidity / NECHAD_C)


def ndci_from_chlorophyll(chl: np.ndarray) -> np.ndarray:
    """NDCI giving ``chl`` through the Mishra & Mishra 2012 polynomial (root N > -0.2216)."""
    c0, c1, c2 = NDCI_COEFFS
    return (-c1 + np.sqrt(c1 * c1 - 4 * c2 * (c0 - chl))) / (2 * c2)


def water_spectrum(turbidity: np.ndarray, chl: np.ndarray) -> np.ndarray:
    """Water-leaving reflectance of the seven bands (band first) from the truth fields."""
    red = nechad_reflectance(turbidity.astype(np.float64))
    n = ndci_from_chlorophyll(chl.astype(np.float64))
    return np.stack(
        [
            0.012 + 0.45 * red,  # blue
            0.018 + 0.75 * red,  # green
            red,
            red * (1 + n) / (1 - n),  # rededge1
            0.002 + 0.18 * red,  # nir
            0.0015 + 0.15 * red,  # nir08
            np.full_like(red, 0.002),  # swir16
        ]
    )


def smooth_noise(rng: np.random.Generator, sigma_px: float) -> np.ndarray:
    """Standardised Gaussian-filtered noise on the grid (drawn at 1/8 resolution)."""
    rows, cols = _grid.SHAPE
    coarse = rng.normal(size=(rows // 8 + 2, cols // 8 + 2))
    coarse = ndimage.gaussian_filter(coarse, sigma_px / 8, mode="wrap")
    field = ndimage.zoom(coarse, 8, order=1)[:rows, :cols]
    return (field - field.mean()) / field.std()


@dataclass(frozen=True)
class Land:
    """Static land cover: reflectance (band first) and SCL class (4 or 5)."""

    rho: np.ndarray
    scl: np.ndarray


def land_cover(rng: np.random.Generator) -> Land:
    """A mix of vegetation and bare soil with some texture."""
    veg = 1 / (1 + np.exp(-2 * smooth_noise(rng, 25)))
    texture = 1 + 0.12 * smooth_noise(rng, 6)
    rho = (veg * VEGETATION[:, None, None] + (1 - veg) * BARE_SOIL[:, None, None]) * texture
    scl = np.where(veg >= 0.5, SCL_VEGETATION, SCL_SOIL).astype(np.uint8)
    return Land(rho, scl)


@dataclass(frozen=True)
class Sky:
    """What is above the scene on one date (drawn up front so every date is independent)."""

    cover: float  # cloud fraction asked for
    cirrus: bool
    wedge: bool  # a nodata wedge on the west edge
    shadow_shift: tuple[int, int]  # rows, cols


def skies(rng: np.random.Generator, n_dates: int) -> tuple[Sky, ...]:
    """Clear, partly and mostly cloudy dates (at least one of each) and a few nodata wedges."""
    kinds = rng.choice(3, size=n_dates, p=[0.35, 0.45, 0.20])  # clear, partly, mostly
    forced = rng.choice(n_dates, size=3, replace=False)
    kinds[forced] = [0, 1, 2]
    wedges = set(rng.choice(n_dates, size=max(2, n_dates // 8), replace=False).tolist())
    out = []
    for i, kind in enumerate(kinds):
        cover = (0.0, rng.uniform(0.1, 0.45), rng.uniform(0.75, 0.95))[kind]
        shift = (-int(rng.integers(15, 36)), -int(rng.integers(5, 16)))
        cirrus = bool(kind == 1 and rng.random() < 0.5)
        out.append(Sky(float(cover), cirrus, i in wedges, shift))
    return tuple(out)


def truth_fields(
    model: TruthModel, grid: _grid.Grid, surf: np.ndarray, when: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """Turbidity and chlorophyll-a on the grid (float32, NaN on land)."""
    t, x, y = days(when), grid.x[None, :], grid.y[:, None]
    land = surf == _grid.LAND
    out = []
    for field in (model.turbidity(t, x, y), model.chlorophyll_a(t, x, y)):
        field = field.astype(np.float32)
        field[land] = np.nan
        out.append(field)
    return out[0], out[1]


@dataclass(frozen=True)
class Scene:
    """One rendered acquisition: DN (band first), SCL, cloud cover (%) and the truth used."""

    acquisition: Acquisition
    dn: np.ndarray
    scl: np.ndarray
    cloud_cover: float
    turbidity: np.ndarray
    chlorophyll_a: np.ndarray
    reflectance: np.ndarray
    """Noise-free reflectance (band first, float32) before quantisation: what another
    processing chain of the same acquisition starts from."""


def render(
    acq: Acquisition,
    sky: Sky,
    grid: _grid.Grid,
    surf: np.ndarray,
    land: Land,
    model: TruthModel,
    rng: np.random.Generator,
) -> Scene:
    """Render the DN and SCL of one acquisition from the truth, the land cover and the sky."""
    turbidity, chl = truth_fields(model, grid, surf, acq.datetime)
    water = surf != _grid.LAND
    rho = land.rho.copy()
    rho[:, water] = water_spectrum(turbidity[water], chl[water])
    scl = np.where(water, SCL_WATER, land.scl).astype(np.uint8)

    if sky.cover > 0:
        field = smooth_noise(rng, 40)
        threshold = np.quantile(field, 1 - sky.cover)
        cloud = field > threshold
        alpha = 0.35 + 0.65 * np.clip((field - threshold) / 0.5, 0, 1)
        shadow = _shift(cloud, sky.shadow_shift) & ~cloud
        rho[:, shadow] *= SHADOW_FACTOR
        scl[shadow] = SCL_SHADOW
        rho[:, cloud] = (1 - alpha[cloud]) * rho[:, cloud] + alpha[cloud] * CLOUD[:, None]
        scl[cloud] = np.where(alpha[cloud] >= 0.7, SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM)
        if sky.cirrus:
            thin = smooth_noise(rng, 60)
            cirrus = (thin > np.quantile(thin, 0.8)) & ~cloud & ~shadow
            rho[:, cirrus] += CIRRUS_ADD
            scl[cirrus] = SCL_CIRRUS

    clean = rho.astype(np.float32)
    rho += rng.normal(0.0, NOISE_SIGMA, size=rho.shape)
    dn = np.clip(np.rint(rho * 10000 + acq.dn_offset), 1, 65535).astype(np.uint16)
    if sky.wedge:
        wedge = _wedge(rng)
        dn[:, wedge] = 0
        scl[wedge] = SCL_NODATA
    valid = np.count_nonzero(scl)
    cloudy = np.count_nonzero(np.isin(scl, (SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS)))
    cover = round(float(100.0 * cloudy / valid), 2)
    return Scene(acq, dn, scl, cover, turbidity, chl, clean)


def _shift(mask: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """Shift a mask by (rows, cols), both negative (towards north-west), filling with False."""
    dr, dc = -shift[0], -shift[1]
    out = np.zeros_like(mask)
    out[: mask.shape[0] - dr, : mask.shape[1] - dc] = mask[dr:, dc:]
    return out


def _wedge(rng: np.random.Generator) -> np.ndarray:
    """A nodata wedge along the west edge of the swath, widest at the top."""
    rows, cols = _grid.SHAPE
    width = rng.uniform(120, 200)
    slope = rng.uniform(0.2, 0.6)
    r, c = np.ogrid[:rows, :cols]
    return c + slope * r < width


def write_cog(
    path: Path, data: np.ndarray, grid: _grid.Grid, *, nodata: int | None, categorical: bool
) -> int:
    """Write one single-band COG on the sample grid; return its size in bytes.

    Horizontal differencing helps smooth reflectances, not categorical classes or bit masks
    (written without it, their overviews by nearest neighbour).
    """
    profile = {
        "driver": "COG",
        "width": _grid.SHAPE[1],
        "height": _grid.SHAPE[0],
        "count": 1,
        "dtype": str(data.dtype),
        "crs": _grid.CRS,
        "transform": grid.transform,
        "compress": "DEFLATE",
        "level": 3,  # four times faster than the default 6 for 3 % more bytes (noisy data)
        "blocksize": 256,
        "predictor": "NO" if categorical else "STANDARD",
        "overview_resampling": "nearest" if categorical else "average",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path.stat().st_size


def write_cogs(scene: Scene, grid: _grid.Grid, directory: Path) -> dict[str, int]:
    """Write one COG per asset; return the size in bytes of each, by asset key."""
    directory.mkdir(parents=True, exist_ok=True)
    sizes = {
        key: write_cog(directory / f"{key}.tif", scene.dn[i], grid, nodata=0, categorical=False)
        for i, (key, *_) in enumerate(BANDS)
    }
    sizes["scl"] = write_cog(directory / "scl.tif", scene.scl, grid, nodata=0, categorical=True)
    return sizes
