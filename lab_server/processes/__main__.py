"""Run the processing service: ``python -m lab_server.processes``.

Started by ``earthlab hub up`` with ``EARTHLAB_HUB_RUN_DIR`` naming the run directory. Reads
there ``lab.json`` (ports, URLs) and ``secrets/processes-token`` (its hub token); keeps the jobs
in ``processes/jobs.sqlite``, or in the PostgreSQL database of ``hub up --jobs-database``
(password: ``secrets/processes-db-password``), and each user's results in
``processes/results/<user>/``, or on the object storage of ``hub up --results-storage``
(credentials: ``secrets/processes-storage-key`` and ``-secret``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from lab_server.environment import HUB_RUN_DIR
from lab_server.processes._app import ProcessesService, ServiceConfig, make_app
from lab_server.processes._database import JobDatabase
from lab_server.processes._results import ResultsStorage

__all__ = ["build_config", "main"]


def build_config(run_dir: Path) -> tuple[ServiceConfig, int, str]:
    """The service's configuration, port and address, from the run directory."""
    from lab_server.deploy import RunDir
    from lab_server.deploy._lab import JOBS_DATABASE_SECRET, results_storage_options
    from lab_server.deploy._layout import PROCESSES_SERVICE

    run = RunDir(run_dir)
    deployment = run.deployment()
    if deployment.processes_port is None:
        raise SystemExit(f"the lab in {run.path} has no processing service (lab.json)")
    config = ServiceConfig(
        public_url=deployment.processes_url,
        prefix=f"/services/{PROCESSES_SERVICE}/",
        hub_api_url=deployment.hub_api_url,
        api_token=run.secret(f"{PROCESSES_SERVICE}-token"),
        data_dir=run.path / "processes",
        service=PROCESSES_SERVICE,
        database=JobDatabase(deployment.jobs_database, run.secret(JOBS_DATABASE_SECRET))
        if deployment.jobs_database
        else None,
        results=ResultsStorage(
            deployment.results_storage["url"],
            results_storage_options(run, deployment.results_storage),
        )
        if deployment.results_storage
        else None,
    )
    return config, deployment.processes_port, deployment.ip


def main(argv: list[str] | None = None) -> None:
    """Serve until terminated (SIGTERM stops the running jobs first)."""
    args = sys.argv[1:] if argv is None else argv
    if args or HUB_RUN_DIR not in os.environ:
        raise SystemExit(f"usage: {HUB_RUN_DIR}=RUN python -m lab_server.processes")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    config, port, ip = build_config(Path(os.environ[HUB_RUN_DIR]))
    config.data_dir.mkdir(parents=True, exist_ok=True)

    async def serve() -> None:
        service = ProcessesService(config)
        make_app(config, service).listen(port, address=ip)
        service.start_clock()
        logging.getLogger("earthlab.processes").info(
            "serving %d processes at %s", len(service.processors), config.public_url
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        service.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
