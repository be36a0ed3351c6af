"""The e2e page watch counts every Content-Security-Policy violation of ours, and only Chromium's own editing
markup is let through (tests/e2e/conftest.py::_browser_editing_style)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import _browser_editing_style

BASE = "http://localhost:40000"
STYLE = "Applying inline style violates the following Content Security Policy directive 'style-src 'self''."


@pytest.mark.parametrize(
    ("text", "url", "line", "ignored"),
    [
        (STYLE, f"{BASE}/console/principals/111122223333/users/carol/new-policy/", 0, True),
        (STYLE, f"{BASE}/console/keys/", 12, False),  # a style attribute in our markup
        (STYLE, f"{BASE}/static/js/policy-editor.js", 0, False),  # set by a script of ours
        (STYLE, "http://elsewhere.example/console/", 0, False),
        ("Refused to execute inline script because it violates", f"{BASE}/console/keys/", 0, False),
    ],
)
def test_only_the_browsers_own_editing_style_is_let_through(
    text: str, url: str, line: int, ignored: bool
) -> None:
    location = {"url": url, "lineNumber": line, "columnNumber": 0}
    assert _browser_editing_style(text, location, BASE) is ignored
