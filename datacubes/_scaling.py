"""Scale and offset of each band of each item: how digital numbers become physical values.

odc-stac loads digital numbers (DN) and does not apply ``raster:bands`` scale/offset, and
providers disagree on where (and whether) they write them. The rules, in order, for one band
of one item:

1. Class bands (``scl``, ``qa_pixel``) are not scaled. Beyond the band tables, a band is a
   class band when nothing scales it (no raster extension scale/offset, no rule below), its
   data type is an integer and it says it holds classes: ``classification:*`` fields
   (classification extension) or a quality-style name (asset key or band name with a whole
   token ``qc``, ``qa``, ``quality``, ``state``, ``fmask``, ``mask``, ``flag(s)``, ``scl``:
   MODIS ``sur_refl_qc_500m`` and ``250m_16_days_VI_Quality``, DEA ``oa_fmask``). See :func:`class_band_reason`.
2. Sentinel-2 reflectance (B01..B12, B8A). The scale is the raster extension's, else 1e-4
   (quantification value 10000). Multi-date products (mosaics, composites: see
   :func:`s2_composite`) take the raster extension's offset, else 0: the baseline rules below
   belong to ESA's single-scene L1C/L2A products only. The offset of a scene:

   a. Earth Search ``earthsearch:boa_offset_applied`` (or the older
      ``sentinel:boa_offset_applied``) present: ``true`` means Element84 already removed the
      BOA offset from the COG's DN, so the offset is 0 whatever ``raster:bands`` says (the
      items say -0.1, the collection's ``item_assets`` say 0, and the provider's maintainer
      said the flag is the truth: Element84/earth-search#9). ``false`` means the DN are ESA's,
      so the processing-baseline rule (c) decides.
   b. Raster extension offset present (``raster:bands[0].offset`` or the STAC 1.1 flattened
      ``raster:offset``): used as is.
   c. Processing baseline (``s2:processing_baseline``, ``processing:version`` or
      ``sentinel:processing_baseline``) >= 04.00: -0.1 (BOA_ADD_OFFSET -1000), else 0.
   d. No baseline at all: acquired on or after 2022-01-25 (the day baseline 04.00 went
      operational): -0.1, else 0. Reprocessed Collection-1 products of older dates carry the
      offset too, but their items state their baseline (05.xx), so rule (c) catches them.

3. Other bands: the raster extension's scale/offset, else the sensor's known values (Landsat
   Collection 2 Level-2 surface reflectance 2.75e-05 / -0.2, surface temperature
   0.00341802 / 149; Sentinel-2 AOT and WVP 0.001 / 0), else the product's known values
   (Geoscience Australia DEA ARD ``nbart_*``/``nbar_*`` surface reflectance: x 10000, no
   offset, nodata -999; see :func:`dea_ard`), else no scaling (raw values, with a warning from
   :func:`datacubes.load`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pystac

from datacubes._bands import SENTINEL2, ResolvedBand, asset_bands, key_stem
from lab import ConfigurationError

S2_SCALE = 1e-4
"""Sentinel-2 reflectance = DN / 10000 (+ offset)."""
S2_BOA_OFFSET = -0.1
"""Sentinel-2 BOA_ADD_OFFSET (-1000 DN) times the scale, from processing baseline 04.00 on."""
S2_OFFSET_BASELINE = 4.0
"""First processing baseline whose DN carry the +1000 offset."""
S2_OFFSET_DATE = datetime(2022, 1, 25, tzinfo=UTC)
"""Day processing baseline 04.00 became operational (rule d for items without a baseline)."""

DEA_ARD_SCALE = 1e-4
"""DEA ARD surface reflectance = DN / 10000, no offset."""
DEA_ARD_NODATA = -999.0
"""DEA ARD surface reflectance nodata."""
# Geoscience Australia, DEA Knowledge Hub, "DEA Surface Reflectance (Landsat 8 OLI-TIRS)"
# (https://knowledge.dea.ga.gov.au/data/product/dea-surface-reflectance-landsat-8-oli-tirs/,
# Specifications, bands nbart_*/nbar_*: int16, nodata -999, surface reflectance scaled by
# 10000, valid 0-10000, no offset); the Landsat 5/7 and Sentinel-2 ARD pages say the same.
_DEA_ARD_BANDS = re.compile(r"^nbart?_")
_DEA_ARD_PRODUCT = re.compile(r"^ga_(ls\d[a-z]*|s2[a-z]*)_ard_", re.IGNORECASE)

_BASELINE_KEYS = ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline")
_FLAG_KEYS = ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied")


@dataclass(frozen=True)
class Scaling:
    """Physical value = DN * scale + offset, and the rule that chose the numbers."""

    scale: float
    """Multiplicative factor."""
    offset: float
    """Additive term, applied after the scale."""
    rule: str
    """Which metadata decided, in words (shown by :func:`datacubes.describe_bands`)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.scale, float) and isinstance(self.offset, float)):
            raise ConfigurationError(
                f"scale and offset must be floats, got {self.scale!r} and {self.offset!r}"
            )


def _first_band(asset: pystac.Asset) -> dict[str, Any]:
    raster = asset.extra_fields.get("raster:bands") or []
    if raster and isinstance(raster[0], dict):
        return raster[0]
    return {}


def _number(value: Any, what: str, where: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what} of {where} is not a number: {value!r}") from None


def raster_scaling(asset: pystac.Asset, where: str = "asset") -> tuple[float | None, float | None]:
    """Scale and offset written in the raster extension (v1 ``raster:bands`` or STAC 1.1 flat)."""
    band = _first_band(asset)
    fields = asset.extra_fields
    bands = asset_bands(asset)
    flat = bands[0] if len(bands) == 1 else {}
    scale = band.get("scale", fields.get("raster:scale", flat.get("raster:scale")))
    offset = band.get("offset", fields.get("raster:offset", flat.get("raster:offset")))
    return _number(scale, "scale", where), _number(offset, "offset", where)


def asset_nodata(asset: pystac.Asset, default: float | None) -> float | None:
    """Nodata value: raster extension, STAC 1.1 common metadata, band object, else ``default``."""
    bands = asset_bands(asset)
    for source in (_first_band(asset), asset.extra_fields, bands[0] if bands else {}):
        if source.get("nodata") is not None:
            value = source["nodata"]
            return float("nan") if str(value).lower() == "nan" else float(value)
    return None if default is None else float(default)


def asset_data_type(asset: pystac.Asset, default: str | None) -> str | None:
    """Pixel data type: raster extension, STAC 1.1 common metadata, band object, else default."""
    bands = asset_bands(asset)
    for source in (_first_band(asset), asset.extra_fields, bands[0] if bands else {}):
        if source.get("data_type"):
            return str(source["data_type"])
    return default


def processing_baseline(item: pystac.Item) -> tuple[float, str] | None:
    """Sentinel-2 processing baseline as a number (``"04.00"`` -> 4.0) and the property used."""
    for key in _BASELINE_KEYS:
        value = item.properties.get(key)
        if value is None:
            continue
        text = str(value).strip()
        match = re.fullmatch(r"N?(\d{1,2})\.(\d{1,2})", text) or re.fullmatch(
            r"N?(\d{2})(\d{2})", text
        )
        if match is None:
            raise ConfigurationError(
                f"item {item.id!r}: {key}={value!r} is not a processing baseline like '04.00'; "
                "fix the item or remove the property so that the acquisition date decides"
            )
        return int(match.group(1)) + int(match.group(2)) / 100, key
    return None


def _acquired(item: pystac.Item) -> datetime:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise ConfigurationError(f"item {item.id!r} has neither datetime nor start_datetime")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def s2_offset(item: pystac.Item) -> tuple[float, str]:
    """Sentinel-2 reflectance offset from the processing baseline, else the acquisition date."""
    baseline = processing_baseline(item)
    if baseline is not None:
        number, key = baseline
        if number >= S2_OFFSET_BASELINE:
            return S2_BOA_OFFSET, f"{key} {number:05.2f} >= 04.00: BOA offset -0.1"
        return 0.0, f"{key} {number:05.2f} < 04.00: no BOA offset"
    day = _acquired(item).date().isoformat()
    if _acquired(item) >= S2_OFFSET_DATE:
        return S2_BOA_OFFSET, f"no processing baseline, acquired {day} >= 2022-01-25: offset -0.1"
    return 0.0, f"no processing baseline, acquired {day} < 2022-01-25: no offset"


_SCENE_TYPES = ("S2MSI1C", "S2MSI2A", "S2MSI2AP", "S2MSI2B")
_COMPOSITE_WORDS = ("mosaic", "composite", "median", "l3", "quarterly", "annual")


def s2_composite(item: pystac.Item) -> str | None:
    """What makes an item a Sentinel-2 multi-date product rather than an ESA L1C/L2A scene.

    The processing-baseline offset (BOA_ADD_OFFSET, RADIO_ADD_OFFSET) belongs to ESA's
    single-scene L1C and L2A products; mosaics and composites (CDSE
    ``sentinel-2-global-mosaics``, product type ``S2MSI_L3__MCQ``: reflectance x 10000 with no
    offset, per the CDSE Sentinel-2 mosaic documentation) hold their own values. Decided by
    ``product:type``/``s2:product_type``, ``processing:level`` and the collection id, never by
    band names. ``None`` for a scene (or an item that says nothing of its product).
    """
    props = item.properties
    for key in ("product:type", "s2:product_type"):
        value = str(props.get(key) or "").upper()
        if value in _SCENE_TYPES:
            return None
        if value and ("L3" in value or "MOSAIC" in value or value.startswith("S2MSI_L3")):
            return f"{key} {value}"
    level = str(props.get("processing:level") or "").upper()
    if level.startswith(("L3", "L4")):
        return f"processing:level {level}"
    collection = (item.collection_id or "").lower()
    if any(word in re.split(r"[^a-z0-9]+", collection) for word in _COMPOSITE_WORDS):
        return f"collection {collection}"
    if "mosaic" in collection or "composite" in collection:
        return f"collection {collection}"
    return None


def dea_ard(item: pystac.Item) -> str | None:
    """What makes an item a Geoscience Australia DEA Analysis Ready Data product, or ``None``.

    Decided by the product metadata DEA writes (``odc:product`` ``ga_ls8c_ard_3``,
    ``ga_s2am_ard_3``...; ``odc:producer`` ``ga.gov.au`` with ``odc:product_family`` ``ard``)
    or the collection id, never by band names alone: ``nbart_*`` elsewhere are not scaled.
    """
    props = item.properties
    for value in (props.get("odc:product"), item.collection_id):
        if value and _DEA_ARD_PRODUCT.match(str(value)):
            return f"product {value}"
    if props.get("odc:producer") == "ga.gov.au" and props.get("odc:product_family") == "ard":
        return "odc:producer ga.gov.au, odc:product_family ard"
    return None


def dea_ard_reflectance(item: pystac.Item, asset_key: str) -> str | None:
    """Why ``asset_key`` of ``item`` is DEA ARD surface reflectance (``None`` if it is not)."""
    if not _DEA_ARD_BANDS.match(asset_key.lower()):
        return None
    return dea_ard(item)


def _earthsearch_flag(item: pystac.Item) -> tuple[bool, str] | None:
    for key in _FLAG_KEYS:
        value = item.properties.get(key)
        if isinstance(value, bool):
            return value, key
    return None


_QA_TOKENS = frozenset({"qc", "qa", "quality", "state", "fmask", "mask", "flag", "flags", "scl"})
"""Whole name tokens that mark a quality/class band (``sur_refl_qc_500m``, ``oa_fmask``,
MODIS VI ``250m_16_days_VI_Quality``)."""
RAW_RULE = "no scale/offset in the metadata: raw values"
"""Rule of a band nothing scales (:func:`scaling_for`'s last resort)."""


def class_band_reason(asset: pystac.Asset, asset_key: str) -> str | None:
    """Why an asset looks like a class/quality band, from its metadata alone, or ``None``.

    ``classification:*`` fields (classification extension, on the asset, its first
    ``raster:bands`` entry or its single band object), else a quality-style token in the
    asset key or band name, matched as a whole token (``sur_refl_qc_500m`` and ``oa_fmask``
    are, ``qcolour`` is not). The caller also requires an integer data type and no scale.
    """
    bands = asset_bands(asset)
    sources = [asset.extra_fields, _first_band(asset), bands[0] if len(bands) == 1 else {}]
    for source in sources:
        fields = sorted(k for k in source if k.startswith("classification:"))
        if fields:
            return f"classification extension ({fields[0]})"
    names = [key_stem(asset_key)]
    if len(bands) == 1 and bands[0].get("name"):
        names.append(str(bands[0]["name"]))
    for name in names:
        tokens = set(re.split(r"[^a-z0-9]+", name.lower())) & _QA_TOKENS
        if tokens:
            return f"quality name {name!r} ({', '.join(sorted(tokens))})"
    return None


def scaling_for(item: pystac.Item, band: ResolvedBand) -> Scaling | None:
    """Scale and offset of one resolved band of one item; ``None`` for class bands."""
    info = band.info
    if info is not None and info.kind == "classes":
        return None
    asset = item.assets[band.asset_key]
    where = f"item {item.id!r} asset {band.asset_key!r}"
    r_scale, r_offset = raster_scaling(asset, where)
    if band.family is SENTINEL2 and info is not None and info.kind == "reflectance":
        scale = r_scale if r_scale is not None else S2_SCALE
        product = s2_composite(item)
        if product is not None:
            offset = r_offset if r_offset is not None else 0.0
            source = "raster extension" if r_offset is not None else "no BOA offset"
            return Scaling(scale, offset, f"Sentinel-2 composite ({product}): {source}")
        flag = _earthsearch_flag(item)
        if flag is not None and flag[0]:
            ignored = f" (item's raster offset {r_offset:g} ignored)" if r_offset else ""
            return Scaling(scale, 0.0, f"{flag[1]}=true: DN already harmonised{ignored}")
        if flag is not None:
            offset, why = s2_offset(item)
            return Scaling(scale, offset, f"{flag[1]}=false; {why}")
        if r_offset is not None:
            return Scaling(scale, r_offset, "raster extension")
        offset, why = s2_offset(item)
        return Scaling(scale, offset, why)
    if r_scale is not None or r_offset is not None:
        return Scaling(
            r_scale if r_scale is not None else 1.0,
            r_offset if r_offset is not None else 0.0,
            "raster extension",
        )
    if info is not None and info.scale is not None and band.family is not None:
        offset = info.offset if info.offset is not None else 0.0
        return Scaling(info.scale, offset, f"known {band.family.name} values")
    product = dea_ard_reflectance(item, band.asset_key)
    if product is not None:
        return Scaling(DEA_ARD_SCALE, 0.0, f"DEA ARD surface reflectance ({product}): x 10000")
    return Scaling(1.0, 0.0, RAW_RULE)
