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

Listing and stopping, gateway by gateway
----------------------------------------
:func:`list_clusters` and :func:`stop_clusters` ask every centre's gateway in turn. A gateway
that refuses the user's token (a centre restricted to a hub group refuses the others), cannot
be reached or fails is reported (``result.gateways``, one :class:`GatewayReport` per centre,
and a :class:`GatewayWarning`) and the others are still listed and stopped, as a federated
search reports each centre. Stopping raises only for clusters asked for by name that could
not be stopped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab._centres import Centre, CentreSet, centres
from lab._config import config
from lab._errors import ClusterError, ConfigurationError, EarthLabWarning

__all__ = [
    "ClusterInfo",
    "ClusterList",
    "GatewayReport",
    "GatewayWarning",
    "StoppedClusters",
    "choose_centre",
    "cluster",
    "list_clusters",
    "stop_clusters",
]

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


GATEWAY_STATUSES = ("ok", "refused", "unreachable", "error")


@dataclass(frozen=True)
class GatewayReport:
    """What one centre's gateway answered when the user's clusters were listed."""

    centre: str
    """Centre name."""
    address: str
    """The gateway's API address."""
    status: str
    """``ok``; ``refused`` (the token is not accepted: 401/403, or no hub token here);
    ``unreachable`` (no answer); ``error`` (any other failure)."""
    clusters: int = 0
    """The user's clusters listed there."""
    error: str = ""
    """The gateway's answer when it is not ``ok``."""

    def __post_init__(self) -> None:
        if self.status not in GATEWAY_STATUSES:
            raise ConfigurationError(
                f"GatewayReport.status must be one of {GATEWAY_STATUSES}, got {self.status!r}"
            )


class GatewayWarning(EarthLabWarning):
    """A gateway refused, could not be reached or failed; the other gateways were still used.

    Its clusters were not listed or stopped (``result.gateways`` says which gateway answered
    what).
    """


class ClusterList(list[ClusterInfo]):
    """The user's clusters (a list of :class:`ClusterInfo`) and each gateway's report."""

    def __init__(self, clusters: Iterable[ClusterInfo], gateways: Mapping[str, GatewayReport]):
        super().__init__(clusters)
        self.gateways: dict[str, GatewayReport] = dict(gateways)
        """One :class:`GatewayReport` per centre with a gateway, by centre name."""

    @property
    def failed(self) -> dict[str, GatewayReport]:
        """The gateways whose clusters could not be listed."""
        return {n: r for n, r in self.gateways.items() if r.status != "ok"}


class StoppedClusters(list[str]):
    """Names of the clusters stopped, with what could not be stopped and each gateway's report."""

    def __init__(
        self,
        names: Iterable[str],
        gateways: Mapping[str, GatewayReport],
        not_stopped: Mapping[str, str],
    ):
        super().__init__(names)
        self.gateways: dict[str, GatewayReport] = dict(gateways)
        """One :class:`GatewayReport` per centre with a gateway (the listing), by centre name."""
        self.not_stopped: dict[str, str] = dict(not_stopped)
        """Clusters listed but not stopped, by name: the gateway's answer."""


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
    token: str | None = None,
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
    token
        The hub token a gateway authenticating through JupyterHub is given (default:
        ``$JUPYTERHUB_API_TOKEN``, the server's in a notebook of the lab); the cluster is its
        owner's, within its owner's caps.
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
    client = _gateway_cluster(place, workers, options, wait, timeout, token)
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


def _gateway(place: Centre, token: str | None = None) -> Any:
    from dask_gateway import Gateway

    spec = place.gateway
    assert spec is not None
    auth: Any = spec.auth
    if spec.auth == "jupyterhub":
        from dask_gateway.auth import JupyterHubAuth

        token = token or os.environ.get("JUPYTERHUB_API_TOKEN")
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
    place: Centre,
    workers: int,
    options: dict[str, Any],
    wait: bool,
    timeout: float,
    token: str | None = None,
) -> Any:
    gateway = _gateway(place, token)
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
        raise _tagged(ClusterError(f"{where} refused: {exc}"), "error") from None
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            raise _tagged(
                ClusterError(
                    f"{where} refused the token (HTTP {status}): it needs the hub scope "
                    f"access:services!service=dask-gateway-{place.name}; ask the lab's admins"
                ),
                "refused",
            ) from None
        if isinstance(status, int):
            raise _tagged(ClusterError(f"{where} answered HTTP {status}: {exc}"), "error") from None
        if isinstance(exc, OSError) or type(exc).__module__.startswith("aiohttp"):
            raise _tagged(
                ClusterError(
                    f"cannot reach {where}: {exc}. Check that the lab runs (`earthlab hub status`)"
                ),
                "unreachable",
            ) from None
        raise


def _tagged(error: ClusterError, status: str) -> ClusterError:
    """A gateway's ClusterError, with the :class:`GatewayReport` status it stands for."""
    error.gateway_status = status  # type: ignore[attr-defined]
    return error


def _failure(place: Centre, exc: Exception) -> GatewayReport:
    """The report of a gateway that could not list or stop clusters."""
    assert place.gateway is not None
    status = getattr(exc, "gateway_status", None)
    if status is None:  # no hub token here (raised by _gateway), or an unexpected failure
        status = "refused" if isinstance(exc, ClusterError) else "error"
    text = str(exc) if isinstance(exc, ClusterError) else f"{type(exc).__name__}: {exc}"
    return GatewayReport(place.name, place.gateway.address, status, error=text)


def list_clusters(
    centres_file: str | os.PathLike[str] | CentreSet | None = None,
) -> ClusterList:
    """List the current user's clusters on every centre's gateway, and local ones.

    Each gateway is asked in turn; one that refuses the token (a centre restricted to a hub
    group the user is not in), cannot be reached or fails does not stop the others: it is
    reported in ``result.gateways`` and by a :class:`GatewayWarning`.

    Parameters
    ----------
    centres_file
        Centres file or :class:`CentreSet` (default: ``$EARTHLAB_CENTRES`` or the sample).

    Returns
    -------
    ClusterList
        A list of :class:`ClusterInfo`: pending and running gateway clusters (only the user's
        own: a gateway shows nobody else's), then the local clusters this process started.
        ``result.gateways`` holds one :class:`GatewayReport` per centre with a gateway.

    Warns
    -----
    GatewayWarning
        If a gateway refused, could not be reached or failed (its clusters are not listed).
    """
    federation = centres_file if isinstance(centres_file, CentreSet) else centres(centres_file)
    found = _list(federation)
    _warn_failed(found.gateways, "listed", stacklevel=3)
    return found


def _list(federation: CentreSet) -> ClusterList:
    found: list[ClusterInfo] = []
    gateways: dict[str, GatewayReport] = {}
    for place in federation.values():
        if place.gateway is None:
            continue
        try:
            gateway = _gateway(place)
            try:
                with _gateway_errors(place):
                    reports = gateway.list_clusters()
            finally:
                _close(gateway)
        except Exception as exc:  # reported; the other gateways are still asked
            gateways[place.name] = _failure(place, exc)
            continue
        gateways[place.name] = GatewayReport(
            place.name, place.gateway.address, "ok", clusters=len(reports)
        )
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
    return ClusterList(found, gateways)


def _warn_failed(
    gateways: Mapping[str, GatewayReport], what: str, stacklevel: int, extra: str = ""
) -> None:
    failed = [r for r in gateways.values() if r.status != "ok"]
    if not failed and not extra:
        return
    lines = [f"{r.centre} ({r.status}): {r.error}" for r in failed]
    head = (
        f"the clusters on the gateway(s) of {', '.join(r.centre for r in failed)} were not "
        f"{what}; the other gateways' were (see result.gateways)"
        if failed
        else ""
    )
    message = "; ".join(part for part in (head, extra) if part)
    if lines:
        message += ":\n  " + "\n  ".join(lines)
    warnings.warn(message, GatewayWarning, stacklevel=stacklevel)


def stop_clusters(
    names: Iterable[str] | None = None,
    *,
    centres_file: str | os.PathLike[str] | CentreSet | None = None,
) -> StoppedClusters:
    """Stop the current user's clusters: all of them, or those named.

    Gateway by gateway: one that refuses the token, cannot be reached or fails does not keep
    the others' clusters running. Without ``names``, what can be stopped is stopped and the
    rest reported (``result.not_stopped``, ``result.gateways`` and a :class:`GatewayWarning`).

    Parameters
    ----------
    names
        Cluster names (from :func:`list_clusters` or ``client.cluster.name``); None for all.
    centres_file
        Centres file or :class:`CentreSet` (default: ``$EARTHLAB_CENTRES`` or the sample).

    Returns
    -------
    StoppedClusters
        The names of the clusters stopped (a list of str); ``result.not_stopped`` maps the
        clusters listed but not stopped to the gateway's answer, ``result.gateways`` holds each
        gateway's :class:`GatewayReport`.

    Raises
    ------
    ClusterError
        Only for clusters asked for by name: a name that is none of the user's clusters (the
        message lists them, and the gateways that could not be asked), or a named cluster
        that could not be stopped (the message gives the gateway's answer). The others named
        are stopped first.

    Warns
    -----
    GatewayWarning
        Without ``names``: if a gateway could not be asked or a cluster could not be stopped.
    """
    federation = centres_file if isinstance(centres_file, CentreSet) else centres(centres_file)
    clusters = _list(federation)
    wanted = None if names is None else set(names)
    missing: list[str] = []
    if wanted is not None:
        missing = sorted(wanted - {c.name for c in clusters})
        if missing and not clusters.failed:  # nothing hidden: a wrong name, stop nothing
            raise ClusterError(
                f"no cluster named {', '.join(missing)} among yours: "
                f"{', '.join(c.name for c in clusters) or 'none'}"
            )
    stopped: list[str] = []
    not_stopped: dict[str, str] = {}
    for info in clusters:
        if wanted is not None and info.name not in wanted:
            continue
        try:
            _stop(info, federation)
        except Exception as exc:  # reported; the other clusters are still stopped
            text = str(exc) if isinstance(exc, ClusterError) else f"{type(exc).__name__}: {exc}"
            not_stopped[info.name] = text
            continue
        stopped.append(info.name)
    result = StoppedClusters(stopped, clusters.gateways, not_stopped)
    if wanted is not None:
        if missing or not_stopped:
            raise ClusterError(_not_stopped_message(missing, not_stopped, clusters, stopped))
        return result
    extra = "; ".join(f"cluster {n} not stopped: {why}" for n, why in not_stopped.items())
    _warn_failed(clusters.gateways, "stopped", stacklevel=3, extra=extra)
    return result


def _stop(info: ClusterInfo, federation: CentreSet) -> None:
    if info.kind == "local":
        _local.pop(info.name).close()
        return
    assert info.centre is not None
    place = federation[info.centre]
    owned = _gateway_owned.pop(info.name, None)
    if owned is not None:
        with _gateway_errors(place):
            owned.shutdown()
        return
    gateway = _gateway(place)
    try:
        with _gateway_errors(place):
            gateway.stop_cluster(info.name)
    finally:
        _close(gateway)


def _not_stopped_message(
    missing: list[str], not_stopped: dict[str, str], clusters: ClusterList, stopped: list[str]
) -> str:
    parts = []
    if missing:
        asked = "; ".join(f"{r.centre} ({r.status}): {r.error}" for r in clusters.failed.values())
        parts.append(
            f"cluster(s) {', '.join(missing)} not found among yours "
            f"({', '.join(c.name for c in clusters) or 'none'}) and not stopped: they may be "
            f"on a gateway that could not be asked: {asked}"
        )
    parts += [f"cluster {name} not stopped: {why}" for name, why in not_stopped.items()]
    if stopped:
        parts.append(f"stopped: {', '.join(stopped)}")
    return "; ".join(parts)
