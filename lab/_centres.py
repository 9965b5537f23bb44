"""Data centres: the centres file and the frozen objects describing each centre.

A *centres file* is YAML::

    version: 1
    centres:
      - name: theia
        title: "THEIA — continental surfaces"
        catalog:
          kind: stac-geoparquet          # or stac-api, stac-static, cube-store, csw
          href: theia/items.parquet      # relative paths are relative to the file
        collections: [sentinel-2-l2a]
        priority: 10                     # lower wins when two centres mirror an item
        gateway:                         # optional: a Dask Gateway next to the data
          address: http://127.0.0.1:8000/services/dask-gateway-theia
          proxy_address: gateway://127.0.0.1:8786
        storage:                         # optional: where the centre stores cubes
          url: s3://theia-cubes
          endpoint_url: http://127.0.0.1:9000

Secrets never live in the file: storage credentials are read from the environment
variables the file names (``key_env``, ``secret_env``).

A centres file written from another one (the local lab serves the catalogues of its source
file as STAC APIs) says so with a top-level ``derived_from: <path of the source file>``: the
same centres and data, reached another way (``CentreSet.derived_from``).

The ``gateways`` setting (``lab.config``) replaces a centre's gateway address and proxy
address; the hub sets it for single-user servers through ``EARTHLAB_GATEWAY_<NAME>`` and
``EARTHLAB_GATEWAY_PROXY_<NAME>`` (``<NAME>`` upper-cased, ``-`` -> ``_``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from lab._config import config
from lab._errors import CentresFileError, UnknownCentreError

__all__ = ["CatalogSpec", "Centre", "CentreSet", "GatewaySpec", "StorageSpec", "centres"]

CATALOG_KINDS = ("stac-geoparquet", "stac-api", "stac-static", "cube-store", "csw")
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_SUPPORTED_VERSIONS = (1,)


@dataclass(frozen=True)
class CatalogSpec:
    """Where and how a centre's catalogue is searched."""

    kind: str
    """Adapter: ``stac-geoparquet`` (DuckDB, offline), ``stac-api``, ``stac-static``,
    ``cube-store`` or ``csw`` (an OGC CSW 2.0.2 of ISO 19139 dataset records: found by
    ``collections``, holds no items)."""
    href: str
    """Absolute path or URL of the catalogue (parquet file, API root, catalog.json, or the CSW
    endpoint)."""
    timeout: float = 10.0
    """Seconds allowed for one search of this centre, retries included, before it is
    reported missing (also the timeout of each HTTP request)."""
    retries: int = 2
    """Further attempts after a transient failure (bounded, with backoff)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra HTTP headers for STAC APIs (never a secret: use ``token_env``)."""
    token_env: str | None = None
    """Name of an environment variable holding a bearer token for this catalogue."""

    def __post_init__(self) -> None:
        if self.kind not in CATALOG_KINDS:
            raise CentresFileError(
                f"catalog.kind {self.kind!r} is not supported; use one of {', '.join(CATALOG_KINDS)}"
            )
        if not self.href:
            raise CentresFileError("catalog.href is empty; give a path or URL")
        if self.kind == "csw" and not self.href.startswith(("http://", "https://")):
            raise CentresFileError(
                f"catalog.href of a csw catalogue must be the http(s) URL of the CSW endpoint, "
                f"got {self.href!r}"
            )
        if not (self.timeout > 0):
            raise CentresFileError(f"catalog.timeout must be > 0 seconds, got {self.timeout!r}")
        if not (isinstance(self.retries, int) and 0 <= self.retries <= 10):
            raise CentresFileError(
                f"catalog.retries must be an integer 0..10, got {self.retries!r}"
            )


@dataclass(frozen=True)
class GatewaySpec:
    """A Dask Gateway running next to a centre's data."""

    address: str
    """HTTP(S) address of the gateway API (for example behind the hub's proxy)."""
    proxy_address: str | None = None
    """``gateway://host:port`` of the gateway's scheduler proxy, when not the API host."""
    auth: str = "jupyterhub"
    """Authentication: ``jupyterhub`` (the hub's API token) or ``simple`` (local tests)."""

    def __post_init__(self) -> None:
        if not self.address.startswith(("http://", "https://")):
            raise CentresFileError(f"gateway.address must be an http(s) URL, got {self.address!r}")
        if self.auth not in ("jupyterhub", "simple", "kerberos"):
            raise CentresFileError(
                f"gateway.auth {self.auth!r} is not supported; use jupyterhub, simple or kerberos"
            )


@dataclass(frozen=True)
class StorageSpec:
    """Object storage (or a local directory) where a centre keeps analysis-ready cubes."""

    url: str
    """``s3://bucket/prefix`` or a local directory."""
    endpoint_url: str | None = None
    """S3 endpoint for non-AWS object stores."""
    key_env: str | None = None
    """Environment variable holding the access key id."""
    secret_env: str | None = None
    """Environment variable holding the secret access key."""
    region: str | None = None
    """S3 region name, when the store wants one."""

    def storage_options(self) -> dict[str, Any]:
        """Return fsspec storage options, reading credentials from the environment.

        Returns
        -------
        dict
            Options for ``fsspec.filesystem("s3", **options)``; empty for local paths.
        """
        if not self.url.startswith("s3://"):
            return {}
        options: dict[str, Any] = {}
        client_kwargs: dict[str, Any] = {}
        if self.endpoint_url:
            client_kwargs["endpoint_url"] = self.endpoint_url
        if self.region:
            client_kwargs["region_name"] = self.region
        if client_kwargs:
            options["client_kwargs"] = client_kwargs
        for env, key in ((self.key_env, "key"), (self.secret_env, "secret")):
            if env:
                value = os.environ.get(env)
                if value is None:
                    raise CentresFileError(
                        f"storage credentials: environment variable {env} is not set; "
                        f"export it before using {self.url}"
                    )
                options[key] = value
        return options


@dataclass(frozen=True)
class Centre:
    """One data centre of the federation."""

    name: str
    """Short identifier (lower case, digits and ``-``), used in item tags and reports."""
    title: str
    """Human-readable name."""
    catalog: CatalogSpec
    """How its catalogue is searched."""
    description: str = ""
    """Free text."""
    collections: tuple[str, ...] = ()
    """Collections the centre holds; empty means unknown (always searched)."""
    static_catalog: str | None = None
    """Absolute path or URL of a static STAC catalogue mirror, if any."""
    priority: int = 100
    """When two centres hold the same item, the lower priority wins (then file order)."""
    gateway: GatewaySpec | None = None
    """Dask Gateway next to the data, if any."""
    storage: StorageSpec | None = None
    """Where the centre stores cubes, if anywhere."""
    restricted: Mapping[str, str] = field(default_factory=dict)
    """Collections restricted to a hub group: ``{collection: group}``."""
    access_url: str | None = None
    """Where to request access to restricted collections."""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise CentresFileError(
                f"centre name {self.name!r} is invalid: use lower-case letters, digits and '-', "
                "starting with a letter"
            )

    def holds(self, collections: tuple[str, ...] | None) -> bool:
        """Say whether this centre may hold any of ``collections``.

        Parameters
        ----------
        collections
            Collection ids asked for, or None for any.

        Returns
        -------
        bool
            False only when the centre declares its collections and none is asked for.
        """
        if not collections or not self.collections:
            return True
        return bool(set(collections) & set(self.collections))


class CentreSet(Mapping[str, Centre]):
    """The centres of a federation, by name, in file order.

    Parameters
    ----------
    centres
        The centres.
    source
        The file they were read from, if any.
    derived_from
        The centres file this one was written from (same centres and data, served another
        way), if it says so.
    """

    def __init__(
        self,
        centres: list[Centre] | tuple[Centre, ...],
        source: Path | None = None,
        derived_from: Path | None = None,
    ):
        names = [c.name for c in centres]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise CentresFileError(
                f"centre names must be unique; repeated: {', '.join(duplicated)}"
            )
        if not centres:
            raise CentresFileError("the centres file lists no centre; add at least one")
        self._centres = {c.name: c for c in centres}
        self.source = source
        self.derived_from = derived_from

    def __getitem__(self, name: str) -> Centre:
        try:
            return self._centres[name]
        except KeyError:
            raise UnknownCentreError(
                f"unknown centre {name!r}; known centres: {', '.join(self._centres)}"
                + (f" (from {self.source})" if self.source else "")
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._centres)

    def __len__(self) -> int:
        return len(self._centres)

    def select(self, names: list[str] | tuple[str, ...] | None) -> CentreSet:
        """Return the subset of centres named (all when ``names`` is None).

        Raises
        ------
        UnknownCentreError
            If a name is not in the set.
        """
        if names is None:
            return self
        return CentreSet([self[n] for n in names], source=self.source)

    def __repr__(self) -> str:
        lines = [
            f"CentreSet({len(self)} centres" + (f" from {self.source})" if self.source else ")")
        ]
        for c in self.values():
            gateway = " gateway" if c.gateway else ""
            lines.append(f"  {c.name:<10} {c.catalog.kind:<15} {', '.join(c.collections)}{gateway}")
        return "\n".join(lines)


def centres(path: str | os.PathLike[str] | None = None) -> CentreSet:
    """Read the federation's data centres.

    Parameters
    ----------
    path
        A centres file. When None, the ``centres`` setting (``EARTHLAB_CENTRES``, see
        ``lab.config``) is used, else the embedded sample federation (generated on first use
        into the lab's cache directory).

    Returns
    -------
    CentreSet
        The centres by name.

    Raises
    ------
    CentresFileError
        If the file is missing or malformed (the message names the field).
    ConfigurationError
        If the lab's configuration is invalid (the message names the setting).
    """
    if path is None:
        configured = config.get("centres")
        if configured:
            path = configured
        else:
            from lab.sample import ensure_default_sample

            path = ensure_default_sample()
    return read_centres_file(Path(path))


def read_centres_file(path: Path) -> CentreSet:
    """Parse and validate a centres file (see the module docstring for the format).

    Every field is checked for its type before any object is made: an error names the file
    and the field's path (``centre 'theia': catalog.href: expected a URL or path, got 42
    (int)``); a key given twice in one mapping, at any level, is an error (YAML parsers
    otherwise keep the last one silently).
    """
    path = Path(path).expanduser()
    try:
        exists = path.is_file()
    except OSError as exc:  # a directory on the way is closed to this account
        raise CentresFileError(
            f"centres file {path} cannot be reached ({exc.strerror or exc}): give this "
            "account read access to it and its directories"
        ) from None
    if not exists:
        raise CentresFileError(
            f"centres file {path} does not exist; create one (see docs) or unset the centres "
            f"setting ({config.env_name('centres')}) to use the embedded sample federation"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CentresFileError(
            f"centres file {path} cannot be read ({reason}): give a readable UTF-8 YAML file"
        ) from None
    try:
        _reject_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), "")
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CentresFileError(f"centres file {path} is not valid YAML: {exc}") from None
    except CentresFileError as exc:
        raise CentresFileError(f"centres file {path}: {exc}") from None
    if not isinstance(document, dict):
        raise CentresFileError(
            f"centres file {path}: expected a mapping with 'version' and 'centres'"
        )
    unknown = sorted(str(k) for k in set(document) - {"version", "centres", "derived_from"})
    if unknown:
        raise CentresFileError(
            f"centres file {path}: unknown field(s) {', '.join(unknown)} at the top level; "
            "known: centres, derived_from, version"
        )
    derived_from = document.get("derived_from")
    if derived_from is not None and not isinstance(derived_from, str):
        raise CentresFileError(
            f"centres file {path}: derived_from: expected the path of a centres file, got "
            f"{derived_from!r} ({type(derived_from).__name__})"
        )
    version = document.get("version", 1)
    if isinstance(version, bool) or version not in _SUPPORTED_VERSIONS:
        raise CentresFileError(f"centres file {path}: version {version!r} is not supported (use 1)")
    entries = document.get("centres")
    if not isinstance(entries, list):
        raise CentresFileError(f"centres file {path}: 'centres' must be a list of centres")
    gateways = config.get("gateways")  # before parsing: its errors name the setting, not a centre
    try:
        parsed = [_parse_centre(entry, i, path.parent, gateways) for i, entry in enumerate(entries)]
        origin = (path.parent / derived_from).resolve() if derived_from else None
        return CentreSet(parsed, source=path, derived_from=origin)
    except CentresFileError as exc:
        raise CentresFileError(f"centres file {path}: {exc}") from None


def _reject_duplicate_keys(node: Any, where: str) -> None:
    """Raise on a key given twice in a mapping of the YAML node tree ``node`` (any depth)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise CentresFileError(
                    f"{where or 'the top level'}: a key must be text, got a "
                    f"{'list' if isinstance(key_node, yaml.SequenceNode) else 'mapping'} "
                    f"(line {key_node.start_mark.line + 1})"
                )
            key = key_node.value
            child = f"{where}.{key}" if where else str(key)
            if key in seen:
                raise CentresFileError(
                    f"{child}: the key {key!r} is given twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); keep one: YAML would silently keep "
                    "the last"
                )
            seen[key] = key_node.start_mark.line
            _reject_duplicate_keys(value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _reject_duplicate_keys(item, f"{where}[{index}]")


# The type each field of the file must have: text, href (URL or path), url (http(s)), integer,
# number, strings (a list of text), mapping of text to text, or a nested section.
_CENTRE_FIELDS = {
    "name": "text",
    "title": "text",
    "description": "text",
    "catalog": "section",
    "collections": "strings",
    "static_catalog": "href",
    "priority": "integer",
    "gateway": "section",
    "storage": "section",
    "restricted": "text-map",
    "access_url": "url",
}
_SECTION_FIELDS: dict[str, dict[str, str]] = {
    "catalog": {
        "kind": "text",
        "href": "href",
        "timeout": "number",
        "retries": "integer",
        "headers": "text-map",
        "token_env": "text",
    },
    "gateway": {"address": "url", "proxy_address": "href", "auth": "text"},
    "storage": {
        "url": "href",
        "endpoint_url": "url",
        "key_env": "text",
        "secret_env": "text",
        "region": "text",
    },
}
_EXPECTED = {
    "text": "text",
    "href": "a URL or path",
    "url": "an http(s) URL",
    "integer": "an integer",
    "number": "a number",
    "strings": "a list of text",
    "text-map": "a mapping of text to text",
    "section": "a mapping",
}


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}..." if len(text) > 60 else text


def _check_type(value: Any, kind: str, where: str) -> None:
    """Raise unless ``value`` has the type ``kind`` of :data:`_CENTRE_FIELDS` (None passes)."""
    if value is None:
        return
    ok: bool
    if kind in ("text", "href"):
        ok = isinstance(value, str) and (kind == "text" or bool(value.strip()))
    elif kind == "url":
        ok = isinstance(value, str) and value.startswith(("http://", "https://"))
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    elif kind == "strings":
        ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    elif kind == "text-map":
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    else:
        ok = isinstance(value, dict)
    if not ok:
        quote = kind in ("text", "href") and isinstance(value, int | float | bool)
        hint = " (quote it in the YAML)" if quote else ""
        raise CentresFileError(
            f"{where}: expected {_EXPECTED[kind]}, got {_shown(value)} "
            f"({type(value).__name__}){hint}"
        )


def _parse_centre(
    entry: Any, index: int, base: Path, gateways: Mapping[str, Mapping[str, str]]
) -> Centre:
    where = f"centres[{index}]"
    if not isinstance(entry, dict):
        raise CentresFileError(f"{where}: expected a mapping, got {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str):
        raise CentresFileError(
            f"{where}.name: "
            + ("is required" if name is None else f"expected text, got {_shown(name)}")
        )
    where = f"centre {name!r}"
    try:
        unknown = sorted(str(k) for k in entry if k not in _CENTRE_FIELDS)
        if unknown:
            raise CentresFileError(
                f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_CENTRE_FIELDS))}"
            )
        for key, kind in _CENTRE_FIELDS.items():
            _check_type(entry.get(key), kind, key)
        catalog = _sub(entry, "catalog", CatalogSpec, required=True)
        catalog = _resolve_catalog(catalog, base)
        gateway = _sub(entry, "gateway", GatewaySpec)
        gateway = _configured_gateway(gateways.get(name, {}), gateway)
        storage = _sub(entry, "storage", StorageSpec)
        if storage is not None and not _is_url(storage.url):
            storage = replace(storage, url=str((base / storage.url).resolve()))
        static = entry.get("static_catalog")
        if static is not None and not _is_url(static):
            static = str((base / static).resolve())
        return Centre(
            name=name,
            title=entry.get("title") or name,
            description=entry.get("description") or "",
            catalog=catalog,
            collections=tuple(entry.get("collections") or ()),
            static_catalog=static,
            priority=entry.get("priority", 100),
            gateway=gateway,
            storage=storage,
            restricted=dict(entry.get("restricted") or {}),
            access_url=entry.get("access_url"),
        )
    except CentresFileError as exc:
        if str(exc).startswith(where):
            raise
        raise CentresFileError(f"{where}: {exc}") from None


def _sub(entry: dict[str, Any], key: str, cls: Any, required: bool = False) -> Any:
    value = entry.get(key)
    if value is None:
        if required:
            raise CentresFileError(f"field '{key}' is required")
        return None
    schema = _SECTION_FIELDS[key]
    unknown = sorted(str(k) for k in value if k not in schema)
    if unknown:
        raise CentresFileError(
            f"{key}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(schema))}"
        )
    for name, kind in schema.items():
        _check_type(value.get(name), kind, f"{key}.{name}")
    missing = [
        f.name
        for f in cls.__dataclass_fields__.values()
        if f.default is MISSING and f.default_factory is MISSING and f.name not in value
    ]
    if missing:
        raise CentresFileError(f"{key}.{missing[0]}: is required")
    return cls(**value)


def _resolve_catalog(spec: CatalogSpec, base: Path) -> CatalogSpec:
    if _is_url(spec.href):
        return spec
    return replace(spec, href=str((base / spec.href).resolve()))


def _configured_gateway(
    entry: Mapping[str, str], gateway: GatewaySpec | None
) -> GatewaySpec | None:
    """A centre's gateway with its entry of the ``gateways`` setting applied.

    An address makes a gateway (keeping the file's proxy address unless one is given); a
    proxy address alone changes the file's gateway, and is ignored for a centre without one.
    """
    address, proxy = entry.get("address"), entry.get("proxy_address")
    if gateway is None:
        return GatewaySpec(address=address, proxy_address=proxy) if address else None
    if not (address or proxy):
        return gateway
    return replace(
        gateway,
        address=address or gateway.address,
        proxy_address=proxy or gateway.proxy_address,
    )


def _is_url(href: str) -> bool:
    return "://" in href
