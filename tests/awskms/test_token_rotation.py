"""Role-session tokens and List* markers across a root-key rotation, through the AWS endpoint (boto3, live server).

A session assumed before a rotation works after it and its token moves to the current key on the first request
(its access key's row MAC made again, every process's cached credentials rebuilt); one nobody uses is counted by
"session token digests", is refused once the previous key is retired, and `end_unmovable` ends it (audited). A
marker from before a rotation works until the key is retired, then is InvalidMarkerException."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import root_keys
from kmsconsole.core.rowmac import is_under_current_root_key
from kmsconsole.generations.models import Generation
from policies.models import AccessKey, IamRole, RoleSession
from tests.awskms.test_endpoint import error_of
from tests.conftest import ALLOW_ALL, Persona
from tests.rootkeys import dependent, locked_elsewhere, remaining_count, reseal_others, retire_previous
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db(transaction=True)

SESSIONS = "session token digests"
ACCOUNT = "111122223333"
UNRECOGNIZED = "UnrecognizedClientException"


def session_row(persona: Persona) -> RoleSession:
    session = AccessKey.objects.get(access_key_id=persona.access_key_id).session
    assert session is not None
    return session


def test_a_session_from_before_a_rotation_works_and_moves_to_the_current_key_on_first_use(
    kms_client: Any, admin: Persona, role_session: Callable[..., Persona], root_key_file: Any
) -> None:
    arn = kms_client(admin).create_key()["KeyMetadata"]["Arn"]
    session = role_session("app", ALLOW_ALL)
    client = kms_client(session)
    client.encrypt(KeyId=arn, Plaintext=b"x")  # its credentials are now in the process cache
    before = session_row(session)
    assert before.session_token_key_id == root_keys().current.key_id
    new_key = root_key_file.rotate()
    assert remaining_count(SESSIONS) == 1

    # Served from the cache under the old digest, moved, and (its generation moved) served again: never refused.
    assert client.encrypt(KeyId=arn, Plaintext=b"x")["KeyId"] == arn
    moved = session_row(session)
    assert moved.session_token_key_id == new_key and moved.session_token_digest != before.session_token_digest
    key = AccessKey.objects.select_related("account", "session__role__account").get(pk=moved.access_key.pk)
    key.check_row()  # its MAC covers the digest: made again over it
    assert is_under_current_root_key(key.mac, AccessKey.MAC_KIND, *key.mac_fields())
    assert remaining_count(SESSIONS) == 0
    assert client.encrypt(KeyId=arn, Plaintext=b"x")["KeyId"] == arn
    assert session_row(session).session_token_digest == moved.session_token_digest  # moved once
    assert session.session_token not in str(list(AuditEvent.objects.values()))
    reseal_others()
    retire_previous(root_key_file)
    assert len(client.generate_random(NumberOfBytes=4)["Plaintext"]) == 4


@pytest.mark.parametrize("held", ["role", "access key", "generation"])
def test_a_rehash_that_would_wait_is_left_for_the_next_use_and_the_request_succeeds(
    held: str, kms_client: Any, role_session: Callable[..., Persona], root_key_file: Any
) -> None:
    session = role_session("app", ALLOW_ALL)
    row = session_row(session)
    old_key = row.session_token_key_id
    new_key = root_key_file.rotate()
    lock = {
        # A change of the role (PutRolePolicy, DeleteRole) holds its row FOR UPDATE.
        "role": lambda: list(IamRole.objects.select_for_update().filter(pk=row.role_id)),
        "access key": lambda: list(AccessKey.objects.select_for_update().filter(session=row)),
        # Any write to the account's principals holds its generation row.
        "generation": lambda: list(Generation.objects.select_for_update().filter(scope=f"iam:{ACCOUNT}")),
    }[held]
    with locked_elsewhere(lock):
        assert len(kms_client(session).generate_random(NumberOfBytes=1)["Plaintext"]) == 1
        assert session_row(session).session_token_key_id == old_key  # not now: it would have waited
    assert len(kms_client(session).generate_random(NumberOfBytes=1)["Plaintext"]) == 1
    assert session_row(session).session_token_key_id == new_key


def test_a_session_nobody_uses_is_counted_and_refused_after_retire(
    kms_client: Any, role_session: Callable[..., Persona], root_key_file: Any
) -> None:
    unused = role_session("app", ALLOW_ALL)
    expired = role_session("old", ALLOW_ALL)
    update_sealed(
        RoleSession.objects.filter(pk=session_row(expired).pk),
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    RoleSession.objects.filter(pk=session_row(unused).pk).update(session_token_key_id="")
    assert remaining_count(SESSIONS) == 1  # unknown: counted until stamped
    dependent(SESSIONS).stamp(root_keys())
    assert session_row(unused).session_token_key_id == root_keys().current.key_id
    root_key_file.rotate()
    found = dependent(SESSIONS).remaining(root_keys())
    assert (found.count, found.movable) == (1, False)  # not the expired one
    assert "next time it is used" in found.how_they_move
    reseal_others()  # everything else the request reads is under the new key: only the token's digest is not
    retire_previous(root_key_file)
    assert error_of(lambda: kms_client(unused).generate_random(NumberOfBytes=1))["Code"] == UNRECOGNIZED


def test_end_unmovable_ends_the_sessions_left_and_audits_it(
    kms_client: Any, role_session: Callable[..., Persona], root_key_file: Any
) -> None:
    session = role_session("app", ALLOW_ALL)
    role_arn = session_row(session).role.arn
    root_key_file.rotate()
    assert dependent(SESSIONS).end_unmovable(root_keys()) == 1
    assert not RoleSession.objects.exists() and not AccessKey.objects.filter(kind="session").exists()
    event = AuditEvent.objects.filter(operation="kmsconsole:EndRoleSessions").get()
    assert (event.caller_arn, event.decision, event.interface) == (
        "kmsconsole:operator/manage.py rootkey retire",
        "allowed",
        "cli",
    )
    assert event.response_elements == {"RoleSessionsEnded": 1, "Roles": [role_arn]}
    assert remaining_count(SESSIONS) == 0
    assert error_of(lambda: kms_client(session).generate_random(NumberOfBytes=1))["Code"] == UNRECOGNIZED


def test_a_session_digest_under_a_key_of_its_own_is_refused(
    kms_client: Any, role_session: Callable[..., Persona], root_key_file: Any
) -> None:
    genuine, session = role_session("app", ALLOW_ALL), role_session("other", ALLOW_ALL)
    root_key_file.rotate()
    forged = hmac.new(secrets.token_bytes(32), session.session_token.encode(), hashlib.sha256).hexdigest()
    # Even with the access key's MAC made again over it (the digest check alone refuses it).
    update_sealed(RoleSession.objects.filter(pk=session_row(session).pk), session_token_digest=forged)
    assert len(kms_client(genuine).generate_random(NumberOfBytes=1)["Plaintext"]) == 1  # the previous key
    assert error_of(lambda: kms_client(session).generate_random(NumberOfBytes=1))["Code"] == UNRECOGNIZED
    assert session_row(session).session_token_digest == forged  # nothing re-hashed (and so blessed) it


def test_a_list_marker_from_before_a_rotation_works_until_the_key_is_retired(
    kms_client: Any, admin: Persona, root_key_file: Any
) -> None:
    client = kms_client(admin)
    for _ in range(3):
        client.create_key()
    marker = client.list_keys(Limit=1)["NextMarker"]
    root_key_file.rotate()
    assert len(client.list_keys(Limit=1, Marker=marker)["Keys"]) == 1
    reseal_others()
    retire_previous(root_key_file)
    refused = error_of(lambda: client.list_keys(Limit=1, Marker=marker))
    assert (refused["Code"], refused["status"]) == ("InvalidMarkerException", 400)
