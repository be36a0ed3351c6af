"""End-to-end console tests: Debian's headless Chromium (/usr/bin/chromium, installed by .ci/run) driven by
Playwright for Python against a live server. No browser is downloaded.

Every page the browser loads is watched: a JavaScript error, a console error (a Content-Security-Policy
violation is one) or a failed same-origin request fails the test. Screenshots of the main pages go to
test-artifacts/console/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.conftest import REPO

CHROMIUM = os.environ.get("KMS_TEST_CHROMIUM", "/usr/bin/chromium")
EXPECTED_CLIENT_ERROR = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d ")
ARTIFACTS = REPO / "test-artifacts" / "console"
# The machine has no outside network: Chromium must not try to reach Google's services at start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Fail loudly rather than skip: a missing browser means CI did not install what the suite needs.
    if any(item.path.is_relative_to(Path(__file__).parent) for item in items) and not shutil.which(CHROMIUM):
        raise pytest.UsageError(f"{CHROMIUM} not found: install Debian's chromium (.ci/run does)")


# One browser per test, not per session: Playwright's sync API keeps an asyncio loop running in this thread while
# it is started, which would break later tests in the same worker that run their own loop (asyncio.run), and a
# second Playwright started by another suite's conftest would refuse to run inside it.
@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread, so Django's guard would take every
    # ORM call of the test (fixtures included) for one made from async code. The calls are plain synchronous
    # ones; Playwright's documented remedy for Django is this switch.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield launched
            launched.close()
        finally:
            _close_connections_opened_under_playwright()


def _close_connections_opened_under_playwright() -> None:
    """Close the database connections this thread opened while Playwright ran. Once Playwright has started, this
    thread's code runs in another contextvars context than before (Playwright switches greenlets around an asyncio
    loop), and Django keeps connections per context (asgiref's Local): `connections["default"]` is then a new
    connection, not the one opened before. pytest-django, closing the connections of the context it runs in, never
    sees it; left open, it outlives the session and the test database cannot be dropped at the end ("is being
    accessed by other users"). They are closed here, in their own context, before Playwright stops; one inside a
    transaction (none of these holds the test's own) is left alone."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


@dataclass
class WatchedPage:
    """A Playwright page whose JavaScript and console errors are collected."""

    page: Any
    base_url: str
    problems: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base_url + path)
        assert response is not None and response.status < 500, f"{path}: HTTP {response and response.status}"
        return response

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _browser_editing_style(text: str, location: dict[str, Any], base_url: str) -> bool:
    """Whether a blocked inline style was Chromium's own: filling a contenteditable (the policy editor's) runs the
    browser's editing commands, which may wrap the new text in markup that keeps the replaced text's look
    (`<span style=...>`), and the page's CSP blocks that style (CodeMirror re-renders from its own state). Such a
    violation is reported at the document's line 0, column 0; one from our markup carries the element's line (the
    templates' first line is the doctype), and one from a script carries the script's URL: those still count.
    (Console messages may be handled after the page has moved on, so the document is told by its URL's origin.)"""
    url = str(location.get("url", ""))
    return (
        text.startswith("Applying inline style violates")
        and url.startswith(base_url + "/")
        and "/static/" not in url
        and location.get("lineNumber") == 0
        and location.get("columnNumber") == 0
    )


@pytest.fixture
def watched_page(browser: Any, live_server: Any) -> Iterator[WatchedPage]:
    context = browser.new_context(viewport={"width": 1366, "height": 800}, base_url=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    watched = WatchedPage(page=page, base_url=live_server.url)

    def on_console(message: Any) -> None:
        # Chromium logs every 4xx response as "Failed to load resource"; a form re-rendered with its inline
        # error is a 400 on purpose. Server errors are caught by status below, everything else counts.
        if message.type == "error" and not EXPECTED_CLIENT_ERROR.match(message.text):
            if _browser_editing_style(message.text, message.location, live_server.url):
                return
            watched.problems.append(f"console error: {message.text} at {message.location}")

    def on_response(response: Any) -> None:
        # 4xx pages the test asks for on purpose are fine; a 5xx anywhere is not.
        if response.url.startswith(live_server.url) and response.status >= 500:
            watched.problems.append(f"HTTP {response.status} for {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.problems.append(f"page error: {error}"))
    page.on("response", on_response)
    yield watched
    context.close()
    assert not watched.problems, "\n".join(watched.problems)
