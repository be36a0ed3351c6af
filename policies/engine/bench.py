"""Decision-time benchmark, wrapped by ``python manage.py bench policy``.

``run_policy_benchmark(iterations)`` times ``evaluate()`` on a realistic key: a 4-statement key policy with
conditions (the console's default shape plus a Deny), two identity policies, and 10 grants; then the same key
with 50,000 grants (indexed by grantee). Requests rotate over the four decision paths (key policy, delegated
identity policy, grant, denial), and each path is also reported alone. Compiled policies come from the cache,
as in the service; building the request context is timed separately. Pure: it returns numbers, prints nothing.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from .cache import compile_identity_policy, compile_key_policy
from .context import RequestContext
from .evaluate import IdentityPolicy, evaluate
from .explain import ReasonCode
from .grants import Grant, GrantConstraints, GrantIndex
from .principals import Caller

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
_ROUNDS = 5

KEY_POLICY = {
    "Version": "2012-10-17",
    "Id": "key-consolepolicy-3",
    "Statement": [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "Allow use of the key",
            "Effect": "Allow",
            "Principal": {
                "AWS": [f"arn:aws:iam::{ACCOUNT}:user/app", f"arn:aws:iam::{ACCOUNT}:role/ExampleRole"]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": ACCOUNT},
                "StringLike": {"kms:EncryptionContext:tenant": "t-*"},
            },
        },
        {
            "Sid": "Allow attachment of persistent resources",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/ExampleRole"},
            "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
        {
            "Sid": "Deny plain HTTP",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ],
}

DEV_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "UseKeys",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*",
            "Condition": {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["tenant"]}},
        }
    ],
}

GUARDRAILS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "NoDeletion",
            "Effect": "Deny",
            "Action": ["kms:ScheduleKeyDeletion", "kms:PutKeyPolicy"],
            "Resource": "*",
        },
        {"Sid": "Describe", "Effect": "Allow", "Action": "kms:Describe*", "Resource": "*"},
    ],
}

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "ReadOnly", "Effect": "Allow", "Action": ["kms:List*", "kms:Get*"], "Resource": "*"},
    ],
}


def _grants(count: int) -> list[Grant]:
    grants = [
        Grant(
            grant_id=f"{index:064x}",
            key_arn=KEY_ARN,
            grantee_principal=f"arn:aws:iam::{ACCOUNT}:role/service-{index % 997}",
            operations=frozenset({"Decrypt", "GenerateDataKey"}),
            constraints=GrantConstraints(encryption_context_subset={"tenant": f"t-{index}"}),
        )
        for index in range(count - 1)
    ]
    grants.append(
        Grant(
            grant_id="f" * 64,
            key_arn=KEY_ARN,
            grantee_principal=f"arn:aws:iam::{ACCOUNT}:role/worker",
            operations=frozenset({"Decrypt", "Encrypt"}),
            constraints=GrantConstraints(encryption_context_subset={"tenant": "t-42"}),
        )
    )
    return grants


def _requests() -> dict[str, RequestContext]:
    context = {"tenant": "t-42", "purpose": "bench"}

    def build(caller: Caller, action: str) -> RequestContext:
        return RequestContext.build(
            caller=caller,
            action=action,
            resource=KEY_ARN,
            source_ip="10.1.2.3",
            now=NOW,
            secure_transport=True,
            encryption_context=context,
            condition_values={
                "kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "kms:KeySpec": "SYMMETRIC_DEFAULT",
            },
        )

    return {
        "key_policy": build(Caller.user(f"arn:aws:iam::{ACCOUNT}:user/app"), "kms:Encrypt"),
        "identity_policy": build(Caller.user(f"arn:aws:iam::{ACCOUNT}:user/dev"), "kms:Decrypt"),
        "grant": build(
            Caller.assumed_role(f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/job-1"), "kms:Decrypt"
        ),
        "denied": build(Caller.user(f"arn:aws:iam::{OTHER_ACCOUNT}:user/mallory"), "kms:Decrypt"),
    }


def _percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "median_us": round(statistics.median(ordered) / 1000, 3),
        "p99_us": round(p99 / 1000, 3),
        "mean_us": round(statistics.fmean(ordered) / 1000, 3),
    }


def _time(calls: Sequence[Callable[[], object]], iterations: int) -> list[int]:
    clock = time.perf_counter_ns
    samples: list[int] = []
    count = len(calls)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for index in range(iterations):
            call = calls[index % count]
            start = clock()
            call()
            samples.append(clock() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def _warm_up(calls: Sequence[Callable[[], object]]) -> None:
    """Fill the per-action statement index, the resource memo and the regex caches before timing."""
    for _ in range(50):
        for call in calls:
            call()


def run_policy_benchmark(iterations: int = 20_000) -> dict[str, object]:
    """Median, p99 and mean decision times (microseconds) per scenario and per decision path."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    key_policy = compile_key_policy(json.dumps(KEY_POLICY))
    dev_access = IdentityPolicy("dev-access", compile_identity_policy(json.dumps(DEV_ACCESS)))
    guardrails = IdentityPolicy("guardrails", compile_identity_policy(json.dumps(GUARDRAILS)))
    read_only = IdentityPolicy("read-only", compile_identity_policy(json.dumps(READ_ONLY)))
    # Every caller has two identity policies; only dev's allow the request.
    identity = {
        "key_policy": [guardrails, read_only],
        "identity_policy": [dev_access, guardrails],
        "grant": [guardrails, read_only],
        "denied": [dev_access, read_only],
    }
    requests = _requests()
    expected = {
        "key_policy": ReasonCode.ALLOWED_BY_KEY_POLICY,
        "identity_policy": ReasonCode.ALLOWED_BY_IDENTITY_POLICY,
        "grant": ReasonCode.ALLOWED_BY_GRANT,
        "denied": ReasonCode.IAM_NOT_DELEGATED,
    }
    grant_counts = {"10_grants": 10, "50000_grants": 50_000}
    calls: dict[str, dict[str, Callable[[], object]]] = {}
    for label, grant_count in grant_counts.items():
        index = GrantIndex(_grants(grant_count))
        calls[label] = {}
        for path, request in requests.items():
            policies = identity[path]
            decision = evaluate(request, key_policy=key_policy, identity_policies=policies, grants=index)
            if decision.reason is not expected[path]:
                raise AssertionError(f"benchmark scenario {path} decided {decision.reason}")

            def call(
                request: RequestContext = request,
                policies: list[IdentityPolicy] = policies,
                index: GrantIndex = index,
            ) -> object:
                return evaluate(request, key_policy=key_policy, identity_policies=policies, grants=index)

            calls[label][path] = call
        _warm_up(list(calls[label].values()))

    # Scenarios take turns in rounds, so load from elsewhere on the machine falls on both alike.
    per_round = max(1, iterations // _ROUNDS)
    per_path = max(1, per_round // len(requests))
    mixed: dict[str, list[int]] = {label: [] for label in calls}
    by_path: dict[str, dict[str, list[int]]] = {label: {path: [] for path in requests} for label in calls}
    for _ in range(_ROUNDS):
        for label, scenario_calls in calls.items():
            mixed[label] += _time(list(scenario_calls.values()), per_round)
            for path, timed in scenario_calls.items():
                by_path[label][path] += _time([timed], per_path)
    scenarios: dict[str, object] = {
        label: {
            "grants": grant_counts[label],
            "key_policy_statements": len(key_policy.statements),
            "identity_policies_per_caller": 2,
            "mixed": _percentiles(mixed[label]),
            "paths": {path: _percentiles(samples) for path, samples in by_path[label].items()},
        }
        for label in calls
    }

    text = json.dumps(KEY_POLICY)
    cache_hit = _percentiles(_time([lambda: compile_key_policy(text)], per_round))
    sample = requests["identity_policy"]

    def build_context() -> object:
        return RequestContext.build(
            caller=sample.caller,
            action=sample.action,
            resource=KEY_ARN,
            source_ip="10.1.2.3",
            now=NOW,
            secure_transport=True,
            encryption_context={"tenant": "t-42", "purpose": "bench"},
        )

    context_build = _percentiles(_time([build_context], per_round))
    return {
        "iterations": iterations,
        "unit": "microseconds",
        "scenarios": scenarios,
        "compile_key_policy_cache_hit": cache_hit,
        "request_context_build": context_build,
    }
