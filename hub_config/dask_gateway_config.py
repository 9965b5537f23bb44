# Dask Gateway configuration of ONE data centre's gateway, for the local lab.
#
# `earthlab hub up` starts `dask-gateway-server -f hub_config/dask_gateway_config.py` once per
# centre of the centres file, with two environment variables:
#
#   EARTHLAB_HUB_RUN_DIR     the run directory (lab.json: ports and paths; secrets/: tokens)
#   EARTHLAB_GATEWAY_CENTRE  the centre this gateway serves
#
# The gateway is the JupyterHub service `dask-gateway-<centre>`: users authenticate with their
# hub token, which must hold `access:services!service=dask-gateway-<centre>`. Its API and
# dashboards are reached through the hub's proxy at /services/dask-gateway-<centre>/ (dashboards
# only by the cluster's owner: earthlab_dashboards.py); scheduler
# traffic is TLS through the gateway's own TCP proxy (`gateway://127.0.0.1:<tcp_port>`).
#
# The policy (options, limits, environment) comes from earthlab_gateway.py and lab.yaml, shared
# with the Kubernetes releases in helm/. Processes run as the gateway's user (UnsafeLocalBackend):
# fine on one machine for one team; see docs/deployment.md for a real deployment.
# ruff: noqa: F821  (`c` is given by traitlets)
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import earthlab_gateway  # noqa: E402

from lab import config as lab_config  # noqa: E402
from lab_server.environment import GATEWAY_CENTRE, HUB_RUN_DIR  # noqa: E402

run_dir = Path(os.environ[HUB_RUN_DIR])
centre = os.environ[GATEWAY_CENTRE]
lab = json.loads((run_dir / "lab.json").read_text(encoding="utf-8"))
ports = next((g for g in lab["gateways"] if g["centre"] == centre), None)
if ports is None:
    raise ValueError(f"centre {centre!r} has no gateway in {run_dir / 'lab.json'}")
ip = lab["ip"]
service = earthlab_gateway.service_name(centre)

earthlab_gateway.configure(c, centre)

# Where the gateway listens: private API; the dashboards' front at the HTTP port the hub's
# proxy routes to (a cluster's dashboard for its owner only, the API forwarded as is); the
# gateway's own HTTP proxy behind it, private (clusters reach the API through it);
# the TLS TCP proxy (scheduler traffic, reached directly by clients).
c.DaskGateway.address = f"{ip}:{ports['api_port']}"
c.DashboardFront.front_address = f"{ip}:{ports['http_port']}"
c.Proxy.address = f"{ip}:{ports['proxy_port']}"
c.Proxy.tcp_address = f"{ip}:{ports['tcp_port']}"

# Authentication through the hub (the service token checks users' tokens).
c.JupyterHubAuthenticator.jupyterhub_api_url = f"http://{ip}:{lab['hub_api_port']}/hub/api"
c.JupyterHubAuthenticator.jupyterhub_api_token = (
    (run_dir / "secrets" / f"{service}-token").read_text(encoding="ascii").strip()
)

# Clusters as local processes with the per-user caps: as the gateway's user, or with isolated
# users (hub up as root) as the cluster owner's own Unix account, from the user
# environment.
user_python = lab.get("user_python") or ""
if user_python:
    import earthlab_isolation

    c.DaskGateway.backend_class = earthlab_isolation.isolated_backend_class(run_dir / "users")
    dask_cmd = [user_python, "-m", "dask"]
else:
    c.DaskGateway.backend_class = earthlab_gateway.local_backend_class()
    dask_cmd = [str(Path(lab["bin_dir"]) / "dask")]
# The guard preload: a cluster whose gateway is gone ends itself (earthlab_scheduler_guard.py).
c.ClusterConfig.scheduler_cmd = [*dask_cmd, "scheduler", *earthlab_gateway.scheduler_guard_args()]
# Workers held to their worker_cores by CPU affinity (earthlab_worker_cores.py).
c.ClusterConfig.worker_cmd = [*dask_cmd, "worker", *earthlab_gateway.worker_cores_args()]
c.ClusterConfig.environment = {
    **c.ClusterConfig.environment,
    lab_config.env_name("centres"): lab["centres_file"],
}
clusters_dir = run_dir / "gateways" / centre
clusters_dir.mkdir(parents=True, exist_ok=True)
c.LocalBackend.clusters_directory = str(clusters_dir)
c.LocalBackend.inherited_environment = [
    "PATH",
    "VIRTUAL_ENV",
    "LANG",
    "LC_ALL",
    *lab_config.env_names(),  # the SDK's settings (EARTHLAB_CACHE_DIR...), for the workers
    "PROJ_DATA",
    "GDAL_DATA",
    HUB_RUN_DIR,  # marks schedulers and workers as the run's (`hub down` ends them all)
]
