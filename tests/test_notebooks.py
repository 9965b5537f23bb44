"""The lab's notebooks: one skeleton, cleared outputs, and each one runs in CI within 90 s.

Every notebook declares the Earth Analytics kernel (``earth-analytics``), as users get it on
the hub. They are executed with nbclient on that kernel, installed for the session into a
temporary prefix on ``JUPYTER_PATH`` (what ``earthlab kernels install --prefix`` does, naming
this environment's interpreter), against the sample federation of the ``sample_dir`` fixture
(``EARTHLAB_CENTRES`` points the notebooks' ``lab.catalog()`` default at it, so the sample is
generated once per session), in a temporary working directory (their ``out/`` files land
there). tests/test_notebooks_on_hub.py runs the same notebooks inside a user's server on the
hub.
"""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import nbformat
import pytest
from ast_parsing import parse

ROOT = Path(__file__).resolve().parent.parent
LAB_NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
WORKSHOP_NOTEBOOKS = sorted((ROOT / "docs" / "workshop").glob("*.ipynb"))
NOTEBOOKS = LAB_NOTEBOOKS + WORKSHOP_NOTEBOOKS


def _needs_hub(path: Path) -> bool:
    """A notebook using the hub's services (metadata ``earthlab.needs: [hub]``)."""
    return "hub" in nbformat.read(path, as_version=4).metadata.get("earthlab", {}).get("needs", [])


HUB_NOTEBOOKS = [p for p in NOTEBOOKS if _needs_hub(p)]
"""Run in a user's server on the hub only (tests/test_notebooks_on_hub.py runs every notebook)."""
LOCAL_NOTEBOOKS = [p for p in NOTEBOOKS if p not in HUB_NOTEBOOKS]
BUDGET_SECONDS = 90.0
KERNEL = "earth-analytics"
KERNELSPEC = {"name": KERNEL, "display_name": "Earth Analytics", "language": "python"}
SKELETON = ("## Overview", "## Prerequisites", "**Time to learn**", "## Data used", "## Imports")
CLOSING = ("## Summary", "## What next")


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT / "docs")) for p in paths]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_the_expected_notebooks_exist() -> None:
    assert [p.name for p in LAB_NOTEBOOKS] == [
        "01-getting-started.ipynb",
        "02-building-a-datacube.ipynb",
        "03-water-quality-crossing.ipynb",
        "04-scaling-out.ipynb",
        "05-processing-on-demand.ipynb",
        "06-ocean-colour-and-in-situ.ipynb",
    ]
    # the processing service is one of the hub's: that notebook runs on the hub, where
    # test_notebooks_on_hub runs every notebook; the docs build shows it without running it
    assert [p.name for p in HUB_NOTEBOOKS] == ["05-processing-on-demand.ipynb"]

    assert [p.name for p in WORKSHOP_NOTEBOOKS] == [
        "1-findable.ipynb",
        "2-accessible.ipynb",
        "3-interoperable.ipynb",
        "4-reusable.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_outputs_are_stripped(path: Path) -> None:
    notebook = _read(path)
    dirty = [
        f"cell {i}: {'outputs' if cell.get('outputs') else 'execution_count'}"
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert dirty == [], f"{path.name} has committed outputs: clear them before committing"
    nbformat.validate(notebook)
    assert dict(notebook.metadata["kernelspec"]) == KERNELSPEC, (
        f"{path.name} must declare the Earth Analytics kernel, the one users have on the hub"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_one_skeleton(path: Path) -> None:
    """Title, overview, prerequisites with time to learn, data used, imports first, sections,
    summary, what next (Project Pythia / DEA habit)."""
    cells = _read(path).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), "title first"
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    positions = [markdown.find(marker) for marker in (*SKELETON, *CLOSING)]
    assert -1 not in positions, f"missing skeleton parts: {[*SKELETON, *CLOSING]}"
    assert positions == sorted(positions), "skeleton parts out of order"
    assert re.search(r"\*\*Time to learn\*\*: \d+ minutes", markdown)
    sections = re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)
    body = [s for s in sections if s not in {"Overview", "Prerequisites", "Data used", "Imports"}]
    assert len(body) >= 4, f"expected content sections between imports and summary: {sections}"

    code = [c for c in cells if c.cell_type == "code"]
    first = cells.index(code[0])
    assert cells[first - 1].source.strip() == "## Imports", "the first code cell is the imports"
    for cell in code[1:]:
        imports = [
            node
            for node in parse(cell.source).body
            if isinstance(node, ast.Import | ast.ImportFrom)
        ]
        assert imports == [], f"imports outside the imports cell: {cell.source[:80]!r}"


@pytest.mark.parametrize("path", WORKSHOP_NOTEBOOKS, ids=_ids(WORKSHOP_NOTEBOOKS))
def test_workshop_exercises_have_hidden_solutions(path: Path) -> None:
    cells = _read(path).cells
    tags = [set(c.metadata.get("tags", [])) for c in cells]
    exercises = [i for i, t in enumerate(tags) if "exercise" in t]
    solutions = [i for i, t in enumerate(tags) if "solution" in t]
    assert len(solutions) >= 3, "each workshop notebook has at least three exercises"
    for i in solutions:
        cell = cells[i]
        assert cell.cell_type == "code"
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, (
            f"solution cell {i} must be collapsed in JupyterLab (metadata.jupyter.source_hidden)"
        )
        assert i - 1 in exercises, f"solution cell {i} must follow an exercise cell"
        assert cell.source.strip(), "an empty solution"
    headings = [i for i in exercises if cells[i].source.startswith("### Exercise")]
    assert len(headings) == len(solutions), "one '### Exercise' statement per solution"


@pytest.fixture(scope="session")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data directory holding the Earth Analytics kernelspec of this environment."""
    from lab_server.deploy._kernels import install_kernel

    prefix = tmp_path_factory.mktemp("kernels")
    install_kernel(KERNEL, prefix=str(prefix), quiet=True)
    return prefix / "share" / "jupyter"


@pytest.fixture()
def notebook_env(sample_dir: Path, kernel_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel inherits this environment: the session's sample federation, no gateway."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.setenv("EARTHLAB_CENTRES", str(sample_dir / "centres.yaml"))
    monkeypatch.delenv("EARTHLAB_GATEWAY_THEIA", raising=False)
    monkeypatch.delenv("EARTHLAB_GATEWAY_ODATIS", raising=False)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", LOCAL_NOTEBOOKS, ids=_ids(LOCAL_NOTEBOOKS))
def test_notebook_runs_within_budget(path: Path, notebook_env: None, tmp_path: Path) -> None:
    from nbclient import NotebookClient

    notebook = _read(path)
    client = NotebookClient(
        notebook,
        timeout=BUDGET_SECONDS,  # per cell; the whole notebook is checked below
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - started
    print(f"{path.name}: {elapsed:.1f} s")
    assert elapsed < BUDGET_SECONDS, f"{path.name} took {elapsed:.0f} s (budget {BUDGET_SECONDS} s)"
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []


def _probe(url: str, path: str) -> int:
    """Status of a GET of ``path`` sent as is (no client-side normalisation of ``..``)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_accessible_file_server_serves_only_its_copies_and_stops(
    notebook_env: None, sample_dir: Path, tmp_path: Path
) -> None:
    """The Accessible workshop's web server serves a temporary copy of what it reads, refuses
    anything outside it (the centres file next to the sample, ``..``), and is stopped (its site
    removed) by the clean-up cell; ``atexit`` would do the same had a cell failed."""
    import socket

    from nbclient import NotebookClient

    path = ROOT / "docs" / "workshop" / "2-accessible.ipynb"
    notebook = _read(path)
    client = NotebookClient(
        notebook,
        timeout=BUDGET_SECONDS,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    started = next(i for i in code if "serve_forever" in notebook.cells[i].source)
    with client.setup_kernel():
        for index in code:
            client.execute_cell(notebook.cells[index], index)
            if index == started:
                probe = nbformat.v4.new_code_cell("print(base_url, site)")
                client.execute_cell(probe, index)
                base_url, site = probe.outputs[0]["text"].split()
                assert Path(site).parent != sample_dir and not Path(site).is_relative_to(sample_dir)
                assert _probe(base_url, "/odatis/catalog.json") == 200
                assert _probe(base_url, "/theia/catalog.json") == 200
                for outside in (
                    "/centres.yaml",
                    "/dinamis/catalog.json",
                    "/../secrets/admin-token",
                    "/../../secrets/admin-token",
                    "/%2e%2e/secrets/admin-token",
                    "/truth/",
                ):
                    assert _probe(base_url, outside) in (403, 404), outside
                served = {p.relative_to(site).parts[0] for p in Path(site).iterdir()}
                assert served == {"theia", "odatis"}
                tifs = sorted(p.name for p in Path(site).rglob("*.tif"))
                assert tifs == ["red.tif"], "one scene's red band, not the whole archive"
        errors = [
            output
            for cell in notebook.cells
            for output in cell.get("outputs", [])
            if output.get("output_type") == "error"
        ]
        assert errors == []
        # The clean-up cell ran: nothing listens any more and the copies are gone.
        host, port = base_url.removeprefix("http://").split(":")
        with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port))):
            pass
        assert not Path(site).exists()
