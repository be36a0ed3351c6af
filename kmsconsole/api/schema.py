"""OpenAPI descriptions of the API's two authentication schemes (loaded by ApiConfig.ready)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
