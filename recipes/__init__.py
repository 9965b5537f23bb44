"""Multi-source science recipes of the Earth Analytics Lab.

Modules
-------
water_quality
    Water masks, spectral indices and water-quality algorithms on reflectance cubes.
insitu
    Readers that turn in-situ files of several formats into one tidy table.
matchup
    Satellite / in-situ matchups following Bailey & Werdell (2006).
validation
    Validation statistics and regional recalibration of algorithms.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["insitu", "matchup", "validation", "water_quality"]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        module = importlib.import_module(f"recipes.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'recipes' has no attribute {name!r}")
