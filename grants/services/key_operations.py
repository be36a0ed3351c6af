"""Which operations a grant may allow, by the kind of key (and for an asymmetric key, by its key usage)."""

from __future__ import annotations

from keys.models import Key

_ENCRYPTION = frozenset({"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo"})
_EVERY_KEY = frozenset({"CreateGrant", "RetireGrant", "DescribeKey"})
_EVERY_ASYMMETRIC_KEY = _EVERY_KEY | {"GetPublicKey"}
# Which grant operations an asymmetric key can have depends on its key usage: a grant may not allow what the key
# cannot do (kms-spec §8.1, the Developer Guide's "Grant operations").
ASYMMETRIC_OPERATIONS_BY_KEY_USAGE = {
    "ENCRYPT_DECRYPT": _EVERY_ASYMMETRIC_KEY | _ENCRYPTION,
    "SIGN_VERIFY": _EVERY_ASYMMETRIC_KEY | {"Sign", "Verify"},
    "KEY_AGREEMENT": _EVERY_ASYMMETRIC_KEY | {"DeriveSharedSecret"},
    "ENCAPSULATE_DECAPSULATE": _EVERY_ASYMMETRIC_KEY | {"Encapsulate", "Decapsulate"},
}
# Which grant operations each kind of key can have; for "ASYMMETRIC", those of some asymmetric key (a given key's
# are `grant_operations_for(key)`).
OPERATIONS_BY_KEY_TYPE = {
    "SYMMETRIC": _EVERY_KEY
    | _ENCRYPTION
    | {
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    },
    "ASYMMETRIC": frozenset().union(*ASYMMETRIC_OPERATIONS_BY_KEY_USAGE.values()),
    "HMAC": _EVERY_KEY | {"GenerateMac", "VerifyMac"},
}


def key_type(key: Key) -> str:
    if key.key_spec == "SYMMETRIC_DEFAULT":
        return "SYMMETRIC"
    return "HMAC" if key.key_spec.startswith("HMAC_") else "ASYMMETRIC"


def grant_operations_for(key: Key) -> frozenset[str]:
    """The operations a grant on `key` may allow: its key type's, and for an asymmetric key its key usage's."""
    kind = key_type(key)
    if kind == "ASYMMETRIC":
        return ASYMMETRIC_OPERATIONS_BY_KEY_USAGE[key.key_usage]
    return OPERATIONS_BY_KEY_TYPE[kind]
