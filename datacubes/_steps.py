"""From a spec to time steps: search the source, group items into steps, compare with a store.

A *step* is one time coordinate of the cube with the STAC items it is made of: a solar day
(items of one day fused, as :func:`datacubes.load` does) or, with a composite, a period. The
steps are planned from metadata only, then compared with those a store already holds to decide
what to append and what to refill.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pystac

from datacubes._grid import crop, items_of_tile, lonlat_bbox, tile_search_bbox
from datacubes._manifest import Step
from datacubes._spec import CubeSpec
from lab import CatalogError, ConfigurationError, EarthLabWarning, NoItemsError

_DROPPED_ATTRS = ("applied_scale", "applied_offset", "nodata")


@dataclass(frozen=True)
class SourceItems:
    """What the source search found."""

    items: tuple[pystac.Item, ...]
    """Items kept, sorted by time then id."""
    notes: tuple[str, ...] = ()
    """What was left out and why, for the build report."""


@dataclass(frozen=True)
class StepPlan:
    """The cube's time steps as planned from the current catalogue."""

    steps: tuple[Step, ...]
    """Steps in time order."""
    items: dict[str, pystac.Item] = field(repr=False)
    """Source items by id."""
    variables: dict[str, dict[str, Any]] = field(repr=False)
    """Per output variable: ``dtype`` of the loaded values and CF ``attrs``."""


@dataclass(frozen=True)
class StepChanges:
    """How the planned steps differ from those of a store."""

    append: tuple[Step, ...] = ()
    """New steps after the store's last one."""
    refill: tuple[int, ...] = ()
    """Indices of stored steps whose source items grew or changed."""
    refill_steps: tuple[Step, ...] = ()
    """The new content of those steps."""
    notes: tuple[str, ...] = ()
    """Differences that change nothing (items no longer in the catalogue), for the report."""

    @property
    def empty(self) -> bool:
        """Whether there is nothing to write."""
        return not self.append and not self.refill


def search_source(spec: CubeSpec, centres: Any, search_bbox: Sequence[float] | None) -> SourceItems:
    """Search the spec's source and keep the items that belong to the cube.

    Raises
    ------
    CatalogError
        A centre could not be searched (a build needs every centre's answer).
    NoItemsError
        Nothing matched.
    """
    from lab import FederatedCatalog

    source = spec.source
    federation = FederatedCatalog(_centre_set(spec, centres))
    query_filter = dict(source.filter) if source.filter else None
    bbox = source.bbox or search_bbox
    result = federation.search(
        collections=list(source.collections),
        bbox=list(bbox) if bbox else None,
        datetime=source.datetime,
        filter=query_filter,
    )
    if result.federation_missing:  # did not answer, or refused (restricted)
        errors = {**result.missing, **result.restricted}
        detail = "; ".join(f"{name}: {errors[name]}" for name in result.federation_missing)
        raise CatalogError(
            f"the source of cube {spec.name!r} could not be searched completely ({detail}); "
            "a build needs every centre's answer: re-run when the centres answer, with the "
            "access they require, or leave the centre out of the centres file"
        )
    items = list(result)
    notes = []
    if source.max_cloud_cover is not None:
        items, dropped, unknown = _by_cloud_cover(items, source.max_cloud_cover)
        if dropped:
            notes.append(f"{dropped} items over {source.max_cloud_cover:g}% cloud cover left out")
        if unknown:
            notes.append(f"{unknown} items without eo:cloud_cover kept (cannot be checked)")
    if spec.grid.tile:
        items, others = items_of_tile(items, spec.grid.tile)
        if others:
            notes.append(f"{others} items of other tiles than {spec.grid.tile} left out")
    if not items:
        raise NoItemsError(
            f"no item for cube {spec.name!r} ({result.query.describe()}): widen "
            "source.datetime or source.bbox, or check the collections"
        )
    items.sort(key=lambda item: (_when(item), item.id))
    return SourceItems(tuple(items), tuple(notes))


def _centre_set(spec: CubeSpec, centres: Any) -> Any:
    from lab import CatalogSpec, Centre, CentreSet
    from lab import centres as read_centres

    inline = spec.source.catalog
    if inline is not None:
        centre = Centre(
            name=inline.name,
            title=inline.name,
            catalog=CatalogSpec(kind=inline.kind, href=inline.href, timeout=60.0),
            collections=tuple(spec.source.collections),
        )
        return CentreSet([centre])
    if centres is None or isinstance(centres, str | os.PathLike):
        centres = read_centres(centres)
    found = centres
    return found.select(list(spec.source.centres) if spec.source.centres else None)


def _by_cloud_cover(items: list[pystac.Item], limit: float) -> tuple[list[pystac.Item], int, int]:
    kept, dropped, unknown = [], 0, 0
    for item in items:
        cover = item.properties.get("eo:cloud_cover")
        if cover is None:
            unknown += 1
            kept.append(item)
        elif float(cover) <= limit:
            kept.append(item)
        else:
            dropped += 1
    return kept, dropped, unknown


def default_search_bbox(spec: CubeSpec, geobox: Any) -> tuple[float, float, float, float]:
    """Search area when the spec gives none: the grid's (or the tile's) lon/lat box."""
    if spec.grid.tile:
        return tile_search_bbox(spec.grid.tile)
    return lonlat_bbox(geobox)


def plan_steps(spec: CubeSpec, items: Sequence[pystac.Item], geobox: Any) -> StepPlan:
    """Group items into the cube's time steps, the way :func:`datacubes.load` does.

    Nothing is read: the lazy load gives the time coordinate, the items of each step and the
    variables' CF attributes.

    Raises
    ------
    ConfigurationError
        The grid the loader makes for these items is not aligned with the cube's (pixel edges
        differ): regions, loaded on the cube grid, would be resampled.
    """
    from datacubes._load import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EarthLabWarning)  # missing files: reported per region
        cube = load(
            list(items),
            list(spec.bands),
            crs=str(geobox.crs),
            resolution=float(spec.grid.resolution),
            bbox=lonlat_bbox(geobox),
            chunks={"time": -1, "y": -1, "x": -1},  # never computed: the smallest graph
            mask=_mask(spec),
            fail_on_error=False,
        )
    crop(cube, geobox)  # checks the alignment, once for all the regions
    by_id = {item.id: item for item in items}
    times = pd.DatetimeIndex(cube["time"].values)
    groups = [str(v).split(",") for v in cube["source_items"].values]
    steps = [_step(time, ids, by_id) for time, ids in zip(times, groups, strict=True)]
    if spec.composite is not None:
        steps = _periods(steps, spec.composite.period, by_id)
    variables = {
        str(name): {
            "dtype": str(var.dtype),
            "attrs": {k: v for k, v in var.attrs.items() if k not in _DROPPED_ATTRS},
        }
        for name, var in cube.data_vars.items()
    }
    return StepPlan(tuple(steps), by_id, variables)


def _mask(spec: CubeSpec) -> Any:
    mask = spec.cloud_mask
    return list(mask) if isinstance(mask, tuple) else mask


def _step(time: pd.Timestamp, ids: Sequence[str], by_id: dict[str, pystac.Item]) -> Step:
    centres = sorted(
        {
            str(by_id[i].properties["earthlab:centre"])
            for i in ids
            if "earthlab:centre" in by_id[i].properties
        }
    )
    return Step(iso_time(time), tuple(sorted(ids)), tuple(centres))


def iso_time(time: Any) -> str:
    """ISO 8601 text of a time coordinate (UTC, no zone suffix)."""
    stamp = pd.Timestamp(time)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(None)
    return stamp.isoformat()


def period_start(time: Any, period: str) -> pd.Timestamp:
    """Start of the composite period holding ``time``."""
    stamp = pd.Timestamp(time)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(None)
    if period == "day":
        return stamp.floor("D")
    if period == "week":
        return stamp.to_period("W-SUN").start_time
    if period == "month":
        return stamp.to_period("M").start_time
    if period == "quarter":
        return stamp.to_period("Q").start_time
    if period == "year":
        return stamp.to_period("Y").start_time
    return stamp.floor(f"{int(period[:-1])}D")


def _periods(steps: list[Step], period: str, by_id: dict[str, pystac.Item]) -> list[Step]:
    grouped: dict[pd.Timestamp, list[str]] = {}
    for step in steps:
        grouped.setdefault(period_start(step.time, period), []).extend(step.items)
    return [_step(start, ids, by_id) for start, ids in sorted(grouped.items())]


def compare_steps(stored: Sequence[Step], planned: Sequence[Step]) -> StepChanges:
    """What to append and refill so that a store with ``stored`` steps matches ``planned``.

    Raises
    ------
    ConfigurationError
        New steps fall before the store's last one: Zarr cannot insert along time.
    """
    if not stored:
        return StepChanges(append=tuple(planned))
    by_time = {step.time: step for step in planned}
    last = max(pd.Timestamp(s.time) for s in stored)
    stored_times = {s.time for s in stored}
    inserted = [
        s.time for s in planned if s.time not in stored_times and pd.Timestamp(s.time) <= last
    ]
    if inserted:
        raise ConfigurationError(
            f"the catalogue now has time steps before the cube's last one ({', '.join(inserted[:3])}"
            f"{' ...' if len(inserted) > 3 else ''}); a Zarr store cannot insert along time: "
            "rebuild the cube with --overwrite"
        )
    refill, refill_steps, notes = [], [], []
    for index, step in enumerate(stored):
        now = by_time.get(step.time)
        if now is None:
            notes.append(f"step {step.time}: its items are no longer in the catalogue (kept)")
        elif set(now.items) < set(step.items):
            notes.append(
                f"step {step.time}: items {sorted(set(step.items) - set(now.items))} "
                "are no longer in the catalogue (kept)"
            )
        elif set(now.items) != set(step.items):
            refill.append(index)
            refill_steps.append(now)
    append = tuple(s for s in planned if pd.Timestamp(s.time) > last)
    return StepChanges(append, tuple(refill), tuple(refill_steps), tuple(notes))


def step_times(steps: Sequence[Step]) -> np.ndarray:
    """Time coordinate values of steps (datetime64[ns])."""
    return pd.DatetimeIndex([pd.Timestamp(s.time) for s in steps]).values.astype("datetime64[ns]")


def _when(item: pystac.Item) -> Any:
    when = item.datetime or item.common_metadata.start_datetime
    return pd.Timestamp(when)
