"""The marks the service puts on an event (`AuditEvent.notable`) and how every reader of the trail takes them.

The service marks an event when it is written (`keys.services.access.check_state`, the self-granting checks); the
notable panels, the overview, the trail's "notable" filter (`notable_events`) and every display of an event (the
dashboard's list, an event's page, the REST API, the exports: `shown_notable`, through
`kmsconsole.audit.shown`) read the mark by the same rule.

The mark is chained, so an event marked under an older rule cannot be corrected in place: before only uses were
marked, a refused ScheduleKeyDeletion (or EnableKey, or a rotation setting) on a key already pending deletion was
marked "use of a key pending deletion" as well. A use is also asked to be of an operation that uses a key
(`kmsconsole.operations.KEY_USE_OPERATIONS`), which leaves those out on every reader; the stored event keeps its
mark for `audit verify` and the archives.
"""

from __future__ import annotations

from django.db.models import Q

PENDING_DELETION_USE = "use of a key pending deletion"
# A principal that gave itself use of a key: a key policy change or a grant by which the caller itself gains
# cryptographic use (a key administrator making itself a key user).
SELF_GRANTED_USE = "gave itself use of the key"


def notable_events(value: str) -> Q:
    """The events that carry the mark `value`, as every reader asks for them."""
    if value == PENDING_DELETION_USE:
        return Q(notable=value, operation__in=_key_use_operations())
    return Q(notable=value)


def shown_notable(notable: str, operation: str) -> str:
    """An event's mark (`notable`, of an event of `operation`) as every reader shows it: "" for a mark that
    `notable_events` would not find."""
    if notable == PENDING_DELETION_USE and operation not in _key_use_operations():
        return ""
    return notable


def _key_use_operations() -> frozenset[str]:
    # Imported when asked: the operation table imports the audit recorder, which reaches this module (through
    # kmsconsole.audit.shown) while it loads.
    from kmsconsole.operations import KEY_USE_OPERATIONS

    return KEY_USE_OPERATIONS
