"""The REST audit list's filters: the dashboard's own (principal, account, deciding statement or grant, request id,
source IP, encryption context, notable), parsed and matched as the dashboard matches them, the interface, and a
parameter no list takes refused (a typo'd filter used to answer the whole trail)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from keys.services import crypto
from kmsconsole.audit.marks import PENDING_DELETION_USE
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors
from tests.api.conftest import World
from tests.api.test_strict_input import LISTS, refused
from tests.audit.dashboard_support import append, event_values
from tests.audit.test_key_owner_scope import _plans
from tests.conftest import Persona, as_operator

pytestmark = pytest.mark.django_db
API = "/api/v1/audit-events"
FINDINGS = "/api/v1/findings"


def ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {event["event_id"] for event in response.json()["results"]}


def every(api: APIClient, **query: str) -> set[str]:
    return ids(api.get(API, {**query, "page_size": "500"}))


def test_a_typo_filter_is_refused_naming_it_not_answered_with_the_whole_trail(
    admin_api: APIClient, world: World
) -> None:
    error = refused(admin_api.get(API, {"operaton": "Decrypt"}), "operaton")
    assert error["detail"]["operaton"] == ["Not a parameter of this list."]
    assert "operation" in error["message"]  # it says which parameters the list takes
    event = AuditEvent.objects.filter(operation="kmsconsole:ListAuditEvents").latest("seq")
    # Said once, however many names are refused.
    several = admin_api.get(API, {"operaton": "Decrypt", "decison": "denied"}).json()["error"]
    assert several["detail"] == {name: ["Not a parameter of this list."] for name in ("operaton", "decison")}
    assert several["message"].count("operation") == 1 and str(several["detail"]).count("operation") == 0
    assert (event.decision, event.error_code) == ("failed", "ValidationException")
    # Recorded counted, never by name (the trail records what was asked).
    assert event.request_parameters["Query"] == {
        "(other parameters)": "1 parameters, 15 characters",
        "scope": "caller",
    }
    # What DRF and the paginator read is a parameter of the list.
    assert admin_api.get(API, {"format": "json", "page_size": "2"}).status_code == 200


@pytest.mark.parametrize("path", [*LISTS, FINDINGS, "/api/v1/keys/{key}/policy/versions"])
def test_every_list_refuses_a_parameter_it_does_not_take(
    admin_api: APIClient, world: World, path: str
) -> None:
    refused(admin_api.get(path.replace("{key}", world.key), {"nosuchfilter": "x"}), "nosuchfilter")


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (API, {"operaton": "Decrypt"}),
        (FINDINGS, {"severty": "high"}),
        (FINDINGS, {"limit": "many"}),  # a malformed one too
    ],
)
def test_a_caller_who_may_not_read_is_denied_before_an_unknown_parameter_is_named(
    outsider_api: APIClient, admin_api: APIClient, path: str, query: dict[str, str]
) -> None:
    assert outsider_api.get(path, query).status_code == 403
    assert admin_api.get(path, query).status_code == 400  # what the outsider was not told


def test_time_after_later_than_time_before_is_a_400_naming_both(admin_api: APIClient) -> None:
    response = admin_api.get(
        API, {"time_after": "2026-01-02T00:00:00Z", "time_before": "2026-01-01T00:00:00Z"}
    )
    assert response.status_code == 400
    detail = response.json()["error"]["detail"]
    assert set(detail) == {"time_after", "time_before"}
    assert "later than time_before" in detail["time_after"][0]
    # One instant is a range (both bounds are inclusive).
    instant = "2026-01-01T00:00:00Z"
    assert admin_api.get(API, {"time_after": instant, "time_before": instant}).status_code == 200


@pytest.mark.parametrize(
    ("query", "named", "words"),
    [
        ({"source_ip": "10.0.0"}, "source_ip", "IPv4 or IPv6"),
        ({"context_value": "fin"}, "context_key", "encryption context key"),
        ({"account": "12345678901"}, "account", "12 digits"),
        ({"account": "\uff11" * 12}, "account", "12 digits"),  # full-width digits
        ({"request_id": "r" * 65}, "request_id", "65"),
        ({"interface": "email"}, "interface", "email"),
    ],
)
def test_the_dashboards_filters_refuse_what_its_form_refuses(
    admin_api: APIClient, query: dict[str, str], named: str, words: str
) -> None:
    error = refused(admin_api.get(API, query), named)
    assert words in error["detail"][named][0]


def test_the_dashboards_filters_narrow_as_the_dashboard_does(
    admin_api: APIClient, admin: Persona, world: World
) -> None:
    as_operator(
        "Encrypt",
        lambda ctx: crypto.key_encrypt(
            ctx=ctx, key_id=world.key, plaintext=b"x", encryption_context={"dept": "fin"}
        ),
        KeyId=world.key,
        EncryptionContext={"dept": "fin"},
    )
    encrypt = AuditEvent.objects.filter(operation="Encrypt").latest("seq")
    with pytest.raises(errors.KMSInvalidStateException):
        as_operator(
            "Encrypt",
            lambda ctx: crypto.key_encrypt(ctx=ctx, key_id=world.pending, plaintext=b"x"),
            KeyId=world.pending,
        )
    use = AuditEvent.objects.filter(operation="Encrypt").latest("seq")
    assert use.notable == PENDING_DELETION_USE
    assert admin_api.get("/api/v1/keys").status_code == 200
    listed = AuditEvent.objects.filter(operation="ListKeys").latest("seq")
    assert listed.caller_arn == admin.arn and listed.decided_by

    assert every(admin_api, context_key="dept", context_value="fin") == {str(encrypt.event_id)}
    assert every(admin_api, context_key="dept", context_value="hr") == set()
    assert every(admin_api, notable=PENDING_DELETION_USE) == {str(use.event_id)}
    by_admin = every(admin_api, principal=admin.name)  # a user name of the caller's account
    assert str(listed.event_id) in by_admin and str(encrypt.event_id) not in by_admin
    assert by_admin <= every(admin_api, principal=admin.arn)  # and the read that listed them
    assert every(admin_api, principal="nobody") == set()  # names nothing: no event, not every event
    assert str(listed.event_id) in every(admin_api, decided_by=listed.decided_by)
    assert str(encrypt.event_id) not in every(admin_api, decided_by=listed.decided_by)
    assert every(admin_api, request_id=listed.request_id[:8]) >= {str(listed.event_id)}
    assert every(admin_api, request_id=listed.request_id) == {str(listed.event_id)}
    from_api = every(admin_api, interface="api")
    assert str(listed.event_id) in from_api and str(encrypt.event_id) not in from_api
    assert str(encrypt.event_id) in every(admin_api, interface="cli")
    own_keys = every(admin_api, account=settings.KMS_ACCOUNT_ID)
    assert str(encrypt.event_id) in own_keys and str(listed.event_id) not in own_keys
    assert listed.source_ip and str(listed.event_id) in every(admin_api, source_ip=listed.source_ip)
    assert every(admin_api, source_ip="192.0.2.77") == set()
    # Recorded by their own names, as the list's other filters are.
    admin_api.get(API, {"notable": PENDING_DELETION_USE, "principal": admin.name})
    event = AuditEvent.objects.filter(operation="kmsconsole:ListAuditEvents").latest("seq")
    assert event.request_parameters["Query"] == {
        "notable": PENDING_DELETION_USE,
        "principal": admin.name,
        "scope": "caller",
    }


def test_the_operation_filter_reads_a_name_as_the_dashboard_does(admin_api: APIClient, world: World) -> None:
    """Any case, with or without the service prefix: `operation=kms:decrypt` used to answer an empty page."""
    exact = every(admin_api, operation="CreateAlias", scope="caller")
    assert exact
    for typed in ("createalias", "kms:CreateAlias", "KMS:CREATEALIAS"):
        assert every(admin_api, operation=typed, scope="caller") == exact, typed
    assert every(admin_api, operation="NoSuchOperation", scope="caller") == set()


def test_the_schema_documents_the_dashboards_filters(client: Any) -> None:
    document = client.get("/api/schema/", {"format": "json"}).json()
    parameters = {p["name"]: p for p in document["paths"][API]["get"]["parameters"]}
    for name in (
        "principal",
        "account",
        "decided_by",
        "request_id",
        "source_ip",
        "context_key",
        "context_value",
        "notable",
        "interface",
    ):
        assert parameters[name].get("description"), name
    assert set(parameters["interface"]["schema"]["enum"]) == {"kms", "api", "console", "cli", "worker"}
    assert "time_after" in parameters["time_before"]["description"]
    assert "does not take" in document["paths"][API]["get"]["responses"]["400"]["description"]


def test_the_interface_filter_reads_its_own_index_not_the_whole_trail(admin_api: APIClient) -> None:
    """The list has no default time range: a filter without an index of its own walked every event of the
    reader's account to fill a page of a rare interface."""
    append(event_values(interface="cli" if index % 100 == 0 else "kms") for index in range(5000))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AuditEvent._meta.db_table}")
    plans = _plans(lambda: admin_api.get(API, {"interface": "cli"}))
    assert plans and all("audit_interface_time_idx" in plan and "Seq Scan" not in plan for plan in plans), (
        plans
    )
