"""Fail closed: when the audit event cannot be written, the request fails and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from kmsconsole.audit.models import AuditEvent
from policies.models import IamUser
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def audit_writes_fail() -> Iterator[None]:
    """A database trigger that refuses every new audit row, as a full disk or a revoked grant would."""
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END; "
                "$$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse_audit BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER refuse_audit BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
            )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            f"DROP TRIGGER refuse_audit{' ON ' + table if connection.vendor == 'postgresql' else ''}"
        )
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION refuse_audit()")


def test_cli_change_is_undone_when_its_audit_event_cannot_be_written(
    account: Any, audit_writes_fail: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        call_command("iam", "create-user", "--user-name", "ghost")
    assert exited.value.code == 254
    error = json.loads(capsys.readouterr().err)["Error"]
    assert error["Code"] == "KMSInternalException"
    assert not IamUser.objects.filter(name="ghost").exists()


def test_kms_request_fails_with_kms_internal_exception(
    kms_client: Callable[..., Any], random_user: Persona, audit_writes_fail: None
) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as raised:
        kms_client(random_user).generate_random(NumberOfBytes=16)
    assert raised.value.response["Error"]["Code"] == "KMSInternalException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_a_failure_that_cannot_be_recorded_is_an_internal_error(
    kms_client: Callable[..., Any], outsider: Persona, audit_writes_fail: None
) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as raised:
        kms_client(outsider).generate_random(NumberOfBytes=16)
    # Not AccessDenied: an answer that could not be recorded is not given.
    assert raised.value.response["Error"]["Code"] == "KMSInternalException"


def test_numbers_jsonb_cannot_hold_are_recorded_as_text(db: None, capsys: pytest.CaptureFixture[str]) -> None:
    """The interfaces refuse Infinity and NaN in bodies; should one still reach the trail, the event is written
    (as text) rather than the write, and so the request, failing with nothing recorded."""
    from kmsconsole.core import errors
    from tests.conftest import as_operator

    def refuse(ctx: Any) -> None:
        raise errors.ValidationException("refused before any work")

    with pytest.raises(errors.ValidationException):
        as_operator("ListKeys", refuse, Limit=float("inf"), Marker=[float("-inf"), float("nan")])
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and event.request_parameters == {"Limit": "inf", "Marker": ["-inf", "nan"]}
    call_command("audit", "verify")
    assert "Audit chain intact" in capsys.readouterr().out
