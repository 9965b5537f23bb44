"""Promises the test suite keeps about itself.

A skip is for something the project does not declare (another platform, an optional tool that
no extra installs). A declared dependency that is missing is a broken install and must fail the
run, and a skip that waits for a feature ("not there yet") hides a test that never runs. The
scan reads every file under tests/ (AST) for ``importorskip``, ``skip``, ``skipif`` and
``xfail`` calls (``pytest.…``, ``pytest.mark.…`` or imported bare).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import socket
import tomllib
from pathlib import Path

import pytest
from ast_parsing import parse
from conftest import NetworkBlockedError

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
SKIPS = {"importorskip", "skip", "skipif", "xfail"}
NOT_YET = re.compile(r"\bnot\s+(there\s+)?yet\b", re.IGNORECASE)
_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)")
# declared names that a skip reason may use as plain words ("the lab is down")
ORDINARY_WORDS = {"lab", "recipes", "material", "py"}
_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_names() -> set[str]:
    """Normalised names of what pyproject.toml declares, and the modules they install.

    The distributions of ``dependencies`` and the ``hub``, ``test`` and ``docs`` extras, the
    top-level modules those distributions provide, and the project's own packages.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in ("hub", "test", "docs"):
        requirements += project["optional-dependencies"][extra]
    distributions = set()
    for requirement in requirements:
        match = _NAME.match(requirement)
        assert match, requirement
        distributions.add(_normalise(match.group(1)))
    modules = {
        _normalise(module)
        for module, providers in importlib.metadata.packages_distributions().items()
        if {_normalise(p) for p in providers} & distributions
    }
    own = {_normalise(p) for p in ("lab", "datacubes", "recipes", "lab_server")}
    # executables installed by declared distributions (shutil.which("repo2docker"), ...)
    scripts = set()
    for name in distributions:
        try:
            entry_points = importlib.metadata.distribution(name).entry_points
        except importlib.metadata.PackageNotFoundError:
            continue
        scripts |= {_normalise(e.name) for e in entry_points if e.group == "console_scripts"}
    return distributions | modules | own | scripts


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def skip_problems(source: str, filename: str, declared: set[str]) -> list[str]:
    """What is wrong with the skips of one test file."""
    problems = []
    tree = parse(source, filename=filename)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _call_name(node) not in SKIPS:
            continue
        where = f"{filename}:{node.lineno} {_call_name(node)}"
        texts = _strings(node)
        if _call_name(node) == "skip":  # `if <condition>: pytest.skip(...)` is a skipif
            ancestor = parents.get(node)
            while ancestor is not None:
                if isinstance(ancestor, ast.If):
                    texts += _strings(ancestor.test)
                ancestor = parents.get(ancestor)
        for text in texts:
            if NOT_YET.search(text):
                problems.append(f"{where} waits for something not there yet: {text!r}")
        if _call_name(node) == "importorskip" and node.args and texts:
            module = texts[0].split(".")[0]
            if _normalise(module) in declared:
                problems.append(f"{where} skips on {texts[0]!r}, which pyproject.toml declares")
            continue
        if _call_name(node) == "xfail":
            continue  # an expected failure may name a dependency (a known bug in it)
        # a string that is a bare name (find_spec("x"), shutil.which("x")) is checked whole;
        # words of a sentence (a reason) leave out names that are also ordinary words
        names = {t for t in texts if _WORD.fullmatch(t)}
        words = {w for t in texts if t not in names for w in _WORD.findall(t)}
        named = sorted(
            {_normalise(n.split(".")[0]) for n in names} & declared
            | {_normalise(w.split(".")[0]) for w in words} & (declared - ORDINARY_WORDS)
        )
        if named:
            problems.append(f"{where} skips on {named}, which pyproject.toml declares")
    return problems


def test_no_skip_hides_a_declared_dependency_or_waits_for_a_feature() -> None:
    declared = declared_names()
    problems = []
    for path in sorted(TESTS.rglob("*.py")):
        if "data" in path.relative_to(TESTS).parts:
            continue
        problems += skip_problems(path.read_text(), str(path.relative_to(ROOT)), declared)
    assert problems == [], "\n".join(problems)


def test_the_scan_catches_each_kind_of_hidden_skip() -> None:
    declared = declared_names()
    assert {"moto", "jupyter-repo2docker", "repo2docker", "distributed", "lab", "yaml"} <= declared
    source = """
import shutil
import pytest
from pytest import importorskip

pytestmark = pytest.mark.skipif(shutil.which("repo2docker") is None, reason="no binder")

@pytest.mark.skip(reason="the generator is not yet written")
def test_a():
    moto = pytest.importorskip("moto.server")
    importorskip("distributed")
    pytest.importorskip("lab.sample", reason="later")
    if importlib.util.find_spec("lab") is None:
        pytest.skip("no SDK")

@pytest.mark.xfail(reason="the sample is not there yet")
def test_b():
    if True:
        pytest.skip("needs jupyter-repo2docker")
"""
    problems = skip_problems(source, "t.py", declared)
    lines = sorted(int(p.split(":")[1].split()[0]) for p in problems)
    assert lines == [6, 8, 10, 11, 12, 14, 16, 19], "\n".join(problems)


def test_the_scan_leaves_legitimate_skips_alone() -> None:
    source = """
import sys
import pytest

@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a():
    pytest.importorskip("some_optional_tool_no_extra_installs")
    pytest.skip("needs a GPU in the lab, see recipes/README.py")

@pytest.mark.xfail(reason="numpy 2.5 changes the rounding")
def test_b():
    pass
"""
    assert skip_problems(source, "t.py", declared_names()) == []


# --- the network guard of tests/conftest.py --------------------------------------------------

TEST_NET = ("192.0.2.1", 9)  # RFC 5737 documentation address: the guard refuses before sending


def test_the_network_guard_is_on_for_the_session() -> None:
    assert socket.socket.connect.__name__ == "guarded_connect"
    assert socket.socket.connect_ex.__name__ == "guarded_connect_ex"
    assert socket.create_connection.__name__ == "guarded_create_connection"


def test_a_connection_outside_loopback_is_refused_and_names_the_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(NetworkBlockedError, match=r"192\.0\.2\.1:9 .*only reach loopback"):
            sock.connect(TEST_NET)
        with pytest.raises(NetworkBlockedError, match=r"192\.0\.2\.1:9"):
            sock.connect_ex(TEST_NET)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with udp, pytest.raises(NetworkBlockedError):
        udp.connect(TEST_NET)  # even a UDP "connection", which sends nothing yet
    with pytest.raises(NetworkBlockedError, match=r"192\.0\.2\.1:9"):
        socket.create_connection(TEST_NET, timeout=1)
    with pytest.raises(NetworkBlockedError, match=r"2001:db8::1:9"):
        socket.create_connection(("2001:db8::1", 9), timeout=1)
    with pytest.raises(NetworkBlockedError, match=r"::ffff:192\.0\.2\.1"):
        socket.create_connection(("::ffff:192.0.2.1", 9), timeout=1)
    # code under test sees a refused connection, as it would offline
    assert issubclass(NetworkBlockedError, ConnectionRefusedError)


def test_a_name_that_resolves_outside_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "centre.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    expected = r"centre\.example\.test:9 \(192\.0\.2\.1\)"
    with socket.socket() as sock, pytest.raises(NetworkBlockedError, match=expected):
        sock.connect(("centre.example.test", 9))


def test_loopback_and_unix_sockets_connect(tmp_path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
        with socket.create_connection(("localhost", port), timeout=10):
            pass
        with socket.socket() as client:
            assert client.connect_ex(("127.0.0.1", port)) == 0
    with socket.socket(socket.AF_UNIX) as server:
        path = str(tmp_path / "s")
        server.bind(path)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
