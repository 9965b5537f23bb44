"""The lab's policy for every data centre's Dask Gateway, shared by all deployments.

Imported by ``dask_gateway_config.py`` (local processes) and by the Kubernetes gateway releases
(``helm/dask-gateway-*.yaml`` mount this file and ``lab.yaml`` from a ConfigMap). It depends on
``dask_gateway_server`` and PyYAML only, so that the gateway server image needs nothing else.

What it sets, from ``lab.yaml``:

- authentication through the hub: ``JupyterHubAuthenticator`` with ``jupyterhub_service_name``
  set, so that only tokens holding ``access:services!service=dask-gateway-<centre>`` may use
  the gateway;
- the cluster options users may choose (worker cores and memory, with bounds);
- the idle timeout and the per-cluster worker cap;
- per-user caps on clusters and workers (:class:`UserLimits`, which dask-gateway lacks);
- the scheduler and worker environment: the Earth Analytics kernel's GDAL and Dask settings,
  so that workers read cloud-optimised files the way the notebook does;
- the scheduler guard (``earthlab_scheduler_guard.py``, :func:`scheduler_guard_args`): a
  cluster whose gateway is gone (killed, or restarted without it) ends itself;
- the dashboards' front (:class:`DashboardFront`, ``earthlab_dashboards.py``, which needs
  tornado and JupyterHub's service authentication): a cluster's dashboard opens for its owner
  only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from dask_gateway_server.backends.base import Backend, PublicException
from dask_gateway_server.models import ClusterStatus
from dask_gateway_server.options import Float, Integer, Options
from traitlets import Integer as IntegerTrait
from traitlets import Unicode

# The environment variables this file reads and sets, as lab_server.environment names them
# (POLICY_FILE, KERNELS_DIR, CENTRE; docs/configuration.md). Spelled here because the gateway
# image holds this file without lab_server; tests/test_config.py checks that they agree.
POLICY_FILE_ENV = "EARTHLAB_POLICY_FILE"
KERNELS_DIR_ENV = "EARTHLAB_KERNELS_DIR"
CENTRE_ENV = "EARTHLAB_CENTRE"

HERE = Path(__file__).resolve().parent
POLICY_FILE = HERE / "lab.yaml"
KERNELS_DIR = Path(os.environ.get(KERNELS_DIR_ENV) or HERE.parent / "kernels")
SCHEDULER_GUARD = HERE / "earthlab_scheduler_guard.py"
WORKER_CORES = HERE / "earthlab_worker_cores.py"
AUTHENTICATOR = "dask_gateway_server.auth.JupyterHubAuthenticator"
_ACTIVE = (ClusterStatus.PENDING, ClusterStatus.RUNNING)
_GIB = 2**30


def service_name(centre: str) -> str:
    """Name of a centre's gateway as a JupyterHub service."""
    return f"dask-gateway-{centre}"


def access_scope(centre: str) -> str:
    """The hub scope a token needs to use a centre's gateway."""
    return f"access:services!service={service_name(centre)}"


def scheduler_guard_args(guard: Path = SCHEDULER_GUARD) -> list[str]:
    """Arguments of ``dask scheduler`` that load the guard, to follow the command's name.

    The guard closes a scheduler whose gateway is gone: idle for the idle timeout and the
    gateway cannot stop it, or heartbeats failing for longer than the idle timeout (at least a
    minute, so that a gateway restarting meanwhile loses nothing). Its workers close with it.
    """
    return ["--preload", str(guard)]


def worker_cores_args(preload: Path = WORKER_CORES) -> list[str]:
    """Arguments of ``dask worker`` that hold a local worker to its ``worker_cores``.

    The preload pins every thread of the worker to as many CPUs as it has threads (CPU
    affinity), so that threads started by GDAL, BLAS or a task do not take more cores.
    """
    return ["--preload", str(preload)]


def load_policy(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read and check ``lab.yaml``; a wrong value fails the gateway at start, named."""
    path = Path(path or os.environ.get(POLICY_FILE_ENV) or POLICY_FILE)
    policy = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section in ("cluster_options", "limits", "hub"):
        if not isinstance(policy.get(section), dict):
            raise ValueError(f"{path}: section '{section}' is missing or not a mapping")
    for name, spec in policy["cluster_options"].items():
        if name not in ("worker_cores", "worker_memory"):
            raise ValueError(
                f"{path}: cluster option {name!r} is not supported; use worker_cores, worker_memory"
            )
        if not spec["min"] <= spec["default"] <= spec["max"]:
            raise ValueError(f"{path}: cluster_options.{name} needs min <= default <= max")
    for key in ("idle_timeout", "cluster_max_workers", "max_clusters_per_user"):
        if not policy["limits"].get(key, 0) > 0:
            raise ValueError(f"{path}: limits.{key} must be a positive number")
    quotas = (policy.get("restricted") or {}).get("quota_km2_per_year") or {}
    for (
        group,
        km2,
    ) in quotas.items():  # read by the restricted-data services (lab_server/restricted)
        if not isinstance(km2, int | float) or km2 < 0:
            raise ValueError(f"{path}: restricted.quota_km2_per_year.{group} must be km2 >= 0")
    return policy


def kernel_environment(name: str, kernels_dir: Path = KERNELS_DIR) -> dict[str, str]:
    """The ``env`` of a kernelspec of this repository (the Earth Analytics kernel's settings)."""
    spec = json.loads((kernels_dir / name / "kernel.json").read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in spec.get("env", {}).items()}


def cluster_options(policy: dict[str, Any]) -> Options:
    """The options users may set per cluster, with the policy's bounds.

    ``worker_memory`` is asked in GiB and given to the backend in bytes.
    """
    spec = policy["cluster_options"]
    fields = []
    if "worker_cores" in spec:
        s = spec["worker_cores"]
        fields.append(
            Integer(
                "worker_cores", default=s["default"], min=s["min"], max=s["max"], label=s["label"]
            )
        )
    if "worker_memory" in spec:
        s = spec["worker_memory"]
        fields.append(
            Float(
                "worker_memory",
                default=s["default"],
                min=s["min"],
                max=s["max"],
                label=s["label"],
            )
        )

    def handler(options: Any, user: Any) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if "worker_cores" in spec:
            config["worker_cores"] = int(options.worker_cores)
            config["worker_threads"] = int(options.worker_cores)
        if "worker_memory" in spec:
            config["worker_memory"] = int(options.worker_memory * _GIB)
        return config

    return Options(*fields, handler=handler)


class UserLimits(Backend):
    """Per-user caps on clusters and workers, mixed into a gateway backend.

    A request that would go over a cap is refused with a message the user sees (HTTP 422 for a
    new cluster, 409 for a scale or adapt request) saying which cap and how to free room.
    """

    max_clusters_per_user = IntegerTrait(
        0,
        min=0,
        help="Clusters one user may have pending or running at once (0: no cap).",
        config=True,
    )
    max_workers_per_user = IntegerTrait(
        0,
        min=0,
        help="Workers one user may ask for at once over all their clusters (0: no cap).",
        config=True,
    )

    async def start_cluster(self, user: Any, cluster_options: Any) -> Any:
        """Refuse a new cluster when the user already has the most allowed."""
        if self.max_clusters_per_user:
            active = await self.list_clusters(username=user.name, statuses=list(_ACTIVE))
            if len(active) >= self.max_clusters_per_user:
                names = ", ".join(sorted(c.name for c in active))
                raise PublicException(
                    f"user {user.name} already has {len(active)} cluster(s) on this gateway "
                    f"(cap {self.max_clusters_per_user}): {names}; stop one first "
                    "(lab.stop_clusters() or cluster.shutdown())"
                )
        return await super().start_cluster(user, cluster_options)

    async def forward_message_to_scheduler(self, cluster: Any, msg: dict[str, Any]) -> Any:
        """Refuse a scale or adapt request that would exceed the user's worker cap."""
        if self.max_workers_per_user and msg.get("op") in ("scale", "adapt"):
            wanted = msg["count"] if msg["op"] == "scale" else msg.get("maximum") or 0
            others = await self._workers_elsewhere(cluster)
            room = max(self.max_workers_per_user - others, 0)
            if wanted > room:
                raise PublicException(
                    f"{wanted} worker(s) would exceed the cap of {self.max_workers_per_user} "
                    f"workers per user on this gateway ({others} already asked for by your "
                    f"other clusters); ask for at most {room} or stop another cluster"
                )
            self._requested[cluster.name] = wanted
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict[str, Any]) -> Any:
        """Hold the worker cap where the gateway creates workers: at the scheduler's heartbeat.

        Each heartbeat carries the number of workers the scheduler wants; code run on the
        scheduler (``client.run_on_scheduler``) can raise it without passing through
        :meth:`forward_message_to_scheduler`. The gateway creates workers from that number, so
        it is clamped here to the room the user's other clusters leave.
        """
        db = getattr(self, "db", None)
        record = db.get_cluster(cluster_name) if self.max_workers_per_user and db else None
        if record is not None:
            room = max(self.max_workers_per_user - await self._workers_elsewhere(record), 0)
            if int(msg.get("count", 0)) > room:
                self.log.warning(
                    "Cluster %s of %s: its scheduler asked for %d workers; the cap of %d "
                    "workers per user leaves room for %d: %d given",
                    cluster_name,
                    record.username,
                    msg["count"],
                    self.max_workers_per_user,
                    room,
                    room,
                )
                msg = {**msg, "count": room}
        return await super().on_cluster_heartbeat(cluster_name, msg)

    @property
    def _requested(self) -> dict[str, int]:
        if not hasattr(self, "_requested_counts"):
            self._requested_counts: dict[str, int] = {}
        return self._requested_counts

    async def _workers_elsewhere(self, cluster: Any) -> int:
        active = await self.list_clusters(username=cluster.username, statuses=list(_ACTIVE))
        total = 0
        for other in active:
            if other.name == cluster.name:
                continue
            # workers running or asked for (scale), or the most an adaptive cluster may take
            record = getattr(self, "db", None) and self.db.get_cluster(other.name)
            total += max(record.count if record else 0, self._requested.get(other.name, 0))
        return total


class DashboardFront(Backend):
    """The gateway's public HTTP address: dashboards for their owner only, mixed into a backend.

    dask-gateway's proxy serves a cluster's dashboard to anyone who knows the cluster's name.
    With :attr:`address` set, the gateway also runs the front of ``earthlab_dashboards`` (in
    its own process and event loop) at that address: it lets a dashboard request through only
    for the cluster's owner, as the hub identifies the caller (token or the service's OAuth
    cookie), and forwards the API unchanged. The gateway's proxy then listens at a private
    address (``Proxy.address``) that only the front and the clusters reach.
    """

    front_address = Unicode(
        "",
        help="host:port of the authenticating front (the address the hub's proxy routes "
        "/services/dask-gateway-<centre>/ to); empty: no front.",
        config=True,
    )
    front_upstream = Unicode(
        "",
        help="URL of the gateway's HTTP proxy the front forwards to (default: "
        "http://<Proxy.address>, the local proxy).",
        config=True,
    )

    async def setup(self, app: Any) -> None:
        """Start the backend, then the front."""
        await super().setup(app)
        if not self.front_address:
            return
        import earthlab_dashboards  # type: ignore[import-not-found]  # beside this file

        auth = app["authenticator"]
        upstream = self.front_upstream or f"http://{self.proxy.address}"
        front = earthlab_dashboards.make_app(
            service_name=auth.jupyterhub_service_name,
            upstream=upstream,
            lookup=self._cluster_record,
            hub_api_url=auth.jupyterhub_api_url,
            api_token=auth.jupyterhub_api_token,
            access_scopes={f"access:services!service={auth.jupyterhub_service_name}"},
        )
        host, port = self.front_address.rsplit(":", 1)
        self._front = front.listen(int(port), address=host or None, xheaders=True)
        self.log.info("Dashboard front listening at http://%s -> %s", self.front_address, upstream)

    async def cleanup(self) -> None:
        """Stop the front, then the backend."""
        front = getattr(self, "_front", None)
        if front is not None:
            front.stop()
        await super().cleanup()

    async def _cluster_record(self, name: str) -> tuple[str, str] | None:
        cluster = await self.get_cluster(name)
        if cluster is None:
            return None
        return str(cluster.username), ClusterStatus(cluster.status).name


def local_backend_class() -> type:
    """``UnsafeLocalBackend`` with :class:`UserLimits` and :class:`DashboardFront`.

    Schedulers and workers run as local processes of the gateway's user.
    """
    from dask_gateway_server.backends.local import UnsafeLocalBackend

    return type(
        "EarthLabLocalBackend",
        (UserLimits, DashboardFront, UnsafeLocalBackend),
        {"__module__": __name__},
    )


def kubernetes_backend_class() -> type:
    """``KubeBackend`` with :class:`UserLimits` and :class:`DashboardFront` (one pod each)."""
    from dask_gateway_server.backends.kubernetes import KubeBackend

    return type(
        "EarthLabKubeBackend", (UserLimits, DashboardFront, KubeBackend), {"__module__": __name__}
    )


def configure(c: Any, centre: str, policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply the lab's policy for one centre's gateway to a traitlets config ``c``.

    Sets everything but the backend class, addresses and commands, which differ between the
    local and the Kubernetes deployments. Returns the policy used.
    """
    policy = policy or load_policy()
    limits = policy["limits"]
    c.DaskGateway.authenticator_class = AUTHENTICATOR
    c.JupyterHubAuthenticator.jupyterhub_service_name = service_name(centre)
    c.JupyterHubAuthenticator.use_service_access_scopes = True
    c.Proxy.prefix = f"/services/{service_name(centre)}"
    c.Backend.cluster_options = cluster_options(policy)
    c.ClusterConfig.idle_timeout = float(limits["idle_timeout"])
    c.ClusterConfig.cluster_max_workers = int(limits["cluster_max_workers"])
    c.ClusterConfig.environment = {
        **kernel_environment(policy["kernel"]),
        CENTRE_ENV: centre,
    }
    c.UserLimits.max_clusters_per_user = int(limits["max_clusters_per_user"])
    c.UserLimits.max_workers_per_user = int(limits.get("max_workers_per_user", 0))
    return policy
