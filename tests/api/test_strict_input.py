"""Bad input to the REST API is a 400 in its error shape that names the parameter or field the client sent: filter
and paging parameters by their own names, and a JSON number, boolean or object where a text is expected refused
(never turned into its text, as the KMS endpoint refuses it too)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework import serializers
from rest_framework.test import APIClient

from keys.models import Key
from kmsconsole.api.serializers import StrictCharField
from kmsconsole.audit.models import AuditEvent
from tests.api.conftest import World

pytestmark = pytest.mark.django_db


def refused(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "ValidationException", error
    assert list(error["detail"]) == [field], error
    return error


# 1. Errors name the parameter sent.


@pytest.mark.parametrize("parameter", ["time_after", "time_before"])
def test_a_bad_audit_time_filter_is_named_as_sent(admin_api: APIClient, parameter: str) -> None:
    refused(admin_api.get("/api/v1/audit-events", {parameter: "notadate"}), parameter)
    event = AuditEvent.objects.filter(operation="kmsconsole:ListAuditEvents").order_by("-seq").first()
    assert event is not None and event.error_code == "ValidationException"


def test_the_audit_time_filters_still_filter(admin_api: APIClient, world: World) -> None:
    everything = admin_api.get("/api/v1/audit-events").json()["results"]
    assert everything
    newest = everything[0]["time"]
    assert (
        admin_api.get("/api/v1/audit-events", {"time_after": "2999-01-01T00:00:00Z"}).json()["results"] == []
    )
    assert (
        admin_api.get("/api/v1/audit-events", {"time_before": "2000-01-01T00:00:00Z"}).json()["results"] == []
    )
    until_newest = admin_api.get("/api/v1/audit-events", {"time_before": newest}).json()["results"]
    assert newest in [event["time"] for event in until_newest]


@pytest.mark.parametrize("query", ["", "?tag_keys=env"])
def test_untagging_without_tag_key_names_tag_key(admin_api: APIClient, world: World, query: str) -> None:
    error = refused(admin_api.delete(f"/api/v1/keys/{world.key}/tags{query}"), "tag_key")
    assert "tag_key" in error["detail"]["tag_key"][0]


# 2. A text field takes a JSON string only.


def test_a_number_for_a_key_description_is_refused(admin_api: APIClient, world: World) -> None:
    error = refused(
        admin_api.patch(f"/api/v1/keys/{world.key}", {"description": 123}, format="json"), "description"
    )
    assert "string" in error["detail"]["description"][0]
    assert Key.objects.get(key_id=world.key).description == "main"


@pytest.mark.parametrize("name", [12345, 1.5, True, {"a": "b"}, ["bob"]])
def test_a_user_name_that_is_not_a_string_is_refused(admin_api: APIClient, name: Any) -> None:
    refused(admin_api.post("/api/v1/users", {"name": name}, format="json"), "name")


def test_grant_constraints_take_string_values_only(admin_api: APIClient, world: World) -> None:
    body = {
        "grantee_principal": world.admin_arn,
        "operations": ["Decrypt"],
        "constraints": {"EncryptionContextEquals": {"a": 1}},
    }
    error = refused(admin_api.post(f"/api/v1/keys/{world.key}/grants", body, format="json"), "constraints")
    assert error["detail"]["constraints"]["EncryptionContextEquals"]["a"]


def test_a_grant_operation_must_be_a_string(admin_api: APIClient, world: World) -> None:
    body = {"grantee_principal": world.admin_arn, "operations": [7]}
    refused(admin_api.post(f"/api/v1/keys/{world.key}/grants", body, format="json"), "operations")


def test_a_simulated_encryption_context_takes_string_values_only(admin_api: APIClient, world: World) -> None:
    body = {
        "principal": world.admin_arn,
        "action": "kms:Decrypt",
        "key_id": world.key,
        "encryption_context": {"a": 1},
    }
    refused(admin_api.post("/api/v1/simulations", body, format="json"), "encryption_context")


SERIALIZER_MODULES = [
    "kmsconsole.api.serializers",
    "kmsconsole.api.principal_serializers",
    "kmsconsole.api.analyzer_serializers",
]


def _fields(field: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, field
    if isinstance(field, serializers.ListSerializer):
        yield from _fields(field.child, f"{path}[]")
    elif isinstance(field, serializers.Serializer):
        for name, member in field.fields.items():
            yield from _fields(member, f"{path}.{name}")
    elif isinstance(field, (serializers.ListField, serializers.DictField)):
        yield from _fields(field.child, f"{path}[]")


def test_every_text_field_of_every_serializer_is_strict() -> None:
    """The guard on new serializers: no DRF CharField (which turns 123 into "123") in any serializer of the API."""
    seen = 0
    loose = []
    for module_name in SERIALIZER_MODULES:
        module = importlib.import_module(module_name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, serializers.Serializer) or cls.__module__ != module_name:
                continue
            for path, field in _fields(cls(), name):
                if isinstance(field, serializers.CharField):
                    seen += 1
                    if not isinstance(field, StrictCharField):
                        loose.append(path)
    assert seen > 100 and loose == []


def test_the_schema_still_describes_strict_text_fields_as_strings(client: Any) -> None:
    document = client.get("/api/schema/", {"format": "json"}).json()
    schemas = document["components"]["schemas"]
    assert schemas["PatchedKeyUpdateInputRequest"]["properties"]["description"]["type"] == "string"
    assert schemas["EntityCreateInputRequest"]["properties"]["name"]["type"] == "string"
    context = schemas["SimulationInputRequest"]["properties"]["encryption_context"]
    assert context["additionalProperties"]["type"] == "string"


# 3. Paging parameters.

LISTS = [
    "/api/v1/keys",
    "/api/v1/aliases",
    "/api/v1/keys/{key}/tags",
    "/api/v1/keys/{key}/grants",
    "/api/v1/keys/{key}/rotations",
    "/api/v1/audit-events",
    "/api/v1/job-runs",
    "/api/v1/users",
    "/api/v1/api-tokens",
]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("page_size", ["abc", "0", "-1", "1.5"])
def test_a_bad_page_size_is_a_400_naming_it(
    admin_api: APIClient, world: World, path: str, page_size: str
) -> None:
    refused(admin_api.get(path.replace("{key}", world.key), {"page_size": page_size}), "page_size")


@pytest.mark.parametrize("path", [p for p in LISTS if p != "/api/v1/audit-events"])
@pytest.mark.parametrize("page", ["abc", "0", "999"])
def test_a_bad_page_is_a_400_naming_it(admin_api: APIClient, world: World, path: str, page: str) -> None:
    refused(admin_api.get(path.replace("{key}", world.key), {"page": page}), "page")


def test_a_bad_audit_cursor_is_a_400_naming_it(admin_api: APIClient) -> None:
    refused(admin_api.get("/api/v1/audit-events", {"cursor": "junk"}), "cursor")


def test_a_page_size_above_the_maximum_is_served_as_the_maximum(admin_api: APIClient, world: World) -> None:
    response = admin_api.get("/api/v1/audit-events", {"page_size": "1"})
    assert response.status_code == 200 and len(response.json()["results"]) == 1
    assert "page_size=1" in response.json()["next"]
    assert admin_api.get("/api/v1/keys", {"page_size": "100000"}).status_code == 200
