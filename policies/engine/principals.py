"""Principals: ARN parsing, the caller of a request, and matching callers against ``Principal`` elements.

Principal forms a key policy may name (spec §7.4): ``"*"``/``{"AWS": "*"}`` (everyone), an account (a 12-digit id
or ``arn:aws:iam::ACCT:root``), an IAM user or role ARN (with path), an assumed-role session ARN
(``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION``), a federated-user ARN, ``{"Service": "logs.amazonaws.com"}``,
and ``{"Federated": provider}``. Groups and organisations are never principals. Wildcards inside an ARN are not
allowed (AWS rejects them; conditions on ``aws:PrincipalArn`` are the way).

A caller has several *identities* that a ``Principal`` element may name: its own ARN, the role of its session,
and its account. Naming the caller's ARN (or its role) is a *direct* match, which is enough in the same account;
naming only its account is an *account* match, which delegates to the account's IAM policies. The account's root
user is the account principal itself, so an account match is direct for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

PARTITION_PATTERN = r"aws(?:-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f|-eusc)?"
# ASCII digits only: ``\d`` would also take full-width, Arabic-Indic and every other Unicode digit.
_ACCOUNT_ID = r"[0-9]{12}"
_ACCOUNT = re.compile(_ACCOUNT_ID)
_NAME = r"[\w+=,.@-]{1,128}"
# An IAM path is "/" or "/a/b/": segments of printable ASCII, none empty, and without "*" or "?", which in the ARN
# a policy names the principal by would read as wildcards (and "/" only ends a segment).
_PATH_SEGMENT = r"[\x21-\x29\x2b-\x2e\x30-\x3e\x40-\x7e]+"
_PATH = rf"(?:{_PATH_SEGMENT}/)*"
_IAM_PATH = re.compile(rf"/{_PATH}")

_ROOT = re.compile(rf"arn:({PARTITION_PATTERN}):iam::({_ACCOUNT_ID}):root")
_USER_OR_ROLE_OR_GROUP = re.compile(
    rf"arn:({PARTITION_PATTERN}):iam::({_ACCOUNT_ID}):(user|role|group)/({_PATH})({_NAME})"
)
_ASSUMED_ROLE = re.compile(
    rf"arn:({PARTITION_PATTERN}):sts::({_ACCOUNT_ID}):assumed-role/({_NAME})/({_NAME})"
)
_FEDERATED_USER = re.compile(rf"arn:({PARTITION_PATTERN}):sts::({_ACCOUNT_ID}):federated-user/({_NAME})")
_PROVIDER = re.compile(
    rf"arn:({PARTITION_PATTERN}):iam::({_ACCOUNT_ID}):(saml-provider|oidc-provider)/([\x21-\x7e]+)"
)
# The unique id of a deleted IAM user (AIDA...) or role (AROA...): IAM writes it in a key policy in place of the
# principal's ARN when the principal is deleted, so that a new principal of the same name does not inherit its
# access (AWS: "a principal with a unique ID that is similar to AIDACKCEVSQ6C2EXAMPLE"). A policy may keep
# one, but it names no caller: it is never matched, and PutKeyPolicy refuses it, since no principal has it.
_UNIQUE_ID = re.compile(r"A(?:IDA|ROA)[A-Z0-9]{17}")
_SERVICE = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_FEDERATED_NAME = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


class PrincipalKind(StrEnum):
    """What a principal ARN names."""

    ACCOUNT = "account"
    USER = "user"
    ROLE = "role"
    GROUP = "group"
    ASSUMED_ROLE = "assumed-role"
    FEDERATED_USER = "federated-user"
    SAML_PROVIDER = "saml-provider"
    OIDC_PROVIDER = "oidc-provider"


@dataclass(frozen=True, slots=True)
class PrincipalArn:
    """A parsed principal ARN. ``name`` is the user/role/group/federated-user name, or the session's role."""

    arn: str
    partition: str
    account_id: str
    kind: PrincipalKind
    name: str = ""
    path: str = "/"
    session_name: str = ""


def is_account_id(text: str) -> bool:
    """A 12-digit AWS account id."""
    return _ACCOUNT.fullmatch(text) is not None


def is_unique_id(text: str) -> bool:
    """The unique id of an IAM user or role (``AIDA…``/``AROA…``, 21 characters), as a key policy keeps a deleted
    principal: accepted in ``Principal``/``NotPrincipal`` but never matched to a caller."""
    return _UNIQUE_ID.fullmatch(text) is not None


def is_iam_path(text: str) -> bool:
    """An IAM path as a principal ARN carries it (``/`` or ``/a/b/``), the one rule the service checks paths
    against too: a principal whose path the engine could not read back from its ARN could not be authorized."""
    return _IAM_PATH.fullmatch(text) is not None


def account_root_arn(account_id: str, partition: str = "aws") -> str:
    """``arn:aws:iam::ACCOUNT:root``, the account principal."""
    return f"arn:{partition}:iam::{account_id}:root"


def parse_principal_arn(text: str) -> PrincipalArn | None:
    """Parse an IAM/STS principal ARN (or an account id, read as its root); ``None`` if it is not one."""
    if is_account_id(text):
        return PrincipalArn(account_root_arn(text), "aws", text, PrincipalKind.ACCOUNT)
    if not text.startswith("arn:"):
        return None
    if match := _ROOT.fullmatch(text):
        return PrincipalArn(text, match[1], match[2], PrincipalKind.ACCOUNT)
    if match := _USER_OR_ROLE_OR_GROUP.fullmatch(text):
        path = "/" + match[4]
        return PrincipalArn(text, match[1], match[2], PrincipalKind(match[3]), name=match[5], path=path)
    if match := _ASSUMED_ROLE.fullmatch(text):
        return PrincipalArn(
            text, match[1], match[2], PrincipalKind.ASSUMED_ROLE, name=match[3], session_name=match[4]
        )
    if match := _FEDERATED_USER.fullmatch(text):
        return PrincipalArn(text, match[1], match[2], PrincipalKind.FEDERATED_USER, name=match[3])
    if match := _PROVIDER.fullmatch(text):
        return PrincipalArn(text, match[1], match[2], PrincipalKind(match[3]), name=match[4])
    return None


def is_valid_service_principal(text: str) -> bool:
    """A service principal such as ``logs.us-east-1.amazonaws.com`` (spec §7.4 pattern, 1-128 chars)."""
    return len(text) <= 128 and _SERVICE.fullmatch(text) is not None


def is_valid_federated_principal(text: str) -> bool:
    """An identity provider: a SAML/OIDC provider ARN or a provider name like ``cognito-identity.amazonaws.com``."""
    parsed = parse_principal_arn(text) if text.startswith("arn:") else None
    if parsed is not None:
        return parsed.kind in (PrincipalKind.SAML_PROVIDER, PrincipalKind.OIDC_PROVIDER)
    return len(text) <= 256 and _FEDERATED_NAME.fullmatch(text) is not None


class PrincipalType(StrEnum):
    """The kind of caller; the value is what ``aws:PrincipalType`` reports."""

    ROOT = "Account"
    IAM_USER = "User"
    ASSUMED_ROLE = "AssumedRole"
    FEDERATED_USER = "FederatedUser"
    SERVICE = "Service"


_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Caller:
    """The authenticated principal making a request.

    ``arn`` is the ARN AWS prints in AccessDenied messages (the STS session ARN for a role session); ``role_arn``
    is the IAM role ARN (with path) of a session; ``userid`` is ``aws:userid`` (e.g. ``AIDA...`` or
    ``AROA...:session``); ``tags`` are the principal tags (role tags plus session tags for a session). For a
    ``SERVICE`` caller, ``arn`` is the service principal name and ``account_id`` may be empty.
    """

    arn: str
    account_id: str
    principal_type: PrincipalType
    role_arn: str | None = None
    username: str | None = None
    userid: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    partition: str = "aws"
    account_arn: str = field(init=False, compare=False)
    # (identity ARN, account id if that identity is the account principal) for NotPrincipal evaluation.
    identities: tuple[tuple[str, str | None], ...] = field(init=False, compare=False, repr=False)
    # Precomputed so the hot path never touches an Enum attribute (slow on Python 3.11).
    is_root: bool = field(init=False, compare=False, repr=False)
    is_service: bool = field(init=False, compare=False, repr=False)
    is_user: bool = field(init=False, compare=False, repr=False)
    principal_type_value: str = field(init=False, compare=False, repr=False)
    # Grantee principals under which grants apply to this caller: its ARN, its session's role, its account.
    grant_keys: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))
        object.__setattr__(self, "is_root", self.principal_type is PrincipalType.ROOT)
        object.__setattr__(self, "is_service", self.principal_type is PrincipalType.SERVICE)
        object.__setattr__(self, "is_user", self.principal_type is PrincipalType.IAM_USER)
        object.__setattr__(self, "principal_type_value", str(self.principal_type.value))
        account_arn = account_root_arn(self.account_id, self.partition) if self.account_id else ""
        object.__setattr__(self, "account_arn", account_arn)
        identities: list[tuple[str, str | None]] = []
        if self.principal_type is PrincipalType.ROOT:
            identities.append((account_arn, self.account_id))
        else:
            identities.append((self.arn, None))
            if self.role_arn:
                identities.append((self.role_arn, None))
            if account_arn and self.principal_type is not PrincipalType.SERVICE:
                identities.append((account_arn, self.account_id))
        object.__setattr__(self, "identities", tuple(identities))
        if self.is_service:
            grant_keys: tuple[str, ...] = (self.arn,)
        else:
            keys = [self.arn]
            if self.role_arn:
                keys.append(self.role_arn)
            if account_arn and account_arn != self.arn:
                keys.append(account_arn)
            grant_keys = tuple(keys)
        object.__setattr__(self, "grant_keys", grant_keys)

    @property
    def principal_arn(self) -> str | None:
        """``aws:PrincipalArn``: the role ARN for a session, else the caller's own ARN."""
        if self.is_service:
            return None
        return self.role_arn or self.arn

    @classmethod
    def root(cls, account_id: str, *, partition: str = "aws") -> Caller:
        """The account's root user."""
        return cls(
            arn=account_root_arn(account_id, partition),
            account_id=account_id,
            principal_type=PrincipalType.ROOT,
            userid=account_id,
            partition=partition,
        )

    @classmethod
    def user(cls, arn: str, *, userid: str | None = None, tags: Mapping[str, str] | None = None) -> Caller:
        """An IAM user, from its ARN (``arn:aws:iam::ACCT:user/path/name``)."""
        parsed = _require(arn, PrincipalKind.USER)
        return cls(
            arn=arn,
            account_id=parsed.account_id,
            principal_type=PrincipalType.IAM_USER,
            username=parsed.name,
            userid=userid,
            tags=tags or _EMPTY_TAGS,
            partition=parsed.partition,
        )

    @classmethod
    def assumed_role(
        cls,
        session_arn: str,
        *,
        role_arn: str | None = None,
        userid: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Caller:
        """A role session (``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION``).

        Pass ``role_arn`` when the role has a path (the session ARN does not show it).
        """
        parsed = _require(session_arn, PrincipalKind.ASSUMED_ROLE)
        if role_arn is None:
            role_arn = f"arn:{parsed.partition}:iam::{parsed.account_id}:role/{parsed.name}"
        return cls(
            arn=session_arn,
            account_id=parsed.account_id,
            principal_type=PrincipalType.ASSUMED_ROLE,
            role_arn=role_arn,
            userid=userid,
            tags=tags or _EMPTY_TAGS,
            partition=parsed.partition,
        )

    @classmethod
    def federated_user(
        cls, arn: str, *, userid: str | None = None, tags: Mapping[str, str] | None = None
    ) -> Caller:
        """A federated user (``arn:aws:sts::ACCT:federated-user/NAME``)."""
        parsed = _require(arn, PrincipalKind.FEDERATED_USER)
        return cls(
            arn=arn,
            account_id=parsed.account_id,
            principal_type=PrincipalType.FEDERATED_USER,
            userid=userid if userid is not None else f"{parsed.account_id}:{parsed.name}",
            tags=tags or _EMPTY_TAGS,
            partition=parsed.partition,
        )

    @classmethod
    def service(cls, name: str, *, account_id: str = "") -> Caller:
        """A service principal calling on its own behalf (``logs.us-east-1.amazonaws.com``)."""
        return cls(arn=name.lower(), account_id=account_id, principal_type=PrincipalType.SERVICE)

    @classmethod
    def from_arn(
        cls,
        arn: str,
        *,
        role_arn: str | None = None,
        userid: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Caller:
        """Build a caller from its ARN (root, user, assumed-role session or federated user)."""
        parsed = parse_principal_arn(arn)
        if parsed is None:
            raise ValueError(f"not a caller ARN: {arn!r}")
        if parsed.kind is PrincipalKind.ACCOUNT:
            return cls.root(parsed.account_id, partition=parsed.partition)
        if parsed.kind is PrincipalKind.USER:
            return cls.user(arn, userid=userid, tags=tags)
        if parsed.kind is PrincipalKind.ASSUMED_ROLE:
            return cls.assumed_role(arn, role_arn=role_arn, userid=userid, tags=tags)
        if parsed.kind is PrincipalKind.FEDERATED_USER:
            return cls.federated_user(arn, userid=userid, tags=tags)
        raise ValueError(f"a {parsed.kind} cannot make requests: {arn!r}")


def _require(arn: str, kind: PrincipalKind) -> PrincipalArn:
    parsed = parse_principal_arn(arn)
    if parsed is None or parsed.kind is not kind:
        raise ValueError(f"not a {kind} ARN: {arn!r}")
    return parsed


DIRECT = 1
ACCOUNT = 2


@dataclass(frozen=True, slots=True)
class PrincipalSet:
    """A compiled ``Principal``/``NotPrincipal`` element."""

    everyone: bool
    arns: frozenset[str]
    accounts: frozenset[str]
    services: frozenset[str]
    federated: frozenset[str]

    @classmethod
    def build(
        cls,
        *,
        everyone: bool,
        aws: Iterable[str] = (),
        services: Iterable[str] = (),
        federated: Iterable[str] = (),
    ) -> PrincipalSet:
        arns: set[str] = set()
        accounts: set[str] = set()
        for value in aws:
            if value == "*":
                everyone = True
                continue
            if is_unique_id(value):
                continue  # a deleted principal: no caller is ever matched by it, not even one of the same name
            parsed = parse_principal_arn(value)
            if parsed is None:
                continue
            if parsed.kind is PrincipalKind.ACCOUNT:
                accounts.add(parsed.account_id)
            else:
                arns.add(value)
        return cls(
            everyone=everyone,
            arns=frozenset(arns),
            accounts=frozenset(accounts),
            services=frozenset(name.lower() for name in services),
            federated=frozenset(federated),
        )

    def match(self, caller: Caller) -> int:
        """``DIRECT`` and/or ``ACCOUNT`` bits: how this element names the caller (0: it does not)."""
        if self.everyone:
            return 3  # DIRECT | ACCOUNT
        if caller.is_service:
            return 1 if caller.arn in self.services else 0
        result = 1 if caller.arn in self.arns or caller.role_arn in self.arns else 0
        if caller.account_id in self.accounts:
            result |= 3 if caller.is_root else 2
        return result

    def not_match(self, caller: Caller) -> int:
        """For ``NotPrincipal``: the ``DIRECT``/``ACCOUNT`` bits of the caller's identities this element omits.

        AWS evaluates a request for each identity of the caller (its ARN, its session's role, its account), so a
        ``NotPrincipal`` Deny still applies unless *every* identity is listed, and a ``NotPrincipal`` Allow that
        lists the caller but not its account still lets the account's IAM policies allow it.
        """
        if self.everyone:
            return 0
        result = 0
        for identity, account in caller.identities:
            if account is not None:
                if account not in self.accounts:
                    result |= ACCOUNT
                    if caller.is_root:
                        result |= DIRECT
            elif identity not in self.arns and identity not in self.services:
                result |= DIRECT
        return result
