"""Earth Analytics Lab platform SDK: data centres, federated catalogue, compute and storage.

Quick start
-----------
>>> import lab
>>> result = lab.catalog().search(collections=["sentinel-2-l2a"], datetime="2022-01/2022-03")
>>> items = list(result)            # pystac Items, each tagged with its centre
>>> result.federation               # what each centre answered

Everything works offline on the embedded sample federation (generated on first use);
point the ``centres`` setting at another centres file to use real catalogues
(``EARTHLAB_CENTRES``, or ``lab.config``: see docs/configuration.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab._errors import (
    AssetReadError,
    CatalogError,
    CentresFileError,
    ClusterError,
    ConfigurationError,
    EarthLabError,
    EarthLabWarning,
    NoItemsError,
    ProcessingError,
    RestrictedDataError,
    UnknownCentreError,
)

__all__ = [
    "AssetReadError",
    "CatalogError",
    "CatalogSpec",
    "Centre",
    "CentreReport",
    "CentreSet",
    "CentresFileError",
    "ClusterError",
    "ClusterInfo",
    "ClusterList",
    "ConfigurationError",
    "ConfigurationWarning",
    "EarthLabError",
    "EarthLabWarning",
    "FederatedCatalog",
    "GatewayReport",
    "GatewayWarning",
    "HttpError",
    "Job",
    "JobStatus",
    "NoItemsError",
    "ProcessDescription",
    "ProcessesClient",
    "ProcessingError",
    "RestrictedDataError",
    "RetryPolicy",
    "SearchQuery",
    "SearchResult",
    "StoppedClusters",
    "UnknownCentreError",
    "add_request_hook",
    "catalog",
    "centres",
    "choose_centre",
    "cluster",
    "config",
    "http_session",
    "list_clusters",
    "make_sample",
    "processes",
    "read_catalogue",
    "read_centres_file",
    "remove_request_hook",
    "stop_clusters",
]

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from lab._adapters import read_catalogue
    from lab._catalog import CentreReport, FederatedCatalog, SearchResult, catalog
    from lab._centres import CatalogSpec, Centre, CentreSet, centres, read_centres_file
    from lab._cluster import (
        ClusterInfo,
        ClusterList,
        GatewayReport,
        GatewayWarning,
        StoppedClusters,
        choose_centre,
        cluster,
        list_clusters,
        stop_clusters,
    )
    from lab._config import ConfigurationWarning, config
    from lab._http import (
        HttpError,
        RetryPolicy,
        add_request_hook,
        http_session,
        remove_request_hook,
    )
    from lab._processes import Job, JobStatus, ProcessDescription, ProcessesClient, processes
    from lab._query import SearchQuery
    from lab.sample import make_sample

# Heavier parts are imported on first use so that ``import lab`` stays fast.
_LAZY = {
    "CatalogSpec": "lab._centres",
    "Centre": "lab._centres",
    "CentreSet": "lab._centres",
    "centres": "lab._centres",
    "read_centres_file": "lab._centres",
    "read_catalogue": "lab._adapters",
    "SearchQuery": "lab._query",
    "FederatedCatalog": "lab._catalog",
    "SearchResult": "lab._catalog",
    "CentreReport": "lab._catalog",
    "catalog": "lab._catalog",
    "make_sample": "lab.sample",
    "cluster": "lab._cluster",
    "choose_centre": "lab._cluster",
    "ClusterInfo": "lab._cluster",
    "ClusterList": "lab._cluster",
    "GatewayReport": "lab._cluster",
    "GatewayWarning": "lab._cluster",
    "StoppedClusters": "lab._cluster",
    "list_clusters": "lab._cluster",
    "stop_clusters": "lab._cluster",
    "processes": "lab._processes",
    "ProcessesClient": "lab._processes",
    "ProcessDescription": "lab._processes",
    "Job": "lab._processes",
    "JobStatus": "lab._processes",
    "config": "lab._config",
    "ConfigurationWarning": "lab._config",
    "HttpError": "lab._http",
    "RetryPolicy": "lab._http",
    "http_session": "lab._http",
    "add_request_hook": "lab._http",
    "remove_request_hook": "lab._http",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
