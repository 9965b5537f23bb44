"""``earthlab hub up --catalogue pgstac``: the lab serves the centres from pgstac, as data centres do.

One real ``hub up`` on loopback through the CLI: PostgreSQL + PostGIS + pgstac holding every
centre's items, one stac-fastapi-pgstac per centre, behind the same front and restricted-data
service as with ``rustac serve``; ``hub status`` lists PostgreSQL; ``hub down`` stops it and
removes its data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from hub_fixtures import Hub, reachable_by_users

import lab
from lab_server.deploy import RunDir, status
from lab_server.deploy._layout import access_scope

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICE_SCOPE = "access:services!service=restricted-dinamis"


def test_hub_up_with_pgstac_catalogues(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = reachable_by_users(tmp_path / "run")  # as root, users are isolated
    earthlab = [sys.executable, "-m", "lab._cli", "hub", "--run-dir", str(run_dir)]
    centres = str(sample_dir / "centres.yaml")
    pids: list[int] = []
    data_dir = None
    try:
        started = subprocess.run(
            [*earthlab, "up", "--port", "0", "--catalogue", "pgstac", "--centres", centres],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ),
        )
        assert started.returncode == 0, started.stdout + started.stderr
        deployment = RunDir(run_dir).deployment()
        assert deployment.catalogue_backend == "pgstac" and deployment.pgstac_port
        data_dir = Path(str(deployment.pgstac_data))
        assert (data_dir / "PG_VERSION").is_file()
        assert f"PostgreSQL at 127.0.0.1:{deployment.pgstac_port}" in started.stdout
        report = subprocess.run([*earthlab, "status"], capture_output=True, text=True, timeout=60)
        assert report.returncode == 0, report.stdout
        names = [line.split()[:2] for line in report.stdout.splitlines()]
        assert names[:5] == [
            ["proxy", "running"],
            ["postgres", "running"],
            ["stac-theia", "running"],
            ["stac-odatis", "running"],
            ["stac-dinamis", "running"],
        ]
        assert f"postgresql://127.0.0.1:{deployment.pgstac_port}/" in report.stdout
        pids = [proc.pid for proc, _ in status(run_dir)]

        # any local account reaches a loopback port: the database wants its password (it
        # trusted every connection), which is on no command line and in no log
        import psycopg

        server = f"127.0.0.1:{deployment.pgstac_port}/postgres"
        monkeypatch.delenv("PGPASSWORD", raising=False)
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(f"postgresql://postgres@{server}", connect_timeout=10)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"postgresql://postgres:guess@{server}", connect_timeout=10)
        password = RunDir(run_dir).secret("pgstac-password")
        assert (run_dir / "secrets" / "pgstac-password").stat().st_mode & 0o777 == 0o600
        with psycopg.connect(f"postgresql://postgres:{password}@{server}", connect_timeout=10):
            pass
        for pid in pids:
            assert password not in " ".join(psutil.Process(pid).cmdline())
        for log in (run_dir / "logs").iterdir():
            assert password not in log.read_text(encoding="utf-8", errors="replace"), log
        assert password not in started.stdout + started.stderr

        # the same centres file shape as with memory catalogues
        document = yaml.safe_load(Path(deployment.centres_file).read_text(encoding="utf-8"))
        catalogs = {c["name"]: c["catalog"] for c in document["centres"]}
        # (and each user's processing results, served by the processing service)
        assert {n: c["kind"] for n, c in catalogs.items()} == dict.fromkeys(
            ("theia", "odatis", "dinamis", "aeris", "results"), "stac-api"
        )
        assert catalogs["results"]["href"] == deployment.processes_url + "stac/"
        assert catalogs["results"]["token_env"] == "JUPYTERHUB_API_TOKEN"
        assert catalogs["theia"]["href"] == deployment.catalogue_url("theia")
        assert catalogs["dinamis"]["href"] == deployment.restricted_service_url("dinamis") + "stac/"
        # what answers behind the front is stac-fastapi-pgstac
        landing = requests.get(deployment.catalogue_url("theia"), timeout=30).json()
        assert landing["id"] == "centre_theia"
        assert any("filter" in c for c in landing["conformsTo"])

        # a member of the dinamis group searches all three centres through the lab (and her
        # processing results, none yet)
        hub = Hub(deployment)
        hub.create_user("erin")
        hub.add_to_group("dinamis", ["erin"])
        results_scope = "access:services!service=processes"
        monkeypatch.setenv(
            "JUPYTERHUB_API_TOKEN",
            hub.token("erin", [SERVICE_SCOPE, access_scope("dinamis"), results_scope]),
        )
        result = lab.catalog(deployment.centres_file).search()
        assert {c: r.status for c, r in result.federation.items()} == dict.fromkeys(
            ("theia", "odatis", "dinamis", "aeris", "results"), "ok"
        )
        assert result.federation["results"].matched == 0
        counts = {
            c: sum(i.properties["earthlab:centre"] == c for i in result)
            for c in ("theia", "odatis", "dinamis", "aeris")
        }
        assert counts == {"theia": 16 + 16, "odatis": 7 + 92, "dinamis": 3, "aeris": 92}
        offline = lab.catalog(sample_dir / "centres.yaml").search()
        assert sorted(i.id for i in result if i.properties["earthlab:centre"] != "dinamis") == (
            sorted(i.id for i in offline)
        )
        # assets through the front (byte ranges) and the restricted service (signed URLs)
        s2 = next(i for i in result if i.properties["earthlab:centre"] == "theia")
        href = s2.assets["red"].href
        assert href.startswith(f"http://127.0.0.1:{deployment.front_port}/assets/theia/")
        part = requests.get(href, headers={"Range": "bytes=0-99"}, timeout=30)
        assert part.status_code == 206 and len(part.content) == 100
        vhr = next(i for i in result if i.properties["earthlab:centre"] == "dinamis")
        assert "signature=" in vhr.assets["red"].href
        local = sample_dir / "dinamis" / "pleiades-ms" / vhr.id / "red.tif"
        body = requests.get(vhr.assets["red"].href, timeout=30)
        assert body.status_code == 200 and body.content == local.read_bytes()

        # an outsider sees the restricted entry, the open centres answer
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub.token("erin", [access_scope("theia")]))
        outsider = lab.catalog(deployment.centres_file).search(collections="pleiades-ms")
        assert outsider.federation["dinamis"].status == "restricted"
    finally:
        stopped = subprocess.run([*earthlab, "down"], capture_output=True, text=True, timeout=180)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip().endswith("stac-theia, postgres, proxy"), stopped.stdout
    assert not [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]
    assert data_dir is not None and not data_dir.exists()
