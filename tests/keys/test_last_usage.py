"""GetKeyLastUsage over boto3 against the live server: the last successful cryptographic operation with a key, read
from the audit trail, its event and request ids, TrackingStartDate, the key forms and states it takes, and who may
ask."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.loaders
import pytest
from botocore.exceptions import ClientError
from django.utils import timezone

from kmsconsole.api import reads
from kmsconsole.audit import retention
from kmsconsole.audit.models import KEY_USAGE_OPERATIONS, AuditEvent
from kmsconsole.operations import OPERATIONS, KeyResolution, KeyStates
from policies.analyzer.access import all_key_actions
from policies.engine.findings import KEY_ACTIONS
from tests.conftest import PARTNER_ACCOUNT, Persona, as_operator

pytestmark = pytest.mark.django_db(transaction=True)

PLAINTEXT = b"last usage"


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response["Error"]
    return error["Code"], error.get("Message", "")


def usage_of(client: Any, key_id: str) -> dict[str, Any]:
    response = client.get_key_last_usage(KeyId=key_id)
    response.pop("ResponseMetadata")
    return dict(response)


def event_of(response: dict[str, Any]) -> AuditEvent:
    """The one audit event of a boto3 call."""
    return AuditEvent.objects.get(request_id=response["ResponseMetadata"]["RequestId"])


def reported(event: AuditEvent) -> dict[str, Any]:
    """The KeyLastUsage GetKeyLastUsage gives for a use recorded as `event`."""
    return {
        "Operation": event.operation,
        "Timestamp": event.time,
        "CloudTrailEventId": str(event.event_id),
        "KmsRequestId": event.request_id,
    }


def same_moment(first: datetime, second: datetime) -> bool:
    # The wire carries epoch seconds as a JSON number: a microsecond may be lost on the way.
    return abs(first - second) < timedelta(milliseconds=1)


def last_usage_of(client: Any, key_id: str) -> dict[str, Any]:
    """KeyLastUsage, its Timestamp checked against the event's and then replaced by it (for equality)."""
    found = dict(usage_of(client, key_id)["KeyLastUsage"])
    if found:
        event = AuditEvent.objects.get(event_id=found["CloudTrailEventId"])
        assert same_moment(found["Timestamp"], event.time)
        found["Timestamp"] = event.time
    return found


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def identity_policy(*actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
        }
    )


def test_the_tracked_operations_are_botocores_and_every_one_is_a_cryptographic_operation() -> None:
    model = botocore.loaders.Loader().load_service_model("kms", "service-2")
    assert set(KEY_USAGE_OPERATIONS) == set(model["shapes"]["KeyLastUsageTrackingOperation"]["enum"])
    for name in KEY_USAGE_OPERATIONS:
        assert OPERATIONS[name].cacheable, name  # read-only, grantable, needs a usable key
    operation = OPERATIONS["GetKeyLastUsage"]
    assert (operation.action, operation.key_resolution, operation.key_states) == (
        "kms:GetKeyLastUsage",
        KeyResolution.KEY_ID_OR_ARN,
        KeyStates.ANY,
    )
    assert not operation.cross_account and not operation.grantable
    # The simulator's and the access matrix's actions come from the operation table; the findings keep their own
    # (the policy engine imports nothing of the app's), which must name every one of them.
    assert "kms:GetKeyLastUsage" in all_key_actions()
    assert set(all_key_actions()) <= set(KEY_ACTIONS)


def test_an_unused_key_reports_an_empty_usage_tracked_since_its_creation(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key = create_key()
    response = admin_kms.get_key_last_usage(KeyId=key["KeyId"])
    assert response["KeyId"] == key["KeyId"]
    assert response["KeyLastUsage"] == {}
    assert same_moment(response["KeyCreationDate"], key["CreationDate"])
    assert response["TrackingStartDate"] == response["KeyCreationDate"]
    # Asking, describing and listing are not uses.
    admin_kms.describe_key(KeyId=key["KeyId"])
    admin_kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")
    assert usage_of(admin_kms, key["Arn"])["KeyLastUsage"] == {}
    event = event_of(response)
    assert (event.operation, event.decision, event.key_arn) == ("GetKeyLastUsage", "allowed", key["Arn"])
    assert event.request_parameters == {"KeyId": key["KeyId"]}


def test_an_encrypt_is_reported_with_its_event_and_request_ids(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key_id = create_key()["KeyId"]
    encrypted = admin_kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)
    use = event_of(encrypted)
    assert last_usage_of(admin_kms, key_id) == reported(use)
    assert use.request_id == encrypted["ResponseMetadata"]["RequestId"]
    # A use through an alias is the key's use too; the latest one is reported.
    admin_kms.create_alias(AliasName="alias/last-usage", TargetKeyId=key_id)
    generated = admin_kms.generate_data_key(KeyId="alias/last-usage", KeySpec="AES_256")
    assert last_usage_of(admin_kms, key_id) == reported(event_of(generated))


def test_a_refused_or_failed_decrypt_is_not_a_use(
    admin_kms: Any,
    kms_client: Callable[..., Any],
    create_key: Callable[..., dict[str, Any]],
    outsider: Persona,
) -> None:
    key_id = create_key()["KeyId"]
    encrypted = admin_kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT, EncryptionContext={"app": "a"})
    blob = encrypted["CiphertextBlob"]
    # Refused by the key policy, failed on the ciphertext, and a dry run: none is a successful operation.
    assert error_of(lambda: kms_client(outsider).decrypt(CiphertextBlob=blob, KeyId=key_id))[0] == (
        "AccessDeniedException"
    )
    assert error_of(lambda: admin_kms.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "b"}))[0] == (
        "InvalidCiphertextException"
    )
    dry = error_of(
        lambda: admin_kms.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "a"}, DryRun=True)
    )
    assert dry[0] == "DryRunOperationException"
    decisions = set(
        AuditEvent.objects.filter(operation="Decrypt", key_arn__endswith=key_id).values_list(
            "decision", flat=True
        )
    )
    assert decisions == {"denied", "failed"}
    assert last_usage_of(admin_kms, key_id) == reported(event_of(encrypted))

    decrypted = admin_kms.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "a"})
    assert last_usage_of(admin_kms, key_id) == reported(event_of(decrypted))


def test_a_re_encrypt_is_a_use_of_both_its_keys(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    source, destination = create_key()["KeyId"], create_key()["KeyId"]
    blob = admin_kms.encrypt(KeyId=source, Plaintext=PLAINTEXT)["CiphertextBlob"]
    admin_kms.encrypt(KeyId=destination, Plaintext=PLAINTEXT)
    moved = admin_kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=destination)
    re_encrypted = reported(event_of(moved))
    assert re_encrypted["Operation"] == "ReEncrypt"
    assert last_usage_of(admin_kms, source) == last_usage_of(admin_kms, destination) == re_encrypted

    # A later use of one key moves only that key's answer; a refused ReEncrypt (a disabled destination) is
    # nobody's use.
    later = admin_kms.encrypt(KeyId=destination, Plaintext=PLAINTEXT)
    admin_kms.disable_key(KeyId=destination)
    assert error_of(lambda: admin_kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=destination))[0] == (
        "DisabledException"
    )
    assert last_usage_of(admin_kms, source) == re_encrypted
    assert last_usage_of(admin_kms, destination) == reported(event_of(later))


def test_only_a_key_id_or_key_arn_of_the_callers_account_names_the_key(
    admin_kms: Any,
    kms_client: Callable[..., Any],
    create_key: Callable[..., dict[str, Any]],
    partner: Callable[..., Persona],
) -> None:
    key = create_key()
    admin_kms.create_alias(AliasName="alias/not-for-usage", TargetKeyId=key["KeyId"])
    alias_arn = key["Arn"].replace(f"key/{key['KeyId']}", "alias/not-for-usage")
    # As the other key-id-or-ARN operations refuse an alias (kms-spec §1: "Alias names are not supported").
    for named in ("alias/not-for-usage", alias_arn):
        assert error_of(lambda n=named: admin_kms.get_key_last_usage(KeyId=n)) == (
            "NotFoundException",
            f"Invalid keyId '{named}'",
        )
    assert admin_kms.get_key_last_usage(KeyId=key["Arn"])["KeyId"] == key["KeyId"]
    # Not cross-account, whatever the key policy says.
    outside = kms_client(partner("reader", identity_policy("kms:*")))
    assert error_of(lambda: outside.get_key_last_usage(KeyId=key["Arn"])) == (
        "NotFoundException",
        f"Key '{key['Arn']}' does not exist",
    )


def test_reading_the_last_usage_needs_kms_get_key_last_usage(
    kms_client: Callable[..., Any],
    create_key: Callable[..., dict[str, Any]],
    make_user: Callable[..., Persona],
    outsider: Persona,
) -> None:
    key = create_key()  # the default key policy lets the account's IAM policies decide
    describer = kms_client(make_user("describer", identity_policy("kms:DescribeKey", "kms:Get*Policy")))
    reader = kms_client(make_user("usage-reader", identity_policy("kms:GetKeyLastUsage")))
    for client, name in ((kms_client(outsider), "outsider"), (describer, "describer")):
        since = last_seq()
        code, message = error_of(lambda c=client: c.get_key_last_usage(KeyId=key["KeyId"]))
        assert code == "AccessDeniedException"
        assert message.startswith(
            f"User: arn:aws:iam::111122223333:user/{name} is not authorized to perform: "
            f"kms:GetKeyLastUsage on resource: {key['Arn']}"
        )
        event = AuditEvent.objects.get(seq__gt=since)  # one event, the denial
        assert (event.operation, event.decision, event.key_arn) == ("GetKeyLastUsage", "denied", key["Arn"])
    assert reader.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"] == {}


def test_the_last_usage_is_read_in_every_key_state(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key_id = create_key()["KeyId"]
    use = reported(event_of(admin_kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)))
    admin_kms.disable_key(KeyId=key_id)
    assert last_usage_of(admin_kms, key_id) == use
    admin_kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert last_usage_of(admin_kms, key_id) == use
    for spec in (
        {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"},
        {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"},
    ):
        other = create_key(**spec)["KeyId"]
        assert admin_kms.get_key_last_usage(KeyId=other)["KeyLastUsage"] == {}


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> int:
    folder = tmp_path / "audit-archive"
    monkeypatch.setattr(retention, "archive_dir", lambda: folder)
    settings.KMS_AUDIT_RETENTION_DAYS = 30
    return 30


def test_tracking_starts_where_the_trail_in_the_database_begins(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], archive: int
) -> None:
    key_id = create_key()["KeyId"]
    admin_kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)
    kept = admin_kms.describe_key(KeyId=key_id)  # the first event retention keeps
    first_kept = event_of(kept)
    # Retention archives (and removes) every event before the DescribeKey, the Encrypt among them.
    run = retention.archive_due(now=first_kept.time + timedelta(days=archive))
    assert run.error == "" and run.processed > 0
    assert AuditEvent.objects.order_by("seq").first() == first_kept
    response = usage_of(admin_kms, key_id)
    assert response["KeyLastUsage"] == {}
    assert same_moment(response["TrackingStartDate"], first_kept.time)
    assert response["KeyCreationDate"] < response["TrackingStartDate"]  # the key may have been used before
    # A key created after the trail's beginning is tracked from its creation.
    newer = create_key()
    assert usage_of(admin_kms, newer["KeyId"])["TrackingStartDate"] == newer["CreationDate"]
    assert timezone.now() - first_kept.time < timedelta(minutes=5)


def shared_with_partner() -> str:
    """A key policy giving every action to this account's root and to the partner account's (IAM decides)."""
    roots = [f"arn:aws:iam::{account}:root" for account in ("111122223333", PARTNER_ACCOUNT)]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": roots}, "Action": "kms:*", "Resource": "*"}
            ],
        }
    )


def test_another_accounts_use_of_the_key_counts_for_its_owner(
    admin_kms: Any,
    kms_client: Callable[..., Any],
    create_key: Callable[..., dict[str, Any]],
    partner: Callable[..., Persona],
) -> None:
    key = create_key(Policy=shared_with_partner())
    outside = kms_client(partner("key-user", identity_policy("kms:*")))
    used = outside.encrypt(KeyId=key["Arn"], Plaintext=PLAINTEXT)
    event = event_of(used)
    assert (event.caller_account, event.key_arn) == (PARTNER_ACCOUNT, key["Arn"])
    assert last_usage_of(admin_kms, key["KeyId"]) == reported(event)


def test_a_cross_account_re_encrypt_counts_for_the_source_key_and_its_owner_opens_its_event(
    admin_kms: Any,
    kms_client: Callable[..., Any],
    create_key: Callable[..., dict[str, Any]],
    partner: Callable[..., Persona],
) -> None:
    source = create_key(Policy=shared_with_partner())
    blob = admin_kms.encrypt(KeyId=source["KeyId"], Plaintext=PLAINTEXT)["CiphertextBlob"]
    outside = kms_client(partner("mover", identity_policy("kms:*")))
    destination = outside.create_key()["KeyMetadata"]
    moved = outside.re_encrypt(
        CiphertextBlob=blob, SourceKeyId=source["Arn"], DestinationKeyId=destination["KeyId"]
    )
    event = event_of(moved)
    assert (event.caller_account, event.key_arn) == (PARTNER_ACCOUNT, destination["Arn"])
    assert last_usage_of(admin_kms, source["KeyId"]) == reported(event)
    # The source key's owner reads the event the answer names (GetAuditEvent, this account's operator).
    read = as_operator(
        "kmsconsole:GetAuditEvent", lambda ctx: reads.audit_event(ctx=ctx, event_id=str(event.event_id))
    )
    assert read.event.event_id == event.event_id


def test_a_mismatched_signature_or_mac_is_not_a_use(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    signing = create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyId"]
    signature = admin_kms.sign(KeyId=signing, Message=PLAINTEXT, SigningAlgorithm="ECDSA_SHA_256")[
        "Signature"
    ]
    signed = AuditEvent.objects.filter(operation="Sign").latest("seq")
    code, _ = error_of(
        lambda: admin_kms.verify(
            KeyId=signing, Message=b"another message", Signature=signature, SigningAlgorithm="ECDSA_SHA_256"
        )
    )
    assert code == "KMSInvalidSignatureException"
    assert last_usage_of(admin_kms, signing) == reported(signed)

    hmac_key = create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyId"]
    code, _ = error_of(
        lambda: admin_kms.verify_mac(
            KeyId=hmac_key, Message=PLAINTEXT, Mac=b"\0" * 32, MacAlgorithm="HMAC_SHA_256"
        )
    )
    assert code == "KMSInvalidMacException"
    assert usage_of(admin_kms, hmac_key)["KeyLastUsage"] == {}
    failed = AuditEvent.objects.filter(operation__in=("Verify", "VerifyMac")).values_list(
        "operation", "decision"
    )
    assert sorted(failed) == [("Verify", "failed"), ("VerifyMac", "failed")]
