"""The policy engine: parse, validate, evaluate and explain KMS key policies, IAM identity policies and grants.

Pure Python: no Django, no database, no I/O (the only clock read is ``RequestContext.build``'s default ``now``).
Facts it implements: ``kms-spec.md`` §6-§8.

Parse and validate
------------------
``parse_key_policy(text: str | bytes) -> Policy``
``parse_identity_policy(text: str | bytes) -> Policy``
    Validate a document into frozen dataclasses (``Policy`` -> ``Statement`` -> ``PrincipalBlock`` /
    ``ConditionClause``). Raise only ``MalformedPolicyDocumentException`` or, for a key policy over 32,768 bytes,
    ``LimitExceededException`` (both ``EngineError`` with ``.code``/``.message``, plus ``.statement_index``,
    ``.sid``, ``.element`` locating the problem). Key policies need a principal in every statement; identity
    policies may not have one. ``Policy.named_principals() -> tuple[str, ...]`` lists the principal ARNs a key
    policy names (account ids as ``arn:aws:iam::ACCT:root``); the service layer checks they exist and, if not,
    raises ``MalformedPolicyDocumentException(INVALID_PRINCIPALS_MESSAGE)``. ``Policy.warnings`` flags statements
    accepted but without effect (no Action or no Resource).

Compile (cached)
----------------
``compile_key_policy(text) -> CompiledPolicy`` / ``compile_identity_policy(text) -> CompiledPolicy``
    Parse + validate + compile, LRU-cached by the SHA-256 of the text (same text, same object); raise like the
    parsers. ``compile_policy(policy: Policy) -> CompiledPolicy`` compiles an already parsed draft, uncached.
    ``policy_digest(text)``, ``clear_policy_cache()``, ``policy_cache_info()``.

Request context
---------------
``Caller``: ``Caller.root(account_id)``, ``Caller.user(arn, userid=, tags=)``,
    ``Caller.assumed_role(session_arn, role_arn=, userid=, tags=)``, ``Caller.federated_user(arn, ...)``,
    ``Caller.service(name)``, or ``Caller.from_arn(arn, role_arn=, userid=, tags=)``. ``principal_type`` is a
    ``PrincipalType`` (ROOT, IAM_USER, ASSUMED_ROLE, FEDERATED_USER, SERVICE; values are ``aws:PrincipalType``).
``parse_principal_arn(text)``; ``is_account_id(text)`` (12 ASCII digits) and ``is_iam_path(text)`` (``/`` or
    ``/a/b/``, no empty segment, no ``*`` or ``?``): the rules principal ARNs follow, which the service checks new
    accounts and principals against. ``is_unique_id(text)``: a deleted user's or role's unique id (``AIDA…``,
    ``AROA…``), which a stored key policy keeps in place of its ARN: ``compile_key_policy`` accepts it and nothing
    ever matches it; ``parse_key_policy`` (what a write is validated with) refuses it as an invalid principal.
``RequestContext.build(*, caller, action, resource="*", resource_account=None, source_ip=None, now=None,
    secure_transport=None, encryption_context=None, resource_tags=None, request_tags=None, tag_keys=None,
    condition_values=None, new_grant=None) -> RequestContext``
    ``action`` is ``"kms:Encrypt"`` etc.; ``resource`` the key ARN (the alias ARN for the IAM half of alias
    operations; ``"*"`` for account-level actions); ``resource_account`` defaults to the ARN's account. Derives
    ``aws:PrincipalArn/Account/Type``, ``aws:username``, ``aws:userid``, ``aws:PrincipalTag/*``,
    ``aws:ResourceTag/*``, ``aws:RequestTag/*``, ``aws:TagKeys``, ``aws:SourceIp``, ``aws:CurrentTime``,
    ``aws:EpochTime``, ``aws:SecureTransport``, ``kms:CallerAccount`` (resource requests),
    ``kms:EncryptionContext:<k>`` and ``kms:EncryptionContextKeys``. Pass the operation's KMS keys
    (``kms:KeySpec``, ``kms:KeyUsage``, ``kms:KeyOrigin``, ``kms:EncryptionAlgorithm``, ``kms:RequestAlias``,
    ``kms:ResourceAliases``, ``kms:GrantOperations``, ``kms:GranteePrincipal``, ``kms:RetiringPrincipal``,
    ``kms:GrantConstraintType``, ``kms:GrantIsForAWSResource``, ``kms:ViaService``, ``kms:PolicyName``,
    ``kms:BypassPolicyLockoutSafetyCheck``, ``kms:ScheduleKeyDeletionPendingWindowInDays``,
    ``kms:RotationPeriodInDays``, ``kms:ReEncryptOnSameKey``, ``kms:SigningAlgorithm``, ``kms:MacAlgorithm``,
    ``aws:SourceArn``, ...) in ``condition_values`` (lists become multivalued). Never put caller-controlled
    names there: ``kms:ViaService``/``kms:GrantIsForAWSResource`` only for registered integrated services.
    ``new_grant=GrantRequest(operations, constraints)`` describes the grant a CreateGrant asks for.

Decide
------
``evaluate(context, *, key_policy: CompiledPolicy | None, identity_policies: Sequence[IdentityPolicy] = (),
    grants: GrantIndex | Sequence[Grant] = (), token_grant_ids: Collection[str] = (),
    key_policy_name: str = "default") -> Decision``
    ``key_policy`` is required; ``None`` means an account-level action (``ACCOUNT_LEVEL_ACTIONS``: GenerateRandom,
    CreateKey, ListKeys, ListAliases, ListRetirableGrants, ...), decided by identity policies alone; also use
    ``None`` for the IAM-only half of alias operations (resource = alias ARN), for ``kms:RetireGrant`` by the
    grant's account, and for the product's own actions such as ``kmsconsole:Explain``.
    ``IdentityPolicy(name, compiled_policy)`` is a NamedTuple. ``token_grant_ids``: ids of grants whose verified
    tokens came with the request (they allow before propagation; a ``Grant`` has ``effective=False`` until then).
``would_allow(context, *, key_policy, identity_policies=(), grants=(), token_grant_ids=()) -> bool``
``check_lockout(context, new_key_policy, identity_policies=(), *, key_arn=None) -> Decision`` and
``ensure_no_lockout(...)`` (raises ``MalformedPolicyDocumentException(LOCKOUT_MESSAGE)``): would the caller
    still be allowed ``kms:PutKeyPolicy`` under the new policy (spec §6.4)? For CreateKey pass ``key_arn``.
Simulation is ``evaluate`` with drafts: ``compile_policy(parse_key_policy(draft))``; nothing needs stored rows.

Decision
--------
Immutable (a NamedTuple, for speed; ``bool(decision)`` raises ``TypeError`` so ``if decision:`` cannot be
mistaken for ``if decision.allowed:``). Fields: ``allowed``, ``reason: ReasonCode``, ``statement: StatementRef |
None`` (``policy_kind`` "key"/"identity", ``policy_name``, 0-based ``index``, ``sid``; ``describe()`` gives
"statement 'Sid' in the key policy"), ``supporting: tuple[StatementRef, ...]`` (e.g. the key-policy statement that
delegated to IAM), ``grant_id``, ``context``; properties ``caller_arn``, ``caller_account``, ``action``,
``resource``, ``resource_account``, ``cross_account``. ``explanation()`` in plain words (audit event, console);
``access_denied_message()`` in AWS's exact shapes (``User: ARN is not authorized to perform: kms:X on resource: R
because no resource-based policy allows the kms:X action`` / ``... because no identity-based policy allows ...`` /
``... with an explicit deny in a resource-based policy`` / ``... with an explicit deny in an identity-based
policy``; raises ``ValueError`` when allowed); ``trace`` (tuple of ASCII notes, one per statement and grant, built
only when read, for the ``X-Kms-Explain`` header); ``to_dict()`` for audit JSON.

ReasonCode: ALLOWED_BY_KEY_POLICY, ALLOWED_BY_IDENTITY_POLICY, ALLOWED_CROSS_ACCOUNT, ALLOWED_BY_GRANT,
ALLOWED_AS_ROOT, EXPLICIT_DENY_KEY_POLICY, EXPLICIT_DENY_IDENTITY_POLICY, IAM_NOT_DELEGATED,
NO_KEY_POLICY_ALLOWS, NO_IDENTITY_POLICY_ALLOWS, GRANT_NOT_YET_EFFECTIVE, GRANT_CONSTRAINTS_NOT_MET.

Findings
--------
``key_policy_findings(policy, *, account_id, key_spec="SYMMETRIC_DEFAULT", key_usage="ENCRYPT_DECRYPT",
key_arn=None) -> tuple[Finding, ...]`` and ``identity_policy_findings(policy)``: what a person should know about a
policy (access for ``*`` or another account without a narrowing condition, no statement for the account root,
administrators who can grant themselves use of the key or delete it, ``kms:*`` for non-root principals), each a
``Finding(id, severity: Severity, title, detail, fix, statement_index, sid, principals)`` with ``to_dict()``, most
severe first. Decided with the engine's own action and principal matching (see ``findings.py``).

Access analysis
---------------
``analysis.AccessAnalyzer().verdict(context, key_policy=..., identity_policies=..., grants=...) -> Verdict``: may
the caller do the action on the key with no request in hand? ``ALLOWED`` (with the ``Route`` the decision took),
``DENIED``, or ``CONDITIONAL`` with each way in (the request-dependent facts that must hold, in words, and the
route). Conditions on what only a request carries (``unknowns.depends_on_request``: encryption context, source IP,
time, TLS, algorithm, grant parameters, ...), grant constraints and pending grants' tokens are enumerated through
``evaluate`` itself. ``matrix.access_matrix(target, principals, actions)`` runs it for principals x actions
(``matrix.anyone(account)`` is "*"), ``matrix.compare(before, after)`` says who gains and who loses.
``AccessAnalyzer(open_keys=test)`` leaves open only the condition keys ``test`` names (lower-cased), deciding the
rest from the context: a request in hand whose parameters are not typed yet (a form a page may offer);
``.possible(...)`` answers only whether some assignment allows, stopping at the first (at most
``2 ** max_facts`` evaluations, more facts answered "possible", inexact).
``identity_may_allow_under(context, identity_policies, prefix=...) -> bool``: could identity policies allow the
action on some resource starting with ``prefix`` (an alias name not typed yet)? False only when none could.

Grants
------
``Grant(grant_id, key_arn, grantee_principal, operations, constraints=None, retiring_principal=None, name=None,
issuing_account=None, effective=True)``; ``GrantConstraints(encryption_context_equals=None,
encryption_context_subset=None, source_arn=None)`` (EC keys case-insensitive, values case-sensitive);
``GrantIndex(grants)`` indexes by grantee (lookup cost independent of the key's grant count);
``GRANT_OPERATIONS``.

Benchmark
---------
``policies.engine.bench.run_policy_benchmark(iterations: int) -> dict``: median/p99/mean in microseconds for the
``10_grants`` and ``50000_grants`` scenarios (4-statement key policy with conditions, two identity policies per
caller), mixed and per decision path, plus the compile-cache hit and ``RequestContext.build`` costs.

Notes
-----
* Wildcard patterns never backtrack catastrophically: patterns with more than two free-running ``*`` run on a
  linear-time matcher, so a policy author cannot stall the service with ``*a*a*a*a*b``.
* Compiled policies remember, per action, which statements can apply, and per resource, whether a static
  ``Resource`` matches; both are bounded. Decisions keep references to their inputs (for ``trace``): store
  ``to_dict()``, not the decision, if you keep many.
* Tests: ``tests/engine`` (pure; ``pytest tests/engine -p no:django --confcutdir=tests/engine`` runs them without
  Django). Benchmark-marked tests run only with ``-m benchmark``.
"""

from __future__ import annotations

from .cache import (
    clear_policy_cache,
    compile_identity_policy,
    compile_key_policy,
    policy_cache_info,
    policy_digest,
)
from .compiled import CompiledPolicy, compile_policy
from .conditions import ConditionClause
from .context import ACCOUNT_LEVEL_ACTIONS, KMS_CONDITION_KEYS, RequestContext
from .document import (
    INVALID_PRINCIPALS_MESSAGE,
    KEY_POLICY_MAX_BYTES,
    NO_PRINCIPAL_MESSAGE,
    Effect,
    Policy,
    PolicyKind,
    PrincipalBlock,
    Statement,
    parse_identity_policy,
    parse_key_policy,
    parse_policy,
)
from .errors import EngineError, LimitExceededException, MalformedPolicyDocumentException
from .evaluate import (
    LOCKOUT_MESSAGE,
    IdentityPolicy,
    check_lockout,
    ensure_no_lockout,
    evaluate,
    would_allow,
)
from .explain import MISSING_ALLOW_LABELS, Decision, ReasonCode, StatementRef
from .findings import Finding, Severity, identity_policy_findings, key_policy_findings, use_actions
from .grants import GRANT_OPERATIONS, Grant, GrantConstraints, GrantIndex, GrantRequest
from .principals import (
    Caller,
    PrincipalArn,
    PrincipalKind,
    PrincipalType,
    is_account_id,
    is_iam_path,
    is_unique_id,
    parse_principal_arn,
)
from .unnamed import identity_may_allow_under

__all__ = [
    "ACCOUNT_LEVEL_ACTIONS",
    "GRANT_OPERATIONS",
    "INVALID_PRINCIPALS_MESSAGE",
    "KEY_POLICY_MAX_BYTES",
    "KMS_CONDITION_KEYS",
    "LOCKOUT_MESSAGE",
    "MISSING_ALLOW_LABELS",
    "NO_PRINCIPAL_MESSAGE",
    "Caller",
    "CompiledPolicy",
    "ConditionClause",
    "Decision",
    "Effect",
    "EngineError",
    "Finding",
    "Grant",
    "GrantConstraints",
    "GrantIndex",
    "GrantRequest",
    "IdentityPolicy",
    "LimitExceededException",
    "MalformedPolicyDocumentException",
    "Policy",
    "PolicyKind",
    "PrincipalArn",
    "PrincipalBlock",
    "PrincipalKind",
    "PrincipalType",
    "ReasonCode",
    "RequestContext",
    "Severity",
    "Statement",
    "StatementRef",
    "check_lockout",
    "clear_policy_cache",
    "compile_identity_policy",
    "compile_key_policy",
    "compile_policy",
    "ensure_no_lockout",
    "evaluate",
    "identity_may_allow_under",
    "identity_policy_findings",
    "is_account_id",
    "is_iam_path",
    "is_unique_id",
    "key_policy_findings",
    "parse_identity_policy",
    "parse_key_policy",
    "parse_policy",
    "parse_principal_arn",
    "policy_cache_info",
    "policy_digest",
    "use_actions",
    "would_allow",
]
