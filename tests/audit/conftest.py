"""Fixtures of other suites that the audit dashboard's tests use: the console's signed-in session, the REST API's
admin client and the end-to-end suite's watched headless Chromium page."""

from tests.api.conftest import admin_api, api_as  # noqa: F401 - re-exported as fixtures
from tests.console.conftest import console  # noqa: F401 - re-exported as a fixture
from tests.e2e.conftest import browser, watched_page  # noqa: F401 - re-exported as fixtures
