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
from .grants import Grant, GrantConstraints, GrantIndex
from .principals import Caller

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = datetime(2025, 1, 1, tzinfo=UTC)

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
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
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
            condition_values={"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT", "kms:KeySpec": "SYMMETRIC_DEFAULT"},
        )

    return {
        "key_policy": build(Caller.user(f"arn:aws:iam::{ACCOUNT}:user/app"), "kms:Encrypt"),
        "identity_policy": build(Caller.user(f"arn:aws:iam::{ACCOUNT}:user/dev"), "kms:Decrypt"),
        "grant": build(Caller.assumed_role(f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/job-1"), "kms:Decrypt"),
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
    for _ in range(min(iterations, 1000)):  # warm-up: fill the per-action statement index and regex caches
        calls[_ % count]()
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


def run_policy_benchmark(iterations: int = 20_000) -> dict[str, object]:
    """Median, p99 and mean decision times (microseconds) per scenario and per decision path."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    key_policy = compile_key_policy(json.dumps(KEY_POLICY))
    identity = [
        IdentityPolicy("dev-access", compile_identity_policy(json.dumps(DEV_ACCESS))),
        IdentityPolicy("guardrails", compile_identity_policy(json.dumps(GUARDRAILS))),
    ]
    requests = _requests()
    expected = {"key_policy": True, "identity_policy": True, "grant": True, "denied": False}
    scenarios: dict[str, object] = {}
    for label, grant_count in (("10_grants", 10), ("50000_grants", 50_000)):
        index = GrantIndex(_grants(grant_count))
        calls: dict[str, Callable[[], object]] = {}
        for path, request in requests.items():
            decision = evaluate(request, key_policy=key_policy, identity_policies=identity, grants=index)
            if decision.allowed is not expected[path]:
                raise AssertionError(f"benchmark scenario {path} decided {decision.reason}")

            def call(request: RequestContext = request) -> object:
                return evaluate(request, key_policy=key_policy, identity_policies=identity, grants=index)

            calls[path] = call
        result: dict[str, object] = {
            "grants": grant_count,
            "key_policy_statements": len(key_policy.statements),
            "identity_policies": len(identity),
            "mixed": _percentiles(_time(list(calls.values()), iterations)),
        }
        result["paths"] = {path: _percentiles(_time([call], max(1, iterations // 4))) for path, call in calls.items()}
        scenarios[label] = result

    text = json.dumps(KEY_POLICY)
    cache_hit = _percentiles(_time([lambda: compile_key_policy(text)], max(1, iterations // 4)))
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

    context_build = _percentiles(_time([build_context], max(1, iterations // 4)))
    return {
        "iterations": iterations,
        "unit": "microseconds",
        "scenarios": scenarios,
        "compile_key_policy_cache_hit": cache_hit,
        "request_context_build": context_build,
    }
