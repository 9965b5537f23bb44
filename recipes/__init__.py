"""Multi-source science recipes of the Earth Analytics Lab.

Modules
-------
water_quality
    Water masks, spectral indices and water-quality algorithms on reflectance cubes.
insitu
    Readers that turn in-situ files of several formats into one tidy table.
matchup
    Satellite / in-situ matchups following Bailey & Werdell (2006), on scenes or on the grid
    of a gridded product.
intercomparison
    A gridded product against a finer satellite retrieval averaged over its cells.
validation
    Validation statistics and regional recalibration of algorithms.
crossing
    The crossings end to end: Sentinel-2 water quality against the stations, and a gridded
    ocean-colour product against the stations and Sentinel-2.
maps
    Composite water-quality maps (turbidity, chlorophyll-a, SPM) as Cloud-Optimised GeoTIFFs.

Errors
------
InSituFormatError
    An in-situ file cannot be read as the format asked for (a :class:`lab.EarthLabError`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from recipes._errors import InSituFormatError

_MODULES = (
    "crossing",
    "insitu",
    "intercomparison",
    "maps",
    "matchup",
    "validation",
    "water_quality",
)
__all__ = [
    "InSituFormatError",
    "crossing",
    "insitu",
    "intercomparison",
    "maps",
    "matchup",
    "validation",
    "water_quality",
]


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES:
        module = importlib.import_module(f"recipes.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'recipes' has no attribute {name!r}")
