"""Band names: which asset of an item holds the band a user asks for.

Users ask for bands by common name (``red``, ``nir``, ``scl``) or by provider key (``B04``,
``B04_10m``, ``SCL``, ``SR_B4``); providers name their assets differently (Earth Search v1 uses
common names, Planetary Computer and Earth Search v0 ``B04``, CDSE ``B04_10m``/``B04_20m``...).
This module holds the alias tables of the sensors the lab knows (Sentinel-2 MSI, Landsat
Collection 2 Level-2) and resolves a requested name to one asset key per item.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pystac

from datacubes._errors import BandNotFoundError
from lab import ConfigurationError

BandKind = Literal["reflectance", "classes", "physical"]

SCL_CLASSES: tuple[str, ...] = (
    "no_data",
    "saturated_or_defective",
    "dark_area_pixels",
    "cloud_shadows",
    "vegetation",
    "not_vegetated",
    "water",
    "unclassified",
    "cloud_medium_probability",
    "cloud_high_probability",
    "thin_cirrus",
    "snow",
)
"""Meaning of each Sentinel-2 L2A scene classification value, in value order (0..11)."""


@dataclass(frozen=True)
class BandInfo:
    """What the lab knows about one band of one sensor."""

    name: str
    """Canonical common name: the name of the output variable."""
    kind: BandKind
    """``reflectance`` and ``physical`` load as scaled float32; ``classes`` stay integers."""
    keys: tuple[str, ...]
    """Provider keys (asset keys or band names) that mean this band, e.g. ``("B04",)``."""
    long_name: str
    """Human description, used for the CF ``long_name`` attribute."""
    wavelength_nm: int | None = None
    """Central wavelength in nanometres, for reflectance bands."""
    units: str | None = "1"
    """CF units of the scaled values (``None`` for class bands)."""
    standard_name: str | None = None
    """CF standard name of the scaled values, when one exists."""
    scale: float | None = None
    """Scale factor to use when the item's metadata gives none."""
    offset: float | None = None
    """Offset to use when the item's metadata gives none (S2 reflectance: see ``_scaling``)."""
    data_type: str | None = None
    """Pixel data type to assume when the metadata gives none."""
    nodata: int | None = None
    """Nodata value to assume when the metadata gives none."""
    flag_values: tuple[int, ...] | None = None
    """CF ``flag_values`` of a class band."""
    flag_meanings: str | None = None
    """CF ``flag_meanings`` of a class band."""

    def __post_init__(self) -> None:
        if not self.name or not self.keys:
            raise ConfigurationError(f"band table entry {self!r} needs a name and keys")


def _refl(name: str, key: str, nm: int, label: str) -> BandInfo:
    return BandInfo(
        name=name,
        kind="reflectance",
        keys=(key,),
        long_name=f"{label} reflectance ({key}, {nm} nm)",
        wavelength_nm=nm,
        data_type="uint16",
        nodata=0,
    )


@dataclass(frozen=True)
class Family:
    """A sensor family with its alias table."""

    name: str
    """Short name used in messages (``sentinel-2``, ``landsat-c2-l2``)."""
    bands: tuple[BandInfo, ...]
    """The bands of the family."""
    resolution_suffixes: bool = False
    """Whether providers may append ``_10m``/``_20m``/``_60m`` to keys (CDSE)."""
    _index: Mapping[str, BandInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, BandInfo] = {}
        for band in self.bands:
            for alias in (band.name, *band.keys):
                index[alias.lower()] = band
        object.__setattr__(self, "_index", index)

    def lookup(self, name: str) -> BandInfo | None:
        """Band of this family called ``name`` (common name or provider key, any case).

        A file extension left in an asset key (``SR_B4.TIF``) is ignored.
        """
        name = key_stem(name)
        found = self._index.get(name.lower())
        if found is None and self.resolution_suffixes:
            found = self._index.get(_strip_suffix(name).lower())
        return found


# Sentinel-2 MSI (L1C and L2A). Common names follow the STAC eo extension; B8A is ``nir08``.
SENTINEL2 = Family(
    name="sentinel-2",
    resolution_suffixes=True,
    bands=(
        _refl("coastal", "B01", 443, "coastal aerosol"),
        _refl("blue", "B02", 490, "blue"),
        _refl("green", "B03", 560, "green"),
        _refl("red", "B04", 665, "red"),
        _refl("rededge1", "B05", 705, "red edge 1"),
        _refl("rededge2", "B06", 740, "red edge 2"),
        _refl("rededge3", "B07", 783, "red edge 3"),
        _refl("nir", "B08", 842, "near infrared"),
        _refl("nir08", "B8A", 865, "narrow near infrared"),
        _refl("nir09", "B09", 945, "water vapour"),
        _refl("cirrus", "B10", 1375, "cirrus"),
        _refl("swir16", "B11", 1610, "short-wave infrared 1"),
        _refl("swir22", "B12", 2190, "short-wave infrared 2"),
        BandInfo(
            name="scl",
            kind="classes",
            keys=("SCL",),
            long_name="Sentinel-2 L2A scene classification (SCL)",
            units=None,
            data_type="uint8",
            nodata=0,
            flag_values=tuple(range(len(SCL_CLASSES))),
            flag_meanings=" ".join(SCL_CLASSES),
        ),
        BandInfo(
            name="aot",
            kind="physical",
            keys=("AOT",),
            long_name="aerosol optical thickness at 550 nm (AOT)",
            standard_name="atmosphere_optical_thickness_due_to_ambient_aerosol_particles",
            scale=0.001,
            offset=0.0,
            data_type="uint16",
            nodata=0,
        ),
        BandInfo(
            name="wvp",
            kind="physical",
            keys=("WVP",),
            long_name="water vapour column (WVP)",
            units="cm",
            standard_name="lwe_thickness_of_atmosphere_mass_content_of_water_vapor",
            scale=0.001,
            offset=0.0,
            data_type="uint16",
            nodata=0,
        ),
    ),
)

_LANDSAT_SR_SCALE, _LANDSAT_SR_OFFSET = 2.75e-05, -0.2
_LANDSAT_ST = BandInfo(
    name="lwir11",
    kind="physical",
    keys=("ST_B10",),
    long_name="surface temperature (ST_B10)",
    units="K",
    standard_name="surface_temperature",
    scale=0.00341802,
    offset=149.0,
    data_type="uint16",
    nodata=0,
)
_LANDSAT_QA = BandInfo(
    name="qa_pixel",
    kind="classes",
    keys=("QA_PIXEL",),
    long_name="Landsat pixel quality bit flags (QA_PIXEL)",
    units=None,
    data_type="uint16",
    nodata=1,
)


def _landsat_sr(name: str, key: str, nm: int, label: str) -> BandInfo:
    return replace(_refl(name, key, nm, label), scale=_LANDSAT_SR_SCALE, offset=_LANDSAT_SR_OFFSET)


# Landsat 8/9 OLI Collection 2 Level-2 (USGS product keys SR_B1..SR_B7, ST_B10, QA_PIXEL).
LANDSAT_OLI = Family(
    name="landsat-c2-l2 (OLI)",
    bands=(
        _landsat_sr("coastal", "SR_B1", 443, "coastal aerosol"),
        _landsat_sr("blue", "SR_B2", 482, "blue"),
        _landsat_sr("green", "SR_B3", 561, "green"),
        _landsat_sr("red", "SR_B4", 655, "red"),
        _landsat_sr("nir08", "SR_B5", 865, "near infrared"),
        _landsat_sr("swir16", "SR_B6", 1609, "short-wave infrared 1"),
        _landsat_sr("swir22", "SR_B7", 2201, "short-wave infrared 2"),
        _LANDSAT_ST,
        _LANDSAT_QA,
    ),
)

# Landsat 4-7 TM/ETM+ Collection 2 Level-2: the same common names sit on other band numbers.
LANDSAT_TM = Family(
    name="landsat-c2-l2 (TM/ETM+)",
    bands=(
        _landsat_sr("blue", "SR_B1", 485, "blue"),
        _landsat_sr("green", "SR_B2", 560, "green"),
        _landsat_sr("red", "SR_B3", 660, "red"),
        _landsat_sr("nir08", "SR_B4", 835, "near infrared"),
        _landsat_sr("swir16", "SR_B5", 1650, "short-wave infrared 1"),
        _landsat_sr("swir22", "SR_B7", 2220, "short-wave infrared 2"),
        replace(_LANDSAT_ST, keys=("ST_B6",), long_name="surface temperature (ST_B6)"),
        _LANDSAT_QA,
    ),
)


def _maja(name: str, key: str, nm: int, label: str) -> BandInfo:
    return BandInfo(
        name=name,
        kind="reflectance",
        keys=(key,),
        long_name=f"{label} reflectance ({key}, {nm} nm, THEIA MAJA)",
        wavelength_nm=nm,
        scale=1e-4,
        offset=0.0,
        data_type="int16",
        nodata=-10000,
    )


def _maja_mask(name: str, label: str) -> BandInfo:
    return BandInfo(
        name=name.lower(),
        kind="classes",
        keys=(name,),
        long_name=f"THEIA MAJA {label} ({name})",
        units=None,
        data_type="uint8",
    )


# THEIA Sentinel-2 L2A processed by MAJA (MUSCATE format), as THEIA's STAC catalogue
# (collection ``sentinel2-l2a-theia``) and simplestac name the assets: ESA-style band keys
# B02..B12 holding the FRE (or SRE) GeoTIFFs, int16 reflectance x 10000 with no offset
# (REFLECTANCE_QUANTIFICATION_VALUE 10000), nodata -10000 (MTD_ALL Special_Values_List; the
# files carry no nodata tag), no 60 m bands; masks CLM, MG2 and EDG at R1 (10 m) and R2 (20 m).
THEIA_MAJA = Family(
    name="theia-maja (Sentinel-2 L2A MUSCATE)",
    bands=(
        _maja("blue", "B02", 490, "blue"),
        _maja("green", "B03", 560, "green"),
        _maja("red", "B04", 665, "red"),
        _maja("rededge1", "B05", 705, "red edge 1"),
        _maja("rededge2", "B06", 740, "red edge 2"),
        _maja("rededge3", "B07", 783, "red edge 3"),
        _maja("nir", "B08", 842, "near infrared"),
        _maja("nir08", "B8A", 865, "narrow near infrared"),
        _maja("swir16", "B11", 1610, "short-wave infrared 1"),
        _maja("swir22", "B12", 2190, "short-wave infrared 2"),
        _maja_mask("CLM_R1", "cloud mask bits at 10 m"),
        _maja_mask("CLM_R2", "cloud mask bits at 20 m"),
        _maja_mask("MG2_R1", "geophysical mask bits at 10 m"),
        _maja_mask("MG2_R2", "geophysical mask bits at 20 m"),
        _maja_mask("EDG_R1", "edge mask at 10 m"),
        _maja_mask("EDG_R2", "edge mask at 20 m"),
    ),
)

MUSCATE_PRODUCT = re.compile(
    r"SENTINEL2[A-D]_(\d{8})-(\d{6})-(\d{3})_L2A_T([0-9A-Z]{5})_([A-Z])_V(\d+)-(\d+)"
)
"""THEIA MUSCATE L2A product name (simplestac's pattern; the last groups are the version)."""
_MAJA_COLLECTIONS = frozenset(
    {"sentinel2-l2a-theia", "theia_reflectance_sentinel2_l2a", "muscate_sentinel2_sentinel2_l2a"}
)
"""Collection ids of THEIA MAJA L2A: THEIA's STAC (Data Terra/INRAE), CNES GEODES, old GEODES."""


def is_maja(item: pystac.Item) -> bool:
    """Whether an item is a THEIA MAJA Sentinel-2 L2A product (collection id or product name)."""
    collection = (item.collection_id or "").lower()
    return (
        collection in _MAJA_COLLECTIONS
        or "maja" in re.split(r"[^a-z0-9]+", collection)
        or MUSCATE_PRODUCT.fullmatch(item.id) is not None
    )


_SUFFIX = re.compile(r"^(.*)_(\d+)m$")
_EXTENSION = re.compile(r"\.(tiff?|jp2|img|nc|hdf)$", re.IGNORECASE)
"""File extensions some providers leave in asset keys (USGS LandsatLook: ``SR_B4.TIF``)."""


def _strip_suffix(key: str) -> str:
    match = _SUFFIX.match(key)
    return match.group(1) if match else key


def key_stem(key: str) -> str:
    """Asset key without a file extension: ``SR_B4.TIF`` -> ``SR_B4``."""
    return _EXTENSION.sub("", key)


def _norm(text: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def family_of(item: pystac.Item) -> Family | None:
    """Sensor family of an item, from its platform, constellation, collection and properties."""
    props = item.properties
    platform = _norm(props.get("platform", ""))
    constellation = _norm(props.get("constellation", ""))
    collection = _norm(item.collection_id or "")
    if is_maja(item):
        return THEIA_MAJA
    if (
        platform.startswith("sentinel2")
        or constellation == "sentinel2"
        or "sentinel2" in collection
        or "sentinels2" in collection
        or any(key.startswith("s2:") for key in props)
    ):
        return SENTINEL2
    is_landsat = platform.startswith("landsat") or "landsat" in collection
    number = str(props.get("landsat:collection_number", ""))
    correction = str(props.get("landsat:correction", ""))
    if (
        is_landsat
        and (number == "02" or "c2" in collection)
        and (correction.upper().startswith("L2") or "l2" in collection)
    ):
        digits = re.findall(r"\d+", platform)
        if digits and int(digits[0]) < 8:
            return LANDSAT_TM
        return LANDSAT_OLI
    return None


def is_level2(item: pystac.Item) -> bool:
    """Whether the item is known to hold surface (Level-2) rather than top-of-atmosphere data."""
    props = item.properties
    level = str(props.get("processing:level", "")).upper()
    product = str(props.get("s2:product_type", "")).upper()
    collection = (item.collection_id or "").lower()
    return (
        level.startswith("L2")
        or product.endswith("2A")
        or str(props.get("landsat:correction", "")).upper().startswith("L2")
        or "l2" in collection
    )


# --- asset metadata -------------------------------------------------------------------------


def asset_bands(asset: pystac.Asset) -> list[dict[str, Any]]:
    """The band objects of an asset: STAC 1.1 ``bands`` or eo ``eo:bands``."""
    bands = asset.extra_fields.get("bands") or asset.extra_fields.get("eo:bands") or []
    return [b for b in bands if isinstance(b, dict)]


def _common_name(band: Mapping[str, Any]) -> str | None:
    value = band.get("common_name") or band.get("eo:common_name")
    return str(value) if value else None


_PREVIEW_KEYS = frozenset({"visual", "overview", "preview", "thumbnail", "tci", "rendered_preview"})
"""Asset keys of RGB previews in items that give no roles (Earth Search v0)."""


def is_single_band_data(asset: pystac.Asset, key: str = "") -> bool:
    """Whether the asset is one raster band (not metadata, a preview or an RGB image).

    Rasters (GeoTIFF or JPEG 2000 media type, or role ``data``) count whatever their roles
    (Landsat ``qa_pixel`` has roles ``cloud``, ``cloud-shadow``...), unless a role says
    preview or metadata.
    """
    roles = set(asset.roles or ["data"])
    if roles & {"visual", "thumbnail", "overview", "metadata", "tiles"}:
        return False
    if _strip_suffix(key_stem(key)).lower() in _PREVIEW_KEYS:
        return False
    media = (asset.media_type or "").lower()
    if media and not any(kind in media for kind in ("tiff", "jp2")):
        return False
    if not media and "data" not in roles:
        return False
    if len(asset_bands(asset)) > 1:
        return False
    raster_bands = asset.extra_fields.get("raster:bands") or []
    return len(raster_bands) <= 1


def asset_resolution(item: pystac.Item, key: str) -> float | None:
    """Pixel size of an asset.

    From ``proj:transform`` (asset, else item), else raster ``spatial_resolution``, else a
    ``_20m`` key suffix, else ``gsd`` (asset, else item).
    """
    asset = item.assets[key]
    transform = asset.extra_fields.get("proj:transform") or item.properties.get("proj:transform")
    if transform:
        return abs(float(transform[0]))
    raster_bands = asset.extra_fields.get("raster:bands") or [{}]
    if raster_bands[0].get("spatial_resolution"):
        return float(raster_bands[0]["spatial_resolution"])
    match = _SUFFIX.match(key_stem(key))
    if match:
        return float(match.group(2))
    gsd = asset.extra_fields.get("gsd") or item.properties.get("gsd")
    return float(gsd) if gsd else None


def _is_tiff(asset: pystac.Asset) -> bool:
    return "tif" in (asset.media_type or "").lower() or asset.href.lower().endswith(
        (".tif", ".tiff")
    )


# --- resolution of a requested band --------------------------------------------------------


@dataclass(frozen=True)
class ResolvedBand:
    """The asset chosen for one requested band in one item."""

    requested: str
    """The name the user asked for."""
    name: str
    """Canonical name: the output variable."""
    asset_key: str
    """The asset key in the item."""
    info: BandInfo | None
    """The alias-table entry, when the family is known."""
    family: Family | None
    """The item's sensor family, when known."""


def canonical_name(requested: str, family: Family | None) -> tuple[str, BandInfo | None]:
    """Canonical output name of a requested band in a family, with its table entry."""
    info = family.lookup(requested) if family else None
    return (info.name if info else requested), info


def _band_identity(key: str, asset: pystac.Asset, family: Family | None) -> str:
    """A name that is the same for every resolution variant of one band (for CDSE keys)."""
    bands = asset_bands(asset)
    name = str(bands[0].get("name", "")) if bands else ""
    info = family.lookup(key) if family else None
    return info.name if info else (name or _strip_suffix(key_stem(key))).lower()


def resolve_band(
    item: pystac.Item, requested: str, resolution: float | None = None
) -> ResolvedBand:
    """Choose the asset of ``item`` holding band ``requested``.

    Matching order, first level with a match wins: the asset key equal to the request; an
    asset key equal (any case) to the request or its canonical common name; an asset key equal
    to a provider key of the alias table (CDSE ``_10m/_20m/_60m`` suffixes allowed); an asset
    whose single ``eo:bands``/``bands`` entry has that ``common_name`` or ``name``. Among
    candidates, GeoTIFFs are preferred to JPEG 2000 duplicates, and resolution variants of one
    band are chosen by ``resolution`` (the variant at that pixel size, else the finest).

    Raises
    ------
    BandNotFoundError
        No asset matches; the message lists the bands the item has.
    ConfigurationError
        Several different bands match (e.g. ``rededge`` on Sentinel-2).
    """
    family = family_of(item)
    name, info = canonical_name(requested, family)
    data = {k: a for k, a in item.assets.items() if is_single_band_data(a, k)}
    wanted = {requested.lower(), name.lower()}
    provider = {k.lower() for k in info.keys} if info else set()

    def by_band_metadata(asset: pystac.Asset) -> bool:
        bands = asset_bands(asset)
        if len(bands) != 1:
            return False
        common = (_common_name(bands[0]) or "").lower()
        band_name = str(bands[0].get("name", "")).lower()
        return common == name.lower() or band_name in wanted | provider

    def by_provider_key(key: str) -> bool:
        low = key_stem(key).lower()
        if low in provider:
            return True
        return bool(family and family.resolution_suffixes and _strip_suffix(low) in provider)

    levels = (
        [k for k in data if k == requested],
        [k for k in data if k.lower() in wanted or key_stem(k).lower() in wanted],
        [k for k in data if by_provider_key(k)],
        [k for k, a in data.items() if by_band_metadata(a)],
    )
    candidates = next((level for level in levels if level), [])
    if not candidates:
        raise BandNotFoundError(
            f"band {requested!r} not found in item {item.id!r} "
            f"(collection {item.collection_id!r}). {describe_available(item)} "
            "Ask for one of these names."
        )
    chosen = _pick(item, requested, candidates, family, resolution)
    if info is None and family is not None:
        info = _lookup_asset(family, chosen, item.assets[chosen])
        name = info.name if info else name
    return ResolvedBand(requested, name, chosen, info, family)


def _lookup_asset(family: Family, key: str, asset: pystac.Asset) -> BandInfo | None:
    """Alias-table entry of an asset, from its key, band name or common name."""
    bands = asset_bands(asset)
    names = [key]
    if len(bands) == 1:
        names += [str(bands[0].get("name", "")), _common_name(bands[0]) or ""]
    for candidate in names:
        info = family.lookup(candidate) if candidate else None
        if info is not None:
            return info
    return None


def _pick(
    item: pystac.Item,
    requested: str,
    candidates: list[str],
    family: Family | None,
    resolution: float | None,
) -> str:
    if len(candidates) > 1 and any(_is_tiff(item.assets[k]) for k in candidates):
        candidates = [k for k in candidates if _is_tiff(item.assets[k])]
    if len(candidates) == 1:
        return candidates[0]
    identities = {_band_identity(k, item.assets[k], family) for k in candidates}
    if len(identities) > 1:
        raise ConfigurationError(
            f"band {requested!r} is ambiguous in item {item.id!r}: it matches assets "
            f"{', '.join(sorted(candidates))}. Ask for one of them by name."
        )
    sizes = {k: asset_resolution(item, k) for k in candidates}
    if resolution is not None:
        exact = [
            k for k, size in sizes.items() if size is not None and abs(size - resolution) < 1e-6
        ]
        if exact:
            return sorted(exact)[0]
    known = [k for k in candidates if sizes[k] is not None]
    if not known:
        return sorted(candidates)[0]
    return min(known, key=lambda k: (sizes[k], k))


def available_bands(item: pystac.Item) -> dict[str, str]:
    """Bands an item offers, ``{canonical name: asset key}``, for messages and listings."""
    family = family_of(item)
    found: dict[str, str] = {}
    for key, asset in item.assets.items():
        if not is_single_band_data(asset, key):
            continue
        info = _lookup_asset(family, key, asset) if family else None
        bands = asset_bands(asset)
        name = info.name if info else (_common_name(bands[0]) if bands else None) or key_stem(key)
        found.setdefault(name, key)
    return dict(sorted(found.items()))


def describe_available(item: pystac.Item) -> str:
    """One sentence listing the bands of an item by common name and asset key."""
    pairs = available_bands(item)
    listed = ", ".join(f"{name} ({key})" if name != key else name for name, key in pairs.items())
    keys = ", ".join(sorted(item.assets))
    return f"Bands by common name (asset key): {listed or 'none'}. All asset keys: {keys}."
