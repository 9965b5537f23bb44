"""Lazy datacubes from STAC items.

Quick start
-----------
>>> import datacubes
>>> ds = datacubes.load(items, ["red", "nir", "scl"], mask="clouds")   # lazy, float32
>>> datacubes.describe_bands(items, ["red"])    # which asset and scale/offset, per item

Modules are private; this namespace is the API.
"""

from __future__ import annotations

from datacubes._io import AssetReadWarning
from datacubes._load import describe_bands, load

__all__ = ["AssetReadWarning", "describe_bands", "load"]
