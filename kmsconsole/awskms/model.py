"""The AWS KMS service model (botocore's `kms/2014-11-01/service-2.json`) as the wire contract.

Requests are checked against the operation's input shape exactly as AWS's front end does: wrong JSON types are
`SerializationException`, violated constraints are `ValidationException` with Coral's message format (camelCase
member paths; sensitive members never echo their value). Responses are shaped by the output shape (blobs to
base64, timestamps to epoch seconds). The same model says which members are secret, for the audit trail.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from kmsconsole.core import errors
from kmsconsole.core.text import shortened


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("kms")


@cache
def operation_model(name: str) -> OperationModel:
    return service_model().operation_model(name)


def is_modeled_operation(name: str) -> bool:
    return name in service_model().operation_names


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


_JSON_TYPE_NAMES = {str: "STRING_VALUE", int: "NUMBER_VALUE", float: "NUMBER_VALUE", bool: "BOOLEAN_VALUE"}
_SHAPE_TYPE_NAMES = {
    "string": "a String",
    "integer": "an Integer",
    "long": "a Long",
    "boolean": "a Boolean",
    "blob": "a ByteBuffer",
    "timestamp": "a Date",
}


def _type_error(value: Any, shape: Shape) -> errors.KmsError:
    if isinstance(value, dict):
        return errors.SerializationException("Start of structure or map found where not expected.")
    if isinstance(value, list):
        return errors.SerializationException("Start of list found where not expected.")
    json_type = _JSON_TYPE_NAMES.get(type(value), "VALUE")
    wanted = _SHAPE_TYPE_NAMES.get(shape.type_name, "the expected type")
    return errors.SerializationException(f"{json_type} can not be converted to {wanted}")


class _Validator:
    """Walks a value against a shape, converting blobs and collecting Coral-style constraint messages."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def _problem(self, path: str, value: Any, shape: Shape, constraint: str) -> None:
        if shape.metadata.get("sensitive"):
            self.problems.append(f"Value at '{path}' failed to satisfy constraint: {constraint}")
        else:
            shown = "null" if value is None else f"'{_display(value)}'"
            self.problems.append(f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}")

    def _length(self, path: str, value: Any, size: int, shape: Shape) -> None:
        meta = shape.metadata
        if "min" in meta and size < meta["min"]:
            self._problem(
                path, value, shape, f"Member must have length greater than or equal to {meta['min']}"
            )
        if "max" in meta and size > meta["max"]:
            self._problem(path, value, shape, f"Member must have length less than or equal to {meta['max']}")

    def check(self, value: Any, shape: Shape, path: str) -> Any:
        kind = shape.type_name
        if kind == "structure":
            return self.structure(value, shape, path)  # type: ignore[arg-type]
        if kind == "list":
            assert isinstance(shape, ListShape)  # noqa: S101 - botocore's type for "list" shapes
            if not isinstance(value, list):
                raise _type_error(value, shape)
            self._length(path, value, len(value), shape)
            return [self.check(item, shape.member, f"{path}.{i + 1}.member") for i, item in enumerate(value)]
        if kind == "map":
            assert isinstance(shape, MapShape)  # noqa: S101 - botocore's type for "map" shapes
            if not isinstance(value, dict):
                raise _type_error(value, shape)
            self._length(path, value, len(value), shape)
            return {
                self.check(k, shape.key, f"{path}.key"): self.check(v, shape.value, f"{path}.{k}.value")
                for k, v in value.items()
            }
        if kind == "string":
            if not isinstance(value, str):
                raise _type_error(value, shape)
            self._length(path, value, len(value), shape)
            enum = shape.enum
            if enum and value not in enum:
                self._problem(path, value, shape, f"Member must satisfy enum value set: [{', '.join(enum)}]")
            pattern = shape.metadata.get("pattern")
            if pattern and not re.fullmatch(pattern, value):
                self._problem(
                    path, value, shape, f"Member must satisfy regular expression pattern: {pattern}"
                )
            return value
        if kind in ("integer", "long"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise _type_error(value, shape)
            meta = shape.metadata
            if "min" in meta and value < meta["min"]:
                self._problem(
                    path, value, shape, f"Member must have value greater than or equal to {meta['min']}"
                )
            if "max" in meta and value > meta["max"]:
                self._problem(
                    path, value, shape, f"Member must have value less than or equal to {meta['max']}"
                )
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise _type_error(value, shape)
            return value
        if kind == "blob":
            if not isinstance(value, str):
                raise _type_error(value, shape)
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise errors.SerializationException("Base64 encoded binary value is invalid.") from exc
            self._length(path, "<binary>", len(raw), shape)
            return raw
        if kind == "timestamp":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _type_error(value, shape)
            return value
        raise errors.SerializationException(f"Members of type {kind} are not supported.")

    def structure(self, value: Any, shape: StructureShape, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _type_error(value, shape)
        result: dict[str, Any] = {}
        for name, member in shape.members.items():
            member_path = f"{path}.{_camel(name)}" if path else _camel(name)
            item = value.get(name)
            if item is None:
                if name in shape.required_members:
                    self._problem(member_path, None, member, "Member must not be null")
                continue
            result[name] = self.check(item, member, member_path)
        return result


def _display(value: Any) -> str:
    return shortened(_as_java_prints(value))


def _as_java_prints(value: Any) -> str:
    """A value as AWS's (Java) validation messages print it: `[a, b]`, `{k=v}`, `true`, `null`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_as_java_prints(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_as_java_prints(k)}={_as_java_prints(v)}" for k, v in value.items()) + "}"
    return str(value)


def modeled_members(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """The members of `body` the operation's input shape has; anything else is dropped unread."""
    shape = operation_model(operation).input_shape
    members = shape.members if shape is not None else {}
    return {name: value for name, value in body.items() if name in members}


def parse_input(operation: str, body: Any) -> dict[str, Any]:
    """Validate and convert a decoded JSON body for `operation`; blobs come back as bytes."""
    shape = operation_model(operation).input_shape
    if shape is None:
        return {}
    validator = _Validator()
    params = validator.structure(body, shape, "")
    if validator.problems:
        count = len(validator.problems)
        noun = "error" if count == 1 else "errors"
        raise errors.ValidationException(
            f"{count} validation {noun} detected: " + "; ".join(validator.problems)
        )
    return params


class Base64Text(str):
    """A blob member as the wire carries it: base64 text, in which JSON has nothing to escape (the response
    encoder splices it in as it is: kmsconsole.awskms.views.response_json). Made only from bytes, by encoding them
    (`Base64Text(raw)`): text cannot be passed off as one, so nothing spliced in can close the JSON string."""

    __slots__ = ()

    def __new__(cls, raw: bytes) -> Base64Text:
        # binascii's encoder directly (base64.b64encode calls it): this constructor is the one call added on every
        # blob of every response.
        return str.__new__(cls, binascii.b2a_base64(raw, newline=False).decode())

    def __getnewargs__(self) -> tuple[bytes]:  # type: ignore[override]
        # copy and pickle make it again from its bytes.
        return (binascii.a2b_base64(self),)


def _serialize(value: Any, shape: Shape) -> Any:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)  # noqa: S101 - botocore's type for "structure" shapes
        return {
            name: _serialize(value[name], member)
            for name, member in shape.members.items()
            if value.get(name) is not None
        }
    if kind == "list":
        assert isinstance(shape, ListShape)  # noqa: S101 - botocore's type for "list" shapes
        return [_serialize(item, shape.member) for item in value]
    if kind == "map":
        assert isinstance(shape, MapShape)  # noqa: S101 - botocore's type for "map" shapes
        return {k: _serialize(v, shape.value) for k, v in value.items()}
    if kind == "blob":
        return Base64Text(value)
    if kind == "timestamp":
        return value.timestamp() if isinstance(value, datetime) else value
    return value


def serialize_output(operation: str, result: dict[str, Any]) -> dict[str, Any]:
    shape = operation_model(operation).output_shape
    if shape is None:
        return {}
    serialized: dict[str, Any] = _serialize(result, shape)
    return serialized


@cache
def secret_members(operation: str) -> tuple[frozenset[str], frozenset[str]]:
    """Top-level input and output members that never reach the audit trail or logs: every blob (plaintexts,
    ciphertexts, data keys, messages, signatures, MACs) and every member the model marks sensitive."""

    def secret(shape: StructureShape | None) -> frozenset[str]:
        if shape is None:
            return frozenset()
        return frozenset(
            name
            for name, member in shape.members.items()
            if member.type_name == "blob" or member.metadata.get("sensitive")
        )

    model = operation_model(operation)
    return secret(model.input_shape), secret(model.output_shape)
