"""The key page's "Last used" line: GetKeyLastUsage's answer beside DescribeKey's, shown only where a
GetKeyLastUsage request by the viewer would be allowed, decided inside the page's one DescribeKey event."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from keys.models import Key
from kmsconsole.audit.models import AuditEvent
from tests.api.conftest import encrypted, make_key
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


def allowing(*actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
        }
    )


def page_of(client: Client, key: Key) -> tuple[str, list[AuditEvent]]:
    """The key's General tab, and the events its request wrote."""
    since = AuditEvent.objects.latest("seq").seq
    response = client.get(reverse("console:key", args=[str(key.key_id)]))
    assert response.status_code == 200
    return response.content.decode(), list(AuditEvent.objects.filter(seq__gt=since))


def test_the_key_page_shows_the_last_use_and_links_its_event(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = make_key()
    body, _ = page_of(console(admin), key)
    assert "Last used" in body and "Not used for a cryptographic operation" in body
    use = encrypted(key)
    body, events = page_of(console(admin), key)
    assert "Last used</dt>" in body and "Encrypt at" in body
    assert reverse("console:audit-event", args=[use.event_id]) in body
    # One event for the page: its DescribeKey; the GetKeyLastUsage question is recorded nowhere.
    assert [(event.operation, event.decision) for event in events] == [("DescribeKey", "allowed")]


def test_the_last_use_is_shown_only_where_get_key_last_usage_would_be_allowed(
    console: Callable[..., Client], make_user: Callable[..., Persona]
) -> None:
    key = make_key()  # the default key policy lets IAM decide
    use = encrypted(key)
    describer = make_user("describer", allowing("kms:DescribeKey"))
    body, events = page_of(console(describer), key)
    assert "Last used" not in body and str(use.event_id) not in body
    assert [(event.operation, event.decision) for event in events] == [("DescribeKey", "allowed")]

    # Allowed to read the last use but not audit events: the line, without a link to a page it may not open.
    reader = make_user("reader", allowing("kms:DescribeKey", "kms:GetKeyLastUsage"))
    body, _ = page_of(console(reader), key)
    assert "Encrypt at" in body and reverse("console:audit-event", args=[use.event_id]) not in body
