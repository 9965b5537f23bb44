"""Output of ``datacubes.load``: DN to physical values per time step, masks, CF metadata."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pystac
import xarray as xr

from datacubes._masks import FlagPlan, MaskPlan, MaskTest
from datacubes._plan import ItemBand
from lab import ConfigurationError

_REFLECTANCE_STANDARD_NAME = "surface_bidirectional_reflectance"
_CENTRE = "earthlab:centre"


def _scaling_per_step(
    name: str, plans: list[list[ItemBand]], groups: list[list[int]], items: list[pystac.Item]
) -> tuple[np.ndarray, np.ndarray] | None:
    by_item = {p.item_id: p for plan in plans for p in plan if p.name == name}
    scales, offsets = [], []
    for group in groups:
        entries = [by_item[items[i].id] for i in group if items[i].id in by_item]
        found = {(e.scaling.scale, e.scaling.offset) for e in entries if e.scaling}
        if not entries or not found:
            if entries:
                return None  # class band
            scales.append(np.nan)
            offsets.append(np.nan)
            continue
        if len(found) > 1:
            detail = "; ".join(
                f"{e.item_id}: scale {e.scaling.scale:g} offset {e.scaling.offset:g} "
                f"({e.scaling.rule})"
                for e in entries
                if e.scaling
            )
            raise ConfigurationError(
                f"band {name!r}: items fused into one time step have different scale/offset "
                f"({detail}). Load with groupby='time' or groupby='id' to keep them apart."
            )
        scale, offset = found.pop()
        scales.append(scale)
        offsets.append(offset)
    return np.asarray(scales, "float64"), np.asarray(offsets, "float64")


def _to_physical(
    dn: np.ndarray, scale: np.ndarray, offset: np.ndarray, *masked: np.ndarray, nodata: float
) -> np.ndarray:
    """DN block (time, y, x) to float32 ``DN * scale + offset``; nodata and masked to NaN.

    The cast is fused with the scale and the offset added in place; the nodata test and the
    ``masked`` blocks (True = masked) are or'ed into one boolean block, which sets NaN in one
    more pass. Fresh memory costs more than the arithmetic here, so temporaries are few.
    """
    out = np.multiply(dn, scale, dtype=np.float32)
    out += offset
    invalid = np.equal(dn, nodata) if not np.isnan(nodata) else None
    for where in masked:
        if invalid is None:  # the masks are shared between bands: never changed in place
            invalid = where if len(masked) == 1 else where.copy()
        else:
            np.logical_or(invalid, where, out=invalid)
    if invalid is not None:
        np.copyto(out, np.float32(np.nan), where=invalid)
    return out


def finish(
    raw: xr.Dataset,
    items: list[pystac.Item],
    plans: list[list[ItemBand]],
    groups: list[list[int]],
    names: list[str],
    mask_plan: MaskPlan | None,
    mask_func: Callable[[xr.Dataset], xr.DataArray] | None,
    groupby: str,
    read_groups: list[list[int]] | None = None,
    flag_plan: FlagPlan | None = None,
) -> xr.Dataset:
    """Turn odc-stac's DN dataset into the output of :func:`datacubes.load`.

    ``read_groups`` are the items of each step of ``raw`` when they differ from ``groups``
    (one item per step, for per-item cloud masks): the masked steps are then fused into
    ``groups``, first valid pixel wins, in the order odc-stac fuses.
    """
    read_groups = groups if read_groups is None else read_groups
    reference = {e.name: e for plan in plans for e in plan}
    quality: dict[tuple[str, MaskTest], xr.DataArray] = {}  # each test computed once
    variables: dict[str, xr.DataArray] = {}
    floats: list[str] = []
    for name in [*names, *(str(n) for n in raw.data_vars if n not in names)]:
        per_step = _scaling_per_step(name, plans, groups, items)  # also checks fused steps
        if read_groups is not groups:
            per_step = _scaling_per_step(name, plans, read_groups, items)
        if per_step is None:
            variables[name] = raw[name].assign_attrs(_class_attrs(reference[name], raw[name].attrs))
            continue
        masks = None
        if mask_plan is not None:
            pairs = mask_plan.for_band(name)
            for pair in pairs:
                if pair not in quality:
                    quality[pair] = _quality_mask(raw[pair[0]], pair[1])
            masks = ([quality[pair] for pair in pairs], mask_plan.note_for(name) or "")
        variables[name] = _physical(raw[name], reference[name], *per_step, masks)
        floats.append(name)
    if read_groups is not groups:
        variables = _fuse(variables, items, groups, read_groups)
    out = xr.Dataset(variables, coords=_step_coords(items, groups))
    if mask_func is not None:
        out = _apply_mask_func(out, floats, mask_func)
    if flag_plan is not None:
        out = out.assign(
            {
                f"flag_{name}": _flag(out, name, pairs, flag_plan.product)
                for name, pairs in flag_plan.flags
            }
        )
    extra = [*(mask_plan.extra if mask_plan else ()), *(flag_plan.extra if flag_plan else ())]
    if extra:
        out = out.drop_vars(list(dict.fromkeys(extra)))
    grid_mapping = raw[names[0]].encoding.get("grid_mapping", "spatial_ref")
    for var in out.data_vars.values():  # lost by the arithmetic; rioxarray reads it
        var.encoding["grid_mapping"] = grid_mapping
    out.attrs = {
        "source_collections": ",".join(sorted({str(i.collection_id) for i in items})),
        "source_item_count": len(items),
        "groupby": groupby,
        "history": f"datacubes.load of {len(items)} STAC items",
    }
    return out


def _fuse(
    variables: dict[str, xr.DataArray],
    items: list[pystac.Item],
    groups: list[list[int]],
    read_groups: list[list[int]],
) -> dict[str, xr.DataArray]:
    """Fuse one-item steps into ``groups``: the first valid (non-NaN, non-nodata) value wins."""
    position = {group[0]: step for step, group in enumerate(read_groups)}
    fused: dict[str, xr.DataArray] = {}
    for name, var in variables.items():
        nodata = var.attrs.get("nodata")
        steps = []
        for group in groups:
            out = var.isel(time=position[group[0]])
            for index in group[1:]:
                other = var.isel(time=position[index])
                if var.dtype.kind == "f":
                    out = out.fillna(other)
                elif nodata is not None:
                    out = out.where(out != nodata, other)
            steps.append(out)
        fused[name] = xr.concat(steps, dim="time").assign_attrs(var.attrs)
        fused[name].encoding = dict(var.encoding)
    return fused


def _physical(
    dn: xr.DataArray,
    entry: ItemBand,
    scale: np.ndarray,
    offset: np.ndarray,
    masks: tuple[list[xr.DataArray], str] | None,
) -> xr.DataArray:
    nodata = float(entry.nodata) if entry.nodata is not None else np.nan
    masked = masks[0] if masks is not None else []
    per_step = [xr.DataArray(v.astype("float32"), dims="time") for v in (scale, offset)]
    if dn.chunks is not None:  # chunked like the DN along time: Dask has nothing to rechunk
        per_step = [v.chunk({"time": dn.chunksizes["time"]}) for v in per_step]
    phys = xr.apply_ufunc(
        _to_physical,
        dn,
        *per_step,
        *masked,
        kwargs={"nodata": nodata},
        dask="parallelized",
        output_dtypes=[np.float32],
    )
    phys.attrs = _float_attrs(entry, scale, offset)
    if masks is not None:
        phys.attrs["mask"] = masks[1]
    return phys


def _step_coords(items: list[pystac.Item], groups: list[list[int]]) -> dict[str, Any]:
    """Item ids (and data centres, when items say) of each time step."""
    ids = [",".join(items[i].id for i in g) for g in groups]
    coords: dict[str, Any] = {"source_items": ("time", np.array(ids, object))}
    centres = [
        ",".join(
            sorted({str(items[i].properties[_CENTRE]) for i in g if _CENTRE in items[i].properties})
        )
        for g in groups
    ]
    if any(centres):
        coords["centre"] = ("time", np.array(centres, object))
    return coords


def _quality_mask(codes: xr.DataArray, test: MaskTest) -> xr.DataArray:
    """Where a quality band fails ``test`` (lazy like ``codes``), as a boolean array.

    Computed once per (band, test) and applied inside each band's scaling pass
    (:func:`_to_physical`).
    """
    return xr.apply_ufunc(test.apply, codes, dask="parallelized", output_dtypes=[bool])


def _flag(
    out: xr.Dataset, name: str, pairs: tuple[tuple[str, MaskTest], ...], product: str
) -> xr.DataArray:
    """Boolean flag ``name``: the union of its tests on the (fused) quality bands."""
    parts = [_quality_mask(out[variable], test) for variable, test in pairs]
    flag = parts[0]
    for part in parts[1:]:
        flag = flag | part
    flag = flag.rename(f"flag_{name}")
    flag.attrs = {  # not the quality band's nodata or classes
        "long_name": f"{name} flag ({product})",
        "flag_test": " or ".join(test.describe(variable) for variable, test in pairs),
    }
    return flag


def _apply_mask_func(
    ds: xr.Dataset, floats: list[str], func: Callable[[xr.Dataset], xr.DataArray]
) -> xr.Dataset:
    masked = func(ds)
    if not isinstance(masked, xr.DataArray) or masked.dtype != bool:
        raise ConfigurationError(
            "a mask callable must return a boolean xarray.DataArray (True = set to NaN), "
            f"got {type(masked).__name__} of dtype {getattr(masked, 'dtype', None)}"
        )
    note = f"NaN where {getattr(func, '__name__', 'the mask callable')} is True"
    for name in floats:
        ds[name] = ds[name].where(~masked).assign_attrs({**ds[name].attrs, "mask": note})
    return ds


def _float_attrs(entry: ItemBand, scale: np.ndarray, offset: np.ndarray) -> dict[str, Any]:
    info = entry.info
    attrs: dict[str, Any] = {}
    if info is not None:
        if info.units is not None:
            attrs["units"] = info.units
        attrs["long_name"] = info.long_name
        standard = info.standard_name
        if info.kind == "reflectance" and entry.level2:
            standard = _REFLECTANCE_STANDARD_NAME
        if standard:
            attrs["standard_name"] = standard
        if info.wavelength_nm:
            attrs["wavelength_nm"] = info.wavelength_nm
    else:
        attrs["long_name"] = f"{entry.name} ({entry.asset_key})"
    attrs["scale_offset_applied"] = (
        "values are DN * applied_scale + applied_offset (one per time step); nodata DN are NaN"
    )
    attrs["applied_scale"] = scale
    attrs["applied_offset"] = offset
    return attrs


def _class_attrs(entry: ItemBand, odc_attrs: Mapping[str, Any]) -> dict[str, Any]:
    attrs = {k: v for k, v in odc_attrs.items() if k == "nodata"}
    if "nodata" not in attrs and entry.nodata is not None and entry.data_type is not None:
        attrs["nodata"] = np.dtype(entry.data_type).type(entry.nodata)  # what fusion skips
    if entry.info is None:
        attrs["long_name"] = f"{entry.name} ({entry.asset_key})"
        if entry.class_rule is not None:
            attrs["comment"] = f"class band, integers as stored: {entry.class_rule}"
    else:
        attrs["long_name"] = entry.info.long_name
        if entry.info.flag_values is not None:
            attrs["flag_values"] = np.asarray(
                entry.info.flag_values, dtype=entry.data_type or "uint8"
            )
            attrs["flag_meanings"] = entry.info.flag_meanings
    return attrs
