"""Server side of the Earth Analytics Lab: what runs the lab, never what notebooks import.

The notebooks' SDK is :mod:`lab` (with :mod:`datacubes` and :mod:`recipes` above it). This
package holds the code that *serves* it, as ``dask_gateway_server`` does for ``dask_gateway``:

- :mod:`lab_server.deploy`: the local deployment (``earthlab hub up|down|status``) and the
  Jupyter kernelspec (``earthlab kernels install``);
- :mod:`lab_server.hub_config`: the JupyterHub and Dask Gateway configuration files that the
  local lab and the Helm releases share (the repository's ``hub_config/`` directory);
- :mod:`lab_server.stac_front`: the HTTP front of the open centres' STAC APIs and files;
- :mod:`lab_server.restricted`: the hub-authenticated restricted-data service (quotas, signed
  URLs).

It depends on :mod:`lab`'s public API only.
"""
