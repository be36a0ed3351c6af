"""The audit dashboard in headless Chromium (the end-to-end suite's watched page: any JavaScript error, console
error or CSP violation fails the test): the charts draw from the page's data under the strict CSP, filtering
swaps the results with htmx, and an event's page opens from the trail; the switch to the key owner's side."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.shown import CALLER_IDENTITY_POLICY
from tests.audit.dashboard_support import ALICE, BOB, KEY_1, KEY_2, OTHER_ACCOUNT, append, event_values
from tests.conftest import Persona
from tests.e2e.conftest import WatchedPage
from tests.e2e.test_signin import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_charts_draw_filters_swap_and_an_event_opens(watched_page: WatchedPage, admin: Persona) -> None:
    now = timezone.now()
    denied = {
        "decision": "denied",
        "reason": "denied: no statement in the key policy allows it",
        "decided_by": "",
    }
    append(
        event_values(
            time=now - timedelta(minutes=5 * i),
            caller_arn=ALICE if i % 3 else BOB,
            key_arn=KEY_1 if i % 2 else KEY_2,
            **(denied if i % 7 == 0 else {}),
        )
        for i in range(60)
    )
    # A refusal whose label is longer than the chart is wide: it is drawn whole, in lines.
    long_label = (
        "statement 'Allow use of the key by the application servers of the payments team' in the key policy"
    )
    append(
        [
            event_values(
                time=now - timedelta(hours=10), decision="denied", reason="denied", decided_by=long_label
            )
        ]
    )
    sign_in(watched_page, admin)
    page = watched_page.page
    watched_page.goto("/console/audit/")
    timeline = page.locator('canvas[data-chart="timeline"]')
    timeline.wait_for(state="visible")
    assert timeline.bounding_box()["height"] > 100  # type: ignore[index]
    for name in ("keys", "principals", "reasons"):
        assert page.locator(f'canvas[data-chart="{name}"]').is_visible()
    labels = page.evaluate(
        "() => Chart.getChart(document.querySelector('canvas[data-chart=\"reasons\"]')).data.labels"
    )
    wrapped = next(lines for lines in labels if "payments" in "".join(lines))
    assert max(len(line) for line in wrapped) <= 30
    assert "".join(wrapped).replace(" ", "") == f"Refused: {long_label}".replace(" ", "")
    # Drawn: the tables fold away, one click from the numbers.
    assert page.locator("details.chart-numbers[open]").count() == 0
    watched_page.screenshot("audit-dashboard")

    page.get_by_label("Decision", exact=True).select_option("denied")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**decision=denied**")
    page.locator('canvas[data-chart="timeline"]').wait_for(state="visible")
    badges = page.locator("table.audit-events .badge").all_inner_texts()
    assert badges and set(badges) == {"denied"}

    # Paging swaps the results in place (htmx), keeping the filter.
    page.get_by_label("Decision", exact=True).select_option("")
    page.get_by_role("button", name="Apply filters").click()
    page.locator('canvas[data-chart="timeline"]').wait_for(state="visible")
    events = "table.audit-events tbody tr td:first-child a"
    first_page = {link.get_attribute("href") for link in page.locator(events).all()}
    page.get_by_role("link", name="Older").click()
    page.wait_for_url("**before=**")
    page.get_by_text("The charts of these filters are on the").wait_for()
    second_page = {link.get_attribute("href") for link in page.locator(events).all()}
    assert len(first_page) == 50 and second_page and not first_page & second_page
    page.get_by_role("link", name="Newest").click()
    page.locator('canvas[data-chart="timeline"]').wait_for(state="visible")
    page.get_by_label("Decision", exact=True).select_option("denied")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**decision=denied**")

    page.locator("table.audit-events tbody tr a").first.click()
    page.wait_for_url("**/console/audit/events/**")
    assert "denied: no statement in the key policy allows it" in page.locator(".audit-why").inner_text()
    watched_page.screenshot("audit-event")


def test_the_key_owners_side_is_one_switch_away(watched_page: WatchedPage, admin: Persona) -> None:
    """Another account's requests on the reader's keys are on the other side of the switch, with their charts; the
    filters stay on that side, and an event's page names the reader's own statements only."""
    now = timezone.now()
    partner = f"arn:aws:iam::{OTHER_ACCOUNT}:user/zed"
    guard = "statement 'QuokkaGuard' in the identity policy 'quokka-rail'"
    refused = {
        "decision": "denied",
        "reason": f"denied by {guard}: an explicit deny overrides",
        "decided_by": guard,
    }
    append(
        event_values(
            time=now - timedelta(minutes=i),
            caller_arn=partner,
            caller_account=OTHER_ACCOUNT,
            **(refused if i % 2 else {}),
        )
        for i in range(6)
    )
    append([event_values(time=now - timedelta(minutes=30))])  # alice's own request
    sign_in(watched_page, admin)
    page = watched_page.page
    watched_page.goto("/console/audit/")
    page.locator('canvas[data-chart="timeline"]').wait_for(state="visible")
    principals = "table.audit-events tbody tr td:nth-child(4)"
    assert (
        "user/zed" not in page.locator(principals).all_inner_texts()
    )  # the account's own side: its requests

    page.get_by_role("link", name="Requests by other accounts on this account's keys").click()
    page.wait_for_url("**scope=key-owner**")
    page.locator('canvas[data-chart="reasons"]').wait_for(state="visible")
    assert set(page.locator(principals).all_inner_texts()) == {"user/zed"}
    assert "uokka" not in page.content()
    assert page.locator(".audit-scopes a[aria-current=page]").inner_text() == (
        "Requests by other accounts on this account's keys"
    )
    watched_page.screenshot("audit-key-owner")

    page.get_by_label("Decision", exact=True).select_option("denied")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**decision=denied**")
    assert "scope=key-owner" in page.url
    page.locator('canvas[data-chart="timeline"]').wait_for(state="visible")
    assert set(page.locator("table.audit-events .badge").all_inner_texts()) == {"denied"}
    assert set(page.locator(principals).all_inner_texts()) == {"user/zed"}

    page.locator("table.audit-events tbody tr td:first-child a").first.click()
    page.wait_for_url("**/console/audit/events/**")
    assert (
        page.locator(".audit-why").inner_text()
        == f"denied by {CALLER_IDENTITY_POLICY}: an explicit deny overrides"
    )
    assert "uokka" not in page.content()
    page.get_by_role("link", name="Audit trail").click()
    page.wait_for_url("**scope=key-owner**")


def test_a_refused_query_says_why_beside_the_field_and_in_results_htmx_swaps(
    watched_page: WatchedPage, admin: Persona
) -> None:
    """Dates typed the wrong way round: the whole page comes back (a 400) with the message beside the field. A
    page link htmx follows whose query is refused (here a date that is not one): htmx swaps only successful
    answers, so the results come as a 200 that says the problem in words where the results were, never the
    generic "could not complete that request"."""
    now = timezone.now()
    append(event_values(time=now - timedelta(minutes=i)) for i in range(60))
    sign_in(watched_page, admin)
    page = watched_page.page
    watched_page.goto("/console/audit/")
    page.locator('canvas[data-chart="timeline"]').wait_for(state="visible")

    page.locator('input[name="since"]').fill("2026-01-02T00:00")
    page.locator('input[name="until"]').fill("2026-01-01T00:00")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**until=**")
    page.locator("p.field-error", has_text="Until must be after From.").wait_for(state="visible")
    assert page.locator('input[name="since"]').input_value() == "2026-01-02T00:00"
    watched_page.screenshot("audit-refused-filter")

    watched_page.goto("/console/audit/")
    older = page.get_by_role("link", name="Older")
    older.wait_for(state="visible")
    page.eval_on_selector(
        "a[rel=next]",
        """link => {
            const url = link.getAttribute("hx-get") + "&since=yesterday";
            link.setAttribute("hx-get", url);
            link.setAttribute("href", url);
            htmx.process(link);
        }""",
    )
    older.click()
    results = page.locator("#audit-results")
    results.get_by_text("From: Enter a valid date/time.").wait_for(state="visible")
    assert page.locator("#htmx-error").count() == 0
    assert results.locator("table.audit-events").count() == 0


def test_a_policy_events_page_wraps_its_document_and_shows_the_diff(
    watched_page: WatchedPage, admin: Persona
) -> None:
    """A PutKeyPolicy's page in a narrow window: the document laid out and the recorded parameters (the policy as
    one escaped string) wrap inside the page instead of running off its side, and the diff against the key's
    previous policy in the trail is there."""
    root = "arn:aws:iam::111122223333:root"
    statements = [
        {
            "Sid": f"Statement{i}",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*",
        }
        for i in range(6)
    ]
    before = json.dumps({"Version": "2012-10-17", "Statement": statements[:1]})
    after = json.dumps({"Version": "2012-10-17", "Statement": statements})
    now = timezone.now()
    append(
        [
            event_values(
                time=now - timedelta(minutes=2),
                operation="PutKeyPolicy",
                caller_arn=ALICE,
                key_arn=KEY_1,
                request_parameters={"KeyId": KEY_1, "Policy": before},
            ),
            event_values(
                time=now - timedelta(minutes=1),
                operation="PutKeyPolicy",
                caller_arn=ALICE,
                key_arn=KEY_1,
                request_parameters={"KeyId": KEY_1, "Policy": after},
            ),
        ]
    )
    latest = AuditEvent.objects.filter(operation="PutKeyPolicy").order_by("-seq").first()
    assert latest is not None
    sign_in(watched_page, admin)
    page = watched_page.page
    page.set_viewport_size({"width": 900, "height": 900})
    watched_page.goto(f"/console/audit/events/{latest.event_id}/")
    document = page.locator("pre.policy-document")
    assert '      "Sid": "Statement5",' in document.inner_text()
    assert page.locator("pre.policy-diff .diff-add").count() > 5
    for selector in ("pre.policy-document", "pre.recorded"):
        overflow = page.locator(selector).first.evaluate(
            "(element) => element.scrollWidth - element.clientWidth"
        )
        assert overflow <= 0, selector
    assert page.evaluate("document.documentElement.scrollWidth") <= 900
    watched_page.screenshot("audit-event-policy")
