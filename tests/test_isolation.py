"""Isolated users on one machine (``earthlab hub up`` as root), attacked.

Each hub user's server, kernels, schedulers and workers run as the user's own Unix account
(``earthlab-<name>``) with a private home; the tests act as an ordinary user's notebook and try
what the security review of issue 16 did: read the run directory's secrets and signing keys,
another user's home and cluster keys, get root, and make root write where the user points.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import rasterio
import requests
from hub_fixtures import Hub, Kernel, running_lab

from lab import ConfigurationError
from lab_server.deploy import status, up
from lab_server.deploy._isolation import SERVICE_ACCOUNT, ensure_account, system_user
from lab_server.deploy._layout import RUN_MARKER

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="isolating users takes root (CI runs as root)"),
]

USERS = ("ann", "ben")
RUNUSER = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"


@pytest.fixture(scope="module")
def deployment(sample_dir: Path) -> Iterator:
    # pytest's own temporary directories are closed to others (0700): users could not reach
    # their homes there
    base = Path(tempfile.mkdtemp(prefix="earthlab-isolated-", dir="/tmp"))
    os.chmod(base, 0o711)
    try:
        with running_lab(sample_dir / "centres.yaml", base / "run") as d:
            yield d
    finally:
        for user in USERS:
            subprocess.run(["userdel", system_user(user)], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(deployment) -> Hub:
    hub = Hub(deployment)
    for user in USERS:
        hub.create_user(user)
    return hub


@pytest.fixture(scope="module")
def kernels(hub: Hub) -> Iterator[dict[str, Kernel]]:
    """A kernel in each user's own server."""
    started = {}
    for user in USERS:
        server = hub.start_server(user)
        started[user] = Kernel(server, hub.token(user, [f"access:servers!user={user}"]))
    yield started
    for kernel in started.values():
        kernel.close()


def run(kernel: Kernel, code: str) -> dict:
    """Run ``code`` (which prints one JSON line) in the kernel; return what it printed."""
    output = kernel.execute(code)
    assert output.error is None, output.error
    return json.loads(output.stdout.strip().splitlines()[-1])


ATTEMPT = """
import json
def attempt(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"
"""


def test_each_server_runs_as_its_users_own_account(deployment, kernels):
    homes = Path(deployment.run_dir) / "users"
    for user, kernel in kernels.items():
        seen = run(
            kernel,
            "import json, os, pwd\n"
            "print(json.dumps({'user': pwd.getpwuid(os.getuid()).pw_name, 'uid': os.getuid(), "
            "'groups': os.getgroups(), 'home': os.environ['HOME'], 'cwd': os.getcwd()}))",
        )
        account = pwd.getpwnam(system_user(user))
        assert seen["user"] == f"earthlab-{user}"
        assert seen["uid"] == account.pw_uid != 0
        assert 0 not in seen["groups"]
        assert seen["home"] == str(homes / user)
        home = os.stat(homes / user)
        assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (account.pw_uid, 0o700)
        # the lab's notebooks were copied into the home, as the user
        welcome = homes / user / "earthlab-notebooks" / "WELCOME.md"
        assert welcome.stat().st_uid == account.pw_uid


def test_jupyterlab_of_an_isolated_user_has_the_labs_extensions(deployment, hub, kernels):
    """The user environment is another prefix: the Dask panel, proxy and widgets still load."""
    server = deployment.url.rstrip("/") + "/user/ann/"
    headers = {"Authorization": f"token {hub.token('ann', ['access:servers!user=ann'])}"}
    answer = requests.get(server + "lab/api/extensions", headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    loaded = {e["name"]: e["enabled"] for e in answer.json()}
    for name in (
        "dask-labextension",
        "jupyterhub-jupyter-server-proxy",
        "jupyter-widgets-jupyterlab-manager",
    ):
        assert loaded.get(name) is True, sorted(loaded)
    clusters = requests.get(server + "dask/clusters", headers=headers, timeout=60)
    assert clusters.status_code == 200 and clusters.json() == []


def test_the_labs_commands_run_as_the_user(kernels):
    """earthlab, rio and dask exist beside the user environment's interpreter and run."""
    seen = run(
        kernels["ann"],
        "import json, subprocess, sys\n"
        "from pathlib import Path\n"
        "bin_dir = Path(sys.executable).parent\n"
        "done = {name: subprocess.run([str(bin_dir / name), '--version'], capture_output=True,"
        " text=True) for name in ('earthlab', 'rio', 'dask')}\n"
        "print(json.dumps({n: [d.returncode, d.stdout.strip()] for n, d in done.items()}))",
    )
    assert seen["earthlab"] == [0, "earthlab 0.1.0"]
    assert seen["rio"] == [0, rasterio.__version__]
    assert seen["dask"][0] == 0


def test_no_user_process_runs_as_root_or_with_allow_root(deployment, kernels):
    uids = {pwd.getpwnam(system_user(u)).pw_uid: u for u in USERS}
    seen = {u: 0 for u in USERS}
    for proc in psutil.process_iter():
        try:
            cmdline = proc.cmdline()
            environ = proc.environ()
            uid = proc.uids().real
        except (psutil.Error, OSError):
            continue
        if "jupyterhub.singleuser" in cmdline and environ.get(RUN_MARKER) == deployment.run_dir:
            assert uid in uids, f"a user server runs as uid {uid}: {cmdline}"
            assert "--allow-root" not in cmdline
            seen[uids[uid]] += 1
    assert seen == {u: 1 for u in USERS}


def test_a_notebook_cannot_read_the_labs_secrets_or_another_users_home(deployment, kernels):
    run_dir = Path(deployment.run_dir)
    secrets = sorted(p.name for p in (run_dir / "secrets").iterdir())
    assert "admin-token" in secrets and "proxy-token" in secrets
    assert any(name.endswith("-key") for name in secrets)  # the URL-signing key
    code = ATTEMPT + (
        f"run = {str(run_dir)!r}\n"
        f"secrets = {secrets!r}\n"
        "import os\n"
        "print(json.dumps({\n"
        "  'secrets': {n: attempt(lambda n=n: open(f'{run}/secrets/{n}').read()) for n in secrets},\n"
        "  'list_secrets': attempt(lambda: os.listdir(f'{run}/secrets')),\n"
        "  'list_run_dir': attempt(lambda: os.listdir(run)),\n"
        "  'other_home': attempt(lambda: os.listdir(f'{run}/users/ben')),\n"
        "  'other_notebook': attempt(lambda: open(f'{run}/users/ben/earthlab-notebooks/WELCOME.md').read()),\n"
        "  'hub_database': attempt(lambda: open(f'{run}/hub/jupyterhub.sqlite', 'rb').read(1)),\n"
        "  'logs': attempt(lambda: os.listdir(f'{run}/logs')),\n"
        "  'restricted': attempt(lambda: os.listdir(f'{run}/restricted')),\n"
        "  'served_catalogues': attempt(lambda: os.listdir(f'{run}/stac')),\n"
        "  'own_home': attempt(lambda: os.listdir(os.environ['HOME'])),\n"
        "}))"
    )
    seen = run(kernels["ann"], code)
    assert seen.pop("own_home") == "allowed"
    assert set(seen.pop("secrets").values()) == {"denied"}
    assert set(seen.values()) == {"denied"}, seen


def test_services_that_need_no_privilege_run_as_the_service_account(deployment, kernels):
    """STAC front, catalogue servers, restricted-data service: the service account, which
    reads its own secrets and the restricted files, and nothing else of the lab's."""
    run_dir = Path(deployment.run_dir)
    procs = {proc.name: proc for proc, alive in status(run_dir) if alive}
    services = [n for n in procs if n == "front" or n.startswith(("stac-", "restricted-"))]
    assert {"front", "stac-theia", "stac-dinamis", "restricted-dinamis"} <= set(services)
    services.append("processes")
    account = pwd.getpwnam(SERVICE_ACCOUNT)
    for name in services:
        process = psutil.Process(procs[name].pid)
        assert process.uids().effective == account.pw_uid != 0, name
        assert set(process.gids()) == {account.pw_gid}, name
        # from the user environment, which others may run (not the lab's own interpreter)
        assert process.cmdline()[0].startswith(str(run_dir / "userenv" / "bin")), name
    for name in ("hub", "proxy", "gateway-theia"):  # they start processes as users
        assert psutil.Process(procs[name].pid).uids().effective == 0, name

    def service_reads(path: Path) -> bool:
        done = subprocess.run(
            [RUNUSER, "-u", SERVICE_ACCOUNT, "--", "cat", str(path)],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    secrets = run_dir / "secrets"
    assert service_reads(secrets / "restricted-dinamis-token")
    assert service_reads(secrets / "restricted-dinamis-key")
    for other in ("admin-token", "proxy-token", "crypt-key", "dask-gateway-theia-token"):
        assert (secrets / other).exists() and not service_reads(secrets / other), other
    assert not service_reads(run_dir / "hub" / "jupyterhub.sqlite")
    restricted = next(s for s in deployment.catalogues if s.restricted)
    served = json.loads((run_dir / "stac" / "dinamis" / "served.json").read_text())
    image = next(p for p in Path(served["root"]).rglob("*.tif"))
    assert service_reads(image)  # and users do not (test above)
    assert restricted.service == "restricted-dinamis"


def test_clusters_run_as_their_owner_and_their_keys_are_private(deployment, kernels):
    seen = run(
        kernels["ann"],
        "import json, os, pwd, lab\n"
        "client = lab.cluster(centre='theia', workers=1)\n"
        "workers = client.run(lambda: pwd.getpwuid(os.getuid()).pw_name)\n"
        "scheduler = client.run_on_scheduler(lambda: pwd.getpwuid(os.getuid()).pw_name)\n"
        "workdir = client.run_on_scheduler(lambda: os.getcwd())\n"
        "print(json.dumps({'workers': sorted(set(workers.values())), 'scheduler': scheduler, "
        "'workdir': workdir}))",
    )
    assert seen["workers"] == ["earthlab-ann"]
    assert seen["scheduler"] == "earthlab-ann"
    workdir = Path(seen["workdir"])
    assert workdir.parent == Path(deployment.run_dir) / "gateways" / "theia"
    certs = workdir / ".certs"
    ann = pwd.getpwnam("earthlab-ann").pw_uid
    assert (certs.stat().st_uid, stat.S_IMODE(certs.stat().st_mode)) == (ann, 0o700)
    # ben's notebook cannot read ann's scheduler key (code would run on her cluster)
    stolen = run(
        kernels["ben"],
        ATTEMPT + f"print(json.dumps(attempt(lambda: open({str(certs / 'dask.pem')!r}).read())))",
    )
    assert stolen == "denied"


def test_root_never_writes_where_a_user_points(deployment, hub, kernels):
    """A symlink planted in the home does not make the notebook copy write into the hub's files."""
    run_dir = Path(deployment.run_dir)
    target = run_dir / "hub"
    run(
        kernels["ben"],
        "import json, os, shutil\n"
        "home = os.environ['HOME']\n"
        "shutil.rmtree(os.path.join(home, 'earthlab-notebooks'))\n"
        f"os.symlink({str(target)!r}, os.path.join(home, 'earthlab-notebooks'))\n"
        "print(json.dumps('planted'))",
    )
    kernels["ben"].close()
    hub.stop_server("ben")
    hub.start_server("ben")
    assert not (target / "WELCOME.md").exists()
    assert sorted(p.name for p in target.iterdir() if p.suffix in (".md", ".ipynb")) == []


def test_private_catalogue_ports_answer_the_lab_not_users(deployment, hub, kernels):
    """Every centre's own catalogue server (no authentication) refuses users' processes; the
    STAC front (public collections) and the restricted-data service are their doors."""
    private = next(s for s in deployment.catalogues if s.restricted)
    for server in deployment.catalogues:
        url = f"http://{deployment.ip}:{server.port}/"
        assert requests.get(url, timeout=10).status_code == 200  # the lab's own servers (root)
        code = ATTEMPT.replace("except PermissionError", "except (PermissionError, OSError)") + (
            "import urllib.request\n"
            f"print(json.dumps(attempt(lambda: urllib.request.urlopen({url!r}, timeout=10)"
            ".read())))"
        )
        assert run(kernels["ann"], code) == "denied", server.centre
    front = deployment.catalogue_url("theia")
    code = (
        "import json, urllib.request\n"
        f"print(json.dumps(urllib.request.urlopen({front!r}, timeout=10).status))"
    )
    assert run(kernels["ann"], code) == 200
    # members still search it, through the restricted-data service
    hub.add_to_group("dinamis", ["ben"])
    token = hub.token("ben", [f"access:services!service={private.service}"])
    found = requests.get(
        deployment.catalogue_url(private.centre) + "search",
        headers={"Authorization": f"token {token}"},
        params={"limit": 2},
        timeout=30,
    )
    assert found.status_code == 200, found.text
    assert len(found.json()["features"]) == 2


def test_down_removes_the_firewall_rules(sample_dir: Path):
    base = Path(tempfile.mkdtemp(prefix="earthlab-rules-", dir="/tmp"))
    os.chmod(base, 0o711)
    run_dir = base / "run"
    try:
        with running_lab(sample_dir / "centres.yaml", run_dir) as d:
            rules = subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True, text=True)
            # one rule per centre's own catalogue server (no pgstac, no test provider here)
            assert rules.stdout.count(f"earthlab {run_dir.resolve()}") == len(d.catalogues) == 4
        rules = subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True, text=True)
        assert f"earthlab {run_dir.resolve()}" not in rules.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_lab_started_as_root_cannot_share_roots_account(sample_dir: Path, tmp_path: Path):
    """As root, isolation is not optional: every user's server would otherwise be root's."""
    with pytest.raises(ConfigurationError, match=r"isolates its users.*ordinary account"):
        up(sample_dir / "centres.yaml", run_dir=tmp_path / "run", port=0, isolate_users=False)
    assert not (tmp_path / "run").exists()


def test_up_refuses_a_run_directory_users_cannot_reach(sample_dir: Path, tmp_path: Path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(ConfigurationError, match=r"closed to others.*chmod o\+x"):
        up(sample_dir / "centres.yaml", run_dir=closed / "run", port=0)
    assert not (closed / "run").exists()


def test_up_refuses_restricted_files_every_user_could_read(sample_dir: Path):
    base = Path(tempfile.mkdtemp(prefix="earthlab-open-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        shutil.copytree(sample_dir, base / "sample")
        for path in [base / "sample", *(base / "sample").rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        with pytest.raises(
            ConfigurationError, match=r"restricted files of centre 'dinamis'.*o-rwx"
        ):
            up(base / "sample" / "centres.yaml", run_dir=base / "run", port=0)
        assert not (base / "run" / "state.json").exists()  # refused before starting anything
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_an_account_left_by_a_stopped_or_gone_lab_moves_to_this_labs_home(tmp_path: Path):
    name = system_user("stale-zoe")
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", str(tmp_path / "gone"), "--user-group", name],
        check=True,
    )
    try:
        homes = tmp_path / "users"
        homes.mkdir()
        account = ensure_account("stale-zoe", homes)
        assert account.pw_dir == str(homes / "stale-zoe")
        home = os.stat(homes / "stale-zoe")
        assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (account.pw_uid, 0o700)
        # a stopped lab's home (its state lists no live server): taken over, same uid
        stopped = tmp_path / "monday" / "users" / "stale-zoe"
        stopped.mkdir(parents=True)
        (tmp_path / "monday" / "state.json").write_text('{"processes": []}')
        subprocess.run(["usermod", "--home", str(stopped), name], check=True)
        assert ensure_account("stale-zoe", homes).pw_uid == account.pw_uid
        assert pwd.getpwnam(name).pw_dir == str(homes / "stale-zoe")
        # a home that is not a lab's, or a running lab's: refused, not taken over
        subprocess.run(["usermod", "--home", str(tmp_path), name], check=True)
        with pytest.raises(ConfigurationError, match="another lab or person uses it"):
            ensure_account("stale-zoe", homes)
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
