"""Fixtures of the browser tests: a real server with demo data and headless Chromium.

The tests of this folder drive Debian's ``chromium`` (``$MAISON_CHROMIUM`` or
``/usr/bin/chromium``) with Playwright's sync API, never a browser downloaded by
``playwright install``. Without Chromium or Playwright they are skipped, or fail when
``MAISON_REQUIRE_BROWSER=1`` (CI). One server for the whole session (per xdist worker),
always on SQLite with the demo data; one Chromium per test file (see ``playwright``); a fresh
browser context (``fr-FR``) per test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from servers import Server, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: This machine's closed network refuses Chromium's background connections: turn them off.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Demo data are loaded on first start: give it time.
SERVER_START_TIMEOUT = 180.0
#: Playwright's default timeout for actions and navigations (milliseconds).
ACTION_TIMEOUT_MS = 15_000


def browser_required() -> bool:
    """CI sets ``MAISON_REQUIRE_BROWSER=1``: a missing browser is then a failure."""
    return os.environ.get("MAISON_REQUIRE_BROWSER", "") == "1"


def unavailable(reason: str) -> NoReturn:
    """Fail (``MAISON_REQUIRE_BROWSER=1``) or skip with the reason."""
    if browser_required():
        pytest.fail(f"browser tests required (MAISON_REQUIRE_BROWSER=1): {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason} (set MAISON_REQUIRE_BROWSER=1 to fail)")


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The Chromium binary: ``$MAISON_CHROMIUM`` or ``/usr/bin/chromium``."""
    path = os.environ.get("MAISON_CHROMIUM") or DEFAULT_CHROMIUM
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        unavailable(f"no Chromium executable at {path} (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def playwright(chromium_executable: str) -> Iterator[Playwright]:
    """Playwright's sync API, started for each test file.

    Not for the session: while a sync Playwright is alive, its event loop is marked as running
    in the main thread (``asyncio.get_running_loop()`` answers it between calls), so every
    later test of the process that runs an event loop (``asyncio.run``, ``anyio.run``) would
    fail with "Already running asyncio in this thread"."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        unavailable(f"Playwright for Python is not installed ({error})")
    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium_executable: str) -> Iterator[Browser]:
    """Headless Chromium, launched for each test file (about 0.3 s)."""
    from playwright.sync_api import Error

    try:
        chromium = playwright.chromium.launch(
            executable_path=chromium_executable, headless=True, args=list(CHROMIUM_ARGS)
        )
    except Error as error:
        unavailable(f"Chromium at {chromium_executable} does not start: {error.message}")
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="session")
def browser_server(
    chromium_executable: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A real ``maison serve`` on a free port, a fresh SQLite data folder, with demo data.

    Needs the browser (checked first, so that a skipped run starts no server)."""
    tmp = tmp_path_factory.mktemp("browser-server")
    srv = Server(str(tmp / "data"), tmp, free_port())
    try:
        srv.start(timeout=SERVER_START_TIMEOUT)
    except BaseException:
        srv.stop()
        raise
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies, ``fr-FR``) for one test."""
    ctx = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(ACTION_TIMEOUT_MS)
    ctx.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in the test's own context; a screenshot is kept when the test fails."""
    pg = context.new_page()
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and not pg.is_closed():
        from browser_support import screenshot

        name = "failed-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            screenshot(pg, name)
        except Exception as error:  # a failure screenshot must not hide the failure
            print(f"no failure screenshot: {error}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep the call phase's report on the item (for the failure screenshot)."""
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
