"""The ``earthlab`` command line without traps: exact exit codes and messages.

``--run-dir`` before or after the hub action; ``hub down``/``status`` finding the lab the last
``hub up`` started (a state file in ``$XDG_STATE_HOME``); a port left in TIME_WAIT by a stopped
server is free for the next one; output paths checked before any work and no traceback; a
misspelt collection is an error naming the declared ones; ``search`` flags mean what
stac-client's mean. Most tests run ``lab._cli.main`` in-process; the traceback checks run the
command in a subprocess, and one slow test starts a real lab twice on the same port.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pystac
import pytest
import rustac
from hub_fixtures import reachable_by_users

import lab
from lab._cli import main
from lab_server.deploy import Deployment, RunDir, default_run_dir
from lab_server.deploy._procs import LOWEST_PORT, Proc, ephemeral_ports, free_port, port_free

ROOT = Path(__file__).resolve().parent.parent


# --- hub: --run-dir anywhere, and down/status find the lab up started ---------------------------


@pytest.fixture()
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``$XDG_STATE_HOME`` (the record of ``hub up`` and the default run dir)."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.delenv("EARTHLAB_HUB_DIR", raising=False)
    return home


@pytest.fixture()
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for a server of the lab (stopped by ``hub down``)."""
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield popen
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.wait()


def fake_up(run_dir: Path, sleeper: subprocess.Popen[bytes]) -> Deployment:
    """Write what ``up`` writes for a lab of one running server: lab.json and state.json."""
    run = RunDir(run_dir)
    run.create()
    run.new_secret("password", 8)
    deployment = Deployment(
        run_dir=str(run.path),
        port=8000,
        proxy_api_port=8001,
        hub_api_port=8081,
        gateways=(),
        centres_file=str(run.path / "centres.yaml"),
        hub_config=str(ROOT / "hub_config"),
        bin_dir=str(Path(sys.executable).parent),
    )
    run.write_deployment(deployment)
    proc = Proc(
        "hub",
        sleeper.pid,
        psutil.Process(sleeper.pid).create_time(),
        str(run.logs_dir / "hub.log"),
        "http://127.0.0.1:8000/",
    )
    state = {"processes": [proc.to_dict()]}
    run.state_json.write_text(json.dumps(state), encoding="utf-8")
    return deployment


@pytest.fixture()
def fake_lab(
    monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen[bytes]
) -> list[tuple[object, dict[str, object]]]:
    """Make ``hub up`` write a lab of one running server instead of starting the real one."""
    calls: list[tuple[object, dict[str, object]]] = []

    def up(centres_file: object, **kwargs: object) -> Deployment:
        calls.append((centres_file, kwargs))
        return fake_up(Path(str(kwargs["run_dir"] or default_run_dir())), sleeper)

    monkeypatch.setattr("lab_server.deploy.up", up)
    return calls


def test_run_dir_is_accepted_before_and_after_the_action(
    state_home: Path, tmp_path: Path, fake_lab: list, capsys: pytest.CaptureFixture[str]
) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    assert main(["hub", "--run-dir", str(before), "up", "--port", "0"]) == 0
    assert main(["hub", "up", "--port", "0", "--run-dir", str(after)]) == 0
    assert [kwargs["run_dir"] for _, kwargs in fake_lab] == [before, after]
    capsys.readouterr()
    for action in ("status", "down"):
        for args in (["--run-dir", str(before), action], [action, "--run-dir", str(before)]):
            expected = 0
            assert main(["hub", *args]) == expected
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["hub", "running"]
    assert out[2] == "stopped: hub"
    assert out[3] == f"nothing to stop: no lab runs from {before}"


def test_run_dir_given_twice_differently_is_a_usage_error(
    state_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["hub", "--run-dir", str(a), "status", "--run-dir", str(b)]) == 2
    assert capsys.readouterr().err == (
        f"earthlab: error: --run-dir is given twice, as {a} and {b}: give it once\n"
    )


def test_down_and_status_find_the_lab_up_started_and_down_forgets_it(
    state_home: Path, tmp_path: Path, fake_lab: list, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "my lab"
    record = state_home / "earthlab" / "current-hub"
    assert main(["hub", "up", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"Run directory: {run_dir}\n" in out
    assert out.endswith(f"Stop with: earthlab hub down --run-dir '{run_dir}'\n")
    assert record.read_text() == f"{run_dir}\n"

    assert main(["hub", "status"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["hub", "running"]
    assert main(["hub", "down"]) == 0
    assert capsys.readouterr().out == "stopped: hub\n"
    assert not record.exists()
    assert main(["hub", "status"]) == 3  # back to the default run directory, where nothing runs
    assert capsys.readouterr().out == f"no lab runs from {state_home / 'earthlab' / 'hub'}\n"
    assert main(["hub", "down"]) == 0
    assert capsys.readouterr().out == (
        f"nothing to stop: no lab runs from {state_home / 'earthlab' / 'hub'}\n"
    )


def test_an_explicit_run_dir_wins_over_the_record(
    state_home: Path,
    tmp_path: Path,
    fake_lab: list,
    sleeper: subprocess.Popen[bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["hub", "up", "--run-dir", str(tmp_path / "recorded")]) == 0
    other = tmp_path / "other"
    fake_up(other, sleeper)
    (other / "state.json").write_text('{"processes": []}', encoding="utf-8")
    capsys.readouterr()
    assert main(["hub", "status", "--run-dir", str(other)]) == 3
    assert capsys.readouterr().out == f"no lab runs from {other}\n"
    assert main(["hub", "down", "--run-dir", str(other)]) == 0
    assert (state_home / "earthlab" / "current-hub").is_file()  # another lab's record stays


def test_the_hub_dir_setting_wins_over_the_record(
    state_home: Path,
    tmp_path: Path,
    fake_lab: list,
    sleeper: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["hub", "up", "--run-dir", str(tmp_path / "recorded")]) == 0
    chosen = tmp_path / "chosen"
    monkeypatch.setenv("EARTHLAB_HUB_DIR", str(chosen))
    capsys.readouterr()
    assert main(["hub", "status"]) == 3
    assert capsys.readouterr().out == f"no lab runs from {chosen.resolve()}\n"


def test_the_default_run_dir_gets_the_short_stop_command(
    state_home: Path, fake_lab: list, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hub", "up"]) == 0
    assert capsys.readouterr().out.endswith("Stop with: earthlab hub down\n")
    assert main(["hub", "down"]) == 0


@pytest.mark.parametrize("action", ["down", "status"])
def test_a_run_dir_without_a_lab_is_a_usage_error(
    state_home: Path, tmp_path: Path, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hub", action, "--run-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"earthlab: error: argument --run-dir: {tmp_path} is not the run directory of a lab "
        "(no lab.json): give the run directory `earthlab hub up` printed\n"
    )


# --- no traceback: one line, exit 2 for a bad argument ------------------------------------------


def earthlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``earthlab`` in a subprocess, as a user does."""
    return subprocess.run(
        [sys.executable, "-m", "lab._cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def unwritable(tmp_path: Path) -> Path:
    """A directory that cannot be created, even by root (its parent is a file)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "out"


@pytest.mark.parametrize("action", ["down", "status"])
def test_a_missing_run_dir_is_one_line_not_a_traceback(tmp_path: Path, action: str) -> None:
    missing = tmp_path / "missing"
    done = earthlab("hub", "--run-dir", str(missing), action)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"earthlab: error: argument --run-dir: {missing} does not exist: give the run "
        "directory `earthlab hub up` printed\n"
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["demo", "--out", "{out}"], "--out"),
        (["sample", "--out", "{out}"], "--out"),
        (["cube", "build", "thau-lagoon-sample", "--target", "{out}/cube.zarr"], "--target"),
        (["cube", "catalog", "--out", "{out}/catalog.yaml"], "--out"),
        (["hub", "up", "--run-dir", "{out}"], "--run-dir"),
    ],
)
def test_an_unwritable_output_is_one_line_not_a_traceback(
    tmp_path: Path, command: list[str], option: str
) -> None:
    out = unwritable(tmp_path)
    done = earthlab(*(arg.format(out=out) for arg in command))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"earthlab: error: argument {option}: cannot write to {out} (Not a directory): "
        "give a directory you can write to\n"
    )


def test_proc_is_not_writable_for_the_demo() -> None:
    done = earthlab("demo", "--out", "/proc/x")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("earthlab: error: argument --out: cannot write to /proc/x (")
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_an_output_dir_that_is_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "a-file"
    target.write_text("")
    assert main(["sample", "--out", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"earthlab: error: argument --out: {target} exists and is not a directory: "
        "give a directory\n"
    )


def test_an_os_error_in_a_command_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x"))

    monkeypatch.setattr("lab.sample.make_sample", fail)
    assert main(["sample", "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"earthlab: error: {tmp_path / 'x'}: Permission denied\n"


# --- ports left in TIME_WAIT ------------------------------------------------------------------


def test_a_port_in_time_wait_is_free_for_a_server() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    assert not port_free(port)  # listening: taken
    conn.close()  # the server closes first: its side of the connection goes to TIME_WAIT
    server.close()
    client.close()
    plain = socket.socket()
    with pytest.raises(OSError) as info:  # the old check's bind: the port looked taken
        plain.bind(("127.0.0.1", port))
    plain.close()
    assert info.value.errno == errno.EADDRINUSE
    assert port_free(port)
    with socket.socket() as again:  # and a server binds it as tornado and node do
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen(1)


# --- ports chosen for servers started later ---------------------------------------------------


def test_ports_for_servers_are_never_ones_outgoing_connections_take() -> None:
    """The CI failure of 2026-12-05: a gateway died at start, its port taken by a client socket.

    ``hub up`` chooses every port first and starts servers over the next seconds, while the
    database pool, the readiness probes and the hub open connections; those take their local
    ports from the ephemeral range. Ports from ``bind(0)`` come from that range too.
    """
    ephemeral = ephemeral_ports()
    assert len(ephemeral) > 1000  # read from the kernel, not an empty range
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)  # never the same port twice
    assert all(LOWEST_PORT <= p < ephemeral.start for p in ports)
    # what an outgoing connection is given: inside the range, so never one of those ports
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with socket.create_connection(server.getsockname()) as client:
        assert client.getsockname()[1] in ephemeral
    server.close()


def test_a_port_taken_by_a_client_connection_is_not_handed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lab_server.deploy._procs as procs

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    client.bind(("127.0.0.1", 0))
    taken = client.getsockname()[1]
    client.connect(server.getsockname())
    try:
        monkeypatch.setattr(procs, "LOWEST_PORT", taken)
        monkeypatch.setattr(procs, "ephemeral_ports", lambda: range(taken + 1, 65536))
        with pytest.raises(
            lab.ConfigurationError, match=r"no free TCP port on 127\.0\.0\.1 between"
        ):
            procs.free_port()
    finally:
        client.close()
        server.close()


def test_a_server_that_dies_after_it_was_ready_stops_hub_up(tmp_path: Path) -> None:
    from lab_server.deploy._procs import ensure_alive, start, stop

    env = dict(os.environ)
    alive = start(
        "alive",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        tmp_path / "a.log",
        env,
        tmp_path,
    )
    dead = start(
        "gateway-x",
        [sys.executable, "-c", "print('address already in use'); raise SystemExit(1)"],
        tmp_path / "d.log",
        env,
        tmp_path,
    )
    try:
        wait_for = 600
        while dead.alive() and wait_for:  # a hang guard, not a time window
            time.sleep(0.1)
            wait_for -= 1
        ensure_alive([alive])  # running: nothing to say
        with pytest.raises(lab.ConfigurationError) as info:
            ensure_alive([alive, dead])
        assert str(info.value).startswith(
            f"gateway-x exited after it was ready; its log {dead.log}"
        )
        assert "address already in use" in str(info.value)
    finally:
        stop(alive)
        stop(dead)


# --- collections no centre declares ------------------------------------------------------------


@pytest.fixture()
def federation(tmp_path: Path) -> Path:
    """Two centres declaring their collections (``s2``, ``insitu``); only ``s2`` has items."""
    items = [
        pystac.Item(
            f"a{i}",
            {"type": "Point", "coordinates": [3.6, 43.4]},
            [3.6, 43.4, 3.6, 43.4],
            dt.datetime(2022, 1, 1 + i, tzinfo=dt.UTC),
            {},
            collection="s2",
        )
        for i in range(3)
    ]
    (tmp_path / "alpha").mkdir()
    rustac.write_sync(
        str(tmp_path / "alpha" / "items.parquet"),
        [i.to_dict(transform_hrefs=False) for i in items],
    )
    (tmp_path / "beta").mkdir()
    rustac.write_sync(
        str(tmp_path / "beta" / "items.parquet"), [items[0].to_dict(transform_hrefs=False)]
    )
    (tmp_path / "centres.yaml").write_text(
        """
version: 1
centres:
  - name: alpha
    catalog: {kind: stac-geoparquet, href: alpha/items.parquet}
    collections: [s2]
  - name: beta
    catalog: {kind: stac-geoparquet, href: beta/items.parquet}
    collections: [insitu-water-quality]
""",
        encoding="utf-8",
    )
    return tmp_path / "centres.yaml"


def declared(federation: Path) -> str:
    """The end of the message: which centre declares which collections."""
    centres = "alpha: s2; beta: insitu-water-quality"
    return f"Collections by centre (centres file {federation}): {centres}."


def test_a_misspelt_collection_is_an_error_with_the_closest_name(federation: Path) -> None:
    with pytest.raises(lab.ConfigurationError) as info:
        lab.catalog(federation).search(collections="s3")
    assert str(info.value) == (
        "no centre declares the collection 's3' (did you mean 's2'?). " + declared(federation)
    )
    with pytest.raises(lab.ConfigurationError) as info:
        lab.catalog(federation).search(collections=["s2", "insitu", "nothing-like-it"])
    assert str(info.value) == (
        "no centre declares the collections 'insitu', 'nothing-like-it' (did you mean "
        "'insitu-water-quality' for 'insitu'?). " + declared(federation)
    )


def test_a_declared_collection_without_items_is_an_empty_result(federation: Path) -> None:
    result = lab.catalog(federation).search(collections="insitu-water-quality")
    assert len(result) == 0 and result.federation["beta"].status == "ok"
    assert result.federation["alpha"].status == "skipped"


def test_a_centre_declaring_nothing_turns_the_error_into_a_warning(federation: Path) -> None:
    text = federation.read_text().replace("    collections: [insitu-water-quality]\n", "")
    federation.write_text(text)
    with pytest.warns(lab.EarthLabWarning, match="no centre declares the collection 's3'"):
        assert len(lab.catalog(federation).search(collections="s3")) == 0


def test_cli_search_of_a_misspelt_collection_exits_1_with_the_hint(
    federation: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--centres", str(federation), "-c", "s3"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "earthlab: error: no centre declares the collection 's3' (did you mean 's2'?). "
        + declared(federation)
        + "\n"
    )


def test_cli_misspelt_sample_collection(
    sample_centres_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "-c", "sentinel-2-l2", "-d", "2022-01/2022-03"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "earthlab: error: no centre declares the collection 'sentinel-2-l2' "
        "(did you mean 'sentinel-2-l2a'?). Collections by centre"
    )
    assert "theia: sentinel-2-l2a" in err


# --- search flags as stac-client's ---------------------------------------------------------------


def test_max_items_caps_the_total(federation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--max-items", "-n"):
        assert main(["search", "--centres", str(federation), flag, "2", "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert [f["id"] for f in document["features"]] == ["a0", "a1"]


def test_limit_is_refused_because_stac_client_means_the_page_size(
    federation: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--centres", str(federation), "--limit", "2"]) == 2
    assert capsys.readouterr().err == (
        "earthlab: error: argument --limit: in stac-client --limit is the page size, not the "
        "number of items; earthlab search pages each centre by itself. Use --max-items 2 for "
        "at most 2 items in all\n"
    )


def test_filter_as_cql2_text_or_json_gives_the_apis_result(
    sample_centres_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_json = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}
    expected = [i.id for i in lab.catalog().search(collections="sentinel-2-l2a", filter=as_json)]
    assert 0 < len(expected) < 16
    for given in ("eo:cloud_cover < 20", json.dumps(as_json)):
        assert main(["search", "-c", "sentinel-2-l2a", "--filter", given, "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert [f["id"] for f in document["features"]] == expected


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("cloud <<< 2", "not valid CQL2 text"),
        ('{"op": "<", "args": [', "not valid CQL2-JSON"),
        ('{"op": "<", "args": "x"}', "filter is not valid CQL2-JSON"),
    ],
)
def test_a_bad_filter_is_an_argparse_error(
    sample_centres_env: Path, capsys: pytest.CaptureFixture[str], given: str, says: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["search", "--filter", given])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --filter: " in err and says in err
    assert "Traceback" not in err


# --- a real lab: up, down, up again on the same port --------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_hub_up_down_up_on_the_same_port(sample_dir: Path, tmp_path: Path) -> None:
    """What a user does: up with --run-dir after the action, down without it, up again at once."""
    import requests

    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    run_dir = reachable_by_users(tmp_path / "run")  # as root (CI) the lab isolates its users
    port = free_port()
    centres = str(sample_dir / "centres.yaml")
    up = ["hub", "up", "--port", str(port), "--centres", centres, "--run-dir", str(run_dir)]
    try:
        for _ in range(2):
            started = earthlab(*up, env=env)
            assert started.returncode == 0, started.stderr
            assert started.stdout.endswith(f"Stop with: earthlab hub down --run-dir {run_dir}\n")
            report = earthlab("hub", "status", env=env)
            assert report.returncode == 0, report.stdout
            with requests.Session() as browser:  # a kept-alive connection, as a browser's
                url = f"http://127.0.0.1:{port}/hub/api/"
                assert browser.get(url, timeout=10).json()["version"]
                stopped = earthlab("hub", "down", env=env)  # the proxy closes it first
            assert stopped.returncode == 0
            assert stopped.stdout.startswith("stopped: hub, ")
            with socket.socket() as plain, pytest.raises(OSError) as info:
                plain.bind(("127.0.0.1", port))
            assert info.value.errno == errno.EADDRINUSE  # TIME_WAIT: the old check said taken
    finally:
        earthlab("hub", "down", "--run-dir", str(run_dir), env=env)
    again = earthlab("hub", "down", env=env)
    assert again.returncode == 0
    assert again.stdout == f"nothing to stop: no lab runs from {tmp_path / 'state/earthlab/hub'}\n"


def test_the_output_check_leaves_nothing_behind(tmp_path: Path) -> None:
    from lab.cli import output_dir

    target = tmp_path / "a" / "b" / "out"
    assert output_dir(target, "--out") == target
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()
    output_dir(tmp_path / "kept", "--out")
    assert list((tmp_path / "kept").iterdir()) == []
