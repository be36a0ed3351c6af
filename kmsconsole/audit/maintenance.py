"""The operator's upkeep of the trail's unchained indexes (`manage.py audit reindex-context` and
`reindex-key-owners`), each an operation like any other: authorized (the operator's alone) and audited, since the
key owner columns decide which account reads which events.

Both commit in batches of their own (kmsconsole.operations: `commits_in_batches`): a run stopped halfway has set
what it committed, and the next run goes on from there."""

from __future__ import annotations

from kmsconsole.audit import context_index, derived
from kmsconsole.operations import OperationContext
from policies.authorization import authorize


def audit_context_index_rebuild(*, ctx: OperationContext) -> dict[str, int]:
    """kmsconsole:ReindexAuditContext: index the encryption contexts of events written before the index existed."""
    authorize(ctx, resource="*")
    return {"EventsIndexed": context_index.reindex()}


def audit_key_owners_rebuild(*, ctx: OperationContext) -> dict[str, int]:
    """kmsconsole:ReindexAuditKeyOwners: set each event's key owner columns from its chained fields where they
    differ (which account's key-owner side shows the event)."""
    authorize(ctx, resource="*")
    return {"EventsChanged": derived.reindex()}
