"""The local lab deployment: JupyterHub, its proxy, gateways, STAC APIs, restricted data.

One Dask Gateway per data centre, each centre's catalogue as a STAC API, and a
restricted-data service per centre with restricted collections.

``earthlab hub up`` / ``hub down`` / ``hub status`` and the end-to-end test fixture use
:func:`up`, :func:`down` and :func:`status`. Everything runs on loopback, as the current user,
from this environment; ``docs/deployment.md`` says how a real deployment differs.

The configuration files themselves live in ``hub_config/`` (traitlets, the servers' own
convention); they read the *run directory* written here: ``lab.json`` (ports and paths) and
``secrets/`` (tokens and the login password, mode 0600).
"""

from lab_server.deploy._lab import down, restart, status, up
from lab_server.deploy._layout import Deployment, GatewayPorts, RunDir, default_run_dir
from lab_server.deploy._proxy import find_proxy, install_proxy

__all__ = [
    "Deployment",
    "GatewayPorts",
    "RunDir",
    "default_run_dir",
    "down",
    "find_proxy",
    "install_proxy",
    "restart",
    "status",
    "up",
]
