"""The documentation site: complete navigation, a CLI reference generated from the parser, and
a strict build (``mkdocs build --strict``, what ``make docs`` runs)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
USER_GROUPS = ("scientist", "trainer", "analyst", "newcomer")


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may use mkdocs' own YAML tags; none is needed to read the nav."""


def _mkdocs_config() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)


def _nav_files(nav: list) -> list[str]:
    found: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            found += _nav_files(value)
        else:
            found.append(value)
    return found


def _hook_module(name: str = "cli_reference"):
    spec = importlib.util.spec_from_file_location(name, DOCS / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nav_pages_exist_and_cover_every_notebook_and_user_group() -> None:
    config = _mkdocs_config()
    assert config["docs_dir"] == "docs" and config["strict"] is True
    pages = _nav_files(config["nav"])
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert missing == [], "pages in mkdocs.yml's nav that do not exist"
    notebooks = sorted(
        str(p.relative_to(DOCS))
        for d in ("notebooks", "workshop")
        for p in (DOCS / d).glob("*.ipynb")
    )
    assert sorted(p for p in pages if p.endswith(".ipynb")) == notebooks
    for required in (
        *(f"users/{group}.md" for group in USER_GROUPS),
        "workshop/trainer.md",
        "api/lab.md",
        "api/datacubes.md",
        "api/recipes.md",
        "cli.md",
        "deployment.md",
        "sample-federation.md",
        "benchmarks.md",
    ):
        assert required in pages, required


def test_api_pages_document_every_public_name_of_datacubes_and_recipes() -> None:
    import datacubes
    import recipes

    assert ":::" in (DOCS / "api" / "datacubes.md").read_text()
    assert re.search(r"^::: datacubes$", (DOCS / "api" / "datacubes.md").read_text(), re.M)
    recipes_page = (DOCS / "api" / "recipes.md").read_text()
    for module in recipes.__all__:
        assert f"::: recipes.{module}" in recipes_page, module
    assert datacubes.__all__  # rendered through the package's own __all__


def test_api_page_of_lab_covers_its_public_functions() -> None:
    import lab

    page = (DOCS / "api" / "lab.md").read_text()
    documented = set(re.findall(r"^::: lab\.(?:_?\w+)\.(\w+)$", page, flags=re.MULTILINE))
    documented |= {"EarthLabError", "EarthLabWarning"} if "::: lab._errors" in page else set()
    errors = {name for name in lab.__all__ if name.endswith(("Error", "Warning"))}
    expected = set(lab.__all__) - errors
    assert sorted(expected - documented) == [], "public names of lab missing from docs/api/lab.md"


def _subcommand_paths(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[str]:
    paths = [" ".join(path)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _subcommand_paths(sub, (*path, name))
    return paths


def test_cli_reference_is_generated_from_the_parser() -> None:
    from lab._cli import build_parser

    markdown = _hook_module().cli_reference_markdown()
    paths = _subcommand_paths(build_parser(), ("earthlab",))
    assert len(paths) > 6
    for path in paths:
        assert f"`{path}`" in markdown, f"no section for {path}"
    assert "usage: earthlab search" in markdown and "--collections" in markdown
    assert (DOCS / "cli.md").read_text().count("<!-- earthlab-cli-reference -->") == 1


def test_cli_hook_refuses_a_page_without_its_marker() -> None:
    class Page:
        class file:  # noqa: N801 - mimics mkdocs' page.file
            src_uri = "cli.md"

    with pytest.raises(ValueError, match="marker"):
        _hook_module().on_page_markdown("# Command line\n", page=Page())


def test_notebook_links_point_at_site_pages_and_unknown_files_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = _hook_module("notebook_links")
    urls = {
        "cli.md": "cli/",
        "notebooks/02-building-a-datacube.ipynb": "notebooks/02-building-a-datacube/",
    }
    html = (
        '<a href="02-building-a-datacube.ipynb#save">next</a> <a href="../cli.md">cli</a> '
        '<a href="https://example.invalid/x.md">web</a> <a href="../missing.md">gone</a>'
    )
    with caplog.at_level("WARNING", logger="mkdocs.hooks.notebook_links"):
        out = hook.rewrite_links(
            html, "notebooks/01-getting-started.ipynb", "notebooks/01-getting-started/", urls
        )
    assert 'href="../02-building-a-datacube/#save"' in out
    assert 'href="../../cli/"' in out
    assert 'href="https://example.invalid/x.md"' in out
    assert 'href="../missing.md"' in out
    assert [r.getMessage() for r in caplog.records] == [
        "notebooks/01-getting-started.ipynb links to ../missing.md, which is not in the docs"
    ]


def test_docs_extra_has_exactly_what_the_site_needs() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = sorted(re.split(r"[\[<>=]", r)[0] for r in extras["docs"])
    assert names == ["mkdocs", "mkdocs-jupyter", "mkdocs-material", "mkdocstrings"]
    assert "mkdocstrings[python]" in " ".join(extras["docs"])
    assert re.search(r'-e "\.\[[^\]]*docs[^\]]*\]"', (ROOT / "Makefile").read_text()), (
        "make test must install the docs extra: the tests build the site"
    )


def test_notebook_pages_link_to_their_source_and_binder_from_the_one_repo_url() -> None:
    hook = _hook_module("notebook_links")
    repo_url = _mkdocs_config()["repo_url"]
    account, name = hook.repository(repo_url)
    assert repo_url == f"https://github.com/{account}/{name}"
    path = "docs/notebooks/01-getting-started.ipynb"
    assert hook.binder_url(repo_url, path) == (
        f"https://mybinder.org/v2/gh/{account}/{name}/HEAD?urlpath=lab/tree/{path}"
    )
    assert (
        hook.source_url(repo_url, path) == f"https://github.com/{account}/{name}/blob/HEAD/{path}"
    )
    other = hook.notebook_links_html("https://github.com/someone/fork", path)
    assert "v2/gh/someone/fork/HEAD" in other and "github.com/someone/fork/blob/HEAD" in other
    for wrong in (None, "https://gitlab.com/a/b", "https://github.com/a"):
        with pytest.raises(Exception, match="repo_url"):
            hook.repository(wrong)
    # nowhere else: the address appears in mkdocs.yml only, the pages use the binder: link
    for page in DOCS.rglob("*.md"):
        assert f"{account}/{name}" not in page.read_text(encoding="utf-8"), page
    assert "](binder:notebooks/01-getting-started.ipynb)" in (
        DOCS / "users" / "newcomer.md"
    ).read_text(encoding="utf-8")


def test_the_build_executes_the_notebooks_without_errors() -> None:
    plugins = {
        name: options
        for entry in _mkdocs_config()["plugins"]
        for name, options in (entry.items() if isinstance(entry, dict) else [(entry, {})])
    }
    options = plugins["mkdocs-jupyter"]
    assert options["execute"] is True and options["allow_errors"] is False
    assert options["kernel_name"] == "python3"
    # but not those that need the hub's services (run on the hub: test_notebooks_on_hub)
    from test_notebooks import HUB_NOTEBOOKS

    assert options["execute_ignore"] == [p.name for p in HUB_NOTEBOOKS]


_IMAGE = re.compile(r"<img[^>]+src=\"data:image/png;base64,")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_site_builds_strictly(tmp_path: Path, sample_dir: Path) -> None:
    """The whole site, notebooks executed on the session's sample (a few minutes)."""
    site = tmp_path / "site"
    before = sorted(p for p in DOCS.rglob("*") if "hooks" not in p.parts)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARTHLAB_GATEWAY_")}
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
        env=env
        | {"NO_MKDOCS_2_WARNING": "1", "EARTHLAB_CENTRES": str(sample_dir / "centres.yaml")},
    )
    log = run.stdout + run.stderr
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert run.returncode == 0, log[-4000:]
    assert warnings == []

    cli = (site / "cli" / "index.html").read_text()
    assert "usage: earthlab search" in cli and "usage: earthlab demo" in cli
    assert "earthlab-cli-reference" not in cli
    api = (site / "api" / "datacubes" / "index.html").read_text()
    assert (
        'id="datacubes.load"' in api and "Sentinel-2 scene reflectance without raster offset" in api
    )
    workshop = (site / "workshop" / "2-accessible" / "index.html").read_text()
    assert "celltag_solution" in workshop and "solutions.js" in workshop
    for group in USER_GROUPS:
        assert (site / "users" / group / "index.html").is_file()
    first = (site / "notebooks" / "01-getting-started" / "index.html").read_text()
    assert 'href="../02-building-a-datacube/"' in first and 'href="../../cli/"' in first

    # executed notebooks: figures and tables on their pages, nothing left in the docs
    assert sorted(p for p in DOCS.rglob("*") if "hooks" not in p.parts) == before
    hook = _hook_module("notebook_links")
    repo_url = _mkdocs_config()["repo_url"]
    pages = {
        notebook: (site / notebook.with_suffix("") / "index.html").read_text(encoding="utf-8")
        for notebook in (Path(p.parent.name) / p.name for p in DOCS.glob("*/*.ipynb"))
    }
    assert len(pages) == 10  # six notebooks, four workshop sessions
    from test_notebooks import HUB_NOTEBOOKS

    hub_only = {Path(p.parent.name) / p.name for p in HUB_NOTEBOOKS}
    for notebook, html in pages.items():
        path = f"docs/{notebook.as_posix()}"
        assert f'href="{hook.source_url(repo_url, path)}"' in html, notebook
        assert f'href="{hook.binder_url(repo_url, path)}"' in html, notebook
        executed = 'class="jp-OutputArea-child' in html
        assert executed is (notebook not in hub_only), f"{notebook}: executed {executed}"
        assert "Traceback" not in html, notebook
    # the lab notebooks' figures (inline PNG) and tables (pandas) are on their pages
    lab_notebooks = {Path("notebooks") / p.name for p in (DOCS / "notebooks").glob("0[1-3]*")}
    assert len(lab_notebooks) == 3
    assert lab_notebooks <= {n for n, html in pages.items() if _IMAGE.search(html)}
    assert lab_notebooks <= {n for n, html in pages.items() if 'class="dataframe' in html}
    newcomer = (site / "users" / "newcomer" / "index.html").read_text(encoding="utf-8")
    launch = hook.binder_url(repo_url, "docs/notebooks/01-getting-started.ipynb")
    assert f'href="{launch}"' in newcomer and "binder:" not in newcomer
