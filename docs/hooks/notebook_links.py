"""mkdocs hook: notebook pages that work on the site, run against the sample, with their links.

- **Relative links.** In JupyterLab a notebook links to files (``02-building-a-datacube.ipynb``,
  ``../cli.md``); on the site each of them is a page with its own URL
  (``../02-building-a-datacube/``, ``../../cli/``). mkdocs rewrites such links in Markdown pages
  but not in the HTML that mkdocs-jupyter makes of a notebook: this hook does, and logs a
  warning (an error under ``mkdocs build --strict``) for a link to a file that is not part of
  the docs.
- **Source and Binder links.** Every notebook page starts with a link to its source in the
  repository and a Binder launch of it, both built from mkdocs.yml's ``repo_url`` (the one
  place the repository's address is configured). Markdown pages may link to
  ``binder:<path in the docs>`` (``docs/users/newcomer.md`` does): the link becomes that
  notebook's Binder launch.
- **Execution.** mkdocs-jupyter executes the notebooks (``execute: true`` in mkdocs.yml) in the
  directory of their file: the hook points each notebook page at a copy in a temporary
  directory, so that what they write (``out/``) never lands in the docs, and, unless
  ``EARTHLAB_CENTRES`` is set, points them at the embedded sample federation (generated once
  into the cache directory), so that the site shows the sample's figures and tables.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.hooks.notebook_links")
_HREF = re.compile(r'href="(?P<path>[^":#?]+\.(?:ipynb|md))(?P<anchor>#[^"]*)?"')
_BINDER_LINK = re.compile(r"\(binder:(?P<path>[^)\s]+\.ipynb)\)")
BINDER = "https://mybinder.org/v2/gh"
REF = "HEAD"
"""The revision the links point at: the repository's default branch."""

_state: dict[str, Any] = {}


def repository(repo_url: str | None) -> tuple[str, str]:
    """The GitHub account and repository name of ``repo_url``.

    Parameters
    ----------
    repo_url
        mkdocs.yml's ``repo_url``: ``https://github.com/<account>/<repository>``.

    Returns
    -------
    tuple of str
        Account and repository name.

    Raises
    ------
    mkdocs.exceptions.PluginError
        If ``repo_url`` is not the address of a GitHub repository (Binder's ``gh`` provider).
    """
    parts = urlsplit(repo_url or "")
    path = [p for p in parts.path.split("/") if p]
    if parts.scheme != "https" or parts.netloc != "github.com" or len(path) != 2:
        raise PluginError(
            f"mkdocs.yml's repo_url must be https://github.com/<account>/<repository> (the "
            f"notebook pages' source and Binder links are built from it), got {repo_url!r}"
        )
    account, name = path
    return account, name.removesuffix(".git")


def source_url(repo_url: str, path: str) -> str:
    """Address of file ``path`` (relative to the repository root) in the repository."""
    account, name = repository(repo_url)
    return f"https://github.com/{account}/{name}/blob/{REF}/{path}"


def binder_url(repo_url: str, path: str) -> str:
    """Binder launch of the repository that opens notebook ``path`` in JupyterLab."""
    account, name = repository(repo_url)
    return f"{BINDER}/{account}/{name}/{REF}?urlpath=lab/tree/{path}"


def _repository_path(config: Any, src_uri: str) -> str:
    """Path of a docs file from the repository root (where mkdocs.yml is)."""
    root = Path(config["config_file_path"]).resolve().parent
    docs = Path(config["docs_dir"]).resolve()
    return posixpath.join(docs.relative_to(root).as_posix(), src_uri)


def notebook_links_html(repo_url: str, path: str) -> str:
    """The links put at the top of a notebook page (``path`` from the repository root)."""
    return (
        '<p class="notebook-links">'
        f'<a class="notebook-source" href="{source_url(repo_url, path)}">'
        f"Source: <code>{path}</code></a> · "
        f'<a class="notebook-binder" href="{binder_url(repo_url, path)}">Launch on Binder</a>'
        "</p>\n"
    )


def rewrite_links(html: str, page_src: str, page_url: str, urls: dict[str, str]) -> str:
    """Point the relative ``.ipynb``/``.md`` links of a notebook page at their site URLs.

    Parameters
    ----------
    html
        The page's HTML.
    page_src
        The notebook's path in the docs directory (``notebooks/01-getting-started.ipynb``).
    page_url
        The page's URL (``notebooks/01-getting-started/``).
    urls
        Site URL of every documentation file, by path in the docs directory.

    Returns
    -------
    str
        The HTML with the links rewritten; links to unknown files are left as they are and
        logged as warnings.
    """
    base = posixpath.dirname(page_src)

    def fix(match: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join(base, match["path"]))
        url = urls.get(target)
        if url is None:
            log.warning("%s links to %s, which is not in the docs", page_src, match["path"])
            return match.group(0)
        return f'href="{get_relative_url(url, page_url)}{match["anchor"] or ""}"'

    return _HREF.sub(fix, html)


def on_config(config: Any, **kwargs: Any) -> Any:
    """Check ``repo_url``; point the notebooks at the sample federation unless told otherwise."""
    repository(config["repo_url"])
    if not os.environ.get("EARTHLAB_CENTRES"):
        from lab.sample import ensure_default_sample

        os.environ["EARTHLAB_CENTRES"] = str(ensure_default_sample())
        _state["set_centres"] = True
    return config


@event_priority(-100)  # after mkdocs-jupyter has wrapped the notebooks
def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Execute each notebook from a copy in a temporary directory (its ``out/`` lands there)."""
    scratch = Path(tempfile.mkdtemp(prefix="earthlab-docs-"))
    _state["scratch"] = scratch
    for file in files:
        if not file.src_uri.endswith(".ipynb") or file.abs_src_path is None:
            continue
        source = Path(file.abs_src_path)
        # one directory per notebook, under its own folder's name (the plugin's include
        # patterns, e.g. notebooks/*.ipynb, match the copy's path too)
        copy = scratch / source.stem / source.parent.name / source.name
        copy.parent.mkdir(parents=True)
        shutil.copy2(source, copy)
        file.abs_src_path = str(copy)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, **kwargs: Any) -> str:
    """Turn ``(binder:<notebook in the docs>)`` links into Binder launches."""

    def launch(match: re.Match[str]) -> str:
        return f"({binder_url(config['repo_url'], _repository_path(config, match['path']))})"

    return _BINDER_LINK.sub(launch, markdown)


def on_page_content(html: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Rewrite and check the links of notebook pages; add their source and Binder links."""
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    urls = {f.src_uri: f.url for f in files}
    path = _repository_path(config, page.file.src_uri)
    links = notebook_links_html(config["repo_url"], path)
    return links + rewrite_links(html, page.file.src_uri, page.url, urls)


def on_post_build(config: Any, **kwargs: Any) -> None:
    """Remove the executed copies; restore the environment."""
    _cleanup()


def on_build_error(error: Exception, **kwargs: Any) -> None:
    """Same cleanup when the build fails."""
    _cleanup()


def _cleanup() -> None:
    scratch = _state.pop("scratch", None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if _state.pop("set_centres", False):
        os.environ.pop("EARTHLAB_CENTRES", None)
