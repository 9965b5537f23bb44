# The gateway server image of the lab: upstream dask-gateway-server plus the lab's policy.
# Build from the repository root:
#   docker build -f hub_config/helm/gateway.Dockerfile -t registry.example.org/earthlab/dask-gateway-server:2026.3.0-earthlab .
FROM ghcr.io/dask/dask-gateway-server:2026.3.0
# jupyterhub and tornado: the dashboards' front (earthlab_dashboards.py) authenticates through the hub
RUN pip install --no-cache-dir pyyaml jupyterhub tornado
COPY hub_config/earthlab_gateway.py hub_config/earthlab_dashboards.py hub_config/lab.yaml /opt/earthlab/
COPY kernels/earth-analytics/kernel.json /opt/earthlab/kernels/earth-analytics/kernel.json
ENV PYTHONPATH=/opt/earthlab \
    EARTHLAB_POLICY_FILE=/opt/earthlab/lab.yaml \
    EARTHLAB_KERNELS_DIR=/opt/earthlab/kernels
