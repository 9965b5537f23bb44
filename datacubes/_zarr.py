"""The Zarr side of a build: the empty template, encodings, appends and store attributes.

The template is the whole cube as lazy zeros written with ``compute=False``: metadata,
coordinates and attributes are stored, no data chunk is. Regions are filled later with
``to_zarr(region=...)``, which encodes values as the store says (float with NaN, CF-packed
integers, integer classes).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import dask.array
import numpy as np
import xarray as xr

from datacubes._fill import GridRecord
from datacubes._manifest import Step
from datacubes._spec import CLASS_BANDS, CubeSpec
from datacubes._stac_meta import cell_methods, cf_attributes, coordinate_attrs
from datacubes._steps import step_times
from datacubes._store import CubeLocation

TIME_ENCODING = {
    "units": "microseconds since 1970-01-01",
    "calendar": "proleptic_gregorian",
    "dtype": "int64",
}
"""Fixed time encoding, so that appended steps are encoded like the first ones."""


class QuietZarr(warnings.catch_warnings):
    """Silence zarr's note that consolidated metadata is outside the Zarr 3 spec.

    We write it on purpose: one read opens the cube.
    """

    def __enter__(self) -> Any:
        result = super().__enter__()
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        return result


def template(
    spec: CubeSpec,
    steps: Sequence[Step],
    variables: Mapping[str, Mapping[str, Any]],
    grid: GridRecord,
    software: Mapping[str, str],
    start: int = 0,
) -> xr.Dataset:
    """The cube (or the steps appended at index ``start``) as lazy zeros, never computed."""
    from odc.geo.xr import xr_coords

    unit = spec.target.write_unit
    geobox = grid.geobox
    coords: dict[str, Any] = {
        str(k): v for k, v in xr_coords(geobox, crs_coord_name="spatial_ref").items()
    }
    attrs = coordinate_attrs(spec)
    for name in ("x", "y"):
        coords[name] = coords[name].copy()
        coords[name].attrs = {**attrs[name], "resolution": coords[name].attrs.get("resolution")}
    coords["time"] = xr.Variable("time", step_times(steps), attrs=attrs["time"])
    coords["source_items"] = xr.Variable(
        "time",
        np.array([",".join(s.items) for s in steps], dtype=object),
        attrs=attrs["source_items"],
    )
    first = min(len(steps), unit.time - start % unit.time)  # Dask chunks on the write units
    rest = len(steps) - first
    time_chunks = (
        first,
        *[unit.time] * (rest // unit.time),
        *([rest % unit.time] if rest % unit.time else []),
    )
    shape = (len(steps), *geobox.shape)
    data = {}
    method = cell_methods(spec)
    for name, info in variables.items():
        var_attrs = {**info["attrs"], "grid_mapping": "spatial_ref"}
        if method:
            var_attrs["cell_methods"] = method
        data[name] = xr.Variable(
            ("time", "y", "x"),
            dask.array.zeros(shape, dtype=info["dtype"], chunks=(time_chunks, unit.y, unit.x)),
            var_attrs,
        )
    dataset = xr.Dataset(data, coords=coords)
    dataset.attrs = cf_attributes(spec, geobox, steps, software)
    return dataset


def encoding(spec: CubeSpec, variables: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Zarr encodings: chunks, shards, dtype, fill and CF packing per variable."""
    chunks = spec.target.chunks
    out: dict[str, dict[str, Any]] = {"time": dict(TIME_ENCODING)}
    for name, info in variables.items():
        entry: dict[str, Any] = {"chunks": (chunks.time, chunks.y, chunks.x)}
        if spec.target.shards is not None:
            shards = spec.target.shards
            entry["shards"] = (shards.time, shards.y, shards.x)
        if name in CLASS_BANDS or not str(info["dtype"]).startswith("float"):
            entry.update(dtype=info["dtype"], _FillValue=None)  # classes: 0 is their no data
        elif spec.encoding.dtype.startswith("float"):
            nan = np.dtype(spec.encoding.dtype).type(np.nan)
            entry.update(dtype=spec.encoding.dtype, _FillValue=nan)
        else:
            nodata = int(spec.encoding.nodata)  # type: ignore[arg-type]
            entry.update(
                dtype=spec.encoding.dtype,
                scale_factor=float(spec.encoding.scale_factor),  # type: ignore[arg-type]
                add_offset=float(spec.encoding.add_offset or 0.0),
                _FillValue=nodata,
            )
            if spec.target.zarr_format == 3:
                entry["fill_value"] = nodata  # unwritten chunks read as no data
        out[name] = entry
    return out


def write_template(
    location: CubeLocation, spec: CubeSpec, dataset: xr.Dataset, variables: Mapping[str, Any]
) -> None:
    """Write a new store: metadata and coordinates, no data chunk."""
    with QuietZarr():
        dataset.to_zarr(
            location.url,
            mode="w",
            compute=False,
            encoding=encoding(spec, variables),
            zarr_format=spec.target.zarr_format,
            consolidated=True,
            storage_options=dict(location.storage_options) or None,
        )


def append_template(location: CubeLocation, dataset: xr.Dataset) -> None:
    """Grow the store's time axis with new steps (coordinates written, no data chunk)."""
    with QuietZarr():
        dataset.drop_vars(["x", "y", "spatial_ref"]).to_zarr(
            location.url,
            append_dim="time",
            compute=False,
            consolidated=True,
            storage_options=dict(location.storage_options) or None,
        )


def zarr_store(location: CubeLocation, read_only: bool = False) -> Any:
    """A zarr store object for the location (local or fsspec)."""
    from zarr.storage import FsspecStore, LocalStore

    if not location.remote:
        return LocalStore(location.url, read_only=read_only)
    return FsspecStore.from_url(
        location.url, storage_options=dict(location.storage_options), read_only=read_only
    )


def stored_hash(location: CubeLocation) -> str | None:
    """Spec hash recorded in a store's attributes (``None`` if it is not an earthlab cube)."""
    import zarr

    try:
        group = zarr.open_group(zarr_store(location, read_only=True), mode="r")
    except (zarr.errors.BaseZarrError, FileNotFoundError, KeyError, ValueError):
        return None
    value = group.attrs.get("earthlab_spec_hash")
    return str(value) if value else None


def store_length(location: CubeLocation) -> int:
    """Number of time steps in the store."""
    import zarr

    group = zarr.open_group(zarr_store(location, read_only=True), mode="r")
    return int(group["time"].shape[0])  # type: ignore[union-attr]


def rewrite_source_items(
    location: CubeLocation, steps: Sequence[Step], indices: Sequence[int]
) -> int:
    """Write the ``source_items`` of refilled steps; return the number of writes."""
    import zarr

    array: Any = zarr.open_group(zarr_store(location), mode="r+")["source_items"]
    for index in indices:
        array[index] = ",".join(steps[index].items)
    return len(indices)


def update_attrs(
    location: CubeLocation,
    spec: CubeSpec,
    geobox: Any,
    steps: Sequence[Step],
    software: Mapping[str, str],
) -> bool:
    """Refresh the store's global attributes when they changed (time coverage, versions).

    Returns
    -------
    bool
        Whether anything was written.
    """
    import zarr

    attrs = cf_attributes(spec, geobox, steps, software)
    store = zarr_store(location)
    group = zarr.open_group(store, mode="r+")
    current: dict[str, Any] = dict(group.attrs)
    kept: dict[str, Any] = {k: current[k] for k in ("date_created", "history") if k in current}
    new: dict[str, Any] = {**attrs, **kept}
    if current.get("time_coverage_end") != attrs["time_coverage_end"]:
        new["history"] = f"{current.get('history', '')}\n{attrs['history']}".strip()
        new["date_modified"] = attrs["date_created"]
    if {k: current.get(k) for k in new} == new:
        return False
    group.attrs.update(new)
    with QuietZarr():
        zarr.consolidate_metadata(store)
    return True
