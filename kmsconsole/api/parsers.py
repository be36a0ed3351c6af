"""The REST API's JSON parser: DRF's, with bodies nested deeper than any request of ours (thousands of brackets
exhaust the decoder's stack) turned into a 400 (ParseError) in the API's error shape instead of a 500. Bodies over
Django's DATA_UPLOAD_MAX_MEMORY_SIZE are refused before any parser runs (kmsconsole/api/dispatch.py)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

# The deepest request body of the API (a key with tags, a grant with constraints) is a few levels deep.
MAX_JSON_DEPTH = 32


def nesting_depth_exceeds(value: Any, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return False


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep."
            ) from None
        if nesting_depth_exceeds(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.")
        return data
