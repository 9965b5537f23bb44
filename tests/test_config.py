"""lab.config: one registry of settings, four layers (defaults < user file < EARTHLAB_* < set),
checked values, and a documentation page that lists every EARTHLAB_* variable the code names."""

from __future__ import annotations

import ast
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ast_parsing import parse

import lab
from lab_server import environment

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
# Where EARTHLAB_* variables may be named: the packages, the servers' configuration and images,
# the kernels, Binder, the benchmarks, the tests, the build and the other documentation pages.
SCANNED = ("lab", "datacubes", "recipes", "lab_server", "hub_config", "kernels", "binder")
SCANNED += ("benchmarks", "tests", "docs", "Makefile", "README.md", "environment.yml")
SKIPPED_DIRS = {"node_modules", "__pycache__", ".ipynb_checkpoints"}
VARIABLE = re.compile(r"EARTHLAB_[A-Z0-9_]+")
GATEWAY = re.compile(r"^EARTHLAB_GATEWAY_(PROXY_)?[A-Z0-9_]+$")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No user file, no EARTHLAB_* variable of the developer's; the user file's directory."""
    config_home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    for name in list(os.environ):
        if name.startswith("EARTHLAB_") and not name.startswith("EARTHLAB_TEST_"):
            monkeypatch.delenv(name)
    yield config_home / "earthlab"


def user_file(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "earthlab.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- layers -----------------------------------------------------------------------------------


def test_defaults_come_from_the_shipped_file(clean: Path) -> None:
    shipped = yaml.safe_load((ROOT / "lab" / "earthlab.yaml").read_text())
    assert lab.config.get("centres") is None and lab.config.get("gateways") == {}
    assert lab.config.get("http") == {
        **shipped["http"],
        "retry_statuses": tuple(shipped["http"]["retry_statuses"]),
    }
    assert lab.config.origin("http.retries").startswith("defaults file ")
    assert lab.config.user_file() is None


def test_precedence_default_user_file_environment_set(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lab.config.get("http.retries") == 3
    path = user_file(clean, "http:\n  retries: 5\ncache_dir: ~/from-file\n")
    assert lab.config.user_file() == path
    assert lab.config.get("http.retries") == 5
    assert lab.config.origin("http.retries") == f"user file {path}"
    assert lab.config.get("cache_dir") == str(Path.home() / "from-file")  # ~ expanded
    monkeypatch.setenv("EARTHLAB_HTTP__RETRIES", "6")
    assert lab.config.get("http.retries") == 6
    assert lab.config.origin("http.retries") == "environment EARTHLAB_HTTP__RETRIES"
    with lab.config.set({"http.retries": 7}):
        assert lab.config.get("http.retries") == 7
        assert lab.config.origin("http.retries") == "lab.config.set"
        with lab.config.set(http__retries=8):
            assert lab.config.get("http.retries") == 8
        assert lab.config.get("http.retries") == 7
    assert lab.config.get("http.retries") == 6
    monkeypatch.setenv("EARTHLAB_HTTP__RETRIES", "")  # empty: unset
    assert lab.config.get("http.retries") == 5
    path.write_text("http: {retries: 4}\n", encoding="utf-8")  # the file is read again
    os.utime(path, ns=(1, 1))
    assert lab.config.get("http.retries") == 4


def test_set_without_with_lasts_until_undone(clean: Path) -> None:
    override = lab.config.set({"http": {"timeout": 12}})
    try:
        assert lab.config.get("http.timeout") == 12.0
    finally:
        override.undo()
    assert lab.config.get("http.timeout") == 30.0


def test_earthlab_config_names_the_user_file(
    clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_file(clean, "http: {retries: 5}\n")
    other = tmp_path / "other.yaml"
    other.write_text("http: {retries: 9}\n", encoding="utf-8")
    monkeypatch.setenv("EARTHLAB_CONFIG", str(other))
    assert lab.config.user_file() == other and lab.config.get("http.retries") == 9


def test_the_sdk_reads_its_settings_through_lab_config(
    clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    centres_file = tmp_path / "centres.yaml"
    centres_file.write_text(
        "centres:\n"
        "  - name: theia-x\n"
        "    catalog: {kind: stac-api, href: http://127.0.0.1:1/stac/}\n"
        "    gateway: {address: http://file.example/gw, proxy_address: gateway://file:1}\n"
        "  - name: odatis\n"
        "    catalog: {kind: stac-api, href: http://127.0.0.1:1/stac/}\n",
        encoding="utf-8",
    )
    user_file(
        clean,
        f"centres: {centres_file}\n"
        f"cache_dir: {tmp_path / 'cache'}\n"
        "gateways:\n  odatis: {address: http://user.example/odatis}\n",
    )
    found = lab.centres()
    assert found.source == centres_file
    assert found["odatis"].gateway is not None
    assert found["odatis"].gateway.address == "http://user.example/odatis"
    assert found["theia-x"].gateway.address == "http://file.example/gw"
    from lab._config import cache_dir  # where the sample federation is generated
    from lab_server.deploy import default_run_dir

    with lab.config.set(hub_dir=str(tmp_path / "hub")):
        assert default_run_dir() == (tmp_path / "hub").resolve()
    assert cache_dir() == tmp_path / "cache"
    # the hub's variables: the address replaces the file's, the proxy the file's proxy
    monkeypatch.setenv("EARTHLAB_GATEWAY_THEIA_X", "http://hub.example/theia-x")
    monkeypatch.setenv("EARTHLAB_GATEWAY_PROXY_THEIA_X", "gateway://hub:2")
    monkeypatch.setenv("EARTHLAB_GATEWAY_CENTRE", "theia-x")  # a server's variable: ignored
    gateway = lab.centres()["theia-x"].gateway
    assert gateway is not None
    assert (gateway.address, gateway.proxy_address) == (
        "http://hub.example/theia-x",
        "gateway://hub:2",
    )
    assert lab.config.get("gateways") == {
        "odatis": {"address": "http://user.example/odatis"},
        "theia-x": {"address": "http://hub.example/theia-x", "proxy_address": "gateway://hub:2"},
    }


def test_the_hubs_variables_are_the_ones_the_sdk_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab_server.deploy import Deployment, GatewayPorts

    deployment = Deployment(
        run_dir="/run",
        port=8000,
        proxy_api_port=8001,
        hub_api_port=8002,
        gateways=(GatewayPorts("theia-x", 1, 2, 3, 4),),
        centres_file="/run/centres.yaml",
        hub_config="/hub_config",
        bin_dir="/bin",
        cache_dir="/cache",
    )
    for name, value in deployment.user_environment().items():
        monkeypatch.setenv(name, value)
    assert lab.config.get("centres") == "/run/centres.yaml"
    assert lab.config.get("cache_dir") == "/cache"
    assert lab.config.get("gateways") == {
        "theia-x": {
            "address": "http://127.0.0.1:8000/services/dask-gateway-theia-x",
            "proxy_address": "gateway://127.0.0.1:3",
        }
    }


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour: red\n", "unknown setting 'colour'"),
        ("http:\n  retry: 3\n", "unknown setting 'http.retry'"),
        ("http:\n  retries: many\n", "http.retries must be an integer from 0 to 10, got 'many'"),
        ("http:\n  retries: 11\n", "http.retries must be an integer from 0 to 10, got 11"),
        ("http:\n  timeout: 0\n", "http.timeout must be a number > 0 and <= 3600, got 0"),
        ("http: 3\n", "http is a section: give a mapping of http.timeout"),
        ("http:\n  retry_statuses: [500]\n", "http.retry_statuses: status(es) 500 may not"),
        ("centres: 3\n", "centres must be a path"),
        ("gateways:\n  theia: {address: ftp://x}\n", "theia.address must be an http(s) URL"),
        ("gateways:\n  Theia: {address: http://x}\n", "'Theia' is not a centre name"),
        ("[1, 2]\n", "must be a mapping of settings"),
        ("http: [unclosed\n", "is not valid YAML"),
    ],
)
def test_an_invalid_user_file_names_the_file_and_the_key(
    clean: Path, text: str, message: str
) -> None:
    path = user_file(clean, text)
    with pytest.raises(lab.ConfigurationError) as info:
        lab.config.get("http.retries")
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_an_unreadable_or_missing_file_is_an_error_saying_what_to_do(
    clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean / "earthlab.yaml").mkdir(parents=True)  # exists but cannot be read as a file
    with pytest.raises(lab.ConfigurationError, match="cannot read the earthlab user file"):
        lab.config.get("centres")
    (clean / "earthlab.yaml").rmdir()
    user_file(clean, "")
    (clean / "earthlab.yaml").write_bytes(b"centres: \xff\xfe\n")
    with pytest.raises(lab.ConfigurationError, match="UTF-8 YAML"):
        lab.config.get("centres")
    monkeypatch.setenv("EARTHLAB_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(lab.ConfigurationError, match=r"no such file.*unset EARTHLAB_CONFIG"):
        lab.config.get("centres")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EARTHLAB_HTTP__RETRIES", "many", "http.retries must be an integer"),
        ("EARTHLAB_HTTP__TIMEOUT", "-1", "http.timeout must be a number > 0"),
        ("EARTHLAB_HTTP__RETRY_STATUSES", "503,404", "404 may not be retried"),
        ("EARTHLAB_HTTP__RETRY_STATUSES", "503;x", "separated by commas"),
        ("EARTHLAB_GATEWAY_THEIA", "tcp://x:1", "theia.address must be an http(s) URL"),
    ],
)
def test_an_invalid_variable_names_itself(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(lab.ConfigurationError) as info:
        lab.config.get("centres")
    assert f"environment variable {name}=" in str(info.value) and message in str(info.value)


def test_env_statuses_read_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHLAB_HTTP__RETRY_STATUSES", "[503, 429]")
    assert lab.config.get("http.retry_statuses") == (429, 503)


def test_set_refuses_unknown_keys_and_bad_values_and_sets_nothing() -> None:
    with pytest.raises(lab.ConfigurationError, match=r"unknown setting 'retries' \(did you mean"):
        lab.config.set(retries=3)
    with pytest.raises(lab.ConfigurationError, match=r"lab\.config\.set: http\.backoff_max"):
        lab.config.set({"http.retries": 1, "http.backoff_max": -1})
    assert lab.config.get("http.retries") == 3
    with pytest.raises(lab.ConfigurationError, match="unknown setting 'nope'"):
        lab.config.get("nope")


# -- names ------------------------------------------------------------------------------------


def test_each_key_has_its_variable() -> None:
    assert lab.config.env_name("cache_dir") == "EARTHLAB_CACHE_DIR"
    assert lab.config.env_name("http.retry_statuses") == "EARTHLAB_HTTP__RETRY_STATUSES"
    assert lab.config.gateway_env_names("theia-x") == (
        "EARTHLAB_GATEWAY_THEIA_X",
        "EARTHLAB_GATEWAY_PROXY_THEIA_X",
    )
    from lab_server.deploy._layout import gateway_env_names

    assert gateway_env_names("theia-x") == lab.config.gateway_env_names("theia-x")
    assert lab.config.env_names()[0] == "EARTHLAB_CONFIG"


def test_the_gateway_image_spells_the_server_variables_as_lab_server_names_them() -> None:
    tree = parse((ROOT / "hub_config" / "earthlab_gateway.py").read_text())
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    assert constants["POLICY_FILE_ENV"] == environment.POLICY_FILE
    assert constants["KERNELS_DIR_ENV"] == environment.KERNELS_DIR
    assert constants["CENTRE_ENV"] == environment.CENTRE
    assert set(environment.VARIABLES) == {
        environment.HUB_RUN_DIR,
        environment.GATEWAY_CENTRE,
        environment.POLICY_FILE,
        environment.KERNELS_DIR,
        environment.CENTRE,
    }


# -- the documentation page -------------------------------------------------------------------


def _named_variables() -> dict[str, set[str]]:
    """EARTHLAB_* names in the code and documents -> the files naming them."""
    found: dict[str, set[str]] = {}
    for entry in SCANNED:
        base = ROOT / entry
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in paths:
            if SKIPPED_DIRS & set(path.parts) or path == PAGE:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for name in VARIABLE.findall(text):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_variable_the_code_names_is_on_the_configuration_page() -> None:
    page = PAGE.read_text(encoding="utf-8")
    documented = set(re.findall(r"`(EARTHLAB_[A-Z0-9_<>]+)`", page))
    named = _named_variables()
    assert {"EARTHLAB_CENTRES", "EARTHLAB_HUB_RUN_DIR", "EARTHLAB_GATEWAY_THEIA"} <= set(named)
    missing = {}
    for name, where in sorted(named.items()):
        if name in documented:
            continue
        if name.endswith("_") and any(d.startswith(name) for d in documented):
            continue  # a prefix (EARTHLAB_GATEWAY_) of documented variables
        if (
            GATEWAY.match(name)
            and {
                "EARTHLAB_GATEWAY_<NAME>",
                "EARTHLAB_GATEWAY_PROXY_<NAME>",
            }
            <= documented
        ):
            continue  # one centre's gateway variable
        missing[name] = sorted(where)
    assert missing == {}, "EARTHLAB_* variables missing from docs/configuration.md"


def test_the_page_lists_every_key_its_variable_and_its_default() -> None:
    page = PAGE.read_text(encoding="utf-8")
    rows = {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(r"^\| `([a-z_.]+)` \| (.+?) \| `(.+?)` \|", page, re.MULTILINE)
    }
    shipped = yaml.safe_load((ROOT / "lab" / "earthlab.yaml").read_text())
    for setting in lab.config.settings:
        assert setting.key in rows, setting.key
        variables, default = rows[setting.key]
        assert f"`{setting.env}`" in variables, setting.key
        value = shipped
        for part in setting.key.split("."):
            value = value[part]
        assert yaml.safe_load(default) == value, setting.key
    assert set(rows) == {s.key for s in lab.config.settings}
    for name in (*lab.config.env_names(), *environment.VARIABLES):
        assert f"`{name}`" in page, name


def test_a_misspelt_variable_is_reported_at_the_callers_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lab import _config

    monkeypatch.setattr(_config, "_WARNED", set())
    monkeypatch.setenv("EARTHLAB_CENTERS", "/my/centres.yaml")
    with pytest.warns(lab.ConfigurationWarning, match="did you mean EARTHLAB_CENTRES") as caught:
        assert lab.config.get("centres") is None
    assert caught[0].filename == __file__
    with warnings.catch_warnings():  # once per process, not at every get
        warnings.simplefilter("error")
        lab.config.get("centres")


def test_the_servers_own_variables_are_never_taken_for_misspelt_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lab import _config

    names = {v for k, v in vars(environment).items() if k.isupper() and isinstance(v, str)}
    names = {n for n in names if n.startswith("EARTHLAB_")}
    assert names == set(_config.SERVER_ENV)
    monkeypatch.setattr(_config, "_WARNED", set())
    for name in names:
        monkeypatch.setenv(name, "x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lab.config.get("centres")


@pytest.mark.parametrize(("uid", "root"), [(0, True), (1000, False)])
def test_defaults_of_root_stay_out_of_roots_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, uid: int, root: bool
) -> None:
    """A lab started as root isolates its users, who cannot enter root's home (0700)."""
    from lab._config import cache_dir
    from lab_server.deploy import default_run_dir

    for name in ("XDG_CACHE_HOME", "XDG_STATE_HOME", "EARTHLAB_CACHE_DIR", "EARTHLAB_HUB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    if root:
        assert str(cache_dir()) == "/var/cache/earthlab"
        assert str(default_run_dir()) == "/var/lib/earthlab/hub"
    else:
        assert cache_dir() == tmp_path / ".cache" / "earthlab"
        assert default_run_dir() == tmp_path.resolve() / ".local" / "state" / "earthlab" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # an explicit choice wins
    assert cache_dir() == tmp_path / "xdg" / "earthlab"
