"""mkdocs hook: make the notebooks' relative links work on the site, and check them.

In JupyterLab a notebook links to files (``02-building-a-datacube.ipynb``, ``../cli.md``);
on the site each of them is a page with its own URL (``../02-building-a-datacube/``,
``../../cli/``). mkdocs rewrites such links in Markdown pages but not in the HTML that
mkdocs-jupyter makes of a notebook: this hook does, and logs a warning (an error under
``mkdocs build --strict``) for a link to a file that is not part of the docs.
"""

from __future__ import annotations

import logging
import posixpath
import re
from typing import Any

from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.hooks.notebook_links")
_HREF = re.compile(r'href="(?P<path>[^":#?]+\.(?:ipynb|md))(?P<anchor>#[^"]*)?"')


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


def on_page_content(html: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Rewrite and check the links of notebook pages."""
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    urls = {f.src_uri: f.url for f in files}
    return rewrite_links(html, page.file.src_uri, page.url, urls)
