"""The lab's intake catalogue: its built cubes and in-situ collections, opened by name.

Intake 2 catalogues (``intake.readers.entry.Catalog``) hold *readers*: a notebook does
``cat["thau-lagoon-sample"].read()`` and gets an ``xarray.Dataset`` without knowing where the
cube is stored. S3 credentials are never written: entries carry intake templates
``{env(NAME)}`` for the environment variables the centres file names, filled in when read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lab import ConfigurationError

DEFAULT_INSITU = ("insitu-water-quality",)
_PARQUET = "application/vnd.apache.parquet"


def intake_catalog(
    centres: Any = None,
    *,
    stores: Sequence[str] = (),
    insitu_collections: Sequence[str] = DEFAULT_INSITU,
) -> Any:
    """Build the intake catalogue of the lab's datasets.

    Parameters
    ----------
    centres : lab.CentreSet or str, optional
        The federation (default: ``$EARTHLAB_CENTRES``, else the sample). Every centre with a
        ``storage`` contributes the cubes built there.
    stores : sequence of str
        More directories or URLs holding cubes (for example a local build directory).
    insitu_collections : sequence of str
        In-situ collections to publish: one entry per collection reading every station table
        (Parquet assets) into one pandas DataFrame.

    Returns
    -------
    intake.readers.entry.Catalog
        Entries by name: cube names (``xarray.Dataset``) and collection ids
        (``pandas.DataFrame``). ``cat[name].read()`` opens one.
    """
    from intake.readers.entry import Catalog

    from lab import centres as read_centres

    found = (
        centres
        if centres is not None and not isinstance(centres, str | os.PathLike)
        else read_centres(centres)
    )
    catalog = Catalog(
        metadata={
            "description": "Datasets of the Earth Analytics Lab: built cubes and in-situ collections"
        }
    )
    for centre in found.values():
        if centre.storage is not None:
            _add_cubes(catalog, centre.storage.url, centre=centre.name, storage=centre.storage)
    for store in stores:
        _add_cubes(catalog, store, centre=None, storage=None)
    if insitu_collections:
        _add_insitu(catalog, found, insitu_collections)
    return catalog


def write_intake_catalog(path: str | os.PathLike[str], centres: Any = None, **kwargs: Any) -> str:
    """Write :func:`intake_catalog` as a YAML file (``intake.from_yaml_file(path)`` reads it).

    Parameters
    ----------
    path : str or os.PathLike
        Where to write (local path or fsspec URL).
    centres : lab.CentreSet or str, optional
        The federation.
    **kwargs
        Passed to :func:`intake_catalog` (``stores``, ``insitu_collections``).

    Returns
    -------
    str
        The path written.
    """
    catalog = intake_catalog(centres, **kwargs)
    catalog.to_yaml_file(str(path))
    return str(path)


def _add_cubes(catalog: Any, store: str, *, centre: str | None, storage: Any) -> None:
    from intake.readers.datatypes import Zarr
    from intake.readers.readers import XArrayDatasetReader

    from datacubes._access import list_cubes

    options = storage.storage_options() if storage is not None else None
    try:
        cubes = list_cubes(store, storage_options=options)
    except FileNotFoundError:
        return
    for item in cubes:
        href = item.assets["zarr"].href
        props = item.properties
        data = Zarr(
            url=href, storage_options=_templated_options(storage) if "://" in href else None
        )
        reader = XArrayDatasetReader(
            data,
            engine="zarr",
            chunks={},
            consolidated=True,
            metadata={
                "title": props.get("title", item.id),
                "description": props.get("description", ""),
                "license": props.get("license", ""),
                "centre": centre or "",
                "spec_hash": props.get("earthlab:spec_hash", ""),
                "complete": bool(props.get("earthlab:complete")),
                "start_datetime": props.get("start_datetime"),
                "end_datetime": props.get("end_datetime"),
                "kind": "cube",
            },
        )
        catalog.add_entry(reader, name=_free_name(catalog, item.id, centre))


def _templated_options(storage: Any) -> dict[str, Any] | None:
    """Storage options with intake ``{env(NAME)}`` templates instead of credential values."""
    if storage is None:
        return None
    options: dict[str, Any] = {}
    client_kwargs = {}
    if storage.endpoint_url:
        client_kwargs["endpoint_url"] = storage.endpoint_url
    if storage.region:
        client_kwargs["region_name"] = storage.region
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    if storage.key_env:
        options["key"] = f"{{env({storage.key_env})}}"
    if storage.secret_env:
        options["secret"] = f"{{env({storage.secret_env})}}"
    return options or None


def _add_insitu(catalog: Any, found: Any, collections: Sequence[str]) -> None:
    from intake.readers.datatypes import Parquet
    from intake.readers.readers import PandasParquet

    from lab import FederatedCatalog

    result = FederatedCatalog(found).search(collections=list(collections))
    by_collection: dict[str, list[Any]] = {}
    for item in result:
        by_collection.setdefault(str(item.collection_id), []).append(item)
    for collection, items in sorted(by_collection.items()):
        hrefs = sorted(
            asset.href
            for item in items
            for asset in item.assets.values()
            if (asset.media_type or "").startswith(_PARQUET)
        )
        if not hrefs:
            raise ConfigurationError(
                f"collection {collection!r} has no Parquet asset to publish; drop it from "
                "insitu_collections"
            )
        centres = sorted({str(i.properties.get("earthlab:centre", "")) for i in items})
        reader = PandasParquet(
            Parquet(url=hrefs),
            metadata={
                "description": f"{collection}: {len(items)} stations, one row per sample",
                "centre": ",".join(centres),
                "items": sorted(i.id for i in items),
                "kind": "in-situ",
            },
        )
        catalog.add_entry(reader, name=_free_name(catalog, collection, None))


def _free_name(catalog: Any, name: str, centre: str | None) -> str:
    if name not in catalog.aliases:
        return name
    return f"{centre or 'store'}:{name}"
