"""Per-user passwords of the local lab (issue 16, item 2): no shared password any more.

The hashes, the accounts file and ``earthlab hub accounts`` here; logging in with them on a
real hub in tests/test_browser.py (a real browser) and below (the login form over HTTP).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hub_fixtures import form_login, running_lab

import lab
from lab._cli import main
from lab_server.deploy import Deployment, GatewayPorts, RunDir
from lab_server.deploy._accounts import (
    accounts_file,
    add_accounts,
    hash_password,
    read_accounts,
    read_names,
    remove_accounts,
    verify_password,
)


def test_passwords_are_stored_as_salted_scrypt_hashes() -> None:
    stored = hash_password("correct horse")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert "correct horse" not in stored
    assert hash_password("correct horse") != stored  # a new salt each time
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horse ", stored)
    assert not verify_password("correct horse", "md5$abc")
    assert not verify_password("correct horse", "scrypt$x$8$1$00$00")
    # the same salt and password give the same hash (what verify recomputes)
    salt = bytes(range(16))
    assert hash_password("pw", salt) == hash_password("pw", salt)


def fake_run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.create()
    run.write_deployment(
        Deployment(
            run_dir=str(run.path),
            port=8000,
            proxy_api_port=8001,
            hub_api_port=8081,
            gateways=(GatewayPorts("theia", 1, 2, 3, 4),),
            centres_file=str(run.path / "centres.yaml"),
            hub_config="/hub_config",
            bin_dir="/bin",
        )
    )
    return run


def test_accounts_are_added_checked_and_removed(tmp_path: Path) -> None:
    run = fake_run(tmp_path)
    passwords = add_accounts(run, ["ws-01", "ws-02"])
    assert set(passwords) == {"ws-01", "ws-02"} and len(set(passwords.values())) == 2
    assert all(len(pw) >= 16 for pw in passwords.values())
    path = accounts_file(run)
    assert path.stat().st_mode & 0o777 == 0o600
    stored = read_accounts(path)
    assert verify_password(passwords["ws-01"], stored["ws-01"])
    assert not verify_password(passwords["ws-02"], stored["ws-01"])
    with pytest.raises(lab.ConfigurationError, match=r"exist already: ws-01; give --reset"):
        add_accounts(run, ["ws-01", "ws-03"])
    assert set(read_accounts(path)) == {"ws-01", "ws-02"}  # nothing written
    again = add_accounts(run, ["ws-01"], reset=True)
    assert verify_password(again["ws-01"], read_accounts(path)["ws-01"])
    assert not verify_password(passwords["ws-01"], read_accounts(path)["ws-01"])
    with pytest.raises(lab.ConfigurationError, match=r"not a user name: 'Bad Name', '../x'"):
        add_accounts(run, ["ok", "Bad Name", "../x"])
    with pytest.raises(lab.ConfigurationError, match="named twice: a"):
        add_accounts(run, ["a", "b", "a"])
    with pytest.raises(lab.ConfigurationError, match="no user name given"):
        add_accounts(run, [])
    assert remove_accounts(run, ["ws-02", "nobody"]) == ["ws-02"]
    assert set(read_accounts(path)) == {"ws-01"}


def test_names_come_from_a_list_or_a_csv(tmp_path: Path) -> None:
    listed = tmp_path / "names.txt"
    listed.write_text("# workshop of 5 December\nws-01\n\nws-02  # late\n")
    assert read_names(listed) == ["ws-01", "ws-02"]
    table = tmp_path / "names.csv"
    table.write_text("name,email\nws-01,a@example.org\nws-02,b@example.org\n")
    assert read_names(table) == ["ws-01", "ws-02"]
    with pytest.raises(lab.ConfigurationError, match="cannot read the list of names"):
        read_names(tmp_path / "missing.txt")


def test_a_trainer_creates_a_workshops_accounts_in_one_command(tmp_path: Path, capsys) -> None:
    run = fake_run(tmp_path)
    names = tmp_path / "names.csv"
    names.write_text("name,email\nws-01,a@example.org\nws-02,b@example.org\n")
    sheet = tmp_path / "sheet.csv"
    command = ["hub", "accounts", "add", "--from", str(names), "--out", str(sheet)]
    assert main([*command, "--run-dir", str(run.path)]) == 0
    assert capsys.readouterr().out == f"2 account(s); their passwords are in {sheet} (mode 0600)\n"
    assert sheet.stat().st_mode & 0o777 == 0o600
    rows = [line.split(",") for line in sheet.read_text().splitlines()]
    assert rows[0] == ["user", "password"] and [r[0] for r in rows[1:]] == ["ws-01", "ws-02"]
    stored = read_accounts(accounts_file(run))
    assert all(verify_password(pw, stored[name]) for name, pw in rows[1:])
    # again: refused, exit 2, nothing changed
    assert main([*command, "--run-dir", str(run.path)]) == 2
    assert "exist already: ws-01, ws-02; give --reset" in capsys.readouterr().err
    assert read_accounts(accounts_file(run)) == stored
    assert main(["hub", "accounts", "list", "--run-dir", str(run.path)]) == 0
    assert capsys.readouterr().out == "ws-01\nws-02\n"
    assert main(["hub", "accounts", "remove", "ws-02", "--run-dir", str(run.path)]) == 0
    assert capsys.readouterr().out == "removed: ws-02\n"
    assert main(["hub", "accounts", "add", "ws-03", "--run-dir", str(run.path)]) == 0
    name, password = capsys.readouterr().out.split()
    assert name == "ws-03" and verify_password(password, read_accounts(accounts_file(run))[name])
    assert json.loads(accounts_file(run).read_text()).keys() == {"ws-01", "ws-03"}


@pytest.mark.integration
@pytest.mark.slow
def test_accounts_log_in_with_their_own_password_only(
    sample_dir: Path, tmp_path: Path, capsys
) -> None:
    with running_lab(sample_dir / "centres.yaml", tmp_path / "run") as deployment:
        run = RunDir(deployment.run_dir)
        owner = deployment.owner
        assert owner and read_accounts(accounts_file(run)).keys() == {owner}
        assert form_login(deployment, owner, run.secret("password")).status_code == 302
        # what the shared password did: any name with the owner's password; refused now
        assert form_login(deployment, "intruder", run.secret("password")).status_code == 403
        # a workshop's accounts, created while the lab runs, log in at once
        assert main(["hub", "accounts", "add", "ws-01", "ws-02", "--run-dir", str(run.path)]) == 0
        passwords = dict(line.split() for line in capsys.readouterr().out.splitlines())
        assert form_login(deployment, "ws-01", passwords["ws-01"]).status_code == 302
        assert form_login(deployment, "ws-01", passwords["ws-02"]).status_code == 403
        assert form_login(deployment, "ws-02", passwords["ws-02"]).status_code == 302
        # the owner administers the hub; workshop accounts do not
        from hub_fixtures import Hub

        hub = Hub(deployment)
        assert hub.request("GET", f"/users/{owner}").json()["admin"] is True
        assert hub.request("GET", "/users/ws-01").json()["admin"] is False
        # a removed account cannot log in any more
        assert main(["hub", "accounts", "remove", "ws-02", "--run-dir", str(run.path)]) == 0
        assert form_login(deployment, "ws-02", passwords["ws-02"]).status_code == 403
