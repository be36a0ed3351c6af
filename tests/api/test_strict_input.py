"""Bad input to the REST API is a 400 in its error shape that names the parameter or field the client sent: filter
and paging parameters by their own names, and a JSON number, boolean or object where a text is expected refused
(never turned into its text, as the KMS endpoint refuses it too)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework import serializers
from rest_framework.test import APIClient

from keys.models import Key
from kmsconsole.api.filters import AuditCursor, PageNumbers
from kmsconsole.api.serializers import QueryWholeNumberField, StrictCharField, StrictInput, StrictIntegerField
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


# 3. A body takes the members its input declares and nothing else.


def test_a_misspelt_deletion_window_is_refused_not_dropped(admin_api: APIClient, world: World) -> None:
    """DRF dropped `pending_window_in_days` (the snake case of AWS's PendingWindowInDays), so a window meant to be
    refused (6 days) scheduled a deletion with the default 30."""
    url = f"/api/v1/keys/{world.key}/schedule-deletion"
    for sent in ("pending_window_in_days", "PendingWindowInDays"):
        error = refused(admin_api.post(url, {sent: 6}, format="json"), sent)
        assert error["detail"][sent] == ["Unknown field. Did you mean 'pending_window_days'?"]
    assert Key.objects.get(key_id=world.key).deletion_date is None
    event = AuditEvent.objects.filter(operation="ScheduleKeyDeletion").order_by("-seq").first()
    assert event is not None and event.error_code == "ValidationException"


def test_an_aws_member_name_in_a_create_key_body_is_refused(admin_api: APIClient) -> None:
    before = Key.objects.count()
    body = {"description": "x", "KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}
    response = admin_api.post("/api/v1/keys", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["detail"] == {
        "KeySpec": ["Unknown field. Did you mean 'key_spec'?"],
        "KeyUsage": ["Unknown field. Did you mean 'key_usage'?"],
    }
    assert Key.objects.count() == before


def test_an_unknown_member_of_a_nested_input_is_named_where_it_is(admin_api: APIClient, world: World) -> None:
    body = {"tags": [{"tag_key": "env", "tag_value": "prod", "colour": "red"}]}
    response = admin_api.put(f"/api/v1/keys/{world.key}/tags", body, format="json")
    assert response.status_code == 400
    # DRF's shape for an item of a list: its index, then its fields.
    assert response.json()["error"]["detail"] == {
        "tags": {"0": {"colour": ["Unknown field. It takes: tag_key, tag_value."]}}
    }


def test_many_unknown_members_are_named_a_few_and_counted(admin_api: APIClient, world: World) -> None:
    body: dict[str, Any] = {f"{n}{'x' * 500}": n for n in range(900)}
    body["description"] = "kept out"
    response = admin_api.patch(f"/api/v1/keys/{world.key}", body, format="json")
    detail = response.json()["error"]["detail"]
    assert response.status_code == 400 and len(detail) == 6
    assert detail["(others)"] == ["895 more unknown fields."]
    assert all(len(name) <= 67 for name in detail)  # 64 characters and "..."
    assert Key.objects.get(key_id=world.key).description == "main"


def test_a_refused_body_is_recorded_by_what_its_operation_takes(admin_api: APIClient, world: World) -> None:
    """The event records the members the input takes and counts the others (a 900-member body made a 460 KB
    event); a body member cannot stand in for the path's key id in the record."""
    body: dict[str, Any] = {f"junk{n}": "x" * 100 for n in range(900)}
    body.update({"description": "kept out", "KeyId": "not-the-key"})
    admin_api.patch(f"/api/v1/keys/{world.key}", body, format="json")
    event = AuditEvent.objects.filter(operation="UpdateKeyDescription").order_by("-seq").first()
    assert event is not None and event.error_code == "ValidationException"
    assert event.request_parameters == {
        "KeyId": world.key,
        "description": "kept out",
        "(other parameters)": "901 other members",
    }


@pytest.mark.parametrize(
    "raw",
    [
        '{"description": "x", "\\ud800": 1}',
        '{"grantee_principal": "arn:aws:iam::111122223333:root", "operations": ["Decrypt"], '
        '"constraints": {"EncryptionContextSubset": {"\\ud800": "v"}}}',
    ],
)
def test_a_member_name_that_is_not_unicode_is_a_400(admin_api: APIClient, world: World, raw: str) -> None:
    """No field validates a member's name: a lone surrogate there was a 500 (naming it in the error, or storing
    it as an encryption context key)."""
    url = f"/api/v1/keys/{world.key}" + ("/grants" if "grantee" in raw else "")
    method = admin_api.post if "grantee" in raw else admin_api.patch
    response = method(url, raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"] == (
        "The request contains text that is not valid Unicode (a lone surrogate)."
    )


def test_every_input_refuses_members_it_does_not_declare() -> None:
    inputs = [cls for cls in _project_serializers() if cls.__name__.endswith("Input")]
    assert len(inputs) >= 20
    assert [cls.__qualname__ for cls in inputs if not issubclass(cls, StrictInput)] == []


def test_the_schema_says_a_body_takes_no_other_members(client: Any) -> None:
    schemas = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    assert schemas["ScheduleDeletionInputRequest"]["additionalProperties"] is False
    assert schemas["TagInputRequest"]["additionalProperties"] is False
    assert schemas["PatchedKeyUpdateInputRequest"]["additionalProperties"] is False
    assert "additionalProperties" not in schemas["KeyMetadataOutput"]


# The project's packages: a serializer defined in any of them is the API's.
PROJECT_PACKAGES = ("kmsconsole", "keys", "policies", "grants")


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _project_serializers() -> list[type[serializers.Serializer[Any]]]:
    """Every serializer class of the project, wherever it is defined (the URLconf imports every view, so every
    serializer a view uses is loaded)."""
    importlib.import_module("kmsconsole.urls")
    found = {
        cls
        for cls in _subclasses(serializers.Serializer)
        if cls.__module__.split(".")[0] in PROJECT_PACKAGES and not cls.__module__.startswith("tests")
    }
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def _fields(field: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, field
    if isinstance(field, serializers.ListSerializer):
        yield from _fields(field.child, f"{path}[]")
    elif isinstance(field, serializers.Serializer):
        # .fields: a ModelSerializer's are made by DRF from the model, and appear only here.
        for name, member in field.fields.items():
            yield from _fields(member, f"{path}.{name}")
    elif isinstance(field, (serializers.ListField, serializers.DictField)):
        yield from _fields(field.child, f"{path}[]")


def _loose_text_fields(classes: list[type[serializers.Serializer[Any]]]) -> tuple[int, list[str]]:
    seen = 0
    loose = []
    for cls in classes:
        for path, field in _fields(cls(), f"{cls.__module__}.{cls.__qualname__}"):
            if isinstance(field, serializers.CharField):  # noqa: TID251 - what the walk looks for
                seen += 1
                if not isinstance(field, StrictCharField):
                    loose.append(path)
    return seen, loose


def test_every_text_field_of_every_serializer_is_strict() -> None:
    """The guard on new serializers: no DRF CharField (which turns 123 into "123") in any serializer of the
    project, in whichever module it is defined, fields DRF makes itself (a ModelSerializer's) included. ruff bans
    writing `serializers.CharField` (TID251); this catches the fields no one wrote."""
    classes = _project_serializers()
    modules = {cls.__module__ for cls in classes}
    assert {"kmsconsole.api.serializers", "kmsconsole.api.principal_serializers"} <= modules
    seen, loose = _loose_text_fields(classes)
    assert seen > 100 and loose == []


def test_the_serializer_walk_finds_a_loose_field_wherever_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard itself: a CharField DRF makes for a ModelSerializer, in a module of the project that is none of
    the API's, is found."""

    class LooseKeys(serializers.ModelSerializer[Key]):
        class Meta:
            model = Key
            fields = ["description"]

    monkeypatch.setattr(LooseKeys, "__module__", "keys.elsewhere")
    classes = _project_serializers()
    assert LooseKeys in classes
    assert _loose_text_fields([LooseKeys])[1] == [
        "keys.elsewhere.test_the_serializer_walk_finds_a_loose_field_"
        "wherever_it_is.<locals>.LooseKeys.description"
    ]


def test_every_integer_of_every_json_body_and_query_is_strict() -> None:
    """A body's integers take a JSON number only (an `...Input` serializer reads a JSON body); a query string's
    (`...Query`) are text, and take ASCII digits only."""
    loose, seen = [], {"Input": 0, "Query": 0}
    strict_by_kind = {"Input": StrictIntegerField, "Query": QueryWholeNumberField}
    for cls in _project_serializers():
        kind = cls.__name__[-5:]
        if kind not in strict_by_kind:
            continue
        for path, field in _fields(cls(), f"{cls.__module__}.{cls.__qualname__}"):
            if isinstance(field, serializers.IntegerField):
                seen[kind] += 1
                if not isinstance(field, strict_by_kind[kind]):
                    loose.append(path)
    assert seen["Input"] >= 3 and seen["Query"] >= 1 and loose == []


@pytest.mark.parametrize("limit", [" 1", "1 ", "+1", "1.0", "\u0661", "1e0", "-1"])
def test_a_query_integer_that_is_not_plain_digits_is_refused(admin_api: APIClient, limit: str) -> None:
    """DRF's IntegerField read each of these as 1 (or -1); a query's numbers are ASCII digits only."""
    refused(admin_api.get("/api/v1/findings", {"limit": limit}), "limit")
    assert admin_api.get("/api/v1/findings", {"limit": "1"}).status_code == 200


@pytest.mark.parametrize("days", ["7", 7.0, True, [7]])
def test_a_body_integer_that_is_not_a_json_number_is_refused(
    admin_api: APIClient, world: World, days: Any
) -> None:
    url = f"/api/v1/keys/{world.key}/schedule-deletion"
    refused(admin_api.post(url, {"pending_window_days": days}, format="json"), "pending_window_days")
    assert Key.objects.get(key_id=world.key).deletion_date is None
    body = {"enabled": True, "rotation_period_days": "90"}
    refused(admin_api.put(f"/api/v1/keys/{world.key}/rotation", body, format="json"), "rotation_period_days")
    refused(admin_api.post("/api/v1/api-tokens", {"expires_in_days": "30"}, format="json"), "expires_in_days")
    assert admin_api.post(url, {"pending_window_days": 7}, format="json").status_code == 200


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


def test_a_page_size_above_the_maximum_is_served_as_the_maximum(
    admin_api: APIClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = admin_api.get("/api/v1/audit-events", {"page_size": "1"})
    assert response.status_code == 200 and len(response.json()["results"]) == 1
    assert "page_size=1" in response.json()["next"]
    # A maximum below what the lists hold, so that serving more than it shows.
    monkeypatch.setattr(AuditCursor, "max_page_size", 2)
    monkeypatch.setattr(PageNumbers, "max_page_size", 2)
    assert AuditEvent.objects.count() > 2
    for index in range(3):
        assert admin_api.post("/api/v1/users", {"name": f"user{index}"}, format="json").status_code == 201
    for path in ("/api/v1/audit-events", "/api/v1/users"):
        response = admin_api.get(path, {"page_size": "100000"})
        assert response.status_code == 200 and len(response.json()["results"]) == 2, path
        assert response.json()["next"], path


def test_the_schema_bounds_and_describes_the_paging_parameters(client: Any) -> None:
    document = client.get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/v1/keys", "/api/v1/users", "/api/v1/audit-events"):
        parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        size = parameters["page_size"]
        assert size["schema"]["minimum"] == 1 and size["schema"]["maximum"] == 500, path
        assert "whole number from 1" in size["description"], path
        if path != "/api/v1/audit-events":
            page = parameters["page"]
            assert page["schema"]["minimum"] == 1 and "400 ValidationException" in page["description"], path
