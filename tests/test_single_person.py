"""A lab started by an ordinary account is a single-person lab (issue 16, item 3).

Without root, every server, kernel and Dask worker runs as the account that ran ``hub up``, so
any user of that lab could read the run directory and the restricted files on disk: ``hub up``
says so, and restricted collections are granted to that person only, whatever the hub's groups
say. The test starts the real lab as an ordinary Unix account (created for it, as root) from
the same environment users of an isolated lab run (``make_user_env``: this checkout's Python
may be in root's home), then acts as the hub's admin.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from hub_fixtures import Hub

import lab
from lab_server.deploy import RunDir, status
from lab_server.deploy._isolation import make_user_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="creating the ordinary account that runs the lab takes root"
    ),
]

SOLO = "earthlabsolo"
"""The ordinary account that runs the lab (not ``earthlab-*``: those are hub users')."""
RESTRICTED = ["access:services!service=restricted-dinamis"]
RUNUSER = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"
"""util-linux's runuser (Debian: /usr/sbin, not on every root's PATH)."""


def as_solo(base: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{base / 'userenv' / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(base),
        "XDG_STATE_HOME": str(base / "state"),
        "XDG_CACHE_HOME": str(base / "cache"),
        "XDG_CONFIG_HOME": str(base / "config"),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [RUNUSER, "-u", SOLO, "--", str(base / "userenv" / "bin" / "earthlab"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def solo_lab(sample_dir: Path) -> Iterator[tuple[subprocess.CompletedProcess[str], Path]]:
    base = Path(tempfile.mkdtemp(prefix="earthlab-solo-", dir="/tmp"))
    subprocess.run(["userdel", SOLO], capture_output=True, check=False)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", str(base), SOLO], check=True
    )
    account = pwd.getpwnam(SOLO)
    run_dir = base / "run"
    try:
        shutil.copytree(sample_dir, base / "sample")
        make_user_env(base)
        for path in [base, *base.rglob("*")]:
            os.lchown(path, account.pw_uid, account.pw_gid)
        started = as_solo(
            base,
            "hub",
            "up",
            "--port",
            "0",
            "--centres",
            str(base / "sample" / "centres.yaml"),
            "--run-dir",
            str(run_dir),
        )
        yield started, run_dir
    finally:
        as_solo(base, "hub", "down", "--run-dir", str(run_dir), timeout=120)
        subprocess.run(["userdel", SOLO], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_hub_up_says_it_is_a_single_person_lab(solo_lab) -> None:
    started, run_dir = solo_lab
    assert started.returncode == 0, started.stderr[-3000:]
    assert f"restricted collections are granted to {SOLO} only" in started.stdout
    assert "start it as root" in started.stdout
    deployment = RunDir(run_dir).deployment()
    assert not deployment.isolated and deployment.owner == SOLO
    # nothing runs as root: the lab's processes are the ordinary account's
    for proc, alive in status(run_dir):
        assert alive, proc.name
        assert psutil.Process(proc.pid).username() == SOLO, proc.name


def test_restricted_collections_are_the_owners_only_whatever_the_groups(solo_lab) -> None:
    started, run_dir = solo_lab
    assert started.returncode == 0, started.stderr[-3000:]
    deployment = RunDir(run_dir).deployment()
    hub = Hub(deployment)
    hub.create_user(SOLO)
    hub.create_user("ben")
    hub.add_to_group("dinamis", [SOLO, "ben"])  # the admin grants both: only one may read
    refused = hub.request(
        "POST", "/users/ben/tokens", json={"scopes": RESTRICTED, "expires_in": 60}
    )
    assert refused.status_code in (400, 403), refused.text
    ben = hub.token("ben", ["self"])
    owner = hub.token(SOLO, RESTRICTED)
    quota = deployment.restricted_service_url("dinamis") + "quota"
    answer = requests.get(quota, headers={"Authorization": f"token {ben}"}, timeout=30)
    assert answer.status_code == 403
    answer = requests.get(quota, headers={"Authorization": f"token {owner}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTERHUB_API_TOKEN", owner)
        result = lab.catalog(deployment.centres_file).search(collections="pleiades-ms")
    assert result.federation["dinamis"].status == "ok" and len(result) == 3
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTERHUB_API_TOKEN", ben)
        result = lab.catalog(deployment.centres_file).search(collections="pleiades-ms")
    assert result.federation["dinamis"].status != "ok" and len(result) == 0
