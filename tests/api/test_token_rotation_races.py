"""REST API tokens across a root-key rotation, against what runs at the same time: a revocation racing the token's
first use (its re-hash), `rootkey retire --end-unmovable` racing a use, a deletion of the token's user, and a
process that has not read the rotated key file yet (a rolling restart)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone as real_timezone

from kmsconsole.api import token_dependents
from kmsconsole.api import tokens as api_tokens
from kmsconsole.api.models import ApiToken
from kmsconsole.api.tokens import api_token_revoke
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import root_keys
from policies.models import Account
from tests.api.conftest import client_with, token_for
from tests.conftest import Persona, as_operator
from tests.races import finish, in_thread
from tests.rootkeys import chain_head_free_while_ending, dependent

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = "/api/v1/keys"
TOKENS = "API token digests"


def row_of(token: str) -> ApiToken:
    return ApiToken.objects.select_related("principal__account").get(prefix=token.split("_")[1])


def end_in_the_retire_transaction() -> int:
    with transaction.atomic():  # as root_keys_retire runs it (its operation's transaction)
        return dependent(TOKENS).end_unmovable(root_keys())


def test_a_revocation_racing_the_first_use_after_a_rotation_keeps_the_row_mac_valid(
    account: Account, admin: Persona, root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_for(account, "admin")
    pk = row_of(token).pk
    root_key_file.rotate()
    results: dict[str, Any] = {}
    fired = threading.Event()

    class Hook:
        """api_token_revoke calls timezone.now() after it read the row and before it saves it: the token's first
        use after the rotation (another request, another connection) happens exactly there."""

        @staticmethod
        def now() -> Any:
            if threading.current_thread() is threading.main_thread() and not fired.is_set():
                fired.set()
                finish(
                    in_thread(lambda: client_with(token).get(KEYS).status_code, results, "user"),
                    results=results,
                )
            return real_timezone.now()

    monkeypatch.setattr(api_tokens, "timezone", Hook)
    as_operator("kmsconsole:RevokeApiToken", lambda ctx: api_token_revoke(ctx=ctx, token_id=pk))
    assert fired.is_set() and results["user"] == 200
    row = row_of(token)
    assert row.revoked_at is not None
    row.check_row()  # the revocation's MAC covers the digest the row holds, whoever wrote it last


def test_end_unmovable_takes_the_audit_chain_head_last(
    account: Account, admin: Persona, root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Principal_locks rule 5, inside the retire operation's transaction: while tokens are being revoked, the
    chain head is free (their events are appended at the end)."""
    token_for(account, "admin")
    token_for(account, "admin")
    root_key_file.rotate()
    assert chain_head_free_while_ending(TOKENS, token_dependents, monkeypatch) == 2
    assert AuditEvent.objects.filter(operation="kmsconsole:RevokeApiToken").count() == 2
