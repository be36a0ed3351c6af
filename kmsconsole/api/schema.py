"""OpenAPI descriptions of the API's two authentication schemes (loaded by ApiConfig.ready)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from kmsconsole.api.serializers import StrictInput


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "kmsconsole.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "kmsc_<prefix>_<secret>",
            "description": "An API token from `manage.py api-token create`.",
        }


class ConsoleSessionScheme(OpenApiAuthenticationExtension):
    target_class = "kmsconsole.api.authentication.ConsoleSessionAuthentication"
    name = "consoleSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "A console session of a login linked to an IAM user; unsafe methods need X-CSRFToken.",
        }


ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": 'The one error shape: `{"error": {"code", "message", "detail"}}`.',
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "The AWS-style exception name."},
                "message": {"type": "string"},
                "detail": {"description": "Field errors by field name, when the request was not valid."},
            },
            "required": ["code", "message", "detail"],
        }
    },
    "required": ["error"],
}
ERROR_STATUSES = {
    "400": "The request is not valid (field errors in `detail`), or a business limit refused it.",
    "401": "No credentials, or an unknown, expired or revoked API token.",
    "403": "The policy engine denied the caller (AccessDeniedException), or a console login has no principal.",
    "404": "The named resource does not exist in the caller's account.",
    "409": "The resource exists already, or its state does not allow the operation.",
}


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation may answer the error statuses, in the error shape."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_STATUSES.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": reference}}},
                )
    return result


def closed_inputs(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """A request body takes only the members it documents (kmsconsole.api.serializers.StrictInput refuses the
    others): say so with `additionalProperties: false`, so generated clients and schemathesis know it too."""
    schemas = result.get("components", {}).get("schemas", {})
    pending = [StrictInput]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        # drf-spectacular's names for a request body: its own, split from the response's, and a PATCH's.
        for name in (cls.__name__, f"{cls.__name__}Request", f"Patched{cls.__name__}Request"):
            if name in schemas:
                schemas[name]["additionalProperties"] = False
    return result
