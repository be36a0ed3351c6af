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
from kmsconsole.audit.scope import scope_of
from tests.api.conftest import encrypted, make_key
from tests.audit.dashboard_support import add
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

ACCOUNT_A, ACCOUNT_C = "444455556666", "777788889999"


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
    # One event for the page: its DescribeKey, which says the last use was shown; the GetKeyLastUsage question is
    # recorded nowhere.
    assert [(event.operation, event.decision) for event in events] == [("DescribeKey", "allowed")]
    assert events[0].response_elements == {"LastUsageShown": True}


def test_the_last_use_is_shown_only_where_get_key_last_usage_would_be_allowed(
    console: Callable[..., Client], make_user: Callable[..., Persona]
) -> None:
    key = make_key()  # the default key policy lets IAM decide
    use = encrypted(key)
    describer = make_user("describer", allowing("kms:DescribeKey"))
    body, events = page_of(console(describer), key)
    assert "Last used" not in body and str(use.event_id) not in body
    assert [(event.operation, event.decision) for event in events] == [("DescribeKey", "allowed")]
    assert events[0].response_elements == {"LastUsageShown": False}

    # Allowed to read the last use but not audit events: the line, without a link to a page it may not open.
    reader = make_user("reader", allowing("kms:DescribeKey", "kms:GetKeyLastUsage"))
    body, events = page_of(console(reader), key)
    assert "Encrypt at" in body and reverse("console:audit-event", args=[use.event_id]) not in body
    assert events[0].response_elements == {"LastUsageShown": True}


def test_the_last_use_links_its_event_only_where_the_viewer_can_open_it(
    console: Callable[..., Client], make_user: Callable[..., Persona]
) -> None:
    """Three accounts: C re-encrypts from A's key into this account's (B's) key. The ReEncrypt is B's key's last
    use, but its event is A's to read (its key owner is the source key's), not B's: the line shows it without a
    link to a page that would answer 404 (and record a failed GetAuditEvent)."""
    key = make_key()
    viewer = console(
        make_user("viewer", allowing("kms:DescribeKey", "kms:GetKeyLastUsage", "kmsconsole:GetAuditEvent"))
    )
    use = encrypted(key)  # B's own use: its event is in B's scope
    body, _ = page_of(viewer, key)
    assert reverse("console:audit-event", args=[use.event_id]) in body

    source_key = f"arn:aws:kms:us-east-1:{ACCOUNT_A}:key/55555555-5555-4555-8555-555555555555"
    add(
        operation="ReEncrypt",
        caller_arn=f"arn:aws:iam::{ACCOUNT_C}:user/mover",
        caller_account=ACCOUNT_C,
        key_arn=key.arn,
        request_parameters={"DestinationKeyId": key.arn},
        response_elements={"SourceKeyId": source_key, "KeyId": key.arn},
    )
    moved = AuditEvent.objects.latest("seq")
    assert moved.key_owner_account == ACCOUNT_A
    assert scope_of(moved, ACCOUNT_A) is not None and scope_of(moved, key.account.account_id) is None
    body, events = page_of(viewer, key)
    assert "ReEncrypt at" in body and str(moved.event_id) not in body
    assert events[0].response_elements == {"LastUsageShown": True}
    # The premise: the event's page is not the viewer's.
    assert viewer.get(reverse("console:audit-event", args=[moved.event_id])).status_code == 404
