"""Clusters near the data: start-up time and one computation, gateway against local.

Starts the local lab (what ``earthlab hub up`` starts) on the sample federation, on free ports
in a temporary run directory, makes a hub user whose token holds the gateways' scope, then:

1. times ``lab.cluster(centre="theia", workers=1)`` until its first worker is ready, on the
   theia gateway and as a local cluster (``distributed.LocalCluster``), ``--repeat`` times;
2. times the same computation on both, 2 workers of 1 thread each: the per-date mean NDWI of
   the lagoon scenes, ``datacubes.load(items, ["green", "nir"])`` over every date, and checks
   that both give the same numbers.

Writes the section "Clusters" of docs/benchmarks.md (replacing only that section) and prints it.

Usage::

    python benchmarks/bench_cluster.py [SAMPLE_DIR] [--repeat 3] [--no-write]

Without SAMPLE_DIR a sample federation is generated into a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from _docs import write_section

import datacubes
import lab
from lab_server.deploy import Deployment, RunDir, down, up
from lab_server.deploy._layout import access_scope, gateway_env_names

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## Clusters"
USER = "bench"


def lab_user_env(deployment: Deployment) -> dict[str, str]:
    """Create the hub user and return the environment its notebooks would have."""
    run = RunDir(deployment.run_dir)
    api = deployment.url + "hub/api"
    headers = {"Authorization": f"token {run.secret('admin-token')}"}
    requests.post(f"{api}/users/{USER}", headers=headers, timeout=30)
    scopes = [access_scope(g.centre) for g in deployment.gateways]
    response = requests.post(
        f"{api}/users/{USER}/tokens",
        headers=headers,
        json={"scopes": scopes, "expires_in": 3600, "note": "bench_cluster"},
        timeout=30,
    )
    response.raise_for_status()
    env = {"JUPYTERHUB_API_TOKEN": response.json()["token"]}
    for g in deployment.gateways:
        address_var, proxy_var = gateway_env_names(g.centre)
        env[address_var] = deployment.gateway_address(g.centre)
        env[proxy_var] = deployment.gateway_proxy_address(g.centre)
    return env


def time_to_first_worker(centre: str | None, centres_file: str, repeat: int) -> list[float]:
    """Seconds from ``lab.cluster()`` to its first worker ready, ``repeat`` times."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        client = lab.cluster(centre=centre, workers=1, centres_file=centres_file)
        times.append(time.perf_counter() - start)
        lab.stop_clusters([client.cluster.name], centres_file=centres_file)
        client.close()
    return times


def mean_ndwi(items: list) -> np.ndarray:
    """Per-date mean NDWI over valid pixels (computed on the current default client)."""
    cube = datacubes.load(items, ["green", "nir"])
    ndwi = (cube["green"] - cube["nir"]) / (cube["green"] + cube["nir"])
    return np.asarray(ndwi.mean(dim=("y", "x")).compute())


def time_computation(
    centre: str | None, centres_file: str, items: list, repeat: int
) -> tuple[list[float], np.ndarray]:
    """Seconds of :func:`mean_ndwi` on a 2-worker cluster at ``centre`` (None: local)."""
    client = lab.cluster(centre=centre, workers=2, centres_file=centres_file, worker_cores=1)
    try:
        client.wait_for_workers(2, timeout=120)
        times, result = [], None
        for _ in range(repeat):
            start = time.perf_counter()
            result = mean_ndwi(items)
            times.append(time.perf_counter() - start)
    finally:
        lab.stop_clusters([client.cluster.name], centres_file=centres_file)
        client.close()
    assert result is not None
    return times, result


def render(results: dict, repeat: int, n_items: int) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"

    return "\n".join(
        [
            SECTION,
            "",
            "`python benchmarks/bench_cluster.py` on the embedded sample federation, with the local",
            "lab (`earthlab hub up`: JupyterHub, configurable-http-proxy, one Dask Gateway per",
            f"centre) on one machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; median of {repeat} runs.",
            "",
            "| measure | theia gateway | local cluster |",
            "|---|---|---|",
            "| `lab.cluster(workers=1)` to first worker ready | "
            f"{cell(results['start_gateway'])} | {cell(results['start_local'])} |",
            f"| per-date mean NDWI of {n_items} scenes (`datacubes.load`, green + nir), "
            "2 workers x 1 thread | "
            f"{cell(results['compute_gateway'])} | {cell(results['compute_local'])} |",
            "",
            "Both clusters run on this machine, so this compares the gateway's overheads (API and",
            "TLS proxy hops, processes started by its backend) with a LocalCluster whose scheduler",
            "shares the notebook's process; it cannot show the point of a gateway, which is that at a",
            "data centre the workers read the data over the centre's network. 2 shared cores: expect",
            "noise (see min/max). Both runs give the same numbers (checked by the script).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sample_dir", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sample = args.sample_dir or Path(tmp) / "sample"
        if not (sample / "centres.yaml").is_file():
            lab.make_sample(sample)
        centres_file = str(sample / "centres.yaml")
        run_dir = Path(tmp) / "run"
        try:
            deployment = up(centres_file, run_dir=run_dir, port=0)
            os.environ.update(lab_user_env(deployment))
            items = list(lab.catalog(centres_file).search(collections=["sentinel-2-l2a"]))
            results = {
                "start_gateway": time_to_first_worker("theia", centres_file, args.repeat),
                "start_local": time_to_first_worker(None, centres_file, args.repeat),
            }
            results["compute_gateway"], on_gateway = time_computation(
                "theia", centres_file, items, args.repeat
            )
            results["compute_local"], on_local = time_computation(
                None, centres_file, items, args.repeat
            )
            np.testing.assert_allclose(on_gateway, on_local, rtol=1e-6)
        finally:
            down(run_dir)
    text = render(results, args.repeat, len(items))
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"written to {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
