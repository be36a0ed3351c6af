"""The compiled-policy cache: keyed by content hash, shared across str and bytes, errors not cached."""

from __future__ import annotations

import pytest

from policies.engine import (
    MalformedPolicyDocumentException,
    PolicyKind,
    clear_policy_cache,
    compile_identity_policy,
    compile_key_policy,
    policy_cache_info,
    policy_digest,
)
from policies.engine.cache import PolicyCache

from .helpers import ROOT_STATEMENT, allow, document


def test_same_text_same_object() -> None:
    clear_policy_cache()
    text = document(ROOT_STATEMENT)
    first = compile_key_policy(text)
    assert compile_key_policy(text) is first
    assert compile_key_policy(text.encode()) is first
    assert compile_key_policy("".join(list(text))) is first
    assert first.digest == policy_digest(text)
    info = policy_cache_info()
    assert info["size"] == 1 and info["misses"] == 1


def test_kinds_are_cached_separately() -> None:
    text = document(allow(action="kms:*", resource="*"))
    assert compile_identity_policy(text).kind is PolicyKind.IDENTITY
    with pytest.raises(MalformedPolicyDocumentException):
        compile_key_policy(text)  # no principal: invalid as a key policy


def test_errors_are_not_cached() -> None:
    for _ in range(2):
        with pytest.raises(MalformedPolicyDocumentException):
            compile_key_policy("{")


def test_lru_bound() -> None:
    cache = PolicyCache(maxsize=2, front_size=1)
    texts = [document(allow(action=f"kms:A{i}", resource="*")) for i in range(3)]
    compiled = [cache.get(text, PolicyKind.IDENTITY) for text in texts]
    assert cache.info()["size"] == 2
    assert cache.get(texts[2], PolicyKind.IDENTITY) is compiled[2]
    assert cache.get(texts[0], PolicyKind.IDENTITY) is not compiled[0]  # evicted, recompiled
    cache.clear()
    assert cache.info() == {"size": 0, "maxsize": 2, "hits": 0, "misses": 0}


def test_compiled_policy_indexes_statements_by_action() -> None:
    policy = compile_key_policy(
        document(ROOT_STATEMENT, {**allow(principal="*", action="kms:Decrypt"), "Effect": "Deny"})
    )
    denies, allows = policy.statements_for("kms:decrypt")
    assert len(denies) == 1 and len(allows) == 1
    assert policy.statements_for("kms:decrypt") is policy.statements_for("kms:decrypt")
    assert policy.action_index["kms:decrypt"] == (denies, allows)
    assert "statements=2" in repr(policy)


def test_compiled_objects_are_read_only() -> None:
    from policies.engine import GrantIndex

    policy = compile_key_policy(document(ROOT_STATEMENT))
    statement = policy.statements[0]
    index = GrantIndex()
    for target, name in ((policy, "kind"), (statement, "allow"), (index, "_count")):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(target, name, None)
        with pytest.raises(AttributeError, match="immutable"):
            delattr(target, name)
