"""A THEIA MAJA (MUSCATE) Sentinel-2 L2A product directory as a STAC item.

THEIA's STAC catalogue (``https://api.stac.teledetection.fr``, collection
``sentinel2-l2a-theia``) publishes MAJA products with ESA-style band keys (``B02`` ...
``B12``) pointing at the FRE GeoTIFFs, masks ``CLM_R1``/``CLM_R2``, ``MG2_R1``/``MG2_R2``,
``EDG_R1``/``EDG_R2`` and the metadata file ``MD`` (``MTD_ALL.xml``), each asset with its
projection. Its hrefs need a signed URL and no complete item of it is public, so the lab
cannot test against one; products downloaded from THEIA (zip archives, unpacked) and test
crops are local MUSCATE directories. :func:`maja_item` describes such a directory in that
same dialect, so that :func:`datacubes.load` reads it like an item of THEIA's catalogue.
No ``raster:bands`` scale or nodata is written (THEIA's items are not known to carry them):
the THEIA MAJA band table supplies them (x 10000, nodata -10000: the files have no nodata
tag).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pystac

from datacubes._bands import MUSCATE_PRODUCT, THEIA_MAJA
from lab import ConfigurationError

THEIA_COLLECTION = "sentinel2-l2a-theia"
"""Collection id of MAJA L2A in THEIA's STAC catalogue."""
_PROJ = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
_MASKS = ("CLM", "MG2", "EDG")
_MEANING = {
    "FRE": "flat reflectance (adjacency and slope corrected)",
    "SRE": "surface reflectance (adjacency corrected, no slope correction)",
}


def maja_item(
    product: str | Path,
    *,
    reflectance: Literal["FRE", "SRE"] = "FRE",
    collection: str = THEIA_COLLECTION,
) -> pystac.Item:
    """STAC item of a THEIA MAJA Sentinel-2 L2A product directory (MUSCATE format).

    Parameters
    ----------
    product : str or Path
        The product directory, named like THEIA's products
        (``SENTINEL2A_20170622-104021-457_L2A_T31UFQ_C_V2-2``), holding
        ``<name>_FRE_B4.tif``... and ``MASKS/<name>_CLM_R2.tif``...
    reflectance : {"FRE", "SRE"}
        Which reflectance the band assets point at: ``FRE`` (flat reflectance: adjacency and
        slope corrected, THEIA's catalogue default) or ``SRE`` (surface reflectance,
        adjacency corrected only). Both load as reflectance = DN / 10000, nodata -10000.
    collection : str
        Collection id of the item (THEIA's ``sentinel2-l2a-theia`` by default).

    Returns
    -------
    pystac.Item
        Id = the product name; band assets ``B02``...``B12`` (those present), masks
        ``CLM_R1``, ``CLM_R2``, ``MG2_R1``... (those present), ``MD`` when ``MTD_ALL.xml`` is
        there; ``proj:code``, ``proj:shape`` and ``proj:transform`` per asset; ``platform``,
        ``constellation``, ``grid:code``, ``processing:level``; datetime from the name (UTC).

    Raises
    ------
    lab.ConfigurationError
        The directory is not named like a MAJA L2A product, ``reflectance`` is neither FRE
        nor SRE, or it holds no band file of that reflectance (the message lists what it has).
    """
    import rasterio
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import bbox_union

    folder = Path(product)
    name = folder.name
    match = MUSCATE_PRODUCT.fullmatch(name)
    if match is None:
        raise ConfigurationError(
            f"{folder} is not named like a THEIA MAJA L2A product "
            "(SENTINEL2A_YYYYMMDD-HHMMSS-mmm_L2A_T31UFQ_C_V2-2): give the unpacked product "
            "directory"
        )
    if reflectance not in _MEANING:
        raise ConfigurationError(f"reflectance must be 'FRE' or 'SRE', got {reflectance!r}")
    files: dict[str, tuple[Path, str, str]] = {}
    for info in THEIA_MAJA.bands:
        key = info.keys[0]
        if info.kind == "reflectance":
            number = key[1:].lstrip("0")
            path = folder / f"{name}_{reflectance}_B{number}.tif"
            title = f"{reflectance}_B{number}: {info.long_name}, {_MEANING[reflectance]}"
            files[key] = (path, title, "reflectance")
        else:
            path = folder / "MASKS" / f"{name}_{key}.tif"
            files[key] = (path, f"{key}: {info.long_name}", "cloud")
    present = {key: entry for key, entry in files.items() if entry[0].is_file()}
    if not any(entry[2] == "reflectance" for entry in present.values()):
        found = sorted(p.name for p in folder.rglob("*.tif")) if folder.is_dir() else []
        raise ConfigurationError(
            f"{folder} holds no {reflectance} band file ({name}_{reflectance}_B4.tif...); "
            f"its GeoTIFFs: {', '.join(found) or 'none'}. Ask for the reflectance it has "
            "(reflectance='FRE' or 'SRE') or unpack the whole product"
        )
    day, clock, millis, tile = match.group(1), match.group(2), match.group(3), match.group(4)
    when = datetime.strptime(f"{day}{clock}{millis}", "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
    assets: dict[str, pystac.Asset] = {}
    boxes = []
    crs_code = None
    for key, (path, title, role) in present.items():
        with rasterio.open(path) as src:
            code = src.crs.to_epsg() if src.crs else None
            if code is None:
                raise ConfigurationError(f"{path} has no EPSG CRS: not a MAJA product file")
            crs_code = crs_code or code
            box = GeoBox((src.height, src.width), src.transform, f"EPSG:{code}")
            boxes.append(box.extent.to_crs("EPSG:4326").boundingbox)
            fields = {
                "proj:code": f"EPSG:{code}",
                "proj:shape": [src.height, src.width],
                "proj:transform": list(src.transform)[:6],
            }
        assets[key] = pystac.Asset(
            href=str(path.resolve()),
            media_type=pystac.MediaType.GEOTIFF,
            title=title,
            roles=["data", role],
            extra_fields=fields,
        )
    metadata = folder / f"{name}_MTD_ALL.xml"
    if metadata.is_file():
        assets["MD"] = pystac.Asset(
            href=str(metadata.resolve()),
            media_type=pystac.MediaType.XML,
            title="MTD_ALL.xml product metadata",
            roles=["metadata"],
        )
    west, south, east, north = bbox_union(boxes)
    item = pystac.Item(
        id=name,
        geometry={
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        bbox=[west, south, east, north],
        datetime=when,
        properties={
            "platform": f"sentinel-2{name[9].lower()}",
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "processing:level": "L2A",
            "grid:code": f"MGRS-{tile}",
            "proj:code": f"EPSG:{crs_code}",
        },
        stac_extensions=[_PROJ],
        collection=collection,
    )
    for key, asset in assets.items():
        item.add_asset(key, asset)
    return item
