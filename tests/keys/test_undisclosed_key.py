"""A ciphertext whose key the request does not name (Decrypt without KeyId, ReEncrypt without SourceKeyId, or a bare
key id the caller's account does not have), of another account's key the caller may not use, over boto3 against the
live server: answered as AWS answers it, in the words it gives a key that does not exist, and read back from the
caller's own trail without the key or the key owner's reasons, while the key owner's trail keeps them whole
(keys.services.crypto, kmsconsole.audit.shown)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.test import Client
from django.urls import reverse

from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import Scope
from kmsconsole.audit.shown import (
    found_by_key,
    hidden_from_caller,
    shown_decided_by,
    shown_key_arn,
    shown_values,
    undisclosed_to_caller,
)
from kmsconsole.core.errors import UNDISCLOSED_REASON
from policies.models import Account
from tests.api.conftest import client_with, token_for
from tests.audit.dashboard_support import append, event_values
from tests.conftest import ALLOW_ALL, Persona
from tests.console.conftest import console  # noqa: F401 - the signed-in console client, as a fixture
from tests.grants.test_integrated_service import via
from tests.keys.test_crypto_ops import (
    ACCOUNT,
    CONTEXT,
    PARTNER,
    ROOT,
    allow,
    error_of,
    no_usable_key,
    policy,
    run,
)

pytestmark = pytest.mark.django_db(transaction=True)

# The key owner's statement that lets the partner's account in (its principals still need an identity policy).
OWNER_SID = "Partner decrypts payroll"
TRAIL = "/console/audit/"
EVENTS = "/api/v1/audit-events"
# The fields of an event the caller's side shows otherwise than stored, and what tells one refusal from another.
TOLD = ("key_arn", "reason", "decided_by", "decision", "error_code", "error_message", "response_elements")


@pytest.fixture
def payroll(admin_kms: Any) -> tuple[dict[str, Any], bytes]:
    """A key of the main account whose policy lets the partner account decrypt, and a ciphertext under it."""
    partner_root = allow(f"arn:aws:iam::{PARTNER}:root", "kms:Decrypt", "kms:ReEncryptFrom", sid=OWNER_SID)
    key = admin_kms.create_key(Policy=policy(ROOT, partner_root))["KeyMetadata"]
    blob = admin_kms.encrypt(KeyId=key["Arn"], Plaintext=b"payroll", EncryptionContext=CONTEXT)
    return key, bytes(blob["CiphertextBlob"])


def partner_arn(key_id: str) -> str:
    """The ARN a bare key id names in the partner's account."""
    return f"arn:{settings.KMS_PARTITION}:kms:{settings.KMS_REGION}:{PARTNER}:key/{key_id}"


def api_of(account_id: str, persona: Persona) -> Any:
    return client_with(token_for(Account.objects.get(account_id=account_id), persona.name))


def listed(api: Any, **query: str) -> list[dict[str, Any]]:
    answer = api.get(EVENTS, query)
    assert answer.status_code == 200, answer.content
    return list(answer.json()["results"])


def test_another_accounts_key_is_refused_in_the_words_of_a_key_that_does_not_exist(
    kms_client: Callable[..., Any], partner: Callable[..., Persona], payroll: tuple[dict[str, Any], bytes]
) -> None:
    key, blob = payroll
    clerk = partner("clerk")  # no identity policy: the key policy's trust in its account is not enough
    kms = kms_client(clerk)
    forged = blob[:1] + bytes(16) + blob[17:]  # a header naming a key that exists nowhere
    destination = kms_client(partner(None)).create_key()["KeyMetadata"]["Arn"]  # the partner's own key

    denied = run(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT))
    assert denied.error == no_usable_key(clerk.arn)
    assert key["KeyId"] not in denied.error[1] and ACCOUNT not in denied.error[1]
    assert denied.trail == ("Decrypt", "denied", key["Arn"])  # stored whole, for the key owner
    assert error_of(lambda: kms.decrypt(CiphertextBlob=forged, EncryptionContext=CONTEXT)) == denied.error
    # A dry run is refused alike, and so is ReEncrypt's source (its own action).
    dry = error_of(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT, DryRun=True))
    assert dry == denied.error
    for ciphertext in (blob, forged):
        moved = error_of(
            lambda c=ciphertext: kms.re_encrypt(
                CiphertextBlob=c, SourceEncryptionContext=CONTEXT, DestinationKeyId=destination
            )
        )
        assert moved == no_usable_key(clerk.arn, "kms:ReEncryptFrom")
    # A bare key id names a key of the caller's account, as on AWS: NotFoundException, as for one that exists
    # nowhere.
    for ciphertext, key_id in ((blob, key["KeyId"]), (forged, "00000000-0000-0000-0000-000000000000")):
        by_id = error_of(lambda c=ciphertext, k=key_id: kms.decrypt(CiphertextBlob=c, KeyId=k))
        assert by_id == ("NotFoundException", f"Key '{partner_arn(key_id)}' does not exist")
    # The same answers when the caller's own IAM allows everything: the key owner's policy decides, unseen.
    admitted = kms_client(partner("admitted", ALLOW_ALL))
    opened = admitted.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT)
    assert (opened["Plaintext"], opened["KeyId"]) == (b"payroll", key["Arn"])


def test_the_callers_trail_says_no_more_than_the_answer_and_the_owners_keeps_every_reason(
    kms_client: Callable[..., Any],
    partner: Callable[..., Persona],
    admin: Persona,
    console: Callable[..., Client],  # noqa: F811 - the fixture imported above
    payroll: tuple[dict[str, Any], bytes],
) -> None:
    key, blob = payroll
    clerk = partner("clerk")
    kms = kms_client(clerk)
    forged = blob[:1] + bytes(16) + blob[17:]
    existing = run(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT)).event
    nowhere = run(lambda: kms.decrypt(CiphertextBlob=forged, EncryptionContext=CONTEXT)).event
    by_key_id = run(lambda: kms.decrypt(CiphertextBlob=blob, KeyId=key["KeyId"])).event
    stored = AuditEvent.objects.get(pk=existing.pk)
    # The chained record is whole: the owner's statement in the reason, what was missing as what decided.
    assert OWNER_SID in stored.reason and stored.decided_by == "missing: an identity-policy allow"
    assert AuditEvent.objects.get(pk=by_key_id.pk).key_arn == key["Arn"]
    # The owner's statement, its key and account, and the engine's words about the key's policy (what it allows).
    owners_words = (
        OWNER_SID,
        key["Arn"],
        f":{ACCOUNT}:",
        "in the key policy",
        "a statement in the key",
        "also needs",
    )

    # The partner's account reads its own requests: the refusal of a key that exists and of one that does not
    # are told alike, with nothing of the key owner's.
    auditor = partner("auditor", ALLOW_ALL)
    api = api_of(PARTNER, auditor)
    mine = {event["event_id"]: event for event in listed(api, operation="Decrypt")}
    shown = [mine[str(event.event_id)] for event in (existing, nowhere, by_key_id)]
    for event in shown:
        assert (event["key_arn"], event["reason"], event["decided_by"]) == ("", UNDISCLOSED_REASON, "")
        assert event["decision"] == "denied"
    assert {name: shown[0][name] for name in TOLD} == {name: shown[1][name] for name in TOLD}
    assert shown[2]["error_code"] == "NotFoundException"
    detail = api.get(f"{EVENTS}/{existing.event_id}")
    assert detail.status_code == 200 and detail.json()["key_arn"] == ""
    page = console(auditor)
    texts = [
        json.dumps(list(mine.values())),
        detail.content.decode(),
        page.get(TRAIL).content.decode(),  # the rows, the charts (keys, refusals) and the notable events
        page.get("/").content.decode(),  # the overview's newest refusals
        page.get(f"{TRAIL}events/{existing.event_id}/").content.decode(),
        *(
            b"".join(page.get(reverse(view)).streaming_content).decode()
            for view in ("console:audit-export-csv", "console:audit-export-jsonl")
        ),
    ]
    for text in texts:
        assert not [word for word in owners_words if word in text]
    # No filter finds the event by the key it hides, or by the statement that decided it (asked after the reads
    # above: the trail's own events record the filters as asked).
    assert listed(api, key_arn=key["Arn"]) == []
    # Nor by the key's account (the REST list's `account` goes through the same filter on a key as `key_arn`).
    hidden = {str(event.event_id) for event in (existing, nowhere, by_key_id)}
    assert not hidden & {event["event_id"] for event in listed(api, account=ACCOUNT)}
    filtered = page.get(TRAIL, {"key": key["Arn"]}).content.decode()
    assert "No events match these filters" in filtered
    for label in ("a statement in the key owner's key policy", stored.decided_by):
        by_label = page.get(TRAIL, {"decided_by": label}).content.decode()
        assert "No events match these filters" in by_label

    # The key's owner reads the partner's requests on its key whole: the key, its statement, why it fell short.
    owner = api_of(ACCOUNT, admin)
    theirs = {e["event_id"]: e for e in listed(owner, scope="key-owner", key_arn=key["Arn"])}
    assert {str(existing.event_id), str(by_key_id.event_id)} <= set(theirs)
    assert str(nowhere.event_id) not in theirs
    seen = theirs[str(existing.event_id)]
    assert seen["key_arn"] == key["Arn"] and seen["decided_by"] == stored.decided_by
    assert seen["reason"] == stored.reason and f"account {PARTNER} also needs" in seen["reason"]
    assert seen["error_message"] == no_usable_key(clerk.arn)[1]  # what the caller was answered


def test_a_refusal_on_the_callers_own_key_still_names_it(
    admin_kms: Any, kms_client: Callable[..., Any], admin: Persona, outsider: Persona
) -> None:
    key = admin_kms.create_key()["KeyMetadata"]  # the default policy: the account's IAM decides
    blob = admin_kms.encrypt(KeyId=key["Arn"], Plaintext=b"x")["CiphertextBlob"]
    refused = run(lambda: kms_client(outsider).decrypt(CiphertextBlob=blob))
    assert refused.error == (
        "AccessDeniedException",
        f"User: {outsider.arn} is not authorized to perform: kms:Decrypt on resource: {key['Arn']} because no "
        "identity-based policy allows the kms:Decrypt action",
    )
    own = {e["event_id"]: e for e in listed(api_of(ACCOUNT, admin), key_arn=key["Arn"])}
    event = own[str(refused.event.event_id)]
    assert event["key_arn"] == key["Arn"] and event["reason"] == refused.event.reason != UNDISCLOSED_REASON


def test_no_other_refusal_of_the_key_check_tells_the_key_exists(
    kms_client: Callable[..., Any], partner: Callable[..., Persona], payroll: tuple[dict[str, Any], bytes]
) -> None:
    """A claim to come through an integrated service that is not registered is refused before the key policy is read
    (ValidationException): on a key the caller may not be told of, that too would say the key exists."""
    key, blob = payroll
    clerk = partner("clerk", ALLOW_ALL)
    kms = via(kms_client(clerk), "unregistered.us-east-1.amazonaws.com")
    forged = blob[:1] + bytes(16) + blob[17:]
    existing = run(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT))
    assert existing.error == no_usable_key(clerk.arn)
    assert error_of(lambda: kms.decrypt(CiphertextBlob=forged, EncryptionContext=CONTEXT)) == existing.error
    # The key owner reads the refusal as it was.
    stored = AuditEvent.objects.get(pk=existing.event.pk)
    assert (stored.key_arn, stored.decision) == (key["Arn"], "denied")
    assert stored.reason.startswith(
        "denied: ValidationException: unregistered.us-east-1.amazonaws.com is not"
    )


# An event of the main account's key, read by the partner's account (the caller's side): which ones it sees without
# the key. (decision, error_code, error_message, hidden)
CASES = [
    ("denied", "AccessDeniedException", no_usable_key("arn:aws:iam::444455556666:user/clerk")[1], True),
    (
        "denied",
        "NotFoundException",
        "Key 'arn:aws:kms:us-east-1:444455556666:key/x' does not exist",
        True,
    ),
    # How such a refusal was answered before (its chained events keep it): shown as the new ones are.
    ("denied", "InvalidCiphertextException", "", True),
    # A refusal that named the key, and failures after the caller was allowed on it, keep their key.
    (
        "denied",
        "AccessDeniedException",
        "User: u is not authorized to perform: kms:Decrypt on resource: k",
        False,
    ),
    ("failed", "InvalidCiphertextException", "", False),
    ("failed", "NotFoundException", "Key 'k' does not exist", False),
]
OTHER_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(("decision", "error_code", "error_message", "hidden"), CASES)
def test_which_events_the_callers_side_shows_without_their_key(
    decision: str, error_code: str, error_message: str, hidden: bool
) -> None:
    values = {
        "decision": decision,
        "error_code": error_code,
        "error_message": error_message,
        "key_arn": OTHER_KEY,
    }
    assert undisclosed_to_caller(values, PARTNER, Scope.CALLER) is hidden
    assert undisclosed_to_caller(values, ACCOUNT, Scope.KEY_OWNER) is False  # the key owner reads it whole


@pytest.mark.parametrize(("decision", "error_code", "error_message", "hidden"), CASES)
def test_the_sql_side_hides_the_same_stored_events(
    decision: str, error_code: str, error_message: str, hidden: bool
) -> None:
    """The same cases, stored on the chain and read back through the SQL side of the rule (what the filters and the
    charts use): it hides exactly what the Python side hides, and shows the same key and "decided by"."""
    append(
        [
            event_values(
                operation="Decrypt",
                caller_arn=f"arn:aws:iam::{PARTNER}:user/clerk",
                caller_account=PARTNER,
                key_arn=OTHER_KEY,
                request_parameters={},
                decision=decision,
                error_code=error_code,
                error_message=error_message,
                reason=f"denied: no statement in the key policy allows account {PARTNER}",
                decided_by=f"statement '{OWNER_SID}' in the key policy",
            )
        ]
    )
    stored = AuditEvent.objects.filter(seq=AuditEvent.objects.order_by("-seq").values("seq")[:1])
    for reader, scope in ((PARTNER, Scope.CALLER), (ACCOUNT, Scope.KEY_OWNER)):
        row = (
            stored.annotate(shown_key=shown_key_arn(reader, scope), shown_by=shown_decided_by(reader, scope))
            .values()
            .get()
        )
        in_python = shown_values(dict(row), reader, scope)
        assert (row["shown_key"], row["shown_by"]) == (in_python["key_arn"], in_python["decided_by"])
        assert (row["shown_key"] == "") is (hidden and scope is Scope.CALLER)
        assert found_by_key(stored, reader, scope).exists() is not (hidden and scope is Scope.CALLER)
    assert stored.filter(hidden_from_caller(PARTNER)).exists() is hidden
    assert not stored.filter(hidden_from_caller(ACCOUNT)).exists()  # the key's own account never hides it


def answer(send: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """A refused call's HTTP status and its whole error (code and message), as boto3 read them off the wire."""
    try:
        send()
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]
    raise AssertionError("the call should have failed")


def test_re_encrypt_answers_a_key_that_exists_nowhere_and_another_accounts_key_alike_whatever_the_destination(
    kms_client: Callable[..., Any], partner: Callable[..., Persona], payroll: tuple[dict[str, Any], bytes]
) -> None:
    """The destination is looked up before a source the caller may not be told of is refused, for both kinds of
    source: a destination that does not exist gets its NotFoundException for both, a good one lets both reach the
    same refusal. Were the destination looked up between them, its answer would tell the two apart."""
    key, blob = payroll
    clerk = partner("clerk")
    kms = kms_client(clerk)
    forged = blob[:1] + bytes(16) + blob[17:]  # a header naming a key that exists nowhere
    # Each ciphertext with the key id its header names (what a bare SourceKeyId must be to reach that key).
    sources = ((blob, key["KeyId"]), (forged, "00000000-0000-0000-0000-000000000000"))
    missing = partner_arn("99999999-9999-9999-9999-999999999999")
    valid = kms_client(partner(None)).create_key()["KeyMetadata"]["Arn"]
    not_found = (400, {"Code": "NotFoundException", "Message": f"Key '{missing}' does not exist"})
    refused = (
        400,
        dict(zip(("Code", "Message"), no_usable_key(clerk.arn, "kms:ReEncryptFrom"), strict=True)),
    )
    # The answer to a bare key id names the id asked for: the same once that id is put aside.
    by_id = (400, {"Code": "NotFoundException", "Message": f"Key '{partner_arn('<id>')}' does not exist"})
    for destination, without_key_id, with_key_id in (
        (missing, not_found, not_found),
        (valid, refused, by_id),
    ):
        for bare in (False, True):
            answers = []
            for ciphertext, key_id in sources:
                extra = {"SourceKeyId": key_id} if bare else {}
                status, error = answer(
                    lambda c=ciphertext, d=destination, e=extra: kms.re_encrypt(
                        CiphertextBlob=c, SourceEncryptionContext=CONTEXT, DestinationKeyId=d, **e
                    )
                )
                answers.append((status, {name: text.replace(key_id, "<id>") for name, text in error.items()}))
            assert answers == [with_key_id if bare else without_key_id] * 2, (destination, bare)
