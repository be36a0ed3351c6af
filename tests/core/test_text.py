"""One limit and one way to shorten a value typed in (kmsconsole.core.text), wherever it is repeated: AWS's
validation messages (byte for byte as before), the console's problems, an audit event's record of a refused value,
and a request's id wherever its audit event is made."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from kmsconsole.core import errors
from kmsconsole.core.middleware import http_request_meta
from kmsconsole.core.text import SHOWN_CHARS, recorded, shortened


def test_a_value_is_shortened_past_the_one_limit() -> None:
    assert SHOWN_CHARS == 256
    assert shortened("a" * 256) == "a" * 256
    assert shortened("a" * 257) == "a" * 256 + "..."
    assert shortened("abcdef", 3) == "abc..."


def test_a_refused_value_is_recorded_cut_as_data_no_typed_value_can_imitate() -> None:
    assert recorded("a" * 256) == "a" * 256
    assert recorded("a" * 5000) == {"cut": "a" * 256, "length": 5000}
    assert recorded("a" * 5000, 2048) == {"cut": "a" * 2048, "length": 5000}
    typed = "aaa... (5000 characters)"  # what the old marker looked like: a string, recorded as typed
    assert recorded(typed) == typed


def test_aws_validation_messages_are_byte_for_byte_as_aws_words_them() -> None:
    from kmsconsole.awskms import model

    message = errors.model_constraint_error(
        "keyId", "k" * 300, "Member must have length less than or equal to 2048"
    )
    assert message.message == (
        "1 validation error detected: Value '" + "k" * 256 + "...' at 'keyId' failed to satisfy constraint: "
        "Member must have length less than or equal to 2048"
    )
    assert model._display("k" * 300) == "k" * 256 + "..."
    assert model._display("k" * 256) == "k" * 256


@pytest.mark.django_db
def test_a_requests_id_made_for_its_event_is_kept_on_it() -> None:
    """A request that reaches its audit event without an id (RequestIdMiddleware did not run) is given one kept on
    the request, so the answer's header (with_request_id) names the event's id."""
    request = RequestFactory().get("/console/")
    meta = http_request_meta(request, "console")
    assert meta.request_id and request.request_id == meta.request_id  # type: ignore[attr-defined]
