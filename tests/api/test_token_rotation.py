"""REST API tokens and key-list cursors across a root-key rotation (kmsconsole.core.token_digests).

A token made before a rotation works after it and moves to the current key on its first use; one nobody uses is
counted by "API token digests", stops working once the previous key is retired, and `end_unmovable` revokes it
(audited as a revocation by the operator). A cursor from before a rotation works until the key is retired, then
is the list's normal 400."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from kmsconsole.api.models import ApiToken
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import root_keys
from kmsconsole.core.rowmac import is_under_current_root_key
from policies.models import Account
from tests.api.conftest import client_with, make_key, token_for
from tests.api.test_key_list import cursor_of
from tests.conftest import Persona
from tests.rootkeys import dependent, locked_elsewhere, remaining_count, reseal_others, retire_previous
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/keys"
TOKENS = "API token digests"


def row_of(token: str) -> ApiToken:
    return ApiToken.objects.get(prefix=token.split("_")[1])


def test_a_token_from_before_a_rotation_works_and_moves_to_the_current_key_on_first_use(
    account: Account, admin: Persona, root_key_file: Any
) -> None:
    token = token_for(account, "admin")
    before = row_of(token)
    assert before.secret_digest_key_id == root_keys().current.key_id
    new_key = root_key_file.rotate()
    assert remaining_count(TOKENS) == 1

    assert client_with(token).get(KEYS).status_code == 200
    moved = row_of(token)
    assert moved.secret_digest_key_id == new_key and moved.secret_digest != before.secret_digest
    moved.check_row()  # the row MAC, which covers the digest, was made again over it
    assert is_under_current_root_key(moved.mac, ApiToken.MAC_KIND, *moved.mac_fields())
    assert remaining_count(TOKENS) == 0
    assert client_with(token).get(KEYS).status_code == 200
    assert row_of(token).secret_digest == moved.secret_digest  # moved once, not at every request
    reseal_others()
    retire_previous(root_key_file)
    assert client_with(token).get(KEYS).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_rehash_that_would_wait_is_left_for_the_next_use_and_the_request_succeeds(
    account: Account, admin: Persona, root_key_file: Any
) -> None:
    token = token_for(account, "admin")
    old_key = row_of(token).secret_digest_key_id
    new_key = root_key_file.rotate()
    # A revocation (or a deletion of its user, or another request's re-hash) holds the token's row.
    with locked_elsewhere(lambda: list(ApiToken.objects.select_for_update().filter(pk=row_of(token).pk))):
        assert client_with(token).get(KEYS).status_code == 200
        assert row_of(token).secret_digest_key_id == old_key
    assert client_with(token).get(KEYS).status_code == 200
    assert row_of(token).secret_digest_key_id == new_key


def test_a_token_nobody_uses_is_counted_and_stops_working_at_retire(
    account: Account, admin: Persona, root_key_file: Any
) -> None:
    unused = token_for(account, "admin")
    revoked = token_for(account, "admin")
    expired = token_for(account, "admin")
    update_sealed(ApiToken.objects.filter(pk=row_of(revoked).pk), revoked_at=timezone.now())
    update_sealed(ApiToken.objects.filter(pk=row_of(expired).pk), expires_at=timezone.now() - timedelta(1))
    # A row made before digests recorded their key: unknown, counted until `rootkey rotate` stamps it.
    ApiToken.objects.filter(pk=row_of(unused).pk).update(secret_digest_key_id="")
    assert remaining_count(TOKENS) == 1
    dependent(TOKENS).stamp(root_keys())
    assert row_of(unused).secret_digest_key_id == root_keys().current.key_id
    assert remaining_count(TOKENS) == 0

    root_key_file.rotate()
    found = dependent(TOKENS).remaining(root_keys())
    assert (found.count, found.movable) == (1, False)  # neither the revoked nor the expired one
    assert "next time it is used" in found.how_they_move and "retire" in found.how_they_move
    assert client_with(unused).get(KEYS).status_code == 200  # still readable before the retirement...
    assert remaining_count(TOKENS) == 0

    other = token_for(account, "admin")
    ApiToken.objects.filter(pk=row_of(other).pk).update(secret_digest_key_id="")
    dependent(TOKENS).stamp(root_keys())
    root_key_file.rotate()
    reseal_others()
    retire_previous(root_key_file)
    assert client_with(other).get(KEYS).status_code == 401  # ...not after it
    assert (
        client_with(unused).get(KEYS).status_code == 401
    )  # moved once, not since: under the retired key too


def test_end_unmovable_revokes_what_is_left_and_audits_each_revocation(
    account: Account, admin: Persona, root_key_file: Any
) -> None:
    token = token_for(account, "admin")
    root_key_file.rotate()
    current = token_for(account, "admin")  # made under the new key: left alone
    assert dependent(TOKENS).end_unmovable(root_keys()) == 1
    assert row_of(token).revoked_at is not None and row_of(current).revoked_at is None
    event = AuditEvent.objects.filter(operation="kmsconsole:RevokeApiToken").order_by("-seq").first()
    assert event is not None
    assert (event.caller_arn, event.decision, event.interface) == (
        "kmsconsole:operator/manage.py rootkey retire",
        "allowed",
        "cli",
    )
    assert event.request_parameters == {"TokenId": row_of(token).pk}
    assert token.split("_", 2)[2] not in str(event.response_elements)
    assert remaining_count(TOKENS) == 0
    assert client_with(token).get(KEYS).status_code == 401
    assert client_with(current).get(KEYS).status_code == 200


def test_a_digest_a_database_writer_made_under_a_key_of_its_own_matches_nothing(
    account: Account, admin: Persona, root_key_file: Any
) -> None:
    genuine, token = token_for(account, "admin"), token_for(account, "admin")
    root_key_file.rotate()
    _, prefix, secret = token.split("_", 2)
    made_up = secrets.token_bytes(32)  # in no ring
    forged = hmac.new(made_up, f"{prefix}:{secret}".encode(), hashlib.sha256).hexdigest()
    # Even with the row MAC made again over it (the digest check alone refuses it).
    update_sealed(ApiToken.objects.filter(prefix=prefix), secret_digest=forged)
    assert client_with(genuine).get(KEYS).status_code == 200  # under the previous key: accepted
    assert client_with(token).get(KEYS).status_code == 401  # under no key of the ring: refused
    assert row_of(token).secret_digest == forged  # nothing re-hashed (and so blessed) it


def test_a_cursor_from_before_a_rotation_works_until_the_key_is_retired(
    admin_api: Any, root_key_file: Any
) -> None:
    for index in range(3):
        make_key(f"paged {index}")
    first = admin_api.get(KEYS, {"search": "paged", "page_size": "2"})
    cursor = cursor_of(first.json()["next"])
    root_key_file.rotate()
    after = admin_api.get(KEYS, {"search": "paged", "page_size": "2", "cursor": cursor})
    assert after.status_code == 200 and len(after.json()["results"]) == 1
    reseal_others()
    retire_previous(root_key_file)
    refused = admin_api.get(KEYS, {"search": "paged", "page_size": "2", "cursor": cursor})
    assert refused.status_code == 400
    assert "That page link is not valid for this list" in refused.content.decode()
