"""The lab in a real browser: log in, run the notebooks in JupyterLab, open a cluster's dashboard.

A headless Chromium (Debian's ``chromium`` and ``chromium-driver``, see tests/browser_fixtures.py)
does what a user does, on the local lab started for the module with what ``earthlab hub up``
starts (on free loopback ports, stopped in a ``finally`` block):

- log in on the hub's form, land in JupyterLab, find the lab's notebooks that the hub copied
  into the home (``~/earthlab-notebooks/``), open the getting-started notebook, Run All Cells:
  every cell runs, none fails, the footprint map is drawn;
- in the scaling-out notebook, start a cluster on the nearest gateway and open the dashboard
  link it prints: the owner sees Dask's live status page, another logged-in user is refused.

A failing test keeps a screenshot and the page of each browser in
``out/test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hub_fixtures import Hub, running_lab

if TYPE_CHECKING:  # loaded by pytest_plugins (its asserts rewritten): the fixture and hook
    from browser_fixtures import Browser, Cell

pytest_plugins = ["browser_fixtures"]
pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Where the hub copies the lab's notebooks at a server's start (earthlab_hub.NOTEBOOKS_FOLDER,
# with docs/notebooks as notebooks/).
NOTEBOOKS = "earthlab-notebooks/notebooks"
GETTING_STARTED = f"{NOTEBOOKS}/01-getting-started.ipynb"
SCALING_OUT = f"{NOTEBOOKS}/04-scaling-out.ipynb"
OWNER, OTHER = "ann", "bob"
DOCS_NOTEBOOKS = Path(__file__).resolve().parent.parent / "docs" / "notebooks"  # the originals

OpenBrowser = Callable[[str, str], "Browser"]


@pytest.fixture(scope="module")
def deployment(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with running_lab(sample_dir / "centres.yaml", tmp_path_factory.mktemp("hub")) as d:
        yield d


@pytest.fixture(scope="module")
def hub(deployment) -> Hub:
    hub = Hub(deployment)
    for user in (OWNER, OTHER):
        hub.create_user(user)
    return hub


@pytest.fixture(scope="module")
def password(hub) -> Callable[[str], str]:
    """What each user types on the login form: the password of their own account."""
    passwords = {user: hub.account(user) for user in (OWNER, OTHER)}
    return passwords.__getitem__


def in_lab(
    open_browser: OpenBrowser, deployment, user: str, password: Callable[[str], str]
) -> Browser:
    """A browser of ``user``, logged in on the hub's form, in JupyterLab (server started)."""
    browser = open_browser(user, deployment.url)
    browser.login(user, password(user))
    browser.wait_for_lab()
    return browser


def failures(cells: list[Cell]) -> dict[int, list[str]]:
    """Tracebacks by cell index."""
    return {c.index: c.tracebacks for c in cells if c.tracebacks}


def test_login_form_refuses_a_wrong_password(open_browser, deployment, hub, password):
    browser = open_browser(OTHER, deployment.url)
    with pytest.raises(AssertionError, match=r"refused 'bob' at login: \['Invalid username"):
        browser.login(OTHER, password(OTHER) + "-wrong")
    # nor does another user's password open an account (no shared password any more)
    with pytest.raises(AssertionError, match=r"refused 'bob' at login: \['Invalid username"):
        browser.login(OTHER, password(OWNER))
    # and a name without an account is refused whatever the password
    with pytest.raises(AssertionError, match=r"refused 'mallory' at login"):
        browser.login("mallory", password(OWNER))
    assert browser.path() == "/hub/login"
    assert browser.user is None


def test_getting_started_notebook_runs_in_jupyterlab(open_browser, deployment, hub, password):
    browser = in_lab(open_browser, deployment, OWNER, password)
    browser.open_notebook(GETTING_STARTED)
    # the hub put the notebooks in the home: the file browser shows them next to this one
    assert {f"0{n}-" for n in range(1, 5)} <= {name[:3] for name in browser.listed_files()}
    assert "01-getting-started.ipynb" in browser.listed_files()

    cells = browser.run_cells_and_wait("Run", "Run All Cells", timeout=300)

    assert failures(cells) == {}
    code = [c for c in cells if c.code and c.source.strip()]
    counts = [int(c.prompt.strip("[]:")) for c in code if c.ran]
    shipped = json.loads((DOCS_NOTEBOOKS / "01-getting-started.ipynb").read_text())["cells"]
    expected = [c for c in shipped if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert len(counts) == len(code) == len(expected), [c.prompt for c in code]
    assert counts == list(range(counts[0], counts[0] + len(code)))  # in order, each once
    (footprints,) = [c for c in code if "footprint.exterior" in c.source]
    assert len(footprints.images) == 1
    assert footprints.images[0].startswith("data:image/png;base64,")
    assert "search box" not in footprints.text  # the legend is drawn in the image, not printed


def test_cluster_dashboard_opens_for_its_owner_only(open_browser, deployment, hub, password):
    owner = in_lab(open_browser, deployment, OWNER, password)
    owner.open_notebook(SCALING_OUT)
    (start,) = [c.index for c in owner.cells() if c.code and "client = lab.cluster(" in c.source]
    # every cell up to the one starting the cluster: Run All Above the next one
    owner.select_cell(start + 1)
    cells = owner.run_cells_and_wait(
        "Run", "Run All Above Selected Cell", wanted=slice(0, start + 1), timeout=300
    )
    assert failures(cells) == {}
    output = cells[start].text
    assert "centre: theia" in output  # Sentinel-2 data is at theia: its gateway
    found = re.search(r"dashboard: (\S+)", output)
    assert found, output
    link = found.group(1)
    assert re.fullmatch(
        re.escape(deployment.url) + r"services/dask-gateway-theia/clusters/[0-9a-f]+/status", link
    ), link

    # the owner: Dask's status page, its live plots filled over the WebSocket
    status, url = owner.open_page(link)
    if status == 404:  # the gateway routes a new cluster's dashboard shortly after its start
        status, url = owner.wait(
            "the dashboard routed", lambda: (r := owner.open_page(link))[0] != 404 and r, 60
        )
    assert (status, url) == (200, link)
    assert "Dask" in owner.driver.title
    owner.wait("the dashboard's live plots", owner.bokeh_roots, 60)

    # another user, logged in on the hub (no server started): refused, no dashboard
    other = open_browser(OTHER, deployment.url)
    other.login(OTHER, password(OTHER), next_path="/hub/home")
    status, url = other.open_page(link)
    assert status in (401, 403), (status, url, other.body_text()[:500])
    assert "Dask" not in other.driver.title
    assert other.bokeh_roots() == 0

    # the rest of the notebook on the cluster (same kernel, page reloaded), which its last
    # cells list and stop
    owner.open_notebook(SCALING_OUT)
    owner.select_cell(start + 1)
    cells = owner.run_cells_and_wait(
        "Run", "Run Selected Cell and All Below", wanted=slice(start + 1, None), timeout=300
    )
    assert failures(cells) == {}
    cluster = link.split("/clusters/")[1].split("/")[0]
    (listing,) = [c for c in cells if c.code and "lab.list_clusters()" in c.source]
    assert f"{cluster} gateway theia" in listing.text
    (stopping,) = [c for c in cells if c.code and "lab.stop_clusters()" in c.source]
    assert "stopped:" in stopping.text and cluster in stopping.text
    assert hub.gateway_clusters(OWNER, "theia") == {}
