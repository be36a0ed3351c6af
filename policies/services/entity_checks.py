"""Checks the principals services share: the user, role or group row locked and checked, and IAM's rules for
names and paths."""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ObjectDoesNotExist

from kmsconsole.core import errors
from kmsconsole.core.rowmac import locked_and_checked as _locked_and_checked
from policies import arns
from policies.models import IamGroup, IamRole, IamUser
from policies.selectors import no_such_entity

_Entity = TypeVar("_Entity", IamUser, IamRole, IamGroup)


_KINDS = {IamUser: "user", IamRole: "role", IamGroup: "group"}


def locked_and_checked(row: _Entity) -> _Entity:
    """The user, role or group reloaded under its row lock and checked (`kmsconsole.core.rowmac`); one deleted
    between the lookup and the lock (a racing DeleteUser, DeleteRole or DeleteGroup) is NoSuchEntity, as if the
    lookup had come after it, never a fault."""
    try:
        return _locked_and_checked(row)
    except ObjectDoesNotExist:
        raise no_such_entity(_KINDS[type(row)], row.name) from None


def _check_name(value: str, *, what: str, max_length: int) -> None:
    if not arns.is_valid_name(value, max_length):
        raise errors.ValidationException(
            f"The specified value for {what} is invalid. It must contain 1-{max_length} characters of "
            "letters, digits and +=,.@_-"
        )


def _check_path(path: str) -> None:
    if not arns.is_valid_path(path):
        raise errors.ValidationException(
            f"The specified value for path is invalid. It must be / or begin and end with / (at most "
            f"{arns.PATH_MAX} characters), with names of printable ASCII characters between the slashes. Empty "
            "names (//) are not allowed, nor * or ?: in the principal's ARN, which policies name it by, they "
            "would read as wildcards."
        )
