"""Each centre's catalogue as a real STAC API on loopback: ``rustac serve`` over its items.

A centre whose catalogue is a local file (stac-geoparquet or a static catalogue) is served by
``rustac serve`` (in-memory backend, on a private port) from a copy of its items written into
the run directory, ``stac/<centre>/``, where every asset href is an ``http://`` URL. Clients
reach it through a front that rewrites its links (and pages POST searches for it):

- open centres: the lab's HTTP front (``lab_server.stac_front``), STAC API at
  ``http://127.0.0.1:<front>/stac/<centre>/``, files at ``.../assets/<centre>/<path>``;
- restricted centres: the hub-authenticated restricted-data service (``lab_server.restricted``),
  ``<lab>/services/restricted-<centre>/stac/`` and ``.../assets/<path>``.

The centres file the deployment gives to single-user servers (``<run>/centres.yaml``) is the
source file with each served centre's ``catalog`` replaced by ``kind: stac-api`` at those
URLs; centres whose catalogue already is a URL are left as they are.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from lab import Centre, CentreSet, ConfigurationError

__all__ = [
    "CatalogueServer",
    "centre_root",
    "prepare_catalogue",
    "restricted_service_name",
    "rustac_command",
    "served_locally",
    "write_centres_file",
]

TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
"""Environment variable holding the hub token that restricted catalogues are searched with."""


def restricted_service_name(centre: str) -> str:
    """Return the JupyterHub service name of a centre's restricted-data service."""
    return f"restricted-{centre}"


@dataclass(frozen=True)
class CatalogueServer:
    """The STAC API of one centre in the local lab."""

    centre: str
    """Centre name."""
    port: int
    """Port of its ``rustac serve`` (private: clients go through a front)."""
    service_port: int | None = None
    """Port of its restricted-data service, for a centre with restricted collections."""

    @property
    def restricted(self) -> bool:
        """Whether clients reach it through the restricted-data service."""
        return self.service_port is not None

    @property
    def service(self) -> str:
        """Name of the restricted-data service (meaningful when ``restricted``)."""
        return restricted_service_name(self.centre)


def served_locally(centre: Centre) -> bool:
    """Say whether the lab serves this centre's catalogue (a local file, not a URL)."""
    return "://" not in centre.catalog.href and centre.catalog.kind in (
        "stac-geoparquet",
        "stac-static",
    )


def centre_root(centre: Centre) -> Path:
    """Directory the centre's asset paths are relative to (where its catalogue file is)."""
    return Path(centre.catalog.href).parent


def prepare_catalogue(centre: Centre, directory: Path, asset_base: str) -> list[str]:
    """Write the collections and items ``rustac serve`` loads, asset hrefs under ``asset_base``.

    Parameters
    ----------
    centre
        A centre whose catalogue is a local file.
    directory
        Where to write (``<run>/stac/<centre>``); created.
    asset_base
        URL prefix ending in ``/`` replacing the centre's directory in asset hrefs.

    Returns
    -------
    list of str
        The files to give ``rustac serve``: each collection, then ``items.json``.

    Raises
    ------
    ConfigurationError
        If the catalogue cannot be read, or an asset lies outside the centre's directory
        (it could not be served).
    """
    from lab import read_catalogue

    directory.mkdir(parents=True, exist_ok=True)
    root = centre_root(centre).resolve()
    try:
        items = read_catalogue(centre)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot serve the catalogue of centre {centre.name} ({centre.catalog.href}): {exc}"
        ) from exc
    features = []
    for item in items:
        document = item.to_dict(include_self_link=False, transform_hrefs=False)
        document["links"] = []
        for key, asset in document["assets"].items():
            asset["href"] = _served_href(centre, root, key, item.id, asset["href"], asset_base)
        features.append(document)
    files = []
    for collection in _collections(centre):
        for key, asset in collection.get("assets", {}).items():  # e.g. kerchunk references
            asset["href"] = _served_href(
                centre, root, key, collection["id"], asset["href"], asset_base
            )
        path = directory / f"collection-{collection['id']}.json"
        path.write_text(json.dumps(collection), encoding="utf-8")
        files.append(str(path))
    path = directory / "items.json"
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    files.append(str(path))
    return files


def _served_href(
    centre: Centre, root: Path, key: str, item_id: str, href: str, asset_base: str
) -> str:
    path = Path(href).resolve()
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise ConfigurationError(
            f"centre {centre.name}: asset {key!r} of {item_id} is {href}, outside the "
            f"centre's directory {root}; the lab serves only files under it"
        ) from None
    return posixpath.join(asset_base, relative.as_posix())


def _collections(centre: Centre) -> list[dict[str, Any]]:
    """Collection documents from the centre's static catalogue (none if it has none)."""
    import pystac

    source = centre.static_catalog or (
        centre.catalog.href if centre.catalog.kind == "stac-static" else None
    )
    if not source or not Path(source).is_file():
        return []  # rustac serve makes one per collection id found in the items
    out = []
    for child in pystac.Catalog.from_file(source).get_children():
        if isinstance(child, pystac.Collection):
            document = child.to_dict(include_self_link=False, transform_hrefs=False)
            document["links"] = []
            for key, asset in child.assets.items():  # absolute paths, made URLs by the caller
                document["assets"][key]["href"] = asset.get_absolute_href()
            out.append(document)
    return out


def rustac_command(bin_dir: str, files: list[str], ip: str, port: int) -> list[str]:
    """The command serving ``files`` as a STAC API at ``http://ip:port/`` (memory backend)."""
    return [
        str(Path(bin_dir) / "rustac"),
        "serve",
        "--addr",
        f"{ip}:{port}",
        "--use-duckdb",
        "false",
        "--create-collections",
        *files,
    ]


def write_centres_file(
    path: Path,
    centre_set: CentreSet,
    catalogs: Mapping[str, Mapping[str, Any]],
    extra: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write a centres file: ``centre_set`` with some centres' ``catalog`` replaced.

    Parameters
    ----------
    path
        Where to write.
    centre_set
        The source centres (paths in them are already absolute).
    catalogs
        ``{centre: catalog mapping}`` to put in place of those centres' catalogues; a served
        restricted centre also loses its ``static_catalog`` (local files are not for clients).
    extra
        Further centres (entries of a centres file) after them: the lab's own services
        searched as centres (each user's processing results).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    entries = []
    for name, centre in centre_set.items():
        entry = _plain(asdict(centre))
        if name in catalogs:
            entry["catalog"] = dict(catalogs[name])
            if centre.restricted:
                entry.pop("static_catalog", None)
        entries.append(entry)
    entries.extend(dict(e) for e in extra)
    header = (
        "# Centres file of a local lab deployment (written by earthlab hub up).\n"
        f"# Source: {centre_set.source}\n"
    )
    document: dict[str, Any] = {"version": 1}
    if centre_set.source is not None:
        document["derived_from"] = str(Path(centre_set.source).resolve())
    document["centres"] = entries
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    path.write_text(header + text, encoding="utf-8")
    return path


def _plain(value: Any) -> Any:
    """Dataclass dicts to YAML-friendly values, dropping empty and default-less fields."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v not in (None, {}, (), [], "")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
