"""The key list (ListKeys) as the console and the REST API show it: what each row shows, search and filters, and
pages whose cost does not depend on what the caller may not see.

kms:ListKeys is an IAM-only permission and gives every key's id and ARN, nothing more. What else a row shows is
another request's answer, shown only where that request by the caller would be allowed, decided by the engine and
recorded nowhere but on the list's own one event:

- a key's description, state, spec, usage, origin and dates: DescribeKey's (a key policy decision, which grants
  may allow: `keys.services.access.KeyQuestions.describable`, in bulk);
- its aliases: ListAliases' (IAM-only, on "*": one decision per list);
- its tags and rotation status (REST only): ListResourceTags' and GetKeyRotationStatus' (`KeyQuestions.allows`).

A search or filter must not find a key by what the caller may not see, nor take longer, nor cost more queries or
decisions, because a key it may not describe matches. So:

- a search that is a whole key id or key ARN, or that starts with "alias/" (alias names, searched only for a caller
  allowed kms:ListAliases, which shows every alias of the account), narrows in SQL: the caller may see everything
  it matches on;
- any other search (part of a key id, of an alias name where aliases are shown, of a description where the key is
  described) and the state, spec and usage filters are matched in Python, on what the row shows, while the
  account's keys are walked in ListKeys order (creation, then primary key) in fixed chunks of WALK_CHUNK keys,
  every walked key decided whether or not it would match, until the page is full or WALK_LIMIT keys were walked
  (whatever the page size): the page then says how far it searched and links to the rest;
- a list with neither walks nothing: each page decides only the keys it shows.

The only orders are creation, ascending and descending: an order by description, state or spec would place a key
by what the caller may not see. A page link carries only a direction and the primary key of the key it continues
from, sealed to the caller, the account and the query (`kmsconsole.core.pagination.seal_position`): a narrowed
walk's cursors are positions of keys that matched what *this* caller may see, and another principal replaying them
(read from a shared URL, say) would learn from its own walk which of its hidden keys they point at. Cursors are
never recorded on audit events (`kmsconsole.core.pagination.RECORDED_CURSOR`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import F, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan

from keys import selectors
from keys.models import Alias, Key, key_arn
from keys.services.access import KeyQuestions
from keys.services.rotation import rotation_status_of
from kmsconsole.api import reads
from kmsconsole.core import errors
from kmsconsole.core.context import Caller
from kmsconsole.core.pagination import open_position, seal_position
from kmsconsole.operations import OperationContext

# Keys fetched and decided at a time by a walk, and at most per request: neither depends on the page size.
WALK_CHUNK = 100
WALK_LIMIT = 500
SEARCH_MAX_LENGTH = 256
ALIAS_PREFIX = "alias/"
DESCRIBE_KEY_NEEDED = "kms:DescribeKey"


def only_by_creation(orders: str) -> str:
    """Why an order other than creation's (`orders`, in the interface's words) is refused, in words."""
    return (
        f"The key list is sorted by creation only ({orders}). Sorting by description, state, key spec or usage was "
        "removed: it placed keys by values the caller may not see (DescribeKey's answer)."
    )


LIST_ALIASES_NEEDED = "kms:ListAliases"


@dataclass(frozen=True)
class KeyQuery:
    """What a key list was asked for: a search, filters on DescribeKey's fields, and the order of creation."""

    search: str = ""
    state: str = ""
    key_spec: str = ""
    key_usage: str = ""
    descending: bool = False

    @property
    def narrowed(self) -> bool:
        return bool(self.search or self.state or self.key_spec or self.key_usage)

    def scope(self, caller: Caller) -> str:
        """What a page link is sealed to: the caller, its account and everything the list was asked for.

        The caller is its ARN and its unique id (`aws:userid`: an IAM user's AIDA… id, a role session's "AROA…:
        session name", the account id for the root), what the policies and the audit trail know a principal by. A
        user deleted and created again under the same name, or a role recreated, has a new unique id: its old
        cursors are refused. Not the credential: one principal's access keys, API tokens and console login, and a
        role's sessions under one session name, are the same caller to every policy (a new session of the role is
        open to whoever may assume it), and a cursor only ever shows that caller what it may see."""
        asked = [self.search, self.state, self.key_spec, self.key_usage, self.descending]
        bound = {"account": caller.account_id, "caller": [caller.arn, caller.userid], "query": asked}
        return f"ListKeys:v2:{json.dumps(bound, sort_keys=True)}"


def _rotation_shown(key: Key) -> bool | None:
    """Whether the key's automatic rotation is on, as GetKeyRotationStatus would answer (so off for an asymmetric
    or HMAC key and while pending deletion, whatever setting is stored); none where it would refuse (imported)."""
    try:
        return rotation_status_of(key).enabled
    except errors.UnsupportedOperationException:
        return None


@dataclass(frozen=True)
class ListedKey:
    """A row of the list: the key, and what of it the caller may see beyond its id and ARN (None where refused)."""

    key: Key
    described: bool
    aliases: tuple[str, ...] | None
    tags: dict[str, str] | None = None
    rotation_enabled: bool | None = None


@dataclass(frozen=True)
class KeyListPage:
    rows: list[ListedKey]
    next_cursor: str | None
    previous_cursor: str | None
    # Keys looked through by a walk (None when the page walked nothing: each of its keys is shown), and the last.
    searched: int | None = None
    searched_to: Key | None = None


@dataclass(frozen=True)
class _Search:
    """How a search runs: `key` (a whole key id or key ARN: that key), `alias` (alias names containing `text`),
    `text` (walked), or `none` (matches nothing the caller may see)."""

    kind: str
    text: str = ""
    key_id: uuid.UUID | None = None


def _parsed_search(search: str, account_id: str) -> _Search:
    if not search:
        return _Search("text")
    try:
        return _Search("key", key_id=uuid.UUID(search))
    except ValueError:
        pass
    folded = search.casefold()
    if folded.startswith("arn:") and ":key/" in folded:
        try:
            key_id = uuid.UUID(folded.rsplit(":key/", 1)[1])
        except ValueError:
            return _Search("text", text=folded)
        # Only an ARN of this account (partition, region) names a key of the list: compared with the ARN rebuilt
        # from the parsed key id, whatever the case it was typed in (a key id is case-insensitive, as a search is).
        named = folded == key_arn(account_id, str(key_id)).casefold()
        return _Search("key", key_id=key_id) if named else _Search("none")
    if folded.startswith(ALIAS_PREFIX):
        return _Search("alias", text=search)
    return _Search("text", text=folded)


class KeyListing:
    """One request's key list: the ListKeys decision (recorded on the operation's event), the questions each row
    needs (recorded nowhere), and its pages. `extras` adds each row's tags and rotation status (the REST list)."""

    def __init__(
        self, ctx: OperationContext, query: KeyQuery, *, page_size: int, extras: bool = False
    ) -> None:
        self._ctx = ctx
        self.query = query
        self.page_size = page_size
        self._extras = extras
        self._keys = reads.account_keys(ctx)  # the ListKeys decision, before anything is read
        self._questions = KeyQuestions(ctx)
        self.aliases_shown = self._questions.allows_on_account("kms:ListAliases")
        self._search = _parsed_search(query.search, ctx.caller.account_id)
        self._scope = query.scope(ctx.caller)

    @property
    def walks(self) -> bool:
        """Whether pages are walked: the list is narrowed by something matched in Python."""
        query = self.query
        return bool(query.state or query.key_spec or query.key_usage) or (
            self._search.kind == "text" and bool(self._search.text)
        )

    @property
    def search_unavailable(self) -> str:
        """Why the search can match nothing here, in words ("" when it can)."""
        if self._search.kind == "alias" and not self.aliases_shown:
            return f"Alias names are searched only for callers allowed {LIST_ALIASES_NEEDED}."
        return ""

    def ordered(self) -> QuerySet[Key]:
        """The account's keys narrowed in SQL (by what the caller may see of every key), in the list's order."""
        keys = self._keys
        search = self._search
        if search.kind == "key":
            keys = keys.filter(key_id=search.key_id)
        elif search.kind == "none" or (search.kind == "alias" and not self.aliases_shown):
            keys = keys.none()
        elif search.kind == "alias":
            named = Alias.objects.filter(
                account__account_id=self._ctx.caller.account_id, name__icontains=search.text
            )
            keys = keys.filter(pk__in=named.values("key_id"))
        return keys.order_by(*(("-created_at", "-pk") if self.query.descending else ("created_at", "pk")))

    def page(self, cursor: str | None) -> KeyListPage:
        """The page a link continues (`cursor`), or the first."""
        direction, frontier = self._opened(cursor)
        if self.walks:
            if direction == "before":
                raise errors.InvalidMarkerException("A searched or filtered list is read forwards only.")
            return self._walked(frontier)
        return self._keyset(direction, frontier)

    def shown(self, keys: Sequence[Key]) -> list[ListedKey]:
        """Rows for `keys`, every one of which the page shows: only they are decided."""
        return self._rows(keys, self._questions.describable(keys))

    def _opened(self, cursor: str | None) -> tuple[str, tuple[object, int] | None]:
        if not cursor:
            return "after", None
        direction, pk = open_position(self._scope, cursor)
        found = self._keys.filter(pk=pk).values_list("created_at", "pk").first()
        if found is None:
            raise errors.InvalidMarkerException(
                "The key that page link continues from no longer exists. Start again from the first page."
            )
        return direction, found

    def _beyond(
        self, keys: QuerySet[Key], frontier: tuple[object, int] | None, reverse: bool
    ) -> QuerySet[Key]:
        if frontier is None:
            return keys
        beyond = TupleLessThan if reverse else TupleGreaterThan
        keys = keys.filter(beyond(Tuple(F("created_at"), F("pk")), frontier))
        # The leading column's bound too: SQLite seeks an index only with a plain comparison.
        return keys.filter(**{f"created_at__{'lte' if reverse else 'gte'}": frontier[0]})

    def _keyset(self, direction: str, frontier: tuple[object, int] | None) -> KeyListPage:
        """A page of the SQL-narrowed keys, each shown: PAGE + 1 keys read, the page's keys decided."""
        backwards = direction == "before"
        keys = self.ordered()
        if backwards:
            keys = keys.reverse()
        batch = list(self._beyond(keys, frontier, self.query.descending != backwards)[: self.page_size + 1])
        more = len(batch) > self.page_size
        batch = batch[: self.page_size]
        if backwards:
            batch.reverse()
        has_next = more if not backwards else True
        has_previous = frontier is not None and (more if backwards else True)
        return KeyListPage(
            rows=self.shown(batch),
            next_cursor=self._cursor("after", batch[-1]) if batch and has_next else None,
            previous_cursor=self._cursor("before", batch[0]) if batch and has_previous else None,
        )

    def _walked(self, frontier: tuple[object, int] | None) -> KeyListPage:
        """Up to a page of matches, walking at most WALK_LIMIT keys in chunks of WALK_CHUNK from `frontier`; every
        key of every chunk fetched is decided, whether or not it would match."""
        found: list[ListedKey] = []
        searched = 0
        last: Key | None = None
        more = True
        keys = self.ordered()
        while more and searched < WALK_LIMIT and len(found) < self.page_size:
            take = min(WALK_CHUNK, WALK_LIMIT - searched)
            chunk = list(self._beyond(keys, frontier, self.query.descending)[:take])
            more = len(chunk) == take
            describable = self._questions.describable(chunk)
            for index, key in enumerate(chunk):
                searched, last = searched + 1, key
                if self._matches(key, key.pk in describable):
                    found.extend(self._rows([key], describable))
                    if len(found) == self.page_size:
                        more = more or index < len(chunk) - 1
                        break
            if last is not None:
                frontier = (last.created_at, last.pk)
        return KeyListPage(
            rows=found,
            next_cursor=self._cursor("after", last) if last is not None and more else None,
            previous_cursor=None,
            searched=searched,
            searched_to=last,
        )

    def _matches(self, key: Key, described: bool) -> bool:
        """Whether the row matches the search and filters by what it shows: the key id always, alias names where
        aliases are shown, DescribeKey's fields only where the key is described."""
        query = self.query
        for wanted, value in (
            (query.state, key.state),
            (query.key_spec, key.key_spec),
            (query.key_usage, key.key_usage),
        ):
            if wanted and not (described and value == wanted):
                return False
        text = self._search.text if self._search.kind == "text" else ""
        if not text or text in str(key.key_id):
            return True
        if self.aliases_shown and any(text in alias.name.casefold() for alias in key.aliases.all()):
            return True
        return described and text in key.description.casefold()

    def _rows(self, keys: Sequence[Key], describable: frozenset[int]) -> list[ListedKey]:
        questions = self._questions
        rows = []
        for key in keys:
            aliases = tuple(sorted(alias.name for alias in key.aliases.all())) if self.aliases_shown else None
            tags, rotation = None, None
            if self._extras:
                if questions.allows(key, "kms:ListResourceTags"):
                    tags = selectors.key_tags(key)
                if questions.allows(key, "kms:GetKeyRotationStatus"):
                    rotation = _rotation_shown(key)
            rows.append(ListedKey(key, key.pk in describable, aliases, tags, rotation))
        return rows

    def _cursor(self, direction: str, key: Key) -> str:
        return seal_position(self._scope, direction, int(key.pk))
