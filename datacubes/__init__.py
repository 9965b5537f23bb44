"""Lazy datacubes from STAC items.

Quick start
-----------
>>> import datacubes
>>> ds = datacubes.load(items, ["red", "nir", "scl"], mask="clouds")   # lazy, float32
>>> datacubes.describe_bands(items, ["red"])    # which asset and scale/offset, per item

Modules are private; this namespace is the API.
"""

from __future__ import annotations

from datacubes._access import cube_info, list_cubes, open_cube
from datacubes._build import BuildReport, IncompleteBuildError, TargetConflictError, build
from datacubes._errors import AssetMetadataError, BandNotFoundError, EmptyLoadError
from datacubes._gridded import (
    CurvilinearGridError,
    GriddedFormatError,
    NoGriddedAssetError,
    load_gridded,
    write_references,
)
from datacubes._intake import intake_catalog, write_intake_catalog
from datacubes._io import AssetReadWarning
from datacubes._load import describe_bands, load
from datacubes._maja import maja_item
from datacubes._spec import CubeSpec, SpecError
from datacubes._spec_read import read_spec, shipped_specs

__all__ = [
    "AssetMetadataError",
    "AssetReadWarning",
    "BandNotFoundError",
    "BuildReport",
    "CubeSpec",
    "CurvilinearGridError",
    "EmptyLoadError",
    "GriddedFormatError",
    "IncompleteBuildError",
    "NoGriddedAssetError",
    "SpecError",
    "TargetConflictError",
    "build",
    "cube_info",
    "describe_bands",
    "intake_catalog",
    "list_cubes",
    "load",
    "load_gridded",
    "maja_item",
    "open_cube",
    "read_spec",
    "shipped_specs",
    "write_intake_catalog",
    "write_references",
]
