"""Run the restricted-data service of one centre: ``python -m lab_server.restricted CENTRE``.

Started by ``earthlab hub up`` for each centre with restricted collections, with
``EARTHLAB_HUB_RUN_DIR`` naming the run directory. Reads there ``lab.json`` (ports),
``secrets/restricted-<centre>-token`` (its hub token) and ``-key`` (the URL signing key),
``stac/<centre>/items.json`` (the served items: asset paths and footprints), and the quota
policy (``restricted`` section of ``$EARTHLAB_POLICY_FILE`` or ``hub_config/lab.yaml``).
Usage is kept in ``restricted/<centre>/usage.sqlite``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from lab_server.environment import HUB_RUN_DIR, POLICY_FILE
from lab_server.restricted._ledger import QuotaPolicy, footprint_km2
from lab_server.restricted._service import Footprint, ServiceConfig, make_app


def build_config(run_dir: Path, centre: str) -> tuple[ServiceConfig, int, str]:
    """The service's configuration, port and address, from the run directory."""
    from lab_server.deploy import RunDir

    run = RunDir(run_dir)
    deployment = run.deployment()
    server = deployment.catalogue(centre)
    if server.service_port is None:
        raise SystemExit(f"centre {centre!r} has no restricted collections in {run.lab_json}")
    # what hub up wrote of the centre (the operator's centres file may be closed to the
    # service account this service runs as)
    served = json.loads((run.path / "stac" / centre / "served.json").read_text(encoding="utf-8"))
    policy_file = Path(os.environ.get(POLICY_FILE) or Path(deployment.hub_config) / "lab.yaml")
    policy = QuotaPolicy.from_policy(yaml.safe_load(policy_file.read_text(encoding="utf-8")))
    public = deployment.restricted_service_url(centre)
    items = json.loads((run.path / "stac" / centre / "items.json").read_text(encoding="utf-8"))
    asset_url = public + "assets/"
    footprints = {}
    for feature in items["features"]:
        cost = Footprint(feature["collection"], feature["id"], footprint_km2(feature["geometry"]))
        for asset in feature["assets"].values():
            if asset["href"].startswith(asset_url):
                footprints[asset["href"][len(asset_url) :]] = cost
    config = ServiceConfig(
        centre=centre,
        service=server.service,
        prefix=f"/services/{server.service}/",
        public_url=public,
        upstream=f"http://{deployment.ip}:{server.port}/",
        files_root=Path(served["root"]),
        hub_api_url=deployment.hub_api_url,
        api_token=run.secret(f"{server.service}-token"),
        signing_key=bytes.fromhex(run.secret(f"{server.service}-key")),
        groups=dict(served["restricted"]),
        access_url=served["access_url"] or f"the operators of {centre}",
        policy=policy,
        ledger_path=run.path / "restricted" / centre / "usage.sqlite",
        footprints=footprints,
        only_user=None if deployment.isolated else deployment.owner,
    )
    return config, server.service_port, deployment.ip


def main(argv: list[str] | None = None) -> None:
    """Serve until terminated."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or HUB_RUN_DIR not in os.environ:
        raise SystemExit(f"usage: {HUB_RUN_DIR}=RUN python -m lab_server.restricted CENTRE")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    config, port, ip = build_config(Path(os.environ[HUB_RUN_DIR]), args[0])

    async def serve() -> None:
        make_app(config).listen(port, address=ip)
        logging.getLogger("earthlab.restricted").info(
            "serving %s for %s at %s (%d assets)",
            config.service,
            ", ".join(sorted(set(config.groups.values()))),
            config.public_url,
            len(config.footprints),
        )
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
