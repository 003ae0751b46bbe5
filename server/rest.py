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
    "Email",
    "ErrorBody",
    "clean_text",
    "client_address",
    "csv_responses",
    "decode",
    "error_responses",
    "invalid",
    "multi_line",
    "one_line",
]

T = TypeVar("T")

Body: TypeAlias = Annotated[T, BodyKwarg(media_type=RequestEncodingType.JSON), SkipValidationMarker()]
"""A JSON body documented as `T` but delivered undecoded: pass it to `decode(data, T)`."""

_CC = r"\x00-\x1f\x7f-\x9f"
_WS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""Python's whitespace (`str.isspace`, `str.strip`, `\\s`) spelled out: a JSON Schema regex's `\\s` is
ECMA's, a different set, so the patterns below never use `\\s`."""
ONE_LINE = rf"^[{_WS}]*(?:[^{_WS}{_CC}]|[^{_WS}{_CC}][^{_CC}]*[^{_WS}{_CC}])[{_WS}]*$"
"""What `clean_text` accepts on one line: something visible once trimmed, no control characters inside."""
MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
"""What `clean_text(multiline=True)` accepts: line breaks and tabs, no other control characters."""
_EMAIL_CHAR = rf"[^@{_WS}\x00-\x1f\x7f"
EMAIL = rf"^[{_WS}]*{_EMAIL_CHAR}]{{1,64}}@{_EMAIL_CHAR}.]+(\.{_EMAIL_CHAR}.]+)+[{_WS}]*$"
"""An address shaped `local@domain.tld`: `server.auth.service.normalise_email`'s rule, used there too."""


def one_line(max_length: int) -> msgspec.Meta:
    """`Annotated[str, one_line(80)]`: a one-line text field, its rule stated in OpenAPI and enforced
    by msgspec before the handler's own `clean_text` (which trims it), so the schema says exactly
    what the server takes."""
    return msgspec.Meta(min_length=1, max_length=max_length, pattern=ONE_LINE)


def multi_line(max_length: int) -> msgspec.Meta:
    """`Annotated[str, multi_line(10_000)]`: a multi-line text field (descriptions)."""
    return msgspec.Meta(max_length=max_length, pattern=MULTI_LINE)


Email = Annotated[str, msgspec.Meta(max_length=320, pattern=EMAIL)]
"""An email field as `normalise_email` takes it."""


_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"unknown field `(?P<field>[^`]*)`")
_MISSING = re.compile(r"missing required field `(?P<field>[^`]*)`")


def decode(data: Any, type_: type[T]) -> T:
    """`data` (parsed JSON, untrusted) as `type_`, converted strictly; 400 without a body, 422 if it does not fit."""
    if data is Empty:
        raise bad_request("a JSON request body is required")
    try:
        return msgspec.convert(_integral(data), type_, strict=True)
    except msgspec.ValidationError as err:
        raise field_error(str(err)) from None


def _integral(value: Any) -> Any:
    """JSON does not tell 300 from 300.0, and JSON Schema calls both an integer: accept either."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


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
    words = _in_words(key, text)  # details name the field in `key`; the message says the rule
    return validation_error(
        f"{key or 'the value'} {words}" if words else "the request does not match the schema",
        [{"key": key, "message": words or text, "source": "body"}],
    )


_MIN_LENGTH = re.compile(r"Expected `str` of length >= (?P<n>\d+)")
_MAX_LENGTH = re.compile(r"Expected `str` of length <= (?P<n>\d+)")


def _in_words(key: str, text: str) -> str | None:
    """The text rules declared in the types (`one_line`, `Email`, password length), said in words
    (without the field's name, which `key` carries), so a page can show the message as it is."""
    if match := _MIN_LENGTH.search(text):
        n = int(match.group("n"))
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if match := _MAX_LENGTH.search(text):
        return f"must be at most {match.group('n')} characters"
    if "matching regex" in text:
        return "is not a valid address" if key.endswith("email") else "must not be empty or contain control characters"
    return None


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


def csv_responses(description: str, *errors: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries of a CSV download: its 200 is `text/csv`, not JSON, and its errors share the envelope."""
    return {
        200: ResponseSpec(data_container=str, media_type="text/csv", description=description, generate_examples=False),
        **error_responses(*errors),
    }


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The peer's address, the key of per-address rate limits (uvicorn runs without proxy headers)."""
    client = connection.client
    return client.host if client is not None and client.host else "unknown"
