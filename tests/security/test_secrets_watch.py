"""The secrets watch itself (tests/secrets_watch.py): it registers the secrets a test handles wherever they appear
(API tokens, console passwords and session keys, access-key secrets, grant tokens, data keys), does not mistake
the one answer that hands a secret out for a leak, and finds a secret in a log record, a later answer, or the
output of a server process. Each test checks `WATCH.leaks()` itself, then takes the planted leak back out, so the
autouse scan that follows passes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from django.conf import settings
from django.test import Client

from grants.services.creation import grant_create
from keys.services import lifecycle
from tests.api.conftest import client_with, token_for
from tests.conftest import Persona, as_operator
from tests.console.conftest import PASSWORD, console_login_for
from tests.secrets_watch import WATCH
from tests.webserver import serving

pytestmark = pytest.mark.django_db

logger = logging.getLogger("kmsconsole.tests.leak")


@pytest.fixture
def planted() -> Iterator[Callable[[str], list[str]]]:
    """`leaked(text)`: write `text` where the service would leak it (a log record) and return what the watch
    finds; the planted records are taken back out before the autouse scan."""
    before = len(WATCH.seen)

    def leaked(text: str) -> list[str]:
        logger.warning("oops: %s", text)
        return WATCH.leaks()

    yield leaked
    del WATCH.seen[before:]


def test_an_api_token_is_a_secret_once_presented(admin: Persona, account: Any, planted: Any) -> None:
    token = token_for(account, "admin")
    assert client_with(token).get("/api/v1/keys").status_code == 200
    assert WATCH.leaks() == []
    assert planted(f"Authorization: Bearer {token}")


def test_secrets_handed_out_once_are_not_leaks_but_are_secrets_after(
    admin: Persona, account: Any, planted: Any
) -> None:
    api = client_with(token_for(account, "admin"))
    created = api.post("/api/v1/api-tokens", {"name": "second"}, format="json")
    assert created.status_code == 201 and created.json()["token"].startswith("kmsc_")
    user = api.post("/api/v1/users", {"name": "carol"}, format="json")
    assert user.status_code == 201, user.json()
    key = api.post("/api/v1/users/carol/access-keys", {}, format="json")
    assert key.status_code == 201, key.json()
    assert WATCH.leaks() == []  # each answer that hands a secret out is where it belongs
    assert planted(created.json()["token"])
    WATCH.seen.pop()
    assert planted(key.json()["secret_access_key"])


def test_grant_tokens_and_service_results_are_secrets(admin: Persona, planted: Any) -> None:
    key = as_operator("CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx, description="k"))
    created = as_operator(
        "CreateGrant",
        lambda ctx: grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=admin.arn, operations=["Encrypt"]
        ),
    )
    assert planted(created.token)


def test_console_passwords_and_session_keys_are_secrets(admin: Persona, planted: Any) -> None:
    login = console_login_for(admin)
    browser = Client()
    token = browser.get("/signin/").context["csrf_token"]
    signed = browser.post(
        "/signin/", {"username": login.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert signed.status_code == 302
    assert browser.get("/console/keys/").status_code == 200
    assert WATCH.leaks() == []
    assert planted(PASSWORD)
    WATCH.seen.pop()
    assert planted(browser.cookies[settings.SESSION_COOKIE_NAME].value)


def test_a_later_answer_that_shows_a_secret_is_a_leak(
    admin: Persona, kms_client: Callable[..., Any], planted: Any
) -> None:
    kms = kms_client(admin)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]
    assert WATCH.leaks() == []  # GenerateDataKey's answer hands it out
    assert planted(data_key.hex())


@pytest.mark.django_db(transaction=True)
def test_server_output_and_the_access_log_are_read(tmp_path: Path, admin: Persona, account: Any) -> None:
    """The web server as `manage.py serve` runs it, its logs followed: the access log holds the request line (without
    the query string), never the
    headers that carry credentials; a secret a server process prints is found."""
    token = token_for(account, "admin")
    log = tmp_path / "web.log"
    with serving(log, threads=1) as port:
        answer = urllib3.request(
            "GET", f"http://127.0.0.1:{port}/api/v1/keys?page_size=5",
            headers={"Authorization": f"Bearer {token}"}, retries=False, timeout=10,
        )  # fmt: skip
        assert answer.status == 200
    assert '"GET /api/v1/keys HTTP/1.1" 200' in log.read_text()
    assert "page_size=5" not in log.read_text()
    assert WATCH.leaks() == []
    WATCH.follow(log, "the test web server's log")
    with log.open("a") as out:
        out.write(f"debug: token={token}\n")
    assert WATCH.leaks()
    WATCH.seen.pop()
    WATCH.collect(log)
