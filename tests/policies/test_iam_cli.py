"""`manage.py iam`: the AWS CLI's shapes, JSON out, audited, secrets shown once and stored sealed."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from keys.crypto.sealing import SealingError
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import sealer
from policies.models import AccessKey, IamGroup, IamUser, IdentityPolicy

pytestmark = pytest.mark.django_db


def iam(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    call_command("iam", *args)
    out = capsys.readouterr().out
    return json.loads(out) if out.strip() else {}


def iam_error(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    with pytest.raises(SystemExit) as exited:
        call_command("iam", *args)
    assert exited.value.code == 254
    return json.loads(capsys.readouterr().err)["Error"]


def test_principals_have_aws_arns(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    user = iam(capsys, "create-user", "--user-name", "alice", "--path", "/eng/")["User"]
    assert user["Arn"] == "arn:aws:iam::111122223333:user/eng/alice"
    assert user["UserId"].startswith("AIDA") and len(user["UserId"]) == 21
    role = iam(capsys, "create-role", "--role-name", "app")["Role"]
    assert role["Arn"] == "arn:aws:iam::111122223333:role/app" and role["RoleId"].startswith("AROA")
    group = iam(capsys, "create-group", "--group-name", "devs")["Group"]
    assert group["Arn"] == "arn:aws:iam::111122223333:group/devs"
    iam(capsys, "add-user-to-group", "--group-name", "devs", "--user-name", "alice")
    assert list(IamGroup.objects.get(name="devs").members.values_list("name", flat=True)) == ["alice"]


def test_other_accounts(db: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert iam(capsys, "create-account", "--account-id", "444455556666")["Account"]["RootArn"] == (
        "arn:aws:iam::444455556666:root"
    )
    user = iam(capsys, "create-user", "--account-id", "444455556666", "--user-name", "bob")["User"]
    assert user["Arn"] == "arn:aws:iam::444455556666:user/bob"
    assert (
        iam_error(capsys, "create-account", "--account-id", "444455556666")["Code"] == "EntityAlreadyExists"
    )
    assert iam_error(capsys, "create-account", "--account-id", "12")["Code"] == "ValidationException"


def test_errors_are_json_with_aws_codes(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    iam(capsys, "create-user", "--user-name", "alice")
    assert iam_error(capsys, "create-user", "--user-name", "alice")["Code"] == "EntityAlreadyExists"
    assert iam_error(capsys, "create-user", "--user-name", "bad name!")["Code"] == "ValidationException"
    assert iam_error(capsys, "create-access-key", "--user-name", "nobody")["Code"] == "NoSuchEntity"
    assert (
        iam_error(
            capsys,
            "put-user-policy",
            "--user-name",
            "alice",
            "--policy-name",
            "p",
            "--policy-document",
            "{not json",
        )["Code"]
        == "MalformedPolicyDocumentException"
    )
    assert not IdentityPolicy.objects.exists()
    failed = AuditEvent.objects.filter(decision="failed").values_list("operation", "error_code")
    assert ("iam:CreateUser", "EntityAlreadyExists") in list(failed)


def test_identity_policy_is_stored_as_written(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    iam(capsys, "create-user", "--user-name", "alice")
    document = (
        '{\n  "Version": "2012-10-17",\n'
        '  "Statement": {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}\n}'
    )
    iam(
        capsys,
        "put-user-policy",
        "--user-name",
        "alice",
        "--policy-name",
        "kms",
        "--policy-document",
        document,
    )
    assert IdentityPolicy.objects.get(user__name="alice", name="kms").document == document


def test_access_key_secret_is_shown_once_and_sealed(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    iam(capsys, "create-user", "--user-name", "alice")
    key = iam(capsys, "create-access-key", "--user-name", "alice")["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["AccessKeyId"]) == 20
    secret = key["SecretAccessKey"]
    assert len(secret) == 40
    row = AccessKey.objects.get(access_key_id=key["AccessKeyId"])
    assert secret.encode() not in bytes(row.secret_sealed)
    assert sealer().open(bytes(row.secret_sealed), bound_to=row.sealing_identity).decode() == secret
    assert secret not in json.dumps(list(AuditEvent.objects.values()), default=str)
    root_key = iam(capsys, "create-access-key", "--root")["AccessKey"]
    assert root_key["AccessKeyId"].startswith("AKIA")


def test_a_sealed_secret_copied_to_another_row_does_not_open(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    iam(capsys, "create-user", "--user-name", "alice")
    first = iam(capsys, "create-access-key", "--user-name", "alice")["AccessKey"]["AccessKeyId"]
    second = iam(capsys, "create-access-key", "--user-name", "alice")["AccessKey"]["AccessKeyId"]
    source = AccessKey.objects.get(access_key_id=first)
    AccessKey.objects.filter(access_key_id=second).update(secret_sealed=source.secret_sealed)
    target = AccessKey.objects.get(access_key_id=second)
    with pytest.raises(SealingError):
        sealer().open(bytes(target.secret_sealed), bound_to=target.sealing_identity)


def test_two_access_keys_per_user(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    iam(capsys, "create-user", "--user-name", "alice")
    iam(capsys, "create-access-key", "--user-name", "alice")
    iam(capsys, "create-access-key", "--user-name", "alice")
    assert iam_error(capsys, "create-access-key", "--user-name", "alice")["Code"] == "LimitExceededException"


def test_access_keys_can_be_deactivated_and_deleted(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    iam(capsys, "create-user", "--user-name", "alice")
    key_id = iam(capsys, "create-access-key", "--user-name", "alice")["AccessKey"]["AccessKeyId"]
    iam(capsys, "update-access-key", "--access-key-id", key_id, "--status", "Inactive")
    assert AccessKey.objects.get(access_key_id=key_id).status == "Inactive"
    iam(capsys, "delete-access-key", "--access-key-id", key_id)
    assert not AccessKey.objects.filter(access_key_id=key_id).exists()
    assert iam_error(capsys, "delete-access-key", "--access-key-id", key_id)["Code"] == "NoSuchEntity"


def test_assume_role(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    iam(capsys, "create-role", "--role-name", "app", "--path", "/svc/")
    answer = iam(capsys, "assume-role", "--role-name", "app", "--role-session-name", "job-7")
    creds = answer["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["SecretAccessKey"]) == 40
    assert creds["SessionToken"] and creds["Expiration"].endswith("Z")
    # The STS ARN drops the role's path.
    assert answer["AssumedRoleUser"]["Arn"] == "arn:aws:sts::111122223333:assumed-role/app/job-7"
    trail = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert creds["SessionToken"] not in trail and creds["SecretAccessKey"] not in trail
    assert iam_error(capsys, "assume-role", "--role-name", "app", "--role-session-name", "x")["Code"] == (
        "ValidationException"
    )


def test_every_cli_call_is_audited_as_the_operator(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    before = AuditEvent.objects.count()
    iam(capsys, "create-user", "--user-name", "alice")
    event = AuditEvent.objects.order_by("-seq").first()
    assert AuditEvent.objects.count() == before + 1
    assert event is not None
    assert (event.operation, event.interface, event.decision) == ("iam:CreateUser", "cli", "allowed")
    assert event.caller_arn.startswith("kmsconsole:operator/")
    assert event.request_parameters == {"AccountId": "111122223333", "UserName": "alice", "Path": "/"}
    # Who ran it where (the operator's ARN names no person).
    assert event.user_agent.startswith("manage.py iam create-user (os-user=")
    assert f"host={socket.gethostname()[:64]}" in event.user_agent
    assert IamUser.objects.filter(name="alice").exists()


def test_an_event_filed_under_another_account_names_no_os_user_sudo_user_or_host(
    account: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """That account's auditors read the event: the server's OS users, an operator's personal sudo name and the
    internal host name are the operator's own account's to read, not a tenant's."""
    monkeypatch.setenv("SUDO_USER", "alice.personal")
    iam(capsys, "create-account", "--account-id", "444455556666")
    tenants = AuditEvent.objects.latest("seq")
    assert (tenants.operation, tenants.caller_account) == ("iam:CreateAccount", "444455556666")
    assert tenants.user_agent == "manage.py iam create-account (operator)"
    iam(capsys, "create-user", "--account-id", "444455556666", "--user-name", "bob")
    assert AuditEvent.objects.latest("seq").user_agent == "manage.py iam create-user (operator)"
    # The operator's own account keeps who ran it where.
    iam(capsys, "create-user", "--user-name", "carol")
    own = AuditEvent.objects.latest("seq").user_agent
    assert (
        own.startswith("manage.py iam create-user (os-user=") and "sudo-user(claimed)=alice.personal" in own
    )


def test_a_policy_file_is_recorded_as_the_document_applied_under_the_consoles_names(
    account: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The event records the policy the file held (what was applied, as the console records the text it applies),
    never the file's name, and the parameters by the names the console and REST API record them by."""
    iam(capsys, "create-role", "--role-name", "app")
    document = (
        '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}}'
    )
    policy_file = tmp_path / "auditor.json"
    policy_file.write_text(document, encoding="utf-8")
    args = ("put-role-policy", "--role-name", "app", "--policy-name", "kms", "--policy-document")
    iam(capsys, *args, f"file://{policy_file}")
    event = AuditEvent.objects.latest("seq")
    assert (event.operation, event.decision) == ("iam:PutRolePolicy", "allowed")
    assert event.request_parameters == {
        "AccountId": "111122223333",
        "RoleName": "app",
        "PolicyName": "kms",
        "PolicyDocument": document,
    }
    assert IdentityPolicy.objects.get(role__name="app", name="kms").document == document
    # A file that cannot be read is a refused request, audited as failed, its name the only thing recorded.
    missing = f"file://{tmp_path / 'missing.json'}"
    error = iam_error(capsys, *args, missing)
    assert error["Code"] == "ValidationException" and "cannot read" in error["Message"]
    failed = AuditEvent.objects.latest("seq")
    assert (failed.operation, failed.decision, failed.error_code) == (
        "iam:PutRolePolicy",
        "failed",
        "ValidationException",
    )
    assert failed.request_parameters["PolicyDocument"] == missing


@pytest.mark.parametrize(
    ("content", "refusal"),
    [
        (b'{"Version": "2012-10-17", "Statement": "\xff\xfe"}', "is not UTF-8 text"),
        (b" " * 4097, "holds more than 4096 characters"),
    ],
)
def test_a_policy_file_not_utf8_or_over_the_limit_is_an_audited_validation_exception(
    account: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    settings: Any,
    content: bytes,
    refusal: str,
) -> None:
    """Refused inside the operation (audited as failed, the file's name recorded), not an uncaught
    UnicodeDecodeError without an event; a long file is read no further than one character past the limit."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096  # the file's name is recorded whole
    iam(capsys, "create-role", "--role-name", "app")
    policy_file = tmp_path / "policy.json"
    policy_file.write_bytes(content)
    named = f"file://{policy_file}"
    args = ("put-role-policy", "--role-name", "app", "--policy-name", "kms", "--policy-document", named)
    error = iam_error(capsys, *args)
    assert error == {"Code": "ValidationException", "Message": f"--policy-document: {named} {refusal}"}
    failed = AuditEvent.objects.latest("seq")
    assert (failed.operation, failed.decision, failed.error_code) == (
        "iam:PutRolePolicy",
        "failed",
        "ValidationException",
    )
    assert failed.request_parameters["PolicyDocument"] == named
    assert not IdentityPolicy.objects.filter(role__name="app").exists()
    # A file that never ends is refused as soon as it has said too much.
    endless = iam_error(capsys, *args[:-1], "file:///dev/zero")
    assert endless["Message"] == "--policy-document: file:///dev/zero holds more than 4096 characters"
