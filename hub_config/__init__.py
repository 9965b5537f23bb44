"""The lab's JupyterHub and Dask Gateway configuration, as package data (``lab_server.hub_config``).

The local lab (``earthlab hub up``) runs ``jupyterhub -f jupyterhub_config.py`` and
``dask-gateway-server -f dask_gateway_config.py`` from here; the Helm releases in ``helm/`` load
``earthlab_hub.py``, ``earthlab_gateway.py`` and ``lab.yaml`` too. Installed, this directory is
the subpackage ``lab_server.hub_config`` (``pyproject.toml`` maps it).
"""
