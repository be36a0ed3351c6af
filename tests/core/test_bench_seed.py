"""`bench kms --seed-grants/--seed-keys`: bulk grants on the bench key and keys in its account, inserted directly;
the key's requests keep working (the bulk inserts bump its generation like any other write)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command

from grants.models import Grant
from keys.models import Key
from kmsconsole.bench.setup import seed

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_reaches_the_counts_once(account: Any) -> None:
    from keys.services.lifecycle import key_create
    from tests.conftest import as_operator

    key = as_operator("CreateKey", lambda ctx: key_create(ctx=ctx, description="k"))
    report = seed(key_id=str(key.key_id), grants=2500, keys=30)
    assert (report.grants_on_key, report.keys_in_account) == (2500, 30)
    assert seed(key_id=str(key.key_id), grants=2500, keys=30) == report  # already there: nothing added
    assert Grant.objects.filter(key=key).values("grantee_principal").distinct().count() > 100


def test_bench_kms_with_seeding(live_server: Any) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "bench", "kms", endpoint=live_server.url, op="encrypt", concurrency=2, duration=1, warmup=0.2,
        seed_grants=300, seed_keys=20, json=True, stdout=out, stderr=err,
    )  # fmt: skip
    assert json.loads(out.getvalue())["kmsconsole"]["errors"] == {}
    assert "Seeded: 300 grants on the key, 20 keys in its account" in err.getvalue()
    assert Key.objects.count() == 20
