"""Shared REST plumbing for feature routers: strict request bodies and documented error responses.

Litestar converts request bodies with msgspec in lax mode (`"300"` passes as an int, `"true"` as
a bool). docs/api.md, "Requests and errors" wants a wrong type to be a 422, so feature handlers declare their body
as `data: Body[SomeStruct]` -- the declared type documents the body in OpenAPI, but Litestar
hands over the undecoded JSON value -- and call `decode(data, SomeStruct)`, which converts
strictly and raises the documented `validation_error` naming the offending field.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, TypeAlias, TypeVar

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import BodyKwarg, SkipValidationMarker
from litestar.types import Empty

from server.errors import bad_request, validation_error

__all__ = [
    "Body",
    "ErrorBody",
    "clean_text",
    "client_address",
    "decode",
    "error_responses",
    "invalid",
]

T = TypeVar("T")

Body: TypeAlias = Annotated[T, BodyKwarg(media_type=RequestEncodingType.JSON), SkipValidationMarker()]
"""A JSON body documented as `T` but delivered undecoded: pass it to `decode(data, T)`."""

_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"unknown field `(?P<field>[^`]*)`")
_MISSING = re.compile(r"missing required field `(?P<field>[^`]*)`")


def decode(data: Any, type_: type[T]) -> T:
    """`data` (parsed JSON, untrusted) as `type_`, converted strictly; 400 without a body, 422 if it does not fit."""
    if data is Empty:
        raise bad_request("a JSON request body is required")
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as err:
        raise field_error(str(err)) from None


def field_error(message: str) -> Exception:
    """A 422 whose details name the field msgspec complained about (`settings.max_question_length`)."""
    key = ""
    text = message
    if match := _PATH.search(message):
        key = match.group("path")
        text = message[: match.start()]
    parent = f"{key}." if key else ""
    if (match := _UNKNOWN.search(text)) or (match := _MISSING.search(text)):
        key = parent + match.group("field")
    return validation_error("the request does not match the schema", [{"key": key, "message": text, "source": "body"}])


def invalid(field: str, message: str) -> Exception:
    """A 422 for one field that passed the schema but not a rule of docs/api.md (e.g. a malformed email)."""
    return validation_error(message, [{"key": field, "message": message, "source": "body"}])


def clean_text(value: str, field: str, *, max_length: int, min_length: int = 1, multiline: bool = False) -> str:
    """`value` trimmed, checked for length (in characters) and for control characters; 422 otherwise.

    Line breaks and tabs pass only when `multiline` (descriptions); names and titles are one line.
    """
    value = value.strip()
    if len(value) < min_length:
        raise invalid(field, f"{field} must not be empty" if min_length == 1 else f"{field} is too short")
    if len(value) > max_length:
        raise invalid(field, f"{field} must be at most {max_length} characters")
    allowed = "\n\r\t" if multiline else ""
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
        raise invalid(field, f"{field} must not contain control characters")
    return value


class ErrorDetail(msgspec.Struct, kw_only=True):
    code: str
    """One of bad_request, unauthorized, forbidden, not_found, conflict, validation_error, rate_limited, internal."""
    message: str
    details: Any = None


class ErrorBody(msgspec.Struct, kw_only=True):
    """The the documented error envelope, for OpenAPI."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "bad_request: the body is not JSON, or a query value (cursor) is malformed",
    401: "unauthorized: missing, malformed, forged or expired credentials",
    403: "forbidden: the caller is known but may not do this",
    404: "not_found: no such resource, or the caller may not know it exists",
    409: "conflict: the request clashes with the current state",
    422: "validation_error: the body does not match the schema; `details` names the field",
    429: "rate_limited: too many requests; see the Retry-After header",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a handler may answer with (all share the envelope)."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[status], generate_examples=False)
        for status in statuses
    }


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The peer's address, the key of per-address rate limits (uvicorn runs without proxy headers)."""
    client = connection.client
    return client.host if client is not None and client.host else "unknown"
