"""Role-session tokens across a root-key rotation, against what runs at the same time: `rootkey retire
--end-unmovable` inside the retire operation's transaction, racing a session's first use or a role's deletion, a
second re-hash of a session already moved, and a process that has not read the rotated key file yet (a rolling
restart)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import root_keys
from kmsconsole.generations.models import Generation
from policies import session_tokens
from policies.models import AccessKey, RoleSession
from policies.selectors import credentials_for, session_token_key
from tests.conftest import ALLOW_ALL, Persona
from tests.races import Pause, finish, in_thread, waits_or_ends
from tests.rootkeys import chain_head_free_while_ending, dependent

pytestmark = pytest.mark.django_db(transaction=True)

SESSIONS = "session token digests"
ACCOUNT = "111122223333"


def end_in_the_retire_transaction() -> int:
    with transaction.atomic():  # as root_keys_retire runs it (its operation's transaction)
        return dependent(SESSIONS).end_unmovable(root_keys())


def test_end_unmovable_takes_the_audit_chain_head_last(
    role_session: Callable[..., Persona], root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Principal_locks rule 5: while the sessions are being ended (roles, sessions and generation rows locked) the
    chain head is free, so a DeleteRole that holds a role and waits for the head never deadlocks with this."""
    role_session("app", ALLOW_ALL)
    root_key_file.rotate()
    assert chain_head_free_while_ending(SESSIONS, session_tokens, monkeypatch) == 1
    assert AuditEvent.objects.filter(operation="kmsconsole:EndRoleSessions").count() == 1


def test_end_unmovable_leaves_a_session_that_moved_to_the_current_key_meanwhile(
    role_session: Callable[..., Persona], root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    persona = role_session("app", ALLOW_ALL)
    new_key = root_key_file.rotate()
    caller = credentials_for(persona.access_key_id).caller  # type: ignore[union-attr]
    # The session's first use re-hashes it and stops, its rows locked, before it commits.
    paused = Pause(session_tokens.digest_now, thread="user")
    monkeypatch.setattr(session_tokens, "digest_now", paused)
    results: dict[str, Any] = {}
    using = in_thread(
        lambda: session_tokens.session_token_rehash(caller, persona.session_token), results, "user"
    )
    assert paused.reached.wait(30)
    retiring = in_thread(end_in_the_retire_transaction, results, "retire")
    assert waits_or_ends(retiring) == "waiting"
    paused.release.set()
    finish(using, retiring, results=results)
    assert results == {"user": True, "retire": 0}
    session = RoleSession.objects.get()
    assert session.session_token_key_id == new_key
    AccessKey.objects.select_related("account", "session").get(kind="session").check_row()


def test_end_unmovable_counts_sessions_gone_meanwhile_as_ended(
    role_session: Callable[..., Persona], root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    role_session("app", ALLOW_ALL)
    root_key_file.rotate()
    original = session_tokens.role_sessions_end

    def after_the_sessions_ended(**kwargs: Any) -> Any:
        RoleSession.objects.all().delete()  # ended another way after they were listed
        return original(**kwargs)

    monkeypatch.setattr(session_tokens, "role_sessions_end", after_the_sessions_ended)
    assert dependent(SESSIONS).end_unmovable(root_keys()) == 0
    event = AuditEvent.objects.filter(operation="kmsconsole:EndRoleSessions").get()
    assert event.decision == "allowed"
    assert event.response_elements["RoleSessionsEnded"] == 0


def test_end_role_sessions_names_the_previous_keys_of_the_ring_given_and_the_count(
    role_session: Callable[..., Persona], root_key_file: Any
) -> None:
    role_session("app", ALLOW_ALL)
    root_key_file.rotate()
    root_key_file.rotate()
    ring = root_keys()
    given = dataclasses.replace(ring, previous=ring.previous[:1])
    assert dependent(SESSIONS).end_unmovable(given) == 1
    event = AuditEvent.objects.filter(operation="kmsconsole:EndRoleSessions").get()
    assert event.request_parameters == {"PreviousRootKeyIds": [ring.previous[0].key_id], "RoleSessions": 1}


def test_a_second_rehash_of_a_session_already_under_the_current_key_writes_nothing(
    role_session: Callable[..., Persona], root_key_file: Any
) -> None:
    persona = role_session("app", ALLOW_ALL)
    root_key_file.rotate()
    caller = credentials_for(persona.access_key_id).caller  # type: ignore[union-attr]
    assert session_tokens.session_token_rehash(caller, persona.session_token)
    before = Generation.objects.get(scope=f"iam:{ACCOUNT}").value
    digest = RoleSession.objects.get().session_token_digest
    # Another process, its cached credentials still holding the old digest, does the same a moment later.
    assert not session_tokens.session_token_rehash(caller, persona.session_token)
    assert Generation.objects.get(scope=f"iam:{ACCOUNT}").value == before
    assert RoleSession.objects.get().session_token_digest == digest


def test_a_session_rehashed_by_a_process_that_read_the_new_key_works_in_one_that_had_not_yet(
    kms_client: Any, role_session: Callable[..., Persona], root_key_file: Any
) -> None:
    client = kms_client(role_session("app", ALLOW_ALL))
    old_ring = root_key_file.path.read_text()
    new_key = root_key_file.rotate()
    new_ring = root_key_file.path.read_text()
    assert len(client.generate_random(NumberOfBytes=1)["Plaintext"]) == 1  # re-hashed, access key MACed again
    root_key_file.write(old_ring)  # this process has the old ring...
    root_key_file.path.write_text(new_ring)  # ...and the file is rotated, unread yet
    assert len(client.generate_random(NumberOfBytes=1)["Plaintext"]) == 1
    assert root_keys().current.key_id == new_key


def test_a_session_digest_under_a_key_this_process_has_not_read_yet_matches_once_it_reads_the_key_file(
    role_session: Callable[..., Persona], root_key_file: Any
) -> None:
    """The token is checked before anything else of the request reads a row under the new key (which would have
    made the process read its key file already)."""
    persona = role_session("app", ALLOW_ALL)
    old_ring = root_key_file.path.read_text()
    new_key = root_key_file.rotate()
    new_ring = root_key_file.path.read_text()
    caller = credentials_for(persona.access_key_id).caller  # type: ignore[union-attr]
    assert session_tokens.session_token_rehash(caller, persona.session_token)
    root_key_file.write(old_ring)
    root_key_file.path.write_text(new_ring)
    found = session_token_key(persona.session_token, RoleSession.objects.get().session_token_digest)
    assert found is not None and found.key_id == new_key
