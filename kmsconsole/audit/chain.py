"""Hashing and verifying the audit chain."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kmsconsole.core.rootkey import subkey

GENESIS_HASH = "0" * 64
# The fields a link covers, in a fixed order; adding one is a new chain version.
CHAINED_FIELDS = (
    "seq",
    "event_id",
    "time",
    "request_id",
    "interface",
    "operation",
    "caller_arn",
    "caller_account",
    "access_key_id",
    "source_ip",
    "user_agent",
    "key_arn",
    "request_parameters",
    "response_elements",
    "error_code",
    "error_message",
    "decision",
    "reason",
    "decided_by",
    "notable",
)


# Built once: json.dumps would build an encoder per call for these options.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_event(values: dict[str, Any]) -> bytes:
    """A byte string that is the same whether the event comes from memory, SQLite or PostgreSQL (jsonb)."""
    material = {name: values[name] for name in CHAINED_FIELDS}
    material["event_id"] = str(material["event_id"])
    material["time"] = values["time"].isoformat(timespec="microseconds")
    return _CANONICAL_JSON.encode(material).encode()


def head_mac(last_seq: int, last_hash: str) -> str:
    """The chain head's own MAC: without it, deleting the newest events and rewinding the head would pass."""
    return hmac.new(
        subkey("audit-chain/head/v1"), f"{last_seq}:{last_hash}".encode(), hashlib.sha256
    ).hexdigest()


def link_hash(prev_hash: str, values: dict[str, Any]) -> str:
    key = subkey("audit-chain/v1")
    return hmac.new(key, prev_hash.encode() + b"\n" + canonical_event(values), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    event_id: str
    what: str

    def __str__(self) -> str:
        return f"event #{self.seq} ({self.event_id}): {self.what}"


def verify_events(
    events: Iterable[dict[str, Any]],
    head_seq: int,
    head_hash: str,
    head_mac_value: str,
    *,
    start_seq: int = 0,
    start_hash: str = GENESIS_HASH,
) -> ChainProblem | None:
    """Walk events in seq order; return the first broken link, or None when the whole chain holds.

    `start_seq`/`start_hash`: the last event before `events` (archived by retention), which the first of them
    must continue; the defaults are the chain's beginning."""
    if head_seq and not hmac.compare_digest(head_mac_value, head_mac(head_seq, head_hash)):
        return ChainProblem(
            head_seq, "", "the chain head was altered (its MAC does not match): events may be missing"
        )
    expected_seq = start_seq + 1
    prev_hash = start_hash
    last_event_id = ""
    for event in events:
        if event["seq"] != expected_seq:
            return ChainProblem(
                event["seq"],
                str(event["event_id"]),
                f"expected event #{expected_seq} here: an event before it was removed or reordered",
            )
        if event["prev_hash"] != prev_hash:
            return ChainProblem(
                event["seq"], str(event["event_id"]), "its link to the previous event is broken"
            )
        if not hmac.compare_digest(event["hash"], link_hash(prev_hash, event)):
            return ChainProblem(event["seq"], str(event["event_id"]), "its contents were changed")
        prev_hash = event["hash"]
        last_event_id = str(event["event_id"])
        expected_seq += 1
    if head_seq != expected_seq - 1 or not hmac.compare_digest(head_hash, prev_hash):
        return ChainProblem(
            expected_seq - 1,
            last_event_id,
            f"the chain head records event #{head_seq}: events after this one were removed",
        )
    return None
