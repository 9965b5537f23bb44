"""The environment variables the lab's server processes pass to each other.

These are plumbing between ``earthlab hub up`` and the servers it starts (JupyterHub, the Dask
Gateways, the restricted-data services) and between the gateways and their workers: not SDK
settings, which are ``lab.config``'s (``EARTHLAB_CENTRES``, ``EARTHLAB_CACHE_DIR``...).
``docs/configuration.md`` lists both. The server side names them here only, except in
``hub_config/earthlab_gateway.py``: copied alone into the gateway image, it spells the two it
reads itself (a test checks that they agree).
"""

from __future__ import annotations

__all__ = ["CENTRE", "GATEWAY_CENTRE", "HUB_RUN_DIR", "KERNELS_DIR", "POLICY_FILE", "VARIABLES"]

HUB_RUN_DIR = "EARTHLAB_HUB_RUN_DIR"
"""The run directory of a running lab (``lab.json``: ports and paths; ``secrets/``). Set by
``earthlab hub up`` for every server it starts; read by ``hub_config/jupyterhub_config.py``,
``hub_config/dask_gateway_config.py`` and ``python -m lab_server.restricted``."""

GATEWAY_CENTRE = "EARTHLAB_GATEWAY_CENTRE"
"""The centre whose Dask Gateway ``hub_config/dask_gateway_config.py`` configures. Set by
``earthlab hub up`` for each ``dask-gateway-server`` (the SDK does not take it for a gateway
address: ``lab._config.NOT_GATEWAYS``)."""

POLICY_FILE = "EARTHLAB_POLICY_FILE"
"""The lab's policy file (cluster options and limits, quotas; default ``hub_config/lab.yaml``),
read by the gateways (``hub_config/earthlab_gateway.py``) and the restricted-data services. Set
in the gateway image (``helm/gateway.Dockerfile``), or by an operator or a test to use another
policy."""

KERNELS_DIR = "EARTHLAB_KERNELS_DIR"
"""Directory of the kernelspecs whose environment the gateways give their schedulers and
workers (default: the package's ``kernels/``). Set in the gateway image."""

CENTRE = "EARTHLAB_CENTRE"
"""The centre a Dask scheduler or worker runs at. Set by the gateways in their clusters'
environment, for code running on the workers to know where it is."""

VARIABLES: dict[str, str] = {
    HUB_RUN_DIR: "run directory of the running lab (set by earthlab hub up)",
    GATEWAY_CENTRE: "centre a dask-gateway-server serves (set by earthlab hub up)",
    POLICY_FILE: "the lab's policy file (gateway image, operators, tests)",
    KERNELS_DIR: "kernelspecs giving the clusters' environment (gateway image)",
    CENTRE: "centre a Dask scheduler or worker runs at (set by the gateways)",
}
"""Every server-process variable, with what it says."""
