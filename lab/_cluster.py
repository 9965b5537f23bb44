"""Dask clusters near the data: a Dask Gateway at the centre holding the items, else local.

Where a cluster runs (``lab.cluster(near=items)``)
--------------------------------------------------
Each item says which centre it came from (``item.properties["earthlab:centre"]``, set by
``lab.catalog().search``). The cluster goes to the centre holding **most of the items' data**:

1. when every item gives the size of at least one asset (``file:size``, in bytes), each centre
   weighs the sum of its items' asset sizes;
2. otherwise each centre weighs its number of items (a size known for some items only would
   compare bytes with guesses);
3. ties go to the centre listed first in the centres file.

If that centre has a gateway (in the centres file, or in the ``gateways`` setting, which the hub
sets for single-user servers as ``EARTHLAB_GATEWAY_<NAME>``), the cluster is a Gateway cluster there; if it has none (the
embedded sample federation's default), it is a :class:`distributed.LocalCluster` on this machine.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab._centres import Centre, CentreSet, centres
from lab._config import config
from lab._errors import ClusterError, ConfigurationError

__all__ = ["ClusterInfo", "choose_centre", "cluster", "list_clusters", "stop_clusters"]

CENTRE_PROPERTY = "earthlab:centre"
LOCAL_OPTIONS = {"worker_cores": (int, 1, 1, os.cpu_count() or 1), "worker_memory": (float, 2.0)}
"""Options of local clusters: ``worker_cores`` (threads per worker), ``worker_memory`` (GiB)."""
_GIB = 2**30
_local: dict[str, Any] = {}  # name -> LocalCluster started by this process
_gateway_owned: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
"""GatewayCluster objects of this process, by name: stopped through them, so that they know."""
_counter = itertools.count(1)


@dataclass(frozen=True)
class ClusterInfo:
    """One of the user's clusters, as :func:`list_clusters` reports it."""

    name: str
    """Cluster name (the gateway's id, or ``local-<n>``)."""
    centre: str | None
    """Centre whose gateway runs it; None for a local cluster."""
    kind: str
    """``gateway`` or ``local``."""
    status: str
    """``PENDING``, ``RUNNING``... (gateway) or ``running`` / ``closed`` (local)."""
    dashboard_link: str | None = None
    """Where the Dask dashboard is."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Options the cluster was started with."""


def choose_centre(items: Iterable[Any], federation: CentreSet) -> str:
    """Return the centre holding most of the items' data (rule in the module docstring).

    Parameters
    ----------
    items
        STAC items (pystac ``Item`` or dicts) tagged with ``earthlab:centre``.
    federation
        The centres, in file order (for ties).

    Returns
    -------
    str
        Centre name.

    Raises
    ------
    ConfigurationError
        If there is no item or an item has no centre tag.
    UnknownCentreError
        If an item's centre is not in ``federation``.
    """
    sizes: dict[str, int] = {}
    counts: dict[str, int] = {}
    all_sized = True
    for item in items:
        properties, assets, item_id = _item_parts(item)
        name = properties.get(CENTRE_PROPERTY)
        if not name:
            raise ConfigurationError(
                f"item {item_id!r} has no '{CENTRE_PROPERTY}' property: pass items from "
                "lab.catalog().search(...), or choose the place with cluster(centre=...)"
            )
        federation[name]  # raises UnknownCentreError naming the known centres
        known = [a["file:size"] for a in assets if _is_size(a.get("file:size"))]
        all_sized = all_sized and bool(known)
        sizes[name] = sizes.get(name, 0) + sum(known)
        counts[name] = counts.get(name, 0) + 1
    if not counts:
        raise ConfigurationError(
            "cluster(near=...) got no item; search first, or give cluster(centre=...)"
        )
    weights = sizes if all_sized else counts
    order = list(federation)
    return max(weights, key=lambda n: (weights[n], -order.index(n)))


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _item_parts(item: Any) -> tuple[Mapping[str, Any], list[Mapping[str, Any]], str]:
    if isinstance(item, Mapping):
        assets = item.get("assets") or {}
        return item.get("properties") or {}, list(assets.values()), str(item.get("id"))
    assets = [a.extra_fields for a in (getattr(item, "assets", None) or {}).values()]
    return item.properties, assets, str(getattr(item, "id", item))


def cluster(
    near: Iterable[Any] | None = None,
    *,
    centre: str | None = None,
    workers: int = 1,
    centres_file: str | os.PathLike[str] | CentreSet | None = None,
    wait: bool = True,
    timeout: float = 120.0,
    **options: Any,
) -> Any:
    """Start a Dask cluster near the data and return a client connected to it.

    Parameters
    ----------
    near
        Items to compute on: the cluster goes to the centre holding most of their data
        (see the rule in :mod:`lab._cluster`: asset ``file:size`` sums, else item counts,
        ties to the first centre of the centres file).
    centre
        Or the centre to run at, by name. With neither ``near`` nor ``centre``, the cluster is
        local.
    workers
        Workers to start (within the gateway's per-cluster and per-user caps).
    centres_file
        Centres file or :class:`CentreSet` (default: ``$EARTHLAB_CENTRES`` or the sample).
    wait
        Wait until the first worker is ready (recommended: errors show up here, not at the
        first computation).
    timeout
        Seconds to wait for the first worker.
    **options
        Cluster options. On a gateway, those it offers (the lab's hub: ``worker_cores`` and
        ``worker_memory`` in GiB, with bounds); on a local cluster, ``worker_cores`` (threads
        per worker) and ``worker_memory`` (GiB per worker).

    Returns
    -------
    distributed.Client
        Connected to the cluster (``client.cluster``); closing the client with
        ``client.cluster.close()`` stops the cluster, and so does :func:`stop_clusters`. The
        client's ``earthlab_centre`` attribute names the centre (None when local).

    Raises
    ------
    ClusterError
        If an option is invalid (the message lists the valid ones with their bounds), the
        gateway refuses (a cap reached, no permission) or cannot be reached, or no worker
        starts in time.
    ConfigurationError
        If ``near`` is empty or its items carry no centre.
    """
    if not (isinstance(workers, int) and workers >= 0):
        raise ConfigurationError(f"workers must be a non-negative integer, got {workers!r}")
    federation = centres_file if isinstance(centres_file, CentreSet) else centres(centres_file)
    if near is not None and centre is not None:
        raise ConfigurationError("give cluster(near=items) or cluster(centre=...), not both")
    if near is not None:
        centre = choose_centre(near, federation)
    place = federation[centre] if centre is not None else None
    if place is None or place.gateway is None:
        client = _local_cluster(workers, options, wait, timeout)
        client.earthlab_centre = None
        return client
    client = _gateway_cluster(place, workers, options, wait, timeout)
    client.earthlab_centre = place.name
    return client


def _local_cluster(workers: int, options: dict[str, Any], wait: bool, timeout: float) -> Any:
    from distributed import Client, LocalCluster

    unknown = sorted(set(options) - set(LOCAL_OPTIONS))
    if unknown:
        raise ClusterError(
            f"unknown option(s) {', '.join(unknown)} for a local cluster; valid options: "
            "worker_cores (threads per worker, integer >= 1), worker_memory (GiB per worker)"
        )
    cores = options.get("worker_cores", 1)
    memory = options.get("worker_memory", LOCAL_OPTIONS["worker_memory"][1])
    if not (isinstance(cores, int) and cores >= 1):
        raise ClusterError(f"worker_cores must be an integer >= 1, got {cores!r}")
    if not (isinstance(memory, int | float) and memory > 0):
        raise ClusterError(f"worker_memory must be a positive number of GiB, got {memory!r}")
    name = f"local-{next(_counter)}"
    local = LocalCluster(
        name=name,
        n_workers=workers,
        threads_per_worker=cores,
        memory_limit=int(memory * _GIB),
        processes=True,
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
    )
    _local[name] = local
    client = Client(local)
    if wait and workers:
        client.wait_for_workers(1, timeout=timeout)
    return client


def _gateway(place: Centre) -> Any:
    from dask_gateway import Gateway

    spec = place.gateway
    assert spec is not None
    auth: Any = spec.auth
    if spec.auth == "jupyterhub":
        from dask_gateway.auth import JupyterHubAuth

        token = os.environ.get("JUPYTERHUB_API_TOKEN")
        if not token:
            address_var = config.gateway_env_names(place.name)[0]
            raise ClusterError(
                f"the gateway of centre {place.name!r} authenticates through JupyterHub but "
                "JUPYTERHUB_API_TOKEN is not set: run this in a notebook of the lab's hub, "
                f"or unset {address_var} to compute on a local cluster"
            )
        auth = JupyterHubAuth(api_token=token)
    elif spec.auth == "simple":
        auth = "basic"
    return Gateway(spec.address, proxy_address=spec.proxy_address, auth=auth)


def _close(gateway: Any) -> None:
    """Close a gateway client once: its ``__del__`` would close it again and fail."""
    gateway.close()
    gateway.__dict__.pop("_loop_runner", None)


def _gateway_cluster(
    place: Centre, workers: int, options: dict[str, Any], wait: bool, timeout: float
) -> Any:
    gateway = _gateway(place)
    try:
        with _gateway_errors(place):
            offered = gateway.cluster_options()
        _set_options(offered, options, place)
        with _gateway_errors(place):
            gateway_cluster = gateway.new_cluster(cluster_options=offered, shutdown_on_close=True)
    finally:
        _close(gateway)  # the cluster object holds its own connection to the gateway
    try:
        with _gateway_errors(place):
            if workers:
                gateway_cluster.scale(workers)
            client = gateway_cluster.get_client(set_as_default=True)
        if wait and workers:
            try:
                client.wait_for_workers(1, timeout=timeout)
            except TimeoutError:
                raise ClusterError(
                    f"no worker of cluster {gateway_cluster.name} at centre {place.name!r} "
                    f"was ready after {timeout:.0f} s; the cluster is stopped. Ask for smaller "
                    "workers, or look at the gateway's log"
                ) from None
    except BaseException:
        with contextlib.suppress(Exception):
            gateway_cluster.shutdown()
        raise
    _gateway_owned[gateway_cluster.name] = gateway_cluster
    return client


def _set_options(offered: Any, wanted: dict[str, Any], place: Centre) -> None:
    valid = _describe_options(offered)
    unknown = sorted(set(wanted) - set(offered))
    if unknown:
        raise ClusterError(
            f"unknown option(s) {', '.join(unknown)} for the gateway of centre "
            f"{place.name!r}; valid options: {valid}"
        )
    for key, value in wanted.items():
        try:
            offered[key] = value
        except (TypeError, ValueError) as exc:
            raise ClusterError(
                f"option {key}={value!r} is invalid for the gateway of centre {place.name!r} "
                f"({exc}); valid options: {valid}"
            ) from None


def _describe_options(offered: Any) -> str:
    parts = []
    for name, spec in offered._fields.items():
        bounds = ""
        low, high = getattr(spec, "min", None), getattr(spec, "max", None)
        if low is not None or high is not None:
            bounds = f" {'' if low is None else low}..{'' if high is None else high}"
        parts.append(f"{name} ({type(spec).__name__.lower()}{bounds}, default {spec.value})")
    return ", ".join(parts) or "none"


@contextlib.contextmanager
def _gateway_errors(place: Centre) -> Any:
    """Turn the gateway client's errors into ClusterError saying what to do."""
    from dask_gateway.client import GatewayClusterError, GatewayServerError

    assert place.gateway is not None
    where = f"the gateway of centre {place.name!r} at {place.gateway.address}"
    try:
        yield
    except (GatewayClusterError, GatewayServerError, ValueError) as exc:
        raise ClusterError(f"{where} refused: {exc}") from None
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            raise ClusterError(
                f"{where} refused the token (HTTP {status}): it needs the hub scope "
                f"access:services!service=dask-gateway-{place.name}; ask the lab's admins"
            ) from None
        if isinstance(exc, OSError) or type(exc).__module__.startswith("aiohttp"):
            raise ClusterError(
                f"cannot reach {where}: {exc}. Check that the lab runs (`earthlab hub status`)"
            ) from None
        raise


def list_clusters(
    centres_file: str | os.PathLike[str] | CentreSet | None = None,
) -> list[ClusterInfo]:
    """List the current user's clusters on every centre's gateway, and local ones.

    Parameters
    ----------
    centres_file
        Centres file or :class:`CentreSet` (default: ``$EARTHLAB_CENTRES`` or the sample).

    Returns
    -------
    list of ClusterInfo
        Pending and running gateway clusters (only the user's own: a gateway shows nobody
        else's), then the local clusters this process started.

    Raises
    ------
    ClusterError
        If a gateway cannot be reached or refuses the token.
    """
    federation = centres_file if isinstance(centres_file, CentreSet) else centres(centres_file)
    found: list[ClusterInfo] = []
    for place in federation.values():
        if place.gateway is None:
            continue
        gateway = _gateway(place)
        try:
            with _gateway_errors(place):
                reports = gateway.list_clusters()
        finally:
            _close(gateway)
        found.extend(
            ClusterInfo(
                name=r.name,
                centre=place.name,
                kind="gateway",
                status=r.status.name,
                dashboard_link=r.dashboard_link,
                options=dict(r.options),
            )
            for r in reports
        )
    for name, local in _local.items():
        status = getattr(local.status, "name", str(local.status))
        found.append(ClusterInfo(name, None, "local", status, local.dashboard_link))
    return found


def stop_clusters(
    names: Iterable[str] | None = None,
    *,
    centres_file: str | os.PathLike[str] | CentreSet | None = None,
) -> list[str]:
    """Stop the current user's clusters: all of them, or those named.

    Parameters
    ----------
    names
        Cluster names (from :func:`list_clusters` or ``client.cluster.name``); None for all.
    centres_file
        Centres file or :class:`CentreSet` (default: ``$EARTHLAB_CENTRES`` or the sample).

    Returns
    -------
    list of str
        Names of the clusters stopped.

    Raises
    ------
    ClusterError
        If a name is not one of the user's clusters (the message lists them).
    """
    federation = centres_file if isinstance(centres_file, CentreSet) else centres(centres_file)
    clusters = list_clusters(federation)
    wanted = None if names is None else set(names)
    if wanted is not None:
        missing = sorted(wanted - {c.name for c in clusters})
        if missing:
            raise ClusterError(
                f"no cluster named {', '.join(missing)} among yours: "
                f"{', '.join(c.name for c in clusters) or 'none'}"
            )
    stopped = []
    for info in clusters:
        if wanted is not None and info.name not in wanted:
            continue
        if info.kind == "local":
            _local.pop(info.name).close()
        elif (owned := _gateway_owned.pop(info.name, None)) is not None:
            place = federation[info.centre or ""]
            with _gateway_errors(place):
                owned.shutdown()
        else:
            assert info.centre is not None
            place = federation[info.centre]
            gateway = _gateway(place)
            try:
                with _gateway_errors(place):
                    gateway.stop_cluster(info.name)
            finally:
                _close(gateway)
        stopped.append(info.name)
    return stopped
