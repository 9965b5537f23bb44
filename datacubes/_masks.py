"""Mask registry: which band, bits or classes mean clouds, shadows, water... per product family.

``mask="clouds"`` means the same thing on every product the lab knows: clouds (thin ones and
cirrus included), cloud shadows and the pixels the product flags as without data. Each
product family says it with its own quality band; this module holds one frozen
:class:`MaskRule` per family (the table of ``docs/datacubes.md``) and turns a requested mask
into a :class:`MaskPlan`: the quality bands to load beside the requested ones, and for each
output band the tests whose union sets it to NaN. The masks apply per item, before the items
of one time step are fused (see :func:`datacubes._output.finish`).

Sources of the tables:

- Sentinel-2 L2A scene classification (Sen2Cor SCL): ESA Sentinel-2 L2A product
  specification, classes 0..11 (:data:`datacubes._bands.SCL_CLASSES`).
- THEIA MAJA (MUSCATE format) CLM and MG2 bit fields, EDG edge mask: CESBIO's
  "Sentinel-2 output format" page and THEIA's L2A product format page (CLM bit 0 clouds and
  shadows summary, 1 clouds, 2 mono-temporal, 3 multi-temporal, 4 thinnest clouds, 5 cloud
  shadows, 6 shadows of clouds outside the image, 7 high clouds at 1.38 um; MG2 bit 0 water,
  1 clouds, 2 snow, 3 cloud shadows, 4 topographic shadows, 5 hidden by relief, 6 sun too
  low, 7 sun tangent; EDG non-zero outside the acquired image).
- Landsat Collection 2 Level-2 ``QA_PIXEL`` (USGS Landsat 8-9 Collection 2 Level-2 Science
  Product Guide, LSDS-1619; the same bits in the ``classification:bitfields`` of Planetary
  Computer's and Earth Search's items): bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud,
  4 cloud shadow, 5 snow, 6 clear, 7 water.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pystac

from datacubes._bands import (
    LANDSAT_OLI,
    LANDSAT_TM,
    SENTINEL2,
    THEIA_MAJA,
    Family,
    family_of,
    resolve_band,
)
from datacubes._errors import BandNotFoundError
from lab import ConfigurationError

MASK_NAMES: tuple[str, ...] = ("clouds", "shadows", "water", "snow", "edge", "nodata")
"""What ``mask=`` may name. ``clouds`` = clouds (thin and cirrus included), cloud shadows and
pixels flagged without data; the others are one flag each."""


@dataclass(frozen=True)
class MaskTest:
    """A test on one quality band.

    Masked where its value is one of ``values``, or where any of ``bits`` is set.
    """

    band: str
    """Band name in the family's table (``scl``, ``qa_pixel``), or its stem when the product
    has one quality band per resolution (``clm`` for ``clm_r1``/``clm_r2``)."""
    values: tuple[int, ...] = ()
    """Class values that are masked."""
    bits: tuple[int, ...] = ()
    """Bit positions (0 = least significant) of which any set masks the pixel."""

    def __post_init__(self) -> None:
        if bool(self.values) == bool(self.bits):
            raise ConfigurationError(f"mask test {self!r}: give values or bits, exactly one")
        if not all(isinstance(b, int) and 0 <= b < 32 for b in self.bits):
            raise ConfigurationError(f"mask test {self!r}: bits are positions 0..31")
        if not all(isinstance(v, int) and v >= 0 for v in self.values):
            raise ConfigurationError(f"mask test {self!r}: values are non-negative integers")

    def describe(self, variable: str) -> str:
        """The test in words, on the output variable ``variable`` (for the ``mask`` attr)."""
        label = variable.upper()
        if self.values:
            return f"{label} is {', '.join(map(str, sorted(self.values)))}"
        if len(self.bits) == 1:
            return f"{label} has bit {self.bits[0]} set"
        return f"{label} has any of bits {', '.join(map(str, sorted(self.bits)))} set"

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """Boolean block, True where ``codes`` (integer quality values) are masked."""
        if self.bits:
            return np.bitwise_and(codes, sum(1 << b for b in self.bits)) != 0
        if codes.dtype == np.uint8:  # a table lookup: four times faster than np.isin
            lookup = np.zeros(256, dtype=bool)
            lookup[[v for v in self.values if v < 256]] = True
            return np.take(lookup, codes)
        return np.isin(codes, self.values)


@dataclass(frozen=True)
class MaskRule:
    """How one product family flags clouds, shadows, water, snow, edges and missing data."""

    product: str
    """The product family in words, for messages and the docs table."""
    families: tuple[Family, ...]
    """Band-table families whose items this rule masks."""
    meanings: tuple[tuple[str, tuple[MaskTest, ...]], ...]
    """``(mask name, tests)``: the union of the tests is masked. Names from :data:`MASK_NAMES`."""
    resolutions: tuple[tuple[str, float], ...] = ()
    """Quality bands given once per resolution: ``(suffix, pixel size)``, e.g. MAJA
    ``(("r1", 10.0), ("r2", 20.0))``; each band is masked by the variant at its own pixel
    size, else the nearest one every item has."""
    source: str = ""
    """Where the tables come from."""
    _by_name: dict[str, tuple[MaskTest, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = sorted({name for name, _ in self.meanings} - set(MASK_NAMES))
        if unknown or not self.families or not self.product:
            raise ConfigurationError(
                f"mask rule {self.product!r}: needs a product, families and names among "
                f"{', '.join(MASK_NAMES)} (unknown: {', '.join(unknown) or 'none'})"
            )
        object.__setattr__(self, "_by_name", dict(self.meanings))

    def tests(self, name: str) -> tuple[MaskTest, ...] | None:
        """Tests of mask ``name``, ``None`` when the product does not flag it."""
        return self._by_name.get(name)


SCL_RULE = MaskRule(
    product="Sentinel-2 L2A Sen2Cor (SCL classes)",
    families=(SENTINEL2,),
    meanings=(
        ("clouds", (MaskTest("scl", values=(0, 1, 3, 8, 9, 10)),)),
        ("shadows", (MaskTest("scl", values=(3,)),)),
        ("water", (MaskTest("scl", values=(6,)),)),
        ("snow", (MaskTest("scl", values=(11,)),)),
        ("nodata", (MaskTest("scl", values=(0,)),)),
    ),
    source="ESA Sentinel-2 L2A product specification (SCL 0..11)",
)
MAJA_RULE = MaskRule(
    product="THEIA MAJA Sentinel-2 L2A (CLM/MG2/EDG bits)",
    families=(THEIA_MAJA,),
    meanings=(
        ("clouds", (MaskTest("clm", bits=tuple(range(8))),)),
        ("shadows", (MaskTest("clm", bits=(5, 6)),)),
        ("water", (MaskTest("mg2", bits=(0,)),)),
        ("snow", (MaskTest("mg2", bits=(2,)),)),
        ("edge", (MaskTest("edg", bits=tuple(range(8))),)),
        ("nodata", (MaskTest("edg", bits=tuple(range(8))),)),
    ),
    resolutions=(("r1", 10.0), ("r2", 20.0)),
    source="CESBIO MAJA output format; THEIA L2A product format (MUSCATE CLM/MG2 bit order)",
)
LANDSAT_RULE = MaskRule(
    product="Landsat Collection 2 Level-2 (QA_PIXEL bits)",
    families=(LANDSAT_OLI, LANDSAT_TM),
    meanings=(
        ("clouds", (MaskTest("qa_pixel", bits=(0, 1, 2, 3, 4)),)),
        ("shadows", (MaskTest("qa_pixel", bits=(4,)),)),
        ("water", (MaskTest("qa_pixel", bits=(7,)),)),
        ("snow", (MaskTest("qa_pixel", bits=(5,)),)),
        ("nodata", (MaskTest("qa_pixel", bits=(0,)),)),
    ),
    source="USGS Landsat 8-9 C2 L2 Science Product Guide (LSDS-1619), QA_PIXEL",
)
MASK_RULES: tuple[MaskRule, ...] = (SCL_RULE, MAJA_RULE, LANDSAT_RULE)
"""The registry: one rule per product family."""


def registered() -> str:
    """The registered product families, for messages."""
    return "; ".join(rule.product for rule in MASK_RULES)


def rule_for(family: Family | None) -> MaskRule | None:
    """The mask rule of a band-table family, ``None`` when none is registered."""
    return next((rule for rule in MASK_RULES if family in rule.families), None)


@dataclass(frozen=True)
class MaskPlan:
    """Quality bands to load and, per output band, the tests that set it to NaN."""

    extra: tuple[str, ...]
    """Quality bands to load that were not requested (dropped from the output)."""
    tests: tuple[tuple[str, tuple[tuple[str, MaskTest], ...]], ...]
    """``(output band, ((quality variable, test), ...))``."""
    note: tuple[tuple[str, str], ...]
    """``(output band, the mask in words)`` for the ``mask`` attribute."""

    def for_band(self, name: str) -> tuple[tuple[str, MaskTest], ...]:
        """The ``(quality variable, test)`` pairs masking output band ``name``."""
        return dict(self.tests).get(name, ())

    def note_for(self, name: str) -> str | None:
        """The mask of band ``name`` in words."""
        return dict(self.note).get(name)


def _product(items: Sequence[pystac.Item]) -> str:
    collections = sorted({str(item.collection_id) for item in items})
    return f"collection {', '.join(collections)}"


def _has(item: pystac.Item, band: str) -> bool:
    try:
        resolve_band(item, band)
    except BandNotFoundError:
        return False
    return True


def _variant(
    items: Sequence[pystac.Item],
    rule: MaskRule,
    stem: str,
    pixel: float | None,
    why: str,
) -> str:
    """The quality band ``stem`` at (or nearest to) the band's pixel size that every item has."""
    if not rule.resolutions:
        return stem
    order = sorted(rule.resolutions, key=lambda sr: abs(sr[1] - (pixel or sr[1])))
    for suffix, _size in order:
        name = f"{stem}_{suffix}"
        if all(_has(item, name) for item in items):
            return name
    names = " or ".join(f"{stem.upper()}_{suffix.upper()}" for suffix, _ in rule.resolutions)
    lacking = [item.id for item in items if not any(_has(item, f"{stem}_{s}") for s, _ in order)]
    shown = ", ".join(lacking[:5]) + (" ..." if len(lacking) > 5 else "")
    raise BandNotFoundError(
        f"{why} needs the {rule.product} mask asset {names} "
        f"({stem.upper()}_R1 at 10 m, {stem.upper()}_R2 at 20 m) in every item; "
        f"{shown or 'some items'} lack{'s' if len(lacking) == 1 else ''} it "
        f"(or the items do not all have the same one). Use items that carry "
        f"{stem.upper()} or pass mask=None."
    )


def _rule(items: Sequence[pystac.Item], why: str) -> MaskRule:
    """The one mask rule of the items' product (SCL for items of no family with ``scl``)."""
    families = {family_of(item) for item in items}
    rules = {rule_for(family) for family in families}
    if len(rules) > 1:
        raise ConfigurationError(
            f"{why}: the items are of several products with different masks "
            f"({', '.join(sorted(r.product if r else 'unknown' for r in rules))}); "
            "load one product at a time"
        )
    rule = rules.pop()
    if rule is None:
        # Items of no known family keep the historical behaviour: an ``scl`` band, when
        # they have one, is read as a Sen2Cor SCL.
        if not all(_has(item, "scl") for item in items):
            lacking = [item.id for item in items if not _has(item, "scl")]
            shown = ", ".join(lacking[:5]) + (" ..." if len(lacking) > 5 else "")
            raise BandNotFoundError(
                f"{why} needs band 'scl', which {len(lacking)} item(s) lack: {shown}. "
                f"Their product ({_product(items)}) has no registered mask; products with "
                f"one: {registered()}. Use items that have it (Sentinel-2 L2A for scl) or "
                "pass mask=None."
            )
        rule = SCL_RULE
    return rule


def _meaning(
    rule: MaskRule, name: str, items: Sequence[pystac.Item], why: str, noun: str
) -> tuple[MaskTest, ...]:
    """The tests of mask ``name`` in ``rule``; an error listing its ``noun`` when it has none."""
    found = rule.tests(name)
    if found is None:
        offered = ", ".join(n for n, _ in rule.meanings)
        raise ConfigurationError(
            f"{why}: {rule.product} items ({_product(items)}) do not flag {name!r}; "
            f"their {noun} are {offered}"
        )
    return found


def plan_masks(
    items: Sequence[pystac.Item],
    names: Sequence[str],
    pixels: dict[str, float | None],
    request: tuple[str, ...] | frozenset[int],
    why: str,
) -> MaskPlan:
    """The quality bands and tests masking bands ``names`` (native pixel size in ``pixels``).

    ``request`` is mask names (from :data:`MASK_NAMES`) or a set of SCL classes.
    """
    rule = _rule(items, why)
    if isinstance(request, frozenset):
        if rule is not SCL_RULE:
            raise ConfigurationError(
                f"{why}: a set of integers means Sentinel-2 SCL classes, and these items are "
                f"{rule.product}; ask by name instead (mask='clouds' or a list among "
                f"{', '.join(MASK_NAMES)})"
            )
        tests: tuple[MaskTest, ...] = (MaskTest("scl", values=tuple(sorted(request))),)
        wanted = [("classes", tests)]
    else:
        wanted = [(name, _meaning(rule, name, items, why, "masks")) for name in request]
    extra: list[str] = []
    per_band: list[tuple[str, tuple[tuple[str, MaskTest], ...]]] = []
    notes: list[tuple[str, str]] = []
    for band in names:
        pairs = []
        for _name, group in wanted:
            for test in group:
                variable = _variant(items, rule, test.band, pixels.get(band), why)
                pairs.append((variable, test))
                if variable not in names and variable not in extra:
                    extra.append(variable)
        per_band.append((band, tuple(pairs)))
        notes.append((band, "NaN where " + " or ".join(t.describe(v) for v, t in pairs)))
    for variable in extra:
        _require(items, variable, why, rule)
    return MaskPlan(tuple(extra), tuple(per_band), tuple(notes))


def _require(items: Sequence[pystac.Item], band: str, why: str, rule: MaskRule) -> None:
    lacking = [item.id for item in items if not _has(item, band)]
    if lacking:
        shown = ", ".join(lacking[:5]) + (" ..." if len(lacking) > 5 else "")
        raise BandNotFoundError(
            f"{why} needs band {band!r} ({rule.product}), which {len(lacking)} item(s) lack: "
            f"{shown}. Use items that have it or pass mask=None."
        )


@dataclass(frozen=True)
class FlagPlan:
    """Quality bands to load and, per requested flag, the tests whose union sets it."""

    extra: tuple[str, ...]
    """Quality bands to load that were not requested (dropped from the output)."""
    flags: tuple[tuple[str, tuple[tuple[str, MaskTest], ...]], ...]
    """``(flag name, ((quality variable, test), ...))``."""
    product: str
    """The product family in words (for the flags' attributes)."""


def plan_flags(
    items: Sequence[pystac.Item],
    names: Sequence[str],
    requested: Sequence[str],
    pixel: float | None,
    why: str,
) -> FlagPlan:
    """The quality bands and tests of the boolean flags ``names`` at pixel size ``pixel``.

    ``requested`` are the bands the user asked for (a quality band among them stays in the
    output). A product that does not flag one of ``names`` is a :class:`lab.ConfigurationError`
    naming the flags it has.
    """
    rule = _rule(items, why)
    extra: list[str] = []
    flags: list[tuple[str, tuple[tuple[str, MaskTest], ...]]] = []
    for name in names:
        found = _meaning(rule, name, items, why, "flags")
        pairs = tuple((_variant(items, rule, test.band, pixel, why), test) for test in found)
        for variable, _test in pairs:
            if variable not in requested and variable not in extra:
                _require(items, variable, why, rule)
                extra.append(variable)
        flags.append((name, pairs))
    return FlagPlan(tuple(extra), tuple(flags), rule.product)
