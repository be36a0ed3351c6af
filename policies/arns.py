"""ARNs and identifiers exactly as AWS writes them (pure functions)."""

from __future__ import annotations

import re
import secrets

from policies.engine import is_iam_path

PARTITION = "aws"

# IAM name rules (IAM API reference): users and roles 1-64, groups 1-128, of [\w+=,.@-]. Matched whole
# (fullmatch): with `match`, "$" would let a trailing newline through.
NAME_PATTERN = re.compile(r"[\w+=,.@-]+", re.ASCII)
USER_NAME_MAX = 64
ROLE_NAME_MAX = 64
GROUP_NAME_MAX = 128
POLICY_NAME_MAX = 128
# Paths: "/" or "/a/b/", at most 512 characters, of the form the policy engine reads in principal ARNs.
PATH_MAX = 512
# sts:AssumeRole RoleSessionName: 2-64 of [\w+=,.@-].
SESSION_NAME_PATTERN = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
# Access key ids (IAM API reference): 16-128 word characters.
ACCESS_KEY_ID_PATTERN = re.compile(r"\w{16,128}", re.ASCII)

_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32, as AWS ids use
_SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"  # noqa: S105 - an alphabet


def is_valid_name(text: str, max_length: int) -> bool:
    """An IAM user, role, group or policy name of 1 to `max_length` characters."""
    return len(text) <= max_length and NAME_PATTERN.fullmatch(text) is not None


def is_valid_path(text: str) -> bool:
    """An IAM path the policy engine reads back from the principal's ARN (`policies.engine.is_iam_path`)."""
    return len(text) <= PATH_MAX and is_iam_path(text)


def account_root_arn(account_id: str) -> str:
    return f"arn:{PARTITION}:iam::{account_id}:root"


def user_arn(account_id: str, path: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account_id}:user{path}{name}"


def role_arn(account_id: str, path: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account_id}:role{path}{name}"


def group_arn(account_id: str, path: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account_id}:group{path}{name}"


def assumed_role_arn(account_id: str, role_name: str, session_name: str) -> str:
    # The STS ARN carries the role's name without its path.
    return f"arn:{PARTITION}:sts::{account_id}:assumed-role/{role_name}/{session_name}"


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_unique_id(prefix: str) -> str:
    """AIDA… (users), AROA… (roles), AGPA… (groups): 21 characters like AWS's unique ids."""
    return prefix + _random(_ID_ALPHABET, 17)


def new_access_key_id(temporary: bool) -> str:
    """AKIA… for long-term keys, ASIA… for session keys: 20 characters."""
    return ("ASIA" if temporary else "AKIA") + _random(_ID_ALPHABET, 16)


def new_secret_access_key() -> str:
    """40 characters, the shape of an AWS secret access key (240 bits of entropy)."""
    return _random(_SECRET_ALPHABET, 40)


def new_session_token() -> str:
    return secrets.token_urlsafe(144)
