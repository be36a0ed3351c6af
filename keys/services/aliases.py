"""Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases (kms-spec §9.1).

An alias is its own resource. Changing one needs two permissions (kms-spec §7.2): the alias operation on the
alias ARN, decided by the caller's identity policies alone, and the same action on each key involved, decided
by that key's policy (which may delegate to IAM) — the old and the new key for UpdateAlias.

Order of checks: the alias name's rules, then IAM on the alias ARN, then the key(s) (NotFoundException, the key
policy, the key state), then the alias's own rules (exists, quota, compatible keys).

**Lock order.** An alias's row before its key's: UpdateAlias and DeleteAlias lock the alias, then its key(s)
(UpdateAlias both keys in primary key order, as every transaction that locks several keys does); the destruction
of a key pending deletion, which deletes its aliases with it, locks its alias rows before the key
(`keys.services.deletion._destroy`); CreateAlias locks the key and inserts a new row, which no one else holds.
The whole order, principals and generation rows included, is written down in `policies.principal_locks`.

Names starting with `alias/aws/` belong to AWS managed keys, which this KMS does not have. AWS does not document
the exception it raises for them; this KMS answers every alias operation naming one with
InvalidAliasNameException (the modeled alias-name error) and RESERVED_PREFIX_MESSAGE.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.db import IntegrityError, transaction

from keys.crypto import KeySpec
from keys.models import ALIAS_PREFIX, Alias, Key, KeyState, alias_arn
from keys.selectors import resolve_key
from keys.services.access import authorize_on_key, key_for
from kmsconsole.core import errors
from kmsconsole.core.pagination import list_limit, page
from kmsconsole.core.rowmac import locked_and_checked
from kmsconsole.core.text import with_article
from kmsconsole.operations import OperationContext
from policies.authorization import authorize

RESERVED_PREFIX = "alias/aws/"
ALIAS_NAME_MAX_LENGTH = 256
# The characters KMS accepts in an alias name, as a regular-expression class without its brackets ('-' last, so
# literal): letters, digits, /, _ and -. AWS's model pattern admits ':' as well, which KMS refuses
# (`check_alias_name`); the pattern is written as AWS's messages quote it.
_LETTERS_AND_DIGITS = "a-zA-Z0-9"
_MARKS = "/_-"
ALIAS_NAME_CHARACTERS = _LETTERS_AND_DIGITS + _MARKS
ALIAS_NAME_PATTERN = f"^[{_LETTERS_AND_DIGITS}:{_MARKS}]+$"
# Customer aliases per key (kms-spec §12.1; adjustable on AWS, fixed here).
ALIASES_PER_KEY = 50
# ListAliases' Limit: AWS accepts 1-100 (the shared model type says 1-1000) and defaults to 50.
LIST_ALIASES_DEFAULT_LIMIT = 50
LIST_ALIASES_MAX_LIMIT = 100

PREFIX_MESSAGE = (
    'Alias must start with the prefix "alias/". '
    "Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
)
RESERVED_PREFIX_MESSAGE = (
    'Alias names cannot begin with "alias/aws/": that prefix is reserved for AWS managed keys.'
)
EMPTY_NAME_MESSAGE = 'Alias names must include a name after the "alias/" prefix.'


def check_alias_name(name: str) -> None:
    """AWS's naming rules, for every interface (the KMS endpoint's model check catches length and pattern first)."""
    errors.check_length("aliasName", name, maximum=ALIAS_NAME_MAX_LENGTH)
    errors.check_pattern("aliasName", name, ALIAS_NAME_PATTERN)
    if not name.startswith(ALIAS_PREFIX):
        raise errors.ValidationException(PREFIX_MESSAGE)
    if name.startswith(RESERVED_PREFIX):
        raise errors.InvalidAliasNameException(RESERVED_PREFIX_MESSAGE)
    if name == ALIAS_PREFIX:
        raise errors.InvalidAliasNameException(EMPTY_NAME_MESSAGE)
    # The pattern admits ':', but KMS refuses it in alias names (as AWS-compatible emulators record).
    if not re.fullmatch(f"[{ALIAS_NAME_CHARACTERS}]+", name):
        raise errors.ValidationException(f"{name} contains invalid characters for an alias")


def _authorize_alias(ctx: OperationContext, name: str, action: str | None = None) -> str:
    """The IAM half: the caller's identity policies must allow the operation (or `action`) on the alias ARN."""
    arn = alias_arn(ctx.caller.account_id, name)
    authorize(ctx, resource=arn, action=action)
    return arn


def _refuse_taken(key: Key, name: str, arn: str) -> None:
    if Alias.objects.filter(account=key.account, name=name).exists():
        raise errors.AlreadyExistsException(f"An alias with the name {arn} already exists")


def _alias_in_account(ctx: OperationContext, name: str, *, arn: str) -> Alias:
    alias = (
        Alias.objects.select_for_update(of=("self",))
        .select_related("account", "key__account")
        .filter(account__account_id=ctx.caller.account_id, name=name)
        .first()
    )
    if alias is None:
        raise errors.NotFoundException(f"Alias {arn} is not found.")
    alias.check_row()  # the locked copy is the one a change saves: never bless a row changed outside
    return alias


def _check_alias_quota(key: Key) -> None:
    if key.aliases.count() >= ALIASES_PER_KEY:
        raise errors.LimitExceededException(
            f"The KMS key {key.arn} already has {ALIASES_PER_KEY} aliases, the most a key can have."
        )


def _key_type(key: Key) -> str:
    """Symmetric, HMAC or asymmetric: UpdateAlias may only move an alias between keys of one type."""
    if key.key_spec == KeySpec.SYMMETRIC_DEFAULT:
        return "symmetric"
    if key.key_spec.startswith("HMAC_"):
        return "HMAC"
    return "asymmetric"


def _check_compatible(alias: Alias, *, old: Key, new: Key) -> None:
    # This service's own sentence: AWS's reference gives no wording for this refusal (kms-spec §9.1).
    if _key_type(old) != _key_type(new) or old.key_usage != new.key_usage:
        raise errors.ValidationException(
            f"Alias {alias.arn} cannot be moved from {with_article(_key_type(old))} {old.key_usage} key to "
            f"{with_article(_key_type(new))} {new.key_usage} key: the new key must be of the same type and key "
            "usage."
        )


def alias_create(*, ctx: OperationContext, alias_name: str, target_key_id: str) -> Alias:
    """Create `alias_name` for a key of the caller's account (key id or key ARN; never another alias).

    kms:CreateAlias on the alias ARN (IAM) and on the key (key policy); the key must not be pending deletion.
    A name already used in the account is AlreadyExistsException with the alias ARN, as on AWS.
    """
    check_alias_name(alias_name)
    arn = _authorize_alias(ctx, alias_name)
    key = key_for(ctx, target_key_id, lock=True)
    _refuse_taken(key, alias_name, arn)
    _check_alias_quota(key)
    try:
        # A savepoint: a concurrent CreateAlias of the same name loses on the unique constraint, not the whole
        # transaction (PostgreSQL aborts a transaction after an error).
        with transaction.atomic():
            alias = Alias.objects.create(account=key.account, name=alias_name, key=key)
    except IntegrityError:
        raise errors.AlreadyExistsException(f"An alias with the name {arn} already exists") from None
    key.seal()  # the key's MAC covers its aliases (key_for locked and checked it)
    return alias


def check_alias_for_new_key(*, ctx: OperationContext, key: Key, alias_name: str) -> None:
    """Inside the CreateKey that made `key`, before it commits: raise what CreateAlias of `alias_name` for the key
    would be refused with (the name's rules, kms:CreateAlias on the alias ARN by identity policies and on the
    key by its policy, a name in use), so a caller that creates a key and then its alias (the console's wizard)
    never leaves a key without the alias asked for. The decisions go onto CreateKey's audit event, as
    kms:TagResource's do; the CreateAlias that follows is authorized again."""
    check_alias_name(alias_name)
    arn = _authorize_alias(ctx, alias_name, action="kms:CreateAlias")
    authorize_on_key(ctx, key, action="kms:CreateAlias")
    _refuse_taken(key, alias_name, arn)


def alias_update(*, ctx: OperationContext, alias_name: str, target_key_id: str) -> Alias:
    """Point an existing alias at another key of the same type (symmetric, asymmetric, HMAC) and key usage.

    kms:UpdateAlias on the alias ARN (IAM), on the current key and on the new key (key policies). The current
    key may be pending deletion; the new one may not (kms-spec §4.2 footnote 10).
    """
    check_alias_name(alias_name)
    arn = _authorize_alias(ctx, alias_name)
    alias = _alias_in_account(ctx, alias_name, arn=arn)
    old = alias.key
    authorize_on_key(ctx, old)
    # Both keys' rows, in primary key order, before either is used: every transaction that locks several keys
    # (this one, a principal's deletion rewriting the keys naming it) takes them in that order, so none waits for
    # a key while holding one another waits for (new, then old, deadlocked with a deletion holding old and
    # waiting for new). The target is resolved here as key_for resolves it, with the same errors.
    target = resolve_key(target_key_id, caller_account=ctx.caller.account_id, operation=ctx.operation).key
    list(
        Key.objects.select_for_update(of=("self",))
        .filter(pk__in=[old.pk, target.pk])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    new = key_for(ctx, target_key_id, lock=True)
    if new.state == KeyState.PENDING_DELETION:
        raise errors.KMSInvalidStateException(f"{new.arn} is pending deletion.")
    if new.pk == old.pk:
        return alias
    _check_compatible(alias, old=old, new=new)
    _check_alias_quota(new)
    old = locked_and_checked(old)
    alias.key = new
    alias.save(update_fields=["key", "updated_at"])
    old.seal()  # both keys' MACs cover their aliases
    new.seal()
    return alias


def alias_delete(*, ctx: OperationContext, alias_name: str) -> None:
    """Delete an alias, whatever its key's state. kms:DeleteAlias on the alias ARN (IAM) and on its key (key
    policy). An unknown alias is NotFoundException `Alias <arn> is not found.`"""
    check_alias_name(alias_name)
    arn = _authorize_alias(ctx, alias_name)
    alias = _alias_in_account(ctx, alias_name, arn=arn)
    authorize_on_key(ctx, alias.key)
    key = locked_and_checked(alias.key)
    alias.delete()
    key.seal()


def alias_list(
    *, ctx: OperationContext, key_id: str | None = None, limit: int | None = None, marker: str | None = None
) -> tuple[Sequence[Alias], str | None]:
    """The aliases of the caller's account, optionally only those of one key (key id or key ARN), one page at a
    time. kms:ListAliases is IAM-only: no key policy is consulted, even with KeyId."""
    limit = list_limit(limit, default=LIST_ALIASES_DEFAULT_LIMIT, maximum=LIST_ALIASES_MAX_LIMIT)
    authorize(ctx, resource="*")
    account_id = ctx.caller.account_id
    aliases = Alias.objects.filter(account__account_id=account_id).select_related("account", "key")
    scope = f"ListAliases:{account_id}"
    if key_id is not None:
        key = resolve_key(key_id, caller_account=account_id, operation=ctx.operation).key
        aliases = aliases.filter(key=key)
        scope = f"{scope}:{key.pk}"
    return page(aliases, scope=scope, limit=limit, marker=marker)
