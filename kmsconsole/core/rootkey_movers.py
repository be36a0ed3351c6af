"""How the rows the service keeps under a root key move to the current one: the dependents of sealed columns and
of row MACs (`kmsconsole.core.rootkey_dependents`), built here once and registered by each app for its models.

- `sealed_column(...)`: a column of sealed blobs (key material, access-key secrets). A blob not under the current
  root key is opened under the ring and sealed again under the current key, its row locked; a blob that opens
  under no readable key is left as it is and reported.
- `mac_rows(...)`: a kind of MAC-protected row that no other row's MAC covers (key material versions, grants, ...).
- `mac_family(...)`: a parent whose MAC covers its children's MACs (a key and its aliases and tags; a user, role
  or group and its inline policies). A family moves in one transaction: the parent locked (after the children
  the documented lock order puts before it), every member verified under the ring as it is, then the children's
  MACs computed under the current key, then the parent's over them. Moved in two steps, the parent would fail its
  check between them and every request on it would fail.

A row moves only when it verifies under a readable key, and its new MAC is computed from the values it verified
with, never copied. A row (or a family with a member) that verifies under no readable key is left alone, so it
keeps failing its check, and is reported by kind and primary key only. Each write bumps the generations of what
it touches (database triggers, `kmsconsole.generations`), so no process keeps using an entry checked against a MAC
that has changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import OperationalError, transaction
from django.db.models import BinaryField, Model, Prefetch, QuerySet
from django.db.models.functions import Substr

from keys.crypto.sealing import SealingError
from kmsconsole.core.rootkey import RootKeyRing, sealer
from kmsconsole.core.rootkey_dependents import Moved, Remaining, RootKeyDependent
from kmsconsole.core.rowmac import MacProtectedRow, is_under_current_root_key, row_mac, verify_row_mac

# Items a report names at most (the count says how many there are).
MAX_NAMED = 20
# Rows whose parents a batch of `mac_rows` locks first (see `_lock_parents`) are moved at most this many at a time.
PARENT_LOCKS_PER_BATCH = 500
# A batch that lost a deadlock (PostgreSQL aborts one of the transactions) is tried again this many times.
DEADLOCK_ATTEMPTS = 3


def item(kind: str, pk: Any) -> str:
    """How a report names an item: its kind and primary key, never a value."""
    return f"{kind} pk={pk}"


def _pages(queryset: QuerySet[Any], size: int) -> Iterator[list[Any]]:
    """The rows of `queryset` in primary-key order, `size` at a time (keyset paging: rows written meanwhile
    neither repeat nor shift a page)."""
    last: Any = None
    while True:
        page_query = queryset.order_by("pk")
        if last is not None:
            page_query = page_query.filter(pk__gt=last)
        page = list(page_query[:size])
        if not page:
            return
        yield page
        last = page[-1].pk


def _retried(work: Callable[[], Moved]) -> Moved:
    """`work()` in one transaction, tried again if PostgreSQL aborted it as a deadlock's victim."""
    for attempt in range(DEADLOCK_ATTEMPTS):
        try:
            with transaction.atomic():
                return work()
        except OperationalError as exc:
            if "deadlock" not in str(exc).lower() or attempt == DEADLOCK_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _sum(results: Sequence[Moved]) -> Moved:
    return Moved(
        moved=sum(result.moved for result in results),
        failed=tuple(name for result in results for name in result.failed),
    )


def _lock_parents(rows: QuerySet[Any], parent: str | None) -> None:
    """Lock the parent rows of `rows` (FOR UPDATE, primary-key order) before the rows themselves: the lock order
    of `policies.principal_locks` puts a key before the rows hanging from it."""
    if parent is None:
        return
    model = rows.model._meta.get_field(parent).related_model
    parent_pks = rows.values_list(f"{parent}_id", flat=True)
    list(model.objects.select_for_update().filter(pk__in=parent_pks).order_by("pk").values_list("pk"))


# --- sealed columns ---------------------------------------------------------------------------------------


def sealed_column(
    *,
    name: str,
    model: type[Model],
    column: str,
    bound_to: Callable[[Any], str],
    related: Sequence[str] = (),
    parent: str | None = None,
    order: int = 100,
) -> RootKeyDependent:
    """The dependent of a column of sealed blobs. `bound_to(row)` is the blob's associated data (the row's
    `sealing_identity`, reading the relations in `related`); `parent` names the foreign key whose row is locked
    before the rows (see `_lock_parents`)."""

    def stale(ring: RootKeyRing) -> QuerySet[Any]:
        header = b"\x02" + bytes.fromhex(ring.current.key_id)
        head = Substr(column, 1, len(header), output_field=BinaryField())
        return model.objects.annotate(_sealed_head=head).exclude(_sealed_head=header)  # type: ignore[attr-defined, no-any-return]

    def remaining(ring: RootKeyRing) -> Remaining:
        return Remaining(stale(ring).count())

    def reseal_page(pks: list[Any]) -> Moved:
        rows = model.objects.filter(pk__in=pks)  # type: ignore[attr-defined]
        _lock_parents(rows, parent)
        locked = list(rows.select_related(*related).select_for_update(of=("self",)).order_by("pk"))
        moved, failed = [], []
        for row in locked:
            blob = bytes(getattr(row, column))
            if sealer().is_current(blob):
                continue  # moved meanwhile
            identity = bound_to(row)
            try:
                setattr(row, column, sealer().seal(sealer().open(blob, bound_to=identity), bound_to=identity))
            except SealingError:
                failed.append(item(name, row.pk))
                continue
            moved.append(row)
        if moved:
            model.objects.bulk_update(moved, [column])  # type: ignore[attr-defined]
        return Moved(moved=len(moved), failed=tuple(failed))

    def reseal(ring: RootKeyRing, batch_size: int) -> Moved:
        results = []
        for page in _pages(stale(ring).only("pk"), batch_size):
            pks = [row.pk for row in page]
            results.append(_retried(lambda pks=pks: reseal_page(pks)))  # type: ignore[misc]
        return _sum(results)

    return RootKeyDependent(name=name, remaining=remaining, reseal=reseal, order=order)


# --- row MACs ---------------------------------------------------------------------------------------------


@dataclass
class _Tally:
    """What a scan found: rows not under the current key that verify (`stale`) and that do not (`failed`)."""

    stale: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def count(self, kind: str) -> None:
        self.stale[kind] = self.stale.get(kind, 0) + 1

    def remaining(self) -> Remaining:
        total = sum(self.stale.values()) + len(self.failed)
        how = "rootkey reseal moves them"
        if self.stale and len(self.stale) > 1:
            how += " (" + ", ".join(f"{count} {kind}" for kind, count in sorted(self.stale.items())) + ")"
        if self.failed:
            named = ", ".join(self.failed[:MAX_NAMED]) + (", ..." if len(self.failed) > MAX_NAMED else "")
            how = (
                f"{how}; {len(self.failed)} fail their integrity check under every readable root key ({named}): "
                "reseal never blesses them; restore or delete them"
            )
        return Remaining(total, how_they_move=how)


def _state(row: MacProtectedRow, fields: Sequence[Any]) -> str:
    """ "current", "stale" (verifies under a previous key) or "failed" (verifies under no readable key)."""
    if is_under_current_root_key(row.mac, row.MAC_KIND, *fields):
        return "current"
    return "stale" if verify_row_mac(row.mac, row.MAC_KIND, *fields) else "failed"


def mac_rows(
    *,
    name: str,
    model: type[Model],
    related: Sequence[str] = (),
    parent: str | None = None,
    order: int = 100,
) -> RootKeyDependent:
    """The dependent of a kind of MAC-protected row no other MAC covers. `related` are the relations its MAC
    fields read; `parent` the foreign key locked before the rows (see `_lock_parents`)."""

    def rows() -> QuerySet[Any]:
        return model.objects.select_related(*related)  # type: ignore[attr-defined, no-any-return]

    def remaining(ring: RootKeyRing, batch_size: int = 500) -> Remaining:
        tally = _Tally()
        for page in _pages(rows(), batch_size):
            for row in page:
                state = _state(row, row.mac_fields())
                if state == "stale":
                    tally.count(row.MAC_KIND)
                elif state == "failed":
                    tally.failed.append(item(row.MAC_KIND, row.pk))
        return tally.remaining()

    def reseal_page(pks: list[Any]) -> Moved:
        query = model.objects.filter(pk__in=pks)  # type: ignore[attr-defined]
        _lock_parents(query, parent)
        moved, failed = [], []
        for row in query.select_related(*related).select_for_update(of=("self",)).order_by("pk"):
            fields = row.mac_fields()
            state = _state(row, fields)
            if state == "failed":
                failed.append(item(row.MAC_KIND, row.pk))
            elif state == "stale":
                row.mac = row_mac(row.MAC_KIND, *fields)  # from the values it verified with
                moved.append(row)
        if moved:
            model.objects.bulk_update(moved, ["mac"])  # type: ignore[attr-defined]
        return Moved(moved=len(moved), failed=tuple(failed))

    def reseal(ring: RootKeyRing, batch_size: int) -> Moved:
        results = []
        # Rows hanging from a parent lock their parents first (a key: every request on it waits meanwhile), so
        # one transaction holds at most PARENT_LOCKS_PER_BATCH of them, whatever the batch size.
        size = batch_size if parent is None else min(batch_size, PARENT_LOCKS_PER_BATCH)
        for page in _pages(rows(), size):
            pks = [row.pk for row in page if _state(row, row.mac_fields()) != "current"]
            if pks:
                results.append(_retried(lambda pks=pks: reseal_page(pks)))  # type: ignore[misc]
        return _sum(results)

    return RootKeyDependent(name=name, remaining=remaining, reseal=reseal, order=order)


@dataclass(frozen=True)
class Children:
    """One relation of a family: the parent's `related` rows, named in its MAC by `name_field`; `back` is the
    child's foreign key to the parent (set on each child, so its MAC fields cost no query); `lock_first` when the
    lock order puts these rows before their parent (a key's aliases)."""

    related: str
    name_field: str
    back: str
    select: Sequence[str] = ()
    lock_first: bool = False


ParentFields = Callable[[Any, dict[str, list[tuple[str, str]]]], tuple[Any, ...]]


def mac_family(
    *,
    name: str,
    model: type[Model],
    children: Sequence[Children],
    parent_fields: ParentFields,
    related: Sequence[str] = ("account",),
    prefetch: Sequence[str] = (),
    order: int = 100,
) -> RootKeyDependent:
    """The dependent of a parent kind whose MAC covers its `children`'s (as (name, MAC) pairs):
    `parent_fields(parent, {relation: pairs})` are its MAC fields given those pairs. `prefetch`: other relations
    `parent_fields` reads, fetched a page at a time by the scans."""

    def rows() -> QuerySet[Any]:
        children_prefetch = [
            Prefetch(child.related, queryset=_child_model(model, child).objects.select_related(*child.select))
            for child in children
        ]
        return model.objects.select_related(*related).prefetch_related(*children_prefetch, *prefetch)  # type: ignore[attr-defined, no-any-return]

    def members(parent: Any, loaded: dict[str, list[Any]]) -> list[tuple[MacProtectedRow, str]]:
        """Every member of the family with its state, the children first, the parent last."""
        found: list[tuple[MacProtectedRow, str]] = []
        for child in children:
            for row in loaded[child.related]:
                setattr(row, child.back, parent)
                found.append((row, _state(row, row.mac_fields())))
        fields = parent_fields(parent, _pairs(loaded, children))
        found.append((parent, _state(parent, fields)))
        return found

    def scan(batch_size: int) -> Iterator[tuple[Any, list[tuple[MacProtectedRow, str]]]]:
        for page in _pages(rows(), batch_size):
            for parent in page:
                loaded = {child.related: list(getattr(parent, child.related).all()) for child in children}
                found = members(parent, loaded)
                if any(state == "failed" for _row, state in found):
                    # The page and its children were read in separate statements, unlocked: a write committing
                    # between them (a request, another reseal) makes a legitimate family disagree once.
                    again = read_again(parent.pk)
                    if again is None:
                        continue  # deleted meanwhile
                    parent, found = again
                yield parent, found

    def read_again(pk: Any) -> tuple[Any, list[tuple[MacProtectedRow, str]]] | None:
        """One family as it is now (only for a family a scan found failing: its queries are paid then only)."""
        parent = model.objects.select_related(*related).prefetch_related(*prefetch).filter(pk=pk).first()  # type: ignore[attr-defined]
        if parent is None:
            return None
        return parent, members(parent, children_of(parent))

    def children_of(parent: Any) -> dict[str, list[Any]]:
        return {
            child.related: list(getattr(parent, child.related).select_related(*child.select).order_by("pk"))
            for child in children
        }

    def remaining(ring: RootKeyRing, batch_size: int = 500) -> Remaining:
        tally = _Tally()
        for _parent, found in scan(batch_size):
            for row, state in found:
                if state == "stale":
                    tally.count(row.MAC_KIND)
                elif state == "failed":
                    tally.failed.append(item(row.MAC_KIND, row.pk))
        return tally.remaining()

    def move(pk: Any) -> Moved:
        first = [child for child in children if child.lock_first]
        locked_first = {child.related: _lock_children(model, child, pk) for child in first}
        parent = model.objects.select_for_update(of=("self",)).select_related(*related).filter(pk=pk).first()  # type: ignore[attr-defined]
        if parent is None:
            return Moved()  # deleted meanwhile: nothing of it is left to move
        loaded = children_of(parent)
        for child in first:
            if [row.pk for row in loaded[child.related]] != locked_first[child.related]:
                # A child joined or left between the two locks: start again with the set as it is now.
                raise _FamilyChanged
        found = members(parent, loaded)
        failed = tuple(item(row.MAC_KIND, row.pk) for row, state in found if state == "failed")
        if failed:
            return Moved(failed=failed)  # never blessed: the family stays as it is, and keeps failing
        if all(state == "current" for _row, state in found):
            return Moved()
        moved = 0
        for row, state in found[:-1]:
            if state != "current":
                row.mac = row_mac(row.MAC_KIND, *row.mac_fields())
                type(row).objects.filter(pk=row.pk).update(mac=row.mac)  # type: ignore[attr-defined]
                moved += 1
        # The parent over its children's new MACs: the values it verified with, and these MACs only.
        parent.mac = row_mac(parent.MAC_KIND, *parent_fields(parent, _pairs(loaded, children)))
        model.objects.filter(pk=parent.pk).update(mac=parent.mac)  # type: ignore[attr-defined]
        return Moved(moved=moved + 1)

    def reseal(ring: RootKeyRing, batch_size: int) -> Moved:
        results = []
        for parent, found in scan(batch_size):
            if all(state == "current" for _row, state in found):
                continue
            moved = _retried_family(lambda pk=parent.pk: move(pk), item(parent.MAC_KIND, parent.pk))  # type: ignore[misc]
            results.append(moved)
        return _sum(results)

    return RootKeyDependent(name=name, remaining=remaining, reseal=reseal, order=order)


class _FamilyChanged(Exception):
    """A family's children changed between the lock on them and the lock on their parent."""


# A family whose children keep changing under the reseal is tried this many times, then reported as left (named
# with KEPT_CHANGING: it is not tampered with, a later run moves it).
FAMILY_ATTEMPTS = 5
KEPT_CHANGING = "its children kept changing"


def _retried_family(work: Callable[[], Moved], name: str) -> Moved:
    for _attempt in range(FAMILY_ATTEMPTS):
        try:
            return _retried(work)
        except _FamilyChanged:
            continue
    return Moved(failed=(f"{name} ({KEPT_CHANGING}: run rootkey reseal again)",))


def _child_model(model: type[Model], child: Children) -> Any:
    return model._meta.get_field(child.related).related_model


def _lock_children(model: type[Model], child: Children, parent_pk: Any) -> list[Any]:
    """Lock a parent's children that the lock order puts before it; their primary keys."""
    back = _child_model(model, child).objects.filter(**{f"{child.back}_id": parent_pk})
    return list(back.select_for_update().order_by("pk").values_list("pk", flat=True))


def _pairs(loaded: dict[str, list[Any]], children: Sequence[Children]) -> dict[str, list[tuple[str, str]]]:
    return {
        child.related: [(getattr(row, child.name_field), row.mac) for row in loaded[child.related]]
        for child in children
    }
