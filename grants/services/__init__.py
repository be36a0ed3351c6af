"""Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant (kms-spec §8), and the workers'
propagation of grants.

- Grantees and retiring principals are users, roles, assumed-role sessions, federated users or accounts (an
  account id is stored as its root ARN) that exist here; never groups or `*` (InvalidArnException; the model's
  pattern already refuses `*`). Operations must suit the key type and, for an asymmetric key, its key usage
  (ValidationException); encryption-context constraints only on symmetric encryption keys, one kind per grant, at
  most 8 pairs, values up to 384 characters; a constraint of another name is refused, never dropped. `Name` keeps
  the model's length (1-256) and pattern, for the interfaces that do not check the model.
- At most GRANTS_PER_KEY_LIMIT grants a key (LimitExceededException). `Name` makes a retry with the same
  parameters return the same GrantId (with a fresh token); another request with that name is another grant.
- A grant that allows CreateGrant lets its grantee create only grants within it (`keys.services.access`).
- RetireGrant is decided by the grant: its retiring principal, its grantee if it lists RetireGrant, and the
  principals the key's account (or the issuing account) allows kms:RetireGrant in IAM; a key-policy Allow of
  kms:RetireGrant has no effect, an IAM Deny does (§8.6). RevokeGrant needs kms:RevokeGrant on the key.
- A new grant takes effect when a worker has propagated it (KMS_GRANT_PROPAGATION_SECONDS after creation; 0 makes
  it effective at once, in the creating transaction). Retiring and revoking take effect at once, unless
  KMS_GRANT_REVOCATION_PROPAGATION=delayed: then the grant is gone for callers (ListGrants, tokens) but keeps
  allowing until a worker removes it, as on AWS. Each propagation is the `PropagateGrant` service event.

The functions live in this package's modules, by concern; this module is their public surface, for the callers
that use the service as one namespace (`grant_services.grant_create(...)`). A test that replaces a name a service
looks up patches it in the module that looks it up (e.g. `grants.services.creation`), not here.
"""

from grants.services.creation import GRANTS_PER_KEY_LIMIT, CreatedGrant, grant_create
from grants.services.grant_input import (
    CONSTRAINT_MAX_PAIRS,
    CONSTRAINT_NAMES,
    CONSTRAINT_VALUE_MAX_CHARS,
    GRANT_NAME_MAX_LENGTH,
    GRANT_NAME_PATTERN,
    SOURCE_ARN,
)
from grants.services.integrated_services import INTEGRATED_SERVICE_NAME, integrated_service_register
from grants.services.key_operations import (
    ASYMMETRIC_OPERATIONS_BY_KEY_USAGE,
    OPERATIONS_BY_KEY_TYPE,
    grant_operations_for,
    key_type,
)
from grants.services.listing import (
    LIST_GRANTS_DEFAULT_LIMIT,
    LIST_GRANTS_MAX_LIMIT,
    grant_list,
    grant_list_retirable,
    grants_retirable_by,
)
from grants.services.principals import GRANTEE_KINDS, normalize_principal
from grants.services.propagation import (
    PROPAGATION_EVENT,
    PROPAGATION_SWEEP_BATCH,
    PROPAGATION_SWEEP_JOB,
    PROPAGATION_WORKER,
    REMOVED,
    TOOK_EFFECT,
    grant_propagate,
    grants_propagate_due,
)
from grants.services.removal import DELAYED, IMMEDIATE, grant_retire, grant_revoke

__all__ = [
    "ASYMMETRIC_OPERATIONS_BY_KEY_USAGE",
    "CONSTRAINT_MAX_PAIRS",
    "CONSTRAINT_NAMES",
    "CONSTRAINT_VALUE_MAX_CHARS",
    "DELAYED",
    "GRANTEE_KINDS",
    "GRANTS_PER_KEY_LIMIT",
    "GRANT_NAME_MAX_LENGTH",
    "GRANT_NAME_PATTERN",
    "IMMEDIATE",
    "INTEGRATED_SERVICE_NAME",
    "LIST_GRANTS_DEFAULT_LIMIT",
    "LIST_GRANTS_MAX_LIMIT",
    "OPERATIONS_BY_KEY_TYPE",
    "PROPAGATION_EVENT",
    "PROPAGATION_SWEEP_BATCH",
    "PROPAGATION_SWEEP_JOB",
    "PROPAGATION_WORKER",
    "REMOVED",
    "SOURCE_ARN",
    "TOOK_EFFECT",
    "CreatedGrant",
    "grant_create",
    "grant_list",
    "grant_list_retirable",
    "grant_operations_for",
    "grant_propagate",
    "grant_retire",
    "grant_revoke",
    "grants_propagate_due",
    "grants_retirable_by",
    "integrated_service_register",
    "key_type",
    "normalize_principal",
]
