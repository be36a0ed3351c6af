"""`manage.py simulate`: the decision and its explanation, exit 0 when allowed and 1 when denied, drafts from
files, the request's values from the command line, errors as JSON with exit 254, and the run audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona
from tests.policies.analyzer_support import ROOT, allow, identity_policy, make_key, policy, user_arn

pytestmark = pytest.mark.django_db


def simulate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one run."""
    try:
        call_command("simulate", *args)
        code = 0
    except SystemExit as exited:
        code = int(exited.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def key(make_user: Any) -> Any:
    make_user("analyst")
    return make_key(
        policy(
            ROOT,
            allow(
                user_arn("analyst"),
                "kms:Decrypt",
                sid="Finance",
                StringEquals={"kms:EncryptionContext:dept": "fin"},
                IpAddress={"aws:SourceIp": "10.0.0.0/8"},
                DateLessThan={"aws:CurrentTime": "2030-01-01T00:00:00Z"},
            ),
        )
    )


def test_allowed_and_denied_with_the_explanation_and_exit_code(
    key: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--principal", user_arn("analyst"), "--action", "kms:Decrypt", "--key", str(key.key_id)]
    code, out, _ = simulate(
        capsys, *base, "--context", "dept=fin", "--source-ip", "10.1.1.1", "--time", "2029-06-01T00:00:00Z"
    )
    assert code == 0
    assert out.startswith(f"ALLOWED: {user_arn('analyst')}")
    assert "Why: allowed by statement 'Finance' in the key policy" in out
    assert "Trace:" in out and "statement 'Finance' (Allow)" in out
    code, out, _ = simulate(capsys, *base, "--context", "dept=fin", "--source-ip", "192.168.1.1")
    assert code == 1
    assert out.startswith("DENIED:") and "A real request would get: AccessDeniedException: User: " in out
    code, out, _ = simulate(
        capsys, *base, "--context", "dept=fin", "--source-ip", "10.1.1.1", "--time", "2031-01-01T00:00:00Z"
    )
    assert code == 1
    event = AuditEvent.objects.filter(operation="kmsconsole:SimulatePolicy").order_by("-seq").first()
    assert (event.interface, event.decision) == ("cli", "allowed")
    assert event.request_parameters["EncryptionContext"] == {"dept": "fin"}


def test_drafts_from_files_and_json_output(
    key: Any, make_user: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = make_user("dev", identity_policy("kms:Encrypt"))
    draft_key = tmp_path / "key.json"
    draft_key.write_text(policy(allow(dev.arn, "kms:GetKeyPolicy", sid="OnlyRead")))
    base = ["--principal", dev.arn, "--key", key.arn, "--json"]
    code, out, _ = simulate(capsys, *base, "--action", "kms:Encrypt")
    assert code == 0 and json.loads(out)["decision"] == "allowed"
    code, out, _ = simulate(
        capsys, *base, "--action", "kms:Encrypt", "--draft-key-policy", f"file://{draft_key}"
    )
    result = json.loads(out)
    assert code == 1 and result["used_draft_key_policy"] and result["reason"] == "IAM_NOT_DELEGATED"
    draft_identity = tmp_path / "identity.json"
    draft_identity.write_text(identity_policy("kms:Encrypt", effect="Deny"))
    code, out, _ = simulate(
        capsys,
        *base,
        "--action",
        "kms:encrypt",
        "--draft-identity-policy",
        f"blocker=file://{draft_identity}",
    )
    result = json.loads(out)
    assert code == 1 and result["reason"] == "EXPLICIT_DENY_IDENTITY_POLICY"
    assert result["draft_identity_policy"] == {"name": "blocker", "replaced": False}
    assert result["identity_policies"] == ["policy-0", "blocker"]


def test_errors_are_json_with_exit_254(
    key: Any, outsider: Persona, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["--principal", user_arn("nobody"), "--action", "kms:Decrypt"], "NotFoundException"),
        (["--principal", outsider.arn, "--action", "kms:Dance"], "ValidationException"),
        (
            ["--principal", outsider.arn, "--action", "kms:Decrypt", "--source-ip", "here"],
            "ValidationException",
        ),
        (
            [
                "--principal",
                outsider.arn,
                "--action",
                "kms:Decrypt",
                "--draft-key-policy",
                '{"Statement": 1}',
            ],
            "MalformedPolicyDocumentException",
        ),
        (
            ["--principal", "arn:aws:iam::111122223333:group/devs", "--action", "kms:Decrypt"],
            "ValidationException",
        ),
    ]
    for args, error in cases:
        code, out, err = simulate(capsys, *args, "--key", str(key.key_id))
        assert code == 254 and out == "", args
        assert json.loads(err)["Error"]["Code"] == error, args
    code, _, err = simulate(
        capsys, "--principal", outsider.arn, "--action", "kms:Decrypt", "--key", "alias/none"
    )
    assert code == 254 and json.loads(err)["Error"]["Code"] == "NotFoundException"
