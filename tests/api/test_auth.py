"""API tokens (shown once, stored as a keyed hash, expired and revoked ones refused) and console sessions."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework.test import APIClient

from keys.models import Key
from kmsconsole.api.models import ApiToken
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console.sudo import SUDO_AT
from policies import services
from tests.api.conftest import client_with, iam_user
from tests.conftest import PARTNER_ACCOUNT, Persona, as_operator

pytestmark = pytest.mark.django_db


def api_token(*args: str) -> dict[str, object]:
    out = io.StringIO()
    call_command("api-token", *args, stdout=out)
    return json.loads(out.getvalue())


def test_token_is_shown_once_stored_hashed_and_audited(admin: Persona) -> None:
    created = api_token("create", "--user-name", "admin", "--expires-in-days", "30")
    token = str(created["Token"])
    scheme, prefix, secret = token.split("_", 2)
    assert scheme == "kmsc" and created["UserArn"] == admin.arn
    row = ApiToken.objects.get(pk=created["TokenId"])
    assert row.prefix == prefix and len(row.secret_digest) == 64
    assert secret not in json.dumps([str(value) for value in ApiToken.objects.values().first().values()])
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.operation, event.interface, event.decision) == (
        "kmsconsole:CreateApiToken",
        "cli",
        "allowed",
    )
    assert secret not in json.dumps(event.response_elements) and "Token" not in event.response_elements
    response = client_with(token).get("/api/v1/keys")
    assert response.status_code == 200


def test_revoked_token_is_refused(admin: Persona) -> None:
    created = api_token("create", "--user-name", "admin")
    client = client_with(str(created["Token"]))
    assert client.get("/api/v1/keys").status_code == 200
    revoked = api_token("revoke", "--token-id", str(created["TokenId"]))
    assert revoked["RevokedAt"]
    assert AuditEvent.objects.order_by("-seq").first().operation == "kmsconsole:RevokeApiToken"
    response = client.get("/api/v1/keys")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UnrecognizedClientException"


def test_a_token_is_issued_to_the_user_of_the_account_named(
    make_user: Callable[..., Persona], partner: Callable[..., Persona]
) -> None:
    """Users of the same name in two accounts: `--account-id` on the subcommand picks one, as `manage.py iam`'s
    subcommands take it (the default is the configured account)."""
    ours, theirs = make_user("alice"), partner("alice")
    for args, persona in (((), ours), (("--account-id", PARTNER_ACCOUNT), theirs)):
        created = api_token("create", "--user-name", "alice", *args)
        assert created["UserArn"] == persona.arn
        event = AuditEvent.objects.order_by("-seq").first()
        assert (event.operation, event.caller_account) == (
            "kmsconsole:CreateApiToken",
            persona.arn.split(":")[4],
        )
        # The token signs in as that account's alice (who may not list keys: refused by name).
        refused = client_with(str(created["Token"])).get("/api/v1/keys")
        assert refused.status_code == 403 and persona.arn in refused.json()["error"]["message"]
        revoked = api_token("revoke", "--token-id", str(created["TokenId"]), *args)
        assert revoked["RevokedAt"]
        assert AuditEvent.objects.order_by("-seq").first().caller_account == persona.arn.split(":")[4]


def test_a_token_is_revoked_only_in_its_owners_account(
    partner: Callable[..., Persona], capsys: pytest.CaptureFixture[str]
) -> None:
    """`revoke --account-id` names the account whose trail records the revocation: a token of another account is
    not found there (the default account, a partner's token), and an account that does not exist is refused; the
    token lives on until it is revoked in its owner's account, and recorded there."""
    theirs = partner("alice")
    created = api_token("create", "--user-name", "alice", "--account-id", PARTNER_ACCOUNT)
    token_id = str(created["TokenId"])
    for args, code in (((), "NotFoundException"), (("--account-id", "999999999999"), "NoSuchEntity")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            api_token("revoke", "--token-id", token_id, *args)
        assert exited.value.code == 254
        assert json.loads(capsys.readouterr().err)["Error"]["Code"] == code
        assert ApiToken.objects.get(pk=created["TokenId"]).revoked_at is None
    refused = client_with(str(created["Token"])).get("/api/v1/keys")
    assert refused.status_code == 403 and theirs.arn in refused.json()["error"]["message"]  # still signs in
    revoked = api_token("revoke", "--token-id", token_id, "--account-id", PARTNER_ACCOUNT)
    assert revoked["RevokedAt"]
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.operation, event.caller_account, event.decision) == (
        "kmsconsole:RevokeApiToken",
        PARTNER_ACCOUNT,
        "allowed",
    )


def test_expired_token_is_refused(admin: Persona) -> None:
    created = api_token("create", "--user-name", "admin", "--expires-in-days", "1")
    ApiToken.objects.filter(pk=created["TokenId"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client_with(str(created["Token"])).get("/api/v1/keys")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UnrecognizedClientException"


def _days_left(expires_at: object) -> float:
    moment = expires_at if not isinstance(expires_at, str) else datetime.fromisoformat(expires_at)
    assert isinstance(moment, datetime)
    return (moment - timezone.now()).total_seconds() / 86400


def test_every_token_expires_by_default(admin: Persona, settings: Any) -> None:
    from_cli = api_token("create", "--user-name", "admin")
    assert 89.9 < _days_left(from_cli["ExpiresAt"]) <= 90
    settings.KMS_API_TOKEN_TTL_DAYS = 7
    client = client_with(str(from_cli["Token"]))
    response = client.post("/api/v1/api-tokens", {"name": "ci"}, format="json")
    assert response.status_code == 201, response.json()
    assert 6.9 < _days_left(response.json()["expires_at"]) <= 7
    assert 6.9 < _days_left(ApiToken.objects.get(pk=response.json()["id"]).expires_at) <= 7
    # A longer lifetime is the creator's explicit choice, within ten years.
    longer = client.post("/api/v1/api-tokens", {"expires_in_days": 3650}, format="json")
    assert longer.status_code == 201 and _days_left(longer.json()["expires_at"]) > 3649
    refused = client.post("/api/v1/api-tokens", {"expires_in_days": 3651}, format="json")
    assert refused.status_code == 400 and "expiresInDays" in refused.json()["error"]["message"]
    # When the default lifetime has passed, the token is refused like any expired one.
    ApiToken.objects.filter(pk=from_cli["TokenId"]).update(expires_at=timezone.now())
    assert client.get("/api/v1/keys").json()["error"]["code"] == "UnrecognizedClientException"


@pytest.mark.django_db(transaction=True)
def test_tokens_made_before_expiry_was_required_get_the_default_lifetime(admin: Persona) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("api", "0001_initial")])
    old_apps = executor.loader.project_state([("api", "0001_initial")]).apps
    old_token = old_apps.get_model("api", "ApiToken")
    user = old_apps.get_model("policies", "IamUser").objects.get(name="admin")
    forever = old_token.objects.create(principal_id=user.pk, prefix="0123456789ab", secret_digest="0" * 64)
    dated = old_token.objects.create(
        principal_id=user.pk,
        prefix="ba9876543210",
        secret_digest="0" * 64,
        expires_at=timezone.now() + timedelta(days=2),
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert 89.9 < _days_left(ApiToken.objects.get(pk=forever.pk).expires_at) <= 90
    assert 1.9 < _days_left(ApiToken.objects.get(pk=dated.pk).expires_at) <= 2


@pytest.mark.parametrize("mangle", ["wrong-secret", "unknown-prefix", "no-scheme", "garbage"])
def test_wrong_tokens_are_refused(admin: Persona, mangle: str) -> None:
    token = str(api_token("create", "--user-name", "admin")["Token"])
    _, prefix, secret = token.split("_", 2)
    presented = {
        "wrong-secret": f"kmsc_{prefix}_{secret[:-2]}xx",
        "unknown-prefix": f"kmsc_000000000000_{secret}",
        "no-scheme": f"{prefix}_{secret}",
        "garbage": "kmsc_",
    }[mangle]
    response = client_with(presented).get("/api/v1/keys")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UnrecognizedClientException"


def test_token_for_unknown_user_fails_like_the_iam_cli(
    admin: Persona, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        api_token("create", "--user-name", "nobody")
    assert exited.value.code == 254
    assert json.loads(capsys.readouterr().err)["Error"]["Code"] == "NoSuchEntity"


def _login(username: str, linked_to: str | None) -> APIClient:
    if linked_to is None:
        get_user_model().objects.create_user(username=username, password="a-long-enough-password")
    else:
        user = iam_user(linked_to)
        as_operator(
            "kmsconsole:CreateConsoleLogin",
            lambda ctx: services.console_login_create(
                ctx=ctx, iam_user=user, username=username, password="a-long-enough-password"
            ),
        )
    client = APIClient(enforce_csrf_checks=True)
    token = client.get("/signin/").context["csrf_token"]
    form = {"username": username, "password": "a-long-enough-password", "csrfmiddlewaretoken": str(token)}
    assert client.post("/signin/", form).status_code == 302
    return client


def test_console_session_acts_as_its_iam_user_with_csrf(admin: Persona) -> None:
    client = _login("console-admin", "admin")
    assert client.get("/api/v1/keys").status_code == 200
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.interface, event.caller_arn, event.access_key_id) == ("api", admin.arn, "")
    refused = client.post("/api/v1/keys", {"description": "x"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AccessDeniedException"
    csrf = "k" * 32  # a CSRF secret the client holds in its cookie and repeats in the header
    client.cookies["csrftoken"] = csrf
    # Without sudo mode a session changes nothing through the API, as in the console.
    refused = client.post("/api/v1/keys", {"description": "x"}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert refused.status_code == 403 and "sudo mode" in refused.json()["error"]["message"]
    assert not Key.objects.exists()
    session = client.session
    session[SUDO_AT] = int(time.time())
    session.save()
    created = client.post("/api/v1/keys", {"description": "x"}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert created.status_code == 201


def test_console_session_without_a_principal_is_403(account: object) -> None:
    client = _login("nobody", None)
    response = client.get("/api/v1/keys")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "AccessDeniedException"
