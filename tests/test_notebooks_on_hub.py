"""Every shipped notebook and ``earthlab demo`` run on the hub, as an ordinary user.

The local lab is started once for the module on the sample federation (what ``earthlab hub
up`` starts: the centres' STAC APIs over HTTP, one gateway per centre, the restricted-data
service of DINAMIS). An ordinary user (not an admin, in no group: DINAMIS is closed to them)
gets a server; its environment is the one the hub gives every user (the lab's centres file,
the gateways). Each notebook of ``docs/notebooks`` and ``docs/workshop`` is uploaded through the
Jupyter contents API and its code cells run in order, as "Run All" does, in a kernel of the
kernelspec it declares, through the kernel's WebSocket. The first-login tests check what the
user finds in their home and on the login page; the last test restarts the server: keep the
order.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import requests
from hub_fixtures import Hub, Kernel, running_lab
from test_notebooks import NOTEBOOKS, ROOT, _ids

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER = "nora"
"""An ordinary user: not an admin, in no hub group."""
FOLDER = "earthlab-notebooks"
CELL_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def deployment(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with running_lab(sample_dir / "centres.yaml", tmp_path_factory.mktemp("hub")) as d:
        yield d


@pytest.fixture(scope="module")
def hub(deployment) -> Hub:
    return Hub(deployment)


@pytest.fixture(scope="module")
def server(hub: Hub) -> dict[str, str]:
    """The ordinary user's server, started once (its URL and a token to use it)."""
    hub.create_user(USER)
    model = hub.request("GET", f"/users/{USER}").json()
    assert model["admin"] is False and model["groups"] == []
    url = hub.start_server(USER)
    return {"url": url, "token": hub.token(USER, [f"access:servers!user={USER}"])}


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT / "docs"))


def test_login_page_says_what_the_lab_is(deployment) -> None:
    response = requests.get(deployment.url + "hub/login", timeout=30)
    assert response.status_code == 200
    page = response.text
    assert "Earth Analytics Lab" in page
    assert "Data Terra" in page
    for title in ("THEIA", "ODATIS", "DINAMIS"):
        assert title in page
    assert f"{FOLDER}/WELCOME.md" in page


def _home(deployment) -> Path:
    return Path(deployment.run_dir) / "users" / USER


def test_jupyterlab_has_the_dask_panel_the_server_proxy_and_widgets(server) -> None:
    """The user's JupyterLab loads Dask's cluster panel, jupyter-server-proxy and ipywidgets."""
    headers = {"Authorization": f"token {server['token']}"}
    answer = requests.get(server["url"] + "lab/api/extensions", headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    loaded = {e["name"]: e for e in answer.json()}
    for name in (
        "dask-labextension",
        "jupyterhub-jupyter-server-proxy",
        "jupyter-widgets-jupyterlab-manager",
    ):
        assert name in loaded, sorted(loaded)
        assert loaded[name]["enabled"] is True
    # the server side of the Dask panel answers (it lists the clusters it knows: none yet)
    clusters = requests.get(server["url"] + "dask/clusters", headers=headers, timeout=60)
    assert clusters.status_code == 200
    assert clusters.json() == []


def test_first_start_puts_the_notebooks_and_a_welcome_page_in_the_home(
    hub, server, deployment
) -> None:
    listing = hub.contents(server["url"], server["token"], FOLDER)
    assert listing.status_code == 200, listing.text
    names = {entry["name"] for entry in listing.json()["content"]}
    assert names == {"WELCOME.md", "notebooks", "workshop"}
    folder = _home(deployment) / FOLDER
    welcome = (folder / "WELCOME.md").read_text(encoding="utf-8")
    assert welcome.startswith("# Welcome to the Earth Analytics Lab")
    for path in NOTEBOOKS:
        copied = hub.contents(server["url"], server["token"], f"{FOLDER}/{_relative(path)}")
        assert copied.status_code == 200, f"{_relative(path)} not in the home"
        assert (folder / _relative(path)).read_bytes() == path.read_bytes()
    # JupyterLab opens the welcome page first.
    landing = requests.get(
        server["url"],
        headers={"Authorization": f"token {server['token']}"},
        allow_redirects=False,
        timeout=30,
    )
    assert landing.status_code in (301, 302), landing.text
    location = landing.headers["Location"].split("?")[0]
    assert location.endswith(f"/lab/tree/{FOLDER}/WELCOME.md"), location


RESULTS = {
    # What a notebook finds on the hub, beyond running without error (an empty search result
    # or a local cluster would pass silently).
    "notebooks/01-getting-started.ipynb": """
assert len(scenes) > 0 and len(stations) > 0, (len(scenes), len(stations))
assert len(list(clear)) > 0, "the cloud-cover filter found no scene"
assert all(item.properties["eo:cloud_cover"] <= 10 for item in clear)
""",
    "notebooks/03-water-quality-crossing.ipynb": """
assert len(table.data) > 0 and len(kept) > 0, (len(table.data), len(kept))
assert maja_scenes[0].assets["CLM_R2"].href.startswith("http"), maja_scenes[0].assets
for p in ("turbidity", "chlorophyll_a"):
    assert abs(maja_scores[p]["log_bias"] - scores[p]["log_bias"]) < 0.01, (p, maja_scores, scores)
""",
    "notebooks/06-ocean-colour-and-in-situ.ipynb": """
assert product.sizes["time"] == 92 and collection.assets["references"].href.startswith("http")
assert len(kept) > 0 and stats["tur"]["r"] > 0.99, (len(kept), stats)
assert result.validation["intercomparison"]["chl"]["n"] > 1000
""",
    "notebooks/04-scaling-out.ipynb": """
assert client.earthlab_centre == "theia", client.earthlab_centre
assert lab.list_clusters() == []
""",
    "workshop/1-findable.ipynb": """
assert len(list(spring)) > 0, "exercise 1's cloud-cover filter found no scene"
assert all(item.properties["eo:cloud_cover"] < 20 for item in spring)
""",
    "workshop/2-accessible.ipynb": """
assert not site.exists()
""",
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_the_users_server(hub, server, path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    target = f"hub-run/{_relative(path)}"
    hub.upload(
        server["url"],
        server["token"],
        target,
        {"type": "notebook", "format": "json", "content": notebook},
    )
    declared = notebook["metadata"]["kernelspec"]["name"]
    kernel = Kernel(server["url"], server["token"], name=declared, path=target)
    try:
        assert kernel.name == declared == "earth-analytics"
        errors = kernel.run_notebook(notebook, timeout=CELL_TIMEOUT)
        assert errors == [], f"{_relative(path)} fails on the hub:\n" + "\n".join(map(str, errors))
        check = kernel.execute(RESULTS.get(_relative(path), "pass"), timeout=120)
    finally:
        kernel.close()
    assert check.error is None, f"{_relative(path)} ran on the hub but: {check.error}"


DEMO_CELL = """
import json, os, subprocess, sys
from pathlib import Path

command = [str(Path(sys.executable).parent / "earthlab"), "demo",
           "--centres", os.environ["EARTHLAB_CENTRES"], "--out", "demo-out"]
done = subprocess.run(command, capture_output=True, text=True)
print(json.dumps({
    "centres": os.environ["EARTHLAB_CENTRES"],
    "returncode": done.returncode,
    "stderr": done.stderr[-3000:],
    "report": Path("demo-out/report.html").is_file(),
    "synthetic": 'id="synthetic-data"' in Path("demo-out/report.html").read_text()
    if Path("demo-out/report.html").is_file() else None,
    "files": sorted(p.name for p in Path("demo-out").iterdir()) if Path("demo-out").is_dir() else [],
}))
"""


@pytest.mark.timeout(900)
def test_demo_runs_in_the_users_server(hub, server, deployment) -> None:
    kernel = Kernel(server["url"], server["token"])
    try:
        output = kernel.execute(DEMO_CELL, timeout=600)
    finally:
        kernel.close()
    assert output.error is None, output.error
    (record,) = output.json_lines()
    assert record["centres"] == deployment.centres_file
    assert record["returncode"] == 0, record["stderr"]
    assert record["report"] is True, record["files"]
    # the lab serves the sample federation: the report must say its data are synthetic
    assert record["synthetic"] is True


def test_a_restart_keeps_the_users_edits_and_restores_what_is_missing(
    hub, server, deployment
) -> None:
    edited_path = f"{FOLDER}/notebooks/01-getting-started.ipynb"
    removed_path = f"{FOLDER}/workshop/1-findable.ipynb"
    model = hub.contents(server["url"], server["token"], edited_path).json()
    notebook = copy.deepcopy(model["content"])
    notebook["cells"].insert(
        0, {"cell_type": "markdown", "id": "nora-notes", "metadata": {}, "source": "My notes"}
    )
    hub.upload(
        server["url"],
        server["token"],
        edited_path,
        {"type": "notebook", "format": "json", "content": notebook},
    )
    deleted = requests.delete(
        server["url"].rstrip("/") + f"/api/contents/{removed_path}",
        headers={"Authorization": f"token {server['token']}"},
        timeout=30,
    )
    assert deleted.status_code == 204, deleted.text

    hub.stop_server(USER)
    url = hub.start_server(USER)
    assert url == server["url"]

    kept = hub.contents(url, server["token"], edited_path).json()["content"]
    assert kept["cells"][0]["source"] == "My notes"
    restored = hub.contents(url, server["token"], removed_path)
    assert restored.status_code == 200, "a missing notebook comes back at the next start"
    shipped = ROOT / "docs" / "workshop" / "1-findable.ipynb"
    assert (_home(deployment) / removed_path).read_bytes() == shipped.read_bytes()
