"""The integrated-service identity: a request made through a registered integrated service on its signer's behalf
carries kms:ViaService and (for CreateGrant, ListGrants, RevokeGrant) kms:GrantIsForAWSResource = true, which is
what the console key policy's "Allow attachment of persistent resources" statement asks for. Only signers allowed
kmsconsole:ActAsIntegratedService may claim it; no caller can set those condition keys any other way.

The claim travels in `RequestMeta.via_service`. The KMS endpoint does not fill it yet (that is the endpoint's
header parsing, outside the grants app), so these tests build the request context the endpoint will build and run
the operations through `perform()` and the same wire handlers, in process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from grants.models import Grant, IntegratedService
from keys.default_policies import console_key_policy
from keys.models import Key
from keys.services.access import request_condition_values
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.awskms import model
from kmsconsole.awskms.handlers import run_handler
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta
from kmsconsole.operations import OPERATIONS, OperationContext, perform
from policies.selectors import credentials_for
from tests.conftest import Persona
from tests.grants.conftest import ACCOUNT, DENIED, error_of, last_event

pytestmark = pytest.mark.django_db(transaction=True)

EC2 = "ec2.us-east-1.amazonaws.com"
RDS = "rds.us-east-1.amazonaws.com"


@dataclass(frozen=True)
class ViaServiceMeta(RequestMeta):
    """The request context the KMS endpoint builds for a request that names an integrated service."""

    via_service: str = ""


def call(persona: Persona, operation: str, params: dict[str, Any], *, via: str) -> dict[str, Any]:
    """Run one KMS operation as `persona` through `perform()` and its wire handler, claiming `via`."""
    credentials = credentials_for(persona.access_key_id)
    assert credentials is not None
    parsed = model.parse_input(operation, params)
    return perform(
        operation,
        caller=credentials.caller,
        meta=ViaServiceMeta(interface="kms", via_service=via),
        params=params,
        service=lambda ctx: run_handler(operation, ctx, parsed),
    )


def act_as(service: str) -> str:
    statement = {
        "Effect": "Allow",
        "Action": "kmsconsole:ActAsIntegratedService",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": service}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture
def attachment_key(admin_kms: Any, make_user: Callable[..., Persona]) -> tuple[str, Persona, Persona]:
    """A key with the console's policy for two key users: one may act through EC2, the other through nothing."""
    IntegratedService.objects.create(name=EC2, description="volumes")
    through_ec2, plain = make_user("through-ec2", act_as(EC2)), make_user("plain")
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

    created = call(through_ec2, "CreateGrant", grant, via=EC2)
    event = last_event("CreateGrant")
    assert event.decision == "allowed"
    assert event.decided_by == "statement 'Allow attachment of persistent resources' in the key policy"
    assert (
        call(through_ec2, "ListGrants", {"KeyId": arn}, via=EC2)["Grants"][0]["GrantId"] == created["GrantId"]
    )
    call(through_ec2, "RevokeGrant", {"KeyId": arn, "GrantId": created["GrantId"]}, via=EC2)
    assert not Grant.objects.exists()


def test_claiming_an_integrated_service_needs_registration_and_permission(
    attachment_key: tuple[str, Persona, Persona],
) -> None:
    arn, through_ec2, plain = attachment_key
    grant = {"KeyId": arn, "GranteePrincipal": plain.arn, "Operations": ["Decrypt"]}
    with pytest.raises(errors.ValidationException) as unregistered:
        call(through_ec2, "CreateGrant", grant, via=RDS)
    assert unregistered.value.message == f"{RDS} is not an integrated service registered in this KMS."
    IntegratedService.objects.create(name=RDS)
    for persona, service in ((plain, EC2), (through_ec2, RDS)):
        with pytest.raises(errors.AccessDeniedException) as denied:
            call(persona, "CreateGrant", grant, via=service)
        assert denied.value.message == (
            f"User: {persona.arn} is not authorized to perform: kmsconsole:ActAsIntegratedService on resource: * "
            "because no identity-based policy allows the kmsconsole:ActAsIntegratedService action"
        )
    assert not Grant.objects.exists()
    assert AuditEvent.objects.filter(operation="CreateGrant", decision="denied").count() == 2


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
    via = ViaServiceMeta(interface="kms", via_service=EC2)
    assert request_condition_values(context("CreateGrant", via), key)["kms:GrantIsForAWSResource"] is True
    encrypt = request_condition_values(context("Encrypt", via), key)
    assert encrypt["kms:ViaService"] == EC2 and "kms:GrantIsForAWSResource" not in encrypt
