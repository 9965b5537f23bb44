"""The truth model: turbidity and chlorophyll-a as smooth analytic fields of space and time.

Fields are evaluated at any time and place, so the in-situ samples (taken off the overpass) and
the scenes read the same truth. Each field is a seasonal, shore-dependent background modulated by
low-frequency waves, plus Gaussian plumes that drift and come and go (river and bloom events).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from lab.sample import _grid

EPOCH = datetime(2022, 1, 1, tzinfo=UTC)
TURBIDITY_RANGE = (1.0, 40.0)  # FNU
CHLOROPHYLL_RANGE = (5.0, 40.0)  # µg/L


def days(when: datetime) -> float:
    """Days since 2022-01-01T00:00Z (the model's time axis)."""
    return (when - EPOCH).total_seconds() / 86400.0


@dataclass(frozen=True)
class Plume:
    """A drifting Gaussian plume with a Gaussian life in time.

    Attributes
    ----------
    x, y : float
        Centre (UTM metres) at the time of peak.
    vx, vy : float
        Drift (metres a day).
    t_peak, duration : float
        Time of peak and temporal standard deviation (days).
    amplitude, sigma : float
        Peak value (field units) and spatial standard deviation (metres).
    """

    x: float
    y: float
    vx: float
    vy: float
    t_peak: float
    duration: float
    amplitude: float
    sigma: float

    def __call__(self, t: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Value of the plume at time ``t`` (days) and points ``x, y``."""
        dt = t - self.t_peak
        envelope = self.amplitude * np.exp(-0.5 * (dt / self.duration) ** 2)
        d2 = (x - self.x - self.vx * dt) ** 2 + (y - self.y - self.vy * dt) ** 2
        return envelope * np.exp(-0.5 * d2 / self.sigma**2)


@dataclass(frozen=True)
class Wave:
    """A slowly travelling plane wave, for low-frequency spatial modulation."""

    kx: float
    ky: float
    omega: float
    phase: float

    def __call__(self, t: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Value in [-1, 1] at time ``t`` (days) and points ``x, y``."""
        return np.sin(self.kx * x + self.ky * y + self.omega * t + self.phase)


@dataclass(frozen=True)
class TruthModel:
    """Turbidity (FNU) and chlorophyll-a (µg/L) as functions of time and position."""

    turbidity_plumes: tuple[Plume, ...]
    chlorophyll_plumes: tuple[Plume, ...]
    turbidity_waves: tuple[Wave, ...]
    chlorophyll_waves: tuple[Wave, ...]

    @classmethod
    def random(cls, rng: np.random.Generator, t_start: float, t_end: float) -> TruthModel:
        """Draw a model whose events happen between ``t_start`` and ``t_end`` (days)."""
        return cls(
            turbidity_plumes=_plumes(rng, 8, t_start, t_end, (8.0, 40.0), (700.0, 2200.0)),
            chlorophyll_plumes=_plumes(rng, 5, t_start, t_end, (8.0, 30.0), (1500.0, 3500.0)),
            turbidity_waves=_waves(rng, 3),
            chlorophyll_waves=_waves(rng, 3),
        )

    def turbidity(self, t: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Turbidity (FNU) in [1, 40] at time ``t`` (days) and points ``x, y`` (metres)."""
        q = np.minimum(_grid.lagoon_radius(x, y), 1.2)
        season = 1.0 + 0.5 * np.cos(2 * np.pi * (t - 15.0) / 365.25)
        raw = season * (1.5 + 4.0 * q**2) * (1.0 + 0.25 * _mean(self.turbidity_waves, t, x, y))
        raw = raw + sum(p(t, x, y) for p in self.turbidity_plumes)
        lo, hi = TURBIDITY_RANGE
        return lo + (hi - lo) * np.tanh(raw / (hi - lo))

    def chlorophyll_a(self, t: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Chlorophyll-a (µg/L) in [5, 40] at time ``t`` (days) and points ``x, y`` (metres)."""
        q = np.minimum(_grid.lagoon_radius(x, y), 1.2)
        spring = 1.2 * np.exp(-0.5 * ((t - 75.0) / 30.0) ** 2)
        autumn = 0.5 * np.exp(-0.5 * ((t + 80.0) / 20.0) ** 2)
        season = 0.4 + spring + autumn
        raw = (
            season * (4.0 + 6.0 * (1.0 - q)) * (1.0 + 0.3 * _mean(self.chlorophyll_waves, t, x, y))
        )
        raw = raw + sum(p(t, x, y) for p in self.chlorophyll_plumes)
        lo, hi = CHLOROPHYLL_RANGE
        return lo + (hi - lo) * np.tanh(np.maximum(raw, 0.0) / (hi - lo))


def _mean(waves: tuple[Wave, ...], t: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.mean([w(t, x, y) for w in waves], axis=0)


def _plumes(
    rng: np.random.Generator,
    n: int,
    t_start: float,
    t_end: float,
    amplitude: tuple[float, float],
    sigma: tuple[float, float],
) -> tuple[Plume, ...]:
    """Plumes born near the shore (river mouths, shellfish tables) drifting inwards."""
    cx, cy = _grid.to_utm(*_grid.CENTRE_LONLAT)
    axis = np.deg2rad(_grid.AXIS_DEGREES)
    out = []
    for _ in range(n):
        phi = rng.uniform(0, 2 * np.pi)
        radius = rng.uniform(0.4, 0.85)
        u = radius * _grid.SEMI_MAJOR_M * np.cos(phi)
        v = radius * _grid.SEMI_MINOR_M * np.sin(phi)
        x = cx + u * np.cos(axis) - v * np.sin(axis)
        y = cy + u * np.sin(axis) + v * np.cos(axis)
        speed = rng.uniform(15.0, 60.0)
        heading = np.arctan2(cy - y, cx - x) + rng.normal(0, 0.6)
        out.append(
            Plume(
                x=float(x),
                y=float(y),
                vx=float(speed * np.cos(heading)),
                vy=float(speed * np.sin(heading)),
                t_peak=float(rng.uniform(t_start, t_end)),
                duration=float(rng.uniform(10.0, 35.0)),
                amplitude=float(rng.uniform(*amplitude)),
                sigma=float(rng.uniform(*sigma)),
            )
        )
    return tuple(out)


def _waves(rng: np.random.Generator, n: int) -> tuple[Wave, ...]:
    out = []
    for _ in range(n):
        wavelength = rng.uniform(4000.0, 12000.0)
        direction = rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi / wavelength
        out.append(
            Wave(
                kx=float(k * np.cos(direction)),
                ky=float(k * np.sin(direction)),
                omega=float(rng.uniform(-0.05, 0.05)),
                phase=float(rng.uniform(0, 2 * np.pi)),
            )
        )
    return tuple(out)
