"""THEIA MAJA-format (MUSCATE) Sentinel-2 L2A products of the sample's scenes.

The same acquisitions as the Sen2Cor-like items, as THEIA distributes MAJA products: one
directory per product named like THEIA's (``SENTINEL2A_20211003-104000-000_L2A_T31TEJ_C_V3-1``),
flat reflectance ``<name>_FRE_B<n>.tif`` (int16, reflectance x 10000, -10000 outside the
swath, no nodata tag: MAJA's own files have none) and bit masks ``MASKS/<name>_CLM_R2.tif``,
``_MG2_R2.tif``, ``_EDG_R2.tif``. The sample has one 20 m grid, so every band and mask is
at 20 m and only the ``_R2`` masks exist (a real product has its 10 m bands and ``_R1``
masks beside them). Items follow THEIA's STAC catalogue (collection ``sentinel2-l2a-theia``,
ESA-style band keys ``B02``... pointing at the FRE files, mask keys ``CLM_R2``..., projection
per asset, no raster extension: the loader's MAJA band table supplies scale and nodata; file
sizes, as the sample's other items, so that a cluster goes where the bytes are).

Masks agree with the Sen2Cor-like scene classification of the same scene (bit order of
CESBIO's MAJA format):

- CLM: medium clouds bits 0, 1, 2 (summary, all clouds, mono-temporal); high clouds also
  bit 3 (multi-temporal); cirrus bits 4 and 7 (thinnest, 1.38 um); cloud shadows bits 0 and 5;
- MG2: bit 0 water wherever the surface is water inside the swath, clouds or not; bit 1
  clouds; bit 3 cloud shadows;
- EDG: 1 outside the swath (the scenes' nodata wedges), else 0.

The reflectance is the scene's noise-free reflectance plus noise of the same size drawn from
the products' own random stream: another processing chain, same truth.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pystac
from pystac.extensions.eo import EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension

from lab.sample import _grid, _scenes, _stac

COLLECTION = "sentinel2-l2a-theia"
TITLE = "Sentinel-2 L2A processed by MAJA, THEIA format: flat reflectance and bit masks (sample)"
VERSION = "V3-1"
NODATA = -10000
CLOUD_MEDIUM_BITS = 0b0000_0111
CLOUD_HIGH_BITS = 0b0000_1111
CIRRUS_BITS = 0b1001_0000
SHADOW_BITS = 0b0010_0001
MG2_WATER, MG2_CLOUDS, MG2_SHADOWS = 0b0001, 0b0010, 0b1000


def product_name(acq: _scenes.Acquisition) -> str:
    """THEIA product name of an acquisition (milliseconds 000: the sample's times are whole)."""
    unit = "A" if acq.platform == "sentinel-2a" else "B"
    return f"SENTINEL2{unit}_{acq.datetime:%Y%m%d-%H%M%S}-000_L2A_T{_scenes.MGRS_TILE}_C_{VERSION}"


def masks(scl: np.ndarray, surf: np.ndarray) -> dict[str, np.ndarray]:
    """CLM, MG2 and EDG (uint8) equivalent to a Sen2Cor-like SCL on the sample's surface."""
    inside = scl != _scenes.SCL_NODATA
    clouds = np.isin(scl, (_scenes.SCL_CLOUD_MEDIUM, _scenes.SCL_CLOUD_HIGH, _scenes.SCL_CIRRUS))
    shadows = scl == _scenes.SCL_SHADOW
    clm = np.zeros(scl.shape, np.uint8)
    clm[scl == _scenes.SCL_CLOUD_MEDIUM] = CLOUD_MEDIUM_BITS
    clm[scl == _scenes.SCL_CLOUD_HIGH] = CLOUD_HIGH_BITS
    clm[scl == _scenes.SCL_CIRRUS] = CIRRUS_BITS
    clm[shadows] = SHADOW_BITS
    mg2 = np.zeros(scl.shape, np.uint8)
    mg2[(surf != _grid.LAND) & inside] |= MG2_WATER
    mg2[clouds] |= MG2_CLOUDS
    mg2[shadows] |= MG2_SHADOWS
    return {"CLM": clm, "MG2": mg2, "EDG": (~inside).astype(np.uint8)}


def write_product(
    scene: _scenes.Scene,
    grid: _grid.Grid,
    surf: np.ndarray,
    collection_dir: Path,
    rng: np.random.Generator,
) -> pystac.Item:
    """Write one MAJA-format product of ``scene`` and return its STAC item."""
    acq = scene.acquisition
    name = product_name(acq)
    folder = collection_dir / name
    (folder / "MASKS").mkdir(parents=True, exist_ok=True)
    rho = scene.reflectance + rng.normal(0.0, _scenes.NOISE_SIGMA, size=scene.reflectance.shape)
    fre = np.rint(rho * 10000).astype(np.int16)
    fre[:, scene.scl == _scenes.SCL_NODATA] = NODATA
    files: list[tuple[str, Path, str, str]] = []
    for i, (_key, band, common_name, *_rest) in enumerate(_scenes.BANDS):
        number = band[1:].lstrip("0")
        path = folder / f"{name}_FRE_B{number}.tif"
        _scenes.write_cog(path, fre[i], grid, nodata=None, categorical=False)  # no tag: MAJA's
        files.append((band, path, f"FRE_B{number}: {common_name}, flat reflectance", "reflectance"))
    for kind, data in masks(scene.scl, surf).items():
        path = folder / "MASKS" / f"{name}_{kind}_R2.tif"
        _scenes.write_cog(path, data, grid, nodata=None, categorical=True)
        files.append((f"{kind}_R2", path, f"{kind}_R2: {kind} bit mask at 20 m", "cloud"))
    return _item(scene, grid, name, files)


def _item(
    scene: _scenes.Scene, grid: _grid.Grid, name: str, files: list[tuple[str, Path, str, str]]
) -> pystac.Item:
    acq = scene.acquisition
    geometry, bbox = _stac.footprint(grid)
    produced = pystac.utils.datetime_to_str(acq.datetime + timedelta(days=2))
    item = pystac.Item(
        id=name,
        geometry=geometry,
        bbox=bbox,
        datetime=acq.datetime,
        properties={
            "created": produced,
            "updated": produced,
            "platform": acq.platform,
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "gsd": _grid.RESOLUTION,
            "processing:level": "L2A",
            "grid:code": f"MGRS-{_scenes.MGRS_TILE}",
        },
        collection=COLLECTION,
    )
    EOExtension.ext(item, add_if_missing=True).cloud_cover = scene.cloud_cover
    ProjectionExtension.ext(item, add_if_missing=True).apply(code=_grid.CRS)
    for key, path, title, role in files:
        asset = pystac.Asset(
            str(path), title=title, media_type=pystac.MediaType.COG, roles=["data", role]
        )
        item.add_asset(key, asset)
        ProjectionExtension.ext(asset).apply(
            code=_grid.CRS, shape=list(_grid.SHAPE), transform=list(grid.transform)[:6]
        )
        # sizes tell lab.cluster(near=...) where the bytes are, as for the Sen2Cor items
        FileExtension.ext(asset, add_if_missing=True).size = path.stat().st_size
    return item
