"""The integrated-service identity: a request made through a registered integrated service on its signer's behalf
carries kms:ViaService and (for CreateGrant, ListGrants, RevokeGrant) kms:GrantIsForAWSResource = true, which is
what the console key policy's "Allow attachment of persistent resources" statement asks for. Only
the principals the operator bound to the service may claim it; no caller can set those condition keys any
other way.

The claim travels in the X-Kms-Via-Service header of a signed request (`RequestMeta.via_service`); these tests
send it with boto3 over real HTTP. Services are registered with `manage.py integrated-service register`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command

from grants.models import Grant, IntegratedService
from keys.default_policies import console_key_policy
from keys.models import Key
from keys.services.access import request_condition_values
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.core.context import RequestMeta
from kmsconsole.operations import OPERATIONS, OperationContext
from policies.selectors import credentials_for
from tests.conftest import Persona
from tests.grants.conftest import ACCOUNT, DENIED, error_of, last_event

pytestmark = pytest.mark.django_db(transaction=True)

EC2 = "ec2.us-east-1.amazonaws.com"
RDS = "rds.us-east-1.amazonaws.com"


def via(client: Any, service: str) -> Any:
    """The boto3 client, with every request claiming to come through `service` (as an integrated service's own
    KMS client would send it)."""
    client.meta.events.register(
        "before-sign.kms.*", lambda request, **_: request.headers.add_header("X-Kms-Via-Service", service)
    )
    return client


def register(name: str, *principals: str, description: str = "") -> None:
    out = io.StringIO()
    bindings = [arg for arn in principals for arg in ("--principal", arn)]
    call_command("integrated-service", "register", name, "--description", description, *bindings, stdout=out)
    answer = json.loads(out.getvalue())["IntegratedService"]
    assert (answer["Name"], answer["Principals"]) == (name, list(principals))


@pytest.fixture
def attachment_key(admin_kms: Any, make_user: Callable[..., Persona]) -> tuple[str, Persona, Persona]:
    """A key with the console's policy for two key users: one may act through EC2, the other through nothing."""
    through_ec2, plain = make_user("through-ec2"), make_user("plain")
    register(EC2, through_ec2.arn, description="volumes")
    document = console_key_policy(
        account_id=ACCOUNT,
        key_spec="SYMMETRIC_DEFAULT",
        key_usage="ENCRYPT_DECRYPT",
        administrators=[],
        users=[through_ec2.arn, plain.arn],
    )
    arn = admin_kms.create_key(Policy=document)["KeyMetadata"]["Arn"]
    return arn, through_ec2, plain


def test_only_requests_through_an_integrated_service_may_attach_persistent_resources(
    attachment_key: tuple[str, Persona, Persona], kms_client: Any
) -> None:
    arn, through_ec2, _ = attachment_key
    grant = {"KeyId": arn, "GranteePrincipal": through_ec2.arn, "Operations": ["Decrypt"]}
    # Directly, the key users may use the key but not attach resources to it.
    assert error_of(lambda: kms_client(through_ec2).create_grant(**grant))[0] == DENIED
    assert error_of(lambda: kms_client(through_ec2).list_grants(KeyId=arn))[0] == DENIED

    ec2 = via(kms_client(through_ec2), EC2)
    created = ec2.create_grant(**grant)
    event = last_event("CreateGrant")
    assert event.decision == "allowed"
    assert event.decided_by == "statement 'Allow attachment of persistent resources' in the key policy"
    assert ec2.list_grants(KeyId=arn)["Grants"][0]["GrantId"] == created["GrantId"]
    ec2.revoke_grant(KeyId=arn, GrantId=created["GrantId"])
    assert not Grant.objects.exists()


def test_claiming_an_integrated_service_needs_registration_and_an_operator_binding(
    attachment_key: tuple[str, Persona, Persona], kms_client: Any, partner: Callable[..., Persona]
) -> None:
    arn, through_ec2, plain = attachment_key
    grant = {"KeyId": arn, "GranteePrincipal": plain.arn, "Operations": ["Decrypt"]}
    assert error_of(lambda: via(kms_client(through_ec2), RDS).create_grant(**grant)) == (
        "ValidationException",
        f"{RDS} is not an integrated service registered in this KMS.",
    )
    register(RDS, plain.arn)
    # Not bound: neither a key user nor any account's root (whose identity policies allow everything) can claim it.
    partner_root = partner(None)
    for persona, service in ((plain, EC2), (through_ec2, RDS), (partner_root, EC2)):
        assert error_of(
            lambda persona=persona, service=service: via(kms_client(persona), service).create_grant(**grant)
        ) == (
            DENIED,
            f"User: {persona.arn} is not authorized to act as the integrated service {service}: the operator has "
            "not bound this principal to it",
        )
    assert not Grant.objects.exists()
    assert AuditEvent.objects.filter(operation="CreateGrant", decision="denied").count() == 3
    events = AuditEvent.objects.filter(operation="kmsconsole:RegisterIntegratedService", decision="allowed")
    assert set(events.values_list("request_parameters__Name", flat=True)) == {EC2, RDS}


def test_kms_via_service_reaches_every_key_operation_and_nothing_else_can_set_it(
    attachment_key: tuple[str, Persona, Persona],
) -> None:
    arn, through_ec2, _ = attachment_key
    key = Key.objects.select_related("account").get(key_id=arn.rsplit("/", 1)[1])
    credentials = credentials_for(through_ec2.access_key_id)
    assert credentials is not None

    def context(operation: str, meta: RequestMeta) -> OperationContext:
        return OperationContext(
            operation=OPERATIONS[operation],
            caller=credentials.caller,
            meta=meta,
            audit=AuditRecord(operation=operation, meta=meta),
        )

    forged = {"kms:ViaService": EC2, "KMS:GrantIsForAWSResource": True, "kms:GrantOperations": ["Decrypt"]}
    plain = request_condition_values(
        context("CreateGrant", RequestMeta(interface="kms")), key, condition_values=forged
    )
    assert "kms:ViaService" not in plain and "KMS:GrantIsForAWSResource" not in plain
    assert plain["kms:GrantOperations"] == ["Decrypt"]
    via = RequestMeta(interface="kms", via_service=EC2)
    assert request_condition_values(context("CreateGrant", via), key)["kms:GrantIsForAWSResource"] is True
    encrypt = request_condition_values(context("Encrypt", via), key)
    assert encrypt["kms:ViaService"] == EC2 and "kms:GrantIsForAWSResource" not in encrypt


def test_registration_refuses_bad_and_duplicate_names(
    capsys: pytest.CaptureFixture[str], account: Any
) -> None:
    register(EC2)
    for name in (EC2, "not a service", "EC2.AMAZONAWS.COM"):
        with pytest.raises(SystemExit) as exited:
            call_command("integrated-service", "register", name)
        assert exited.value.code == 254
        code = json.loads(capsys.readouterr().err)["Error"]["Code"]
        assert code == ("AlreadyExistsException" if name == EC2 else "ValidationException")
    assert list(IntegratedService.objects.values_list("name", flat=True)) == [EC2]
