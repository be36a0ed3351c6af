"""The console's own error pages. A form posted without a valid CSRF token is refused in words, styled by our stylesheet
(no inline style for the CSP to block), and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.conftest import Persona
from tests.console.conftest import console_login_for

pytestmark = pytest.mark.django_db


def test_a_post_without_a_csrf_token_gets_the_console_page(admin: Persona) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(console_login_for(admin))
    response: Any = client.post("/console/confirm/", {"password": "x"})
    assert response.status_code == 403
    body = response.content.decode()
    assert "This form has expired" in body and "nothing was changed" in body
    assert "<style" not in body and "/static/css/console.css" in body


def test_an_unknown_console_page_is_a_404_in_words(admin: Persona) -> None:
    client = Client()
    client.force_login(console_login_for(admin))
    response: Any = client.get("/console/keys/not-a-key-id/crypto/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "There is nothing here" in body and "/static/css/console.css" in body
