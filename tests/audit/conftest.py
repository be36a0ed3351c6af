"""The console fixture (a signed-in browser session) for the audit dashboard's page tests."""

from tests.console.conftest import console  # noqa: F401 - re-exported as a fixture
