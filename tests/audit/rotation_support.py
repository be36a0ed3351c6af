"""Helpers for the audit trail's tests across root-key rotations: events written through the real writer, which
root key an event's link is under, the ring retired, and forgeries by someone holding an older key."""

from __future__ import annotations

import hashlib
import hmac
from io import StringIO
from typing import Any

from django.core.management import call_command

from kmsconsole.audit import writer
from kmsconsole.audit.chain import CHAINED_FIELDS, canonical_event
from kmsconsole.audit.models import AuditChainHead, AuditEvent
from kmsconsole.core.rootkey import RootKey, root_keys
from tests.audit.test_group_commit import values
from tests.conftest import RootKeyFile

FIELDS = (*CHAINED_FIELDS, "prev_hash", "hash")


# Computed here, from the chain's documented subkeys, so that these helpers judge the code rather than use it.
def link_under(under: RootKey, prev_hash: str, row: dict[str, Any]) -> str:
    message = prev_hash.encode() + b"\n" + canonical_event(row)
    return hmac.new(under.subkey("audit-chain/v1"), message, hashlib.sha256).hexdigest()


def head_mac_under(under: RootKey, seq: int, last_hash: str) -> str:
    return hmac.new(
        under.subkey("audit-chain/head/v1"), f"{seq}:{last_hash}".encode(), hashlib.sha256
    ).hexdigest()


def write_events(count: int, operation: str = "Encrypt") -> None:
    """Events written as a request's would be (inside a test's transaction: the locked path)."""
    for _ in range(count):
        writer.write_standalone(values(operation))


def link_key_ids() -> list[str]:
    """The id of the root key each event's link is under, in seq order ("?" for none of the ring's)."""
    return [
        next(
            (k.key_id for k in root_keys().everything if link_under(k, row["prev_hash"], row) == row["hash"]),
            "?",
        )
        for row in AuditEvent.objects.order_by("seq").values(*FIELDS)
    ]


def key(key_id: str) -> RootKey:
    found = root_keys().find(key_id)
    assert found is not None
    return found


def retire_previous(root_key_file: RootKeyFile) -> None:
    """What `rootkey retire` does to the file: every key after the current one marked retired."""
    first, *rest = root_key_file.path.read_text().split()
    root_key_file.write("\n".join([first, *("retired:" + line.removeprefix("retired:") for line in rest)]))


def relink(seq: int, under: RootKey, **changes: Any) -> str:
    """Change event #`seq` and link it again under `under` (a forgery by whoever holds that key); returns its
    new hash."""
    row = AuditEvent.objects.filter(seq=seq).values(*FIELDS).get()
    row.update(changes)
    row["hash"] = link_under(under, row["prev_hash"], row)
    AuditEvent.objects.filter(seq=seq).update(**changes, hash=row["hash"])
    return str(row["hash"])


def set_head(seq: int, last_hash: str, under: RootKey) -> None:
    AuditChainHead.objects.filter(pk=1).update(
        last_seq=seq, last_hash=last_hash, head_mac=head_mac_under(under, seq, last_hash)
    )


def verify(*extra: str) -> str:
    out = StringIO()
    call_command("audit", "verify", *extra, stdout=out)
    return out.getvalue()
