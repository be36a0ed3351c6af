"""Fixtures of other suites that the audit dashboard's tests use: the console's signed-in session and the
end-to-end suite's watched headless Chromium page."""

from tests.console.conftest import console  # noqa: F401 - re-exported as a fixture
from tests.e2e.conftest import browser, watched_page  # noqa: F401 - re-exported as fixtures
