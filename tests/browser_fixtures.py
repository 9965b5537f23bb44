"""Drive the lab in a real browser: Debian's headless Chromium through its WebDriver (selenium).

The browser is the system's ``chromium`` with ``chromedriver`` (Debian packages ``chromium``
and ``chromium-driver``, installed by ``make system-packages``, which ``make install-test``
runs). Nothing is downloaded at run time: selenium is given both paths, so its driver manager
is never asked. A missing browser fails the test that needs it, with the command to install it.

:class:`Browser` is one browser profile (fresh ``--user-data-dir``, so one hub login) with the
steps a user takes in JupyterLab: log in on the hub's form, wait for JupyterLab, open a
notebook, choose a menu entry ("Run All Cells"), wait until the cells ran, read the outputs.

As a pytest plugin (``pytest_plugins = ["browser_fixtures"]`` in a test module), it gives the
``open_browser`` fixture and keeps, for each test that fails, a screenshot and the page source
of every browser the test opened in ``out/test-artifacts/browser/<test>-<browser>.png`` (and
``.html``), for CI to keep as artefacts.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "out" / "test-artifacts" / "browser"
# the executables of Debian's packages (/usr/bin/chromium, /usr/bin/chromedriver), on PATH
CHROMIUM, CHROMEDRIVER = "chromium", "chromedriver"
SYSTEM_PACKAGES = ("chromium", "chromium-driver")
# Headless, no sandbox (CI runs as root), and no background traffic: without the networking
# flags Chromium keeps trying to reach Google hosts (updates, sync, field trials), which an
# offline machine refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)

_STATUS_OK = re.compile(r"^\[\d+\]:$")


def require_chromium() -> tuple[str, str]:
    """Paths of the system's Chromium and its WebDriver; fail (never skip) when missing."""
    found = {name: shutil.which(name) for name in (CHROMIUM, CHROMEDRIVER)}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found on PATH: the browser tests need Debian's "
            f"{' and '.join(SYSTEM_PACKAGES)}. Run `make system-packages` as root, or "
            f"`sudo apt-get update && sudo apt-get install -y --no-install-recommends "
            f"{' '.join(SYSTEM_PACKAGES)}`",
            pytrace=False,
        )
    return str(found[CHROMIUM]), str(found[CHROMEDRIVER])


@dataclass(frozen=True)
class Cell:
    """A notebook cell as JupyterLab shows it."""

    index: int
    code: bool
    prompt: str
    """The input prompt: ``[3]:``, ``[*]:`` while queued or running, ``[ ]:`` never run."""
    source: str
    """The editor's text (lines joined without newlines)."""
    text: str
    """Text of the outputs."""
    stderr: tuple[str, ...]
    """Text of each stderr output (errors' tracebacks included)."""
    images: tuple[str, ...]
    """``src`` of each output image that loaded (non-zero natural width)."""

    @property
    def ran(self) -> bool:
        """The cell has an execution count."""
        return bool(_STATUS_OK.match(self.prompt))

    @property
    def running(self) -> bool:
        """The cell is queued or running."""
        return "*" in self.prompt

    @property
    def tracebacks(self) -> list[str]:
        """The stderr outputs that are errors."""
        return [s for s in self.stderr if "Traceback" in s]


# the notebook on screen: its cells, in order (all in the DOM: JupyterLab's default windowing
# mode, contentVisibility, only skips painting the cells out of view)
_PANEL_CELLS_JS = """
const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
    .find(p => !p.classList.contains('lm-mod-hidden') && p.offsetParent !== null);
const cells = panel ? [...panel.querySelectorAll('.jp-Notebook .jp-Cell')] : null;
"""
_CELLS_JS = (
    _PANEL_CELLS_JS
    + """
if (!cells) { return null; }
return cells.map((c, i) => ({
    index: i,
    code: c.classList.contains('jp-CodeCell'),
    prompt: ((c.querySelector('.jp-InputPrompt') || {}).textContent || '').trim(),
    source: (c.querySelector('.cm-content') || {}).textContent || '',
    text: [...c.querySelectorAll('.jp-OutputArea-output')].map(o => o.textContent).join('\\n'),
    stderr: [...c.querySelectorAll(
        '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(o => o.textContent),
    images: [...c.querySelectorAll('.jp-OutputArea-output img')]
        .filter(img => img.complete && img.naturalWidth > 0).map(img => img.src),
}));
"""
)


class Browser:
    """One headless Chromium with a fresh profile, logged in to the hub as one user at most.

    Parameters
    ----------
    name
        Label of this browser in artefact names (``<test>-<name>.png``).
    base_url
        The lab's public URL (``Deployment.url``, ending with ``/``).
    """

    def __init__(self, name: str, base_url: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium, chromedriver = require_chromium()
        self.name = name
        self.base_url = base_url
        self.user: str | None = None
        self.profile = Path(tempfile.mkdtemp(prefix="earthlab-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        # the Network domain's events, to read the HTTP status of pages (document_status)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        self.driver = webdriver.Chrome(
            options=options, service=Service(executable_path=chromedriver)
        )
        self.driver.set_page_load_timeout(120)

    # --- waiting ---------------------------------------------------------------------------

    def wait(self, what: str, condition: Callable[[], Any], timeout: float = 120) -> Any:
        """Poll ``condition`` until it returns something true; fail after ``timeout`` (hang guard)."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = condition()
            except Exception as exc:  # the page changes under the query: try again
                if type(exc).__name__ not in _TRANSIENT:
                    raise
                last_error, value = exc, None
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(
            f"{self.name}: {what} not seen after {timeout} s (page {self.driver.current_url}"
            + (f", last error {last_error!r})" if last_error else ")")
        )

    def find(self, css: str) -> list[Any]:
        """Elements matching ``css`` on the page."""
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def visible(self, css: str) -> list[Any]:
        """Displayed elements matching ``css``."""
        return [e for e in self.find(css) if e.is_displayed()]

    # --- the hub ---------------------------------------------------------------------------

    def login(self, user: str, password: str, next_path: str | None = None) -> None:
        """Log in on the hub's login form; wait until the hub has let the user in.

        Parameters
        ----------
        user, password
            What the user types.
        next_path
            Where to go after login (``/hub/home`` does not start the user's server); by
            default the hub's own choice: start the server and open JupyterLab.
        """
        url = self.base_url + "hub/login"
        if next_path:
            url += f"?next={next_path}"
        self.driver.get(url)
        self.wait("the login form", lambda: self.visible("#username_input"))
        self.visible("#username_input")[0].send_keys(user)
        self.visible("#password_input")[0].send_keys(password)
        self.visible("#login_submit")[0].click()
        self.wait(
            "the hub letting the user in",
            lambda: "/hub/login" not in self.path() or self.visible(".login_error"),
        )
        if "/hub/login" in self.path():
            texts = [e.text for e in self.visible(".login_error")]
            raise AssertionError(f"{self.name}: the hub refused {user!r} at login: {texts}")
        self.user = user

    def sso_login(self, user: str, provider: str) -> None:
        """Log in through the OpenID provider at ``provider``: the hub's button, then its page.

        The hub's login page shows one button ("Sign in with ..."); the provider's
        authorization page (oidc-provider-mock's) asks for the subject and is submitted; the
        browser comes back to the hub's OAuth callback.
        """
        self.driver.get(self.base_url + "hub/login")
        self.wait("the single sign-on button", lambda: self.visible(".service-login a"))
        self.visible(".service-login a")[0].click()
        self.wait(
            "the provider's authorization page",
            lambda: (
                self.driver.current_url.startswith(provider) and self.visible('input[name="sub"]')
            ),
        )
        field = self.visible('input[name="sub"]')[0]
        field.send_keys(user)
        field.submit()
        self.wait(
            "the hub after the provider", lambda: self.driver.current_url.startswith(self.base_url)
        )
        self.user = user

    def wait_for_lab(self, timeout: float = 180) -> None:
        """Wait until JupyterLab has loaded at ``/user/<name>/lab`` (the server may be starting)."""
        prefix = f"/user/{self.user}/lab"
        self.wait(f"JupyterLab at {prefix}", lambda: self.path().startswith(prefix), timeout)
        self.wait(
            "JupyterLab's shell and file browser",
            lambda: self.visible("#main.jp-LabShell") and self.find(".jp-DirListing-content"),
            timeout,
        )

    def path(self) -> str:
        """Path of the page's URL."""
        from urllib.parse import urlsplit

        return urlsplit(self.driver.current_url).path

    # --- JupyterLab ------------------------------------------------------------------------

    def open_notebook(self, path: str, timeout: float = 120) -> None:
        """Open ``path`` (relative to the home) at ``/user/<name>/lab/tree/<path>``.

        Waits for the notebook's cells and for its kernel to be idle; the file browser shows
        the notebook's folder.
        """
        self.driver.get(f"{self.base_url}user/{self.user}/lab/tree/{path}")
        self.wait_for_lab()
        name = path.rsplit("/", 1)[-1]
        self.wait(
            f"the notebook tab {name}",
            lambda: self.visible(
                f'.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current[title^="Name: {name}"]'
            ),
            timeout,
        )
        self.wait("the notebook's cells", lambda: self.cells(), timeout)
        self.wait_kernel_idle(timeout)

    def kernel_status(self) -> str:
        """The notebook's kernel status as its toolbar shows it (``idle``, ``busy``, ...)."""
        found = self.visible(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator")
        return found[0].get_attribute("data-status") or "" if found else ""

    def wait_kernel_idle(self, timeout: float = 120) -> None:
        """Wait until the notebook's kernel is started and idle."""
        self.wait("the kernel idle", lambda: self.kernel_status() == "idle", timeout)

    def menu(self, top: str, item: str) -> None:
        """Choose ``item`` in the menu bar's ``top`` menu (``menu("Run", "Run All Cells")``)."""
        (entry,) = [e for e in self.visible(".lm-MenuBar-item") if e.text.strip() == top]
        entry.click()

        def menu_item() -> Any:
            return [
                e
                for e in self.visible(".lm-Menu .lm-Menu-item")
                if e.find_element("css selector", ".lm-Menu-itemLabel").text.strip() == item
            ]

        self.wait(f"menu item {top} > {item}", menu_item, 10)[0].click()

    def select_cell(self, index: int) -> None:
        """Scroll to cell ``index`` and click its prompt area: the cell becomes the active one."""
        script = _PANEL_CELLS_JS + "return cells && cells[arguments[0]];"

        def prompt() -> Any:
            cell = self.driver.execute_script(script, index)
            if cell is None:
                return None
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
            found = cell.find_elements("css selector", ".jp-InputPrompt")
            return found[0] if found and found[0].is_displayed() else None

        self.wait(f"cell {index} on screen", prompt, 30).click()
        self.wait(
            f"cell {index} active",
            lambda: (
                "jp-mod-active" in self.driver.execute_script(script, index).get_attribute("class")
            ),
            10,
        )

    def cells(self) -> list[Cell]:
        """The cells of the notebook on screen, as JupyterLab renders them now."""
        found = self.driver.execute_script(_CELLS_JS)
        return [
            Cell(**{**c, "stderr": tuple(c["stderr"]), "images": tuple(c["images"])})
            for c in found or []
        ]

    def listed_files(self) -> list[str]:
        """Names in the file browser's listing (the folder it shows)."""
        return [
            str(e.get_attribute("textContent")).strip()
            for e in self.find(".jp-DirListing-content .jp-DirListing-itemText")
        ]

    def run_cells_and_wait(
        self,
        top: str,
        item: str,
        wanted: slice = slice(None),
        clear: bool = True,
        timeout: float = 300,
    ) -> list[Cell]:
        """Choose a run entry of the menus and wait until the cells it runs have run.

        Parameters
        ----------
        top, item
            The menu entry (``"Run", "Run All Cells"``).
        wanted
            The cells the entry runs (all by default).
        clear
            First clear the outputs of all cells (Edit > Clear Outputs of All Cells), so that
            execution counts and outputs seen afterwards come from this run.
        timeout
            Hang guard, seconds.

        Returns
        -------
        list of Cell
            All cells, once none is queued or running and either every wanted code cell has an
            execution count or one failed (JupyterLab then runs none of the rest).
        """
        if clear:
            self.menu("Edit", "Clear Outputs of All Cells")
            self.wait("outputs cleared", lambda: not any(c.ran for c in self.cells()), 30)
        self.menu(top, item)

        def done() -> list[Cell] | None:
            cells = self.cells()
            if any(c.running for c in cells):
                return None
            if all(c.ran for c in cells[wanted] if c.code and c.source.strip()):
                return cells
            if any(c.tracebacks for c in cells[wanted]):
                return cells
            return None

        cells = self.wait(f"cells run ({top} > {item})", done, timeout)
        self.wait_kernel_idle(timeout)
        return list(cells)

    # --- pages -----------------------------------------------------------------------------

    def drain_network_log(self) -> None:
        """Forget the network events seen so far."""
        self.driver.get_log("performance")

    def document_status(self) -> tuple[int, str]:
        """HTTP status and URL of the last page (document) loaded since the log was drained."""
        documents = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.responseReceived":
                continue
            params = message["params"]
            if params.get("type") == "Document":
                documents.append((int(params["response"]["status"]), params["response"]["url"]))
        assert documents, f"{self.name}: no page loaded (at {self.driver.current_url})"
        return documents[-1]

    def open_page(self, url: str) -> tuple[int, str]:
        """Load ``url`` (following redirects, a hub login included); its final status and URL."""
        self.drain_network_log()
        self.driver.get(url)
        return self.document_status()

    def bokeh_roots(self) -> int:
        """Models shown by the page's Bokeh documents (a Dask dashboard's live plots).

        A Bokeh server page fills its document over its WebSocket: roots mean the live
        session is up, not only the page's HTML.
        """
        script = (
            "return window.Bokeh && Bokeh.documents ? "
            "Bokeh.documents.reduce((n, d) => n + d.roots().length, 0) : 0"
        )
        return int(self.driver.execute_script(script) or 0)

    def body_text(self) -> str:
        """Text of the page's body."""
        found = self.find("body")
        return str(found[0].text) if found else ""

    # --- the end ---------------------------------------------------------------------------

    def save_artifacts(self, stem: str) -> list[Path]:
        """Keep a screenshot and the page source as ``ARTIFACTS/<stem>-<name>.{png,html}``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        base = ARTIFACTS / f"{_safe(stem)}-{_safe(self.name)}"
        png, html = base.with_suffix(".png"), base.with_suffix(".html")
        self.driver.save_screenshot(str(png))
        html.write_text(
            f"<!-- {self.driver.current_url} -->\n" + self.driver.page_source, encoding="utf-8"
        )
        return [png, html]

    def quit(self) -> None:
        """Stop the browser and remove its profile."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


_TRANSIENT = {"StaleElementReferenceException", "NoSuchElementException", "JavascriptException"}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


# --- pytest plugin -------------------------------------------------------------------------

_BROWSERS = pytest.StashKey[list[Browser]]()


@pytest.fixture()
def open_browser(request: pytest.FixtureRequest) -> Iterator[Callable[[str, str], Browser]]:
    """``open_browser(name, base_url)`` opens a :class:`Browser`; all are closed after the test.

    A test that fails leaves a screenshot of each in ``out/test-artifacts/browser/``.
    """
    opened = request.node.stash.setdefault(_BROWSERS, [])

    def open_one(name: str, base_url: str) -> Browser:
        browser = Browser(name, base_url)
        opened.append(browser)
        return browser

    try:
        yield open_one
    finally:
        for browser in opened:
            browser.quit()
        opened.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failed setup or call, save what each of the test's browsers shows."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        kept = []
        for browser in item.stash.get(_BROWSERS, []):
            try:
                kept += browser.save_artifacts(item.name)
            except Exception as exc:  # a browser that died: say so, keep the others
                kept.append(Path(f"({browser.name}: no screenshot: {exc!r})"))
        if kept:
            report.sections.append(("browser artefacts", "\n".join(map(str, kept))))
    return report
