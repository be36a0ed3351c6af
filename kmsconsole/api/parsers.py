"""The REST API's JSON parser: DRF's, with what no request of ours can carry refused as a 400 (ParseError) in the
API's error shape instead of a 500 (kmsconsole.core.jsonbody): bodies nested thousands deep (they exhaust the
decoder's stack), numbers that overflow to infinity (the audit trail's jsonb refuses them). NUL characters and lone
surrogates are refused per field by DRF's CharField. Bodies over Django's DATA_UPLOAD_MAX_MEMORY_SIZE are refused
before any parser runs (kmsconsole/api/dispatch.py)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from kmsconsole.core.jsonbody import MAX_JSON_DEPTH, body_problem


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."
            ) from None
        problem = body_problem(data, check_text=False)
        if problem is not None:
            raise exceptions.ParseError(problem)
        return data
