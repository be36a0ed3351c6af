"""Schemathesis against the live test server, over the whole schema: for every operation a bounded number of
generated requests (fixed seed), authenticated as the admin persona, none of which may get a 5xx or a response
that breaks the schema (its status documented, its body matching the documented shape, JSON as declared)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from kmsconsole.api.models import ApiToken
from policies.models import Account
from tests.api.conftest import People, World, token_for
from tests.rows import update_sealed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

SEED = 20261128
EXAMPLES_PER_OPERATION = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_generated_requests_get_no_5xx_and_responses_match_the_schema(
    live_server: Any, account: Account, world: World, people: People
) -> None:
    token = token_for(account, "admin", name="schemathesis")
    admin_token = ApiToken.objects.get(name="schemathesis")
    headers = {"Authorization": f"Bearer {token}"}
    raw = requests.get(f"{live_server.url}/api/schema/?format=json", headers=headers, timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 60
    session = requests.Session()
    statuses: Counter[int] = Counter()

    for operation in operations:

        @seed(SEED)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                base_url=live_server.url, session=session, headers=headers, checks=CHECKS
            )
            statuses[response.status_code] += 1
            # A generated revoke may have hit the admin's own token: restore it so the rest stays authenticated.
            update_sealed(ApiToken.objects.filter(pk=admin_token.pk), revoked_at=None)

        check()
    # The run did reach the services: successes, refusals of bad input and unknown names, never a lost token.
    assert statuses[200] > 20 and statuses[201] > 5 and statuses[400] > 50 and statuses[404] > 50, statuses
    assert statuses[401] == 0, statuses
