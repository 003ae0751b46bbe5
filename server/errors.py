"""The REST error envelope (docs/api.md, "Requests and errors") and the exception handlers that produce it.

Every error leaves the server as `{"error": {"code", "message", "details"?}}` with one of the
documented codes, whatever raised it: a feature's `ApiError`, Litestar's own exceptions (unknown
route, wrong method, malformed body, failed validation, oversized body), or a bug (500
`internal`, logged with the request id, no stack trace in the body).
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import redis.exceptions
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

log = logging.getLogger("roomcast.http")

CODE_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    413: "too_large",
    415: "bad_request",
    422: "validation_error",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    """An error a handler means to show the caller: status, code and a message in words."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODE_BY_STATUS.get(status, "bad_request")
        self.message = message
        self.details = details
        self.headers = headers or {}


def bad_request(message: str, details: Any = None) -> ApiError:
    return ApiError(400, message, details=details)


def unauthorized(message: str = "missing or invalid credentials") -> ApiError:
    return ApiError(401, message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def validation_error(message: str, details: Any = None) -> ApiError:
    return ApiError(422, message, details=details)


def rate_limited(retry_after_s: int) -> ApiError:
    retry_after_s = max(1, retry_after_s)
    return ApiError(
        429,
        f"too many requests; retry in {retry_after_s} s",
        details={"retry_after_s": retry_after_s},
        headers={"Retry-After": str(retry_after_s)},
    )


def envelope(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return Response({"error": body}, status_code=status, headers=headers)


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return envelope(exc.status, exc.code, exc.message, exc.details, exc.headers)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Litestar raises ValidationException both for undecodable bodies and for failed validation."""
    detail = str(exc.detail)
    extra = exc.extra if isinstance(exc.extra, list) else None
    if "malformed" in detail.lower() or "json is malformed" in str(extra).lower() or _is_syntax_error(extra):
        return envelope(400, "bad_request", "the request body is not valid JSON")
    return envelope(422, "validation_error", "the request does not match the schema", _clean(extra))


def _is_syntax_error(extra: list[Any] | None) -> bool:
    for item in extra or []:
        message = str(item.get("message", "")) if isinstance(item, dict) else str(item)
        if "malformed" in message.lower() or "invalid json" in message.lower():
            return True
    return False


def _clean(extra: list[Any] | None) -> list[dict[str, Any]]:
    cleaned = []
    for item in extra or []:
        if isinstance(item, dict):
            cleaned.append({k: v for k, v in item.items() if k in ("key", "message", "source")})
        else:
            cleaned.append({"message": str(item)})
    return cleaned


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return _internal(request, exc)
    message = str(exc.detail) if exc.detail else "request failed"
    if status == 404:
        message = "no such resource"
    headers = dict(exc.headers or {})
    return envelope(status, CODE_BY_STATUS.get(status, "bad_request"), message, headers=headers or None)


OUTAGES: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,  # the connection broke (ConnectionDoesNotExistError, ...)
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, not accepting connections yet
    asyncpg.exceptions.TooManyConnectionsError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,  # refused, reset: PostgreSQL's or Redis's address does not answer
    TimeoutError,  # a pooled connection or a statement did not come in time
)
"""What a database or Redis outage raises: a 503 (REST) or `unavailable` (frames), never a 500."""
RETRY_AFTER_OUTAGE_S = 2


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OUTAGES):
        return True
    # asyncpg reports "connection is closed" on a connection the pool handed out just before it broke
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def _outage(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if not is_outage(exc):
        return _internal(request, exc)
    log.warning(
        "http.unavailable",
        extra={"method": request.method, "path": request.url.path, "error": type(exc).__name__},
    )
    return envelope(
        503,
        "unavailable",
        "a service the server needs is not answering; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_OUTAGE_S)},
    )


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """JSON nested ~1,000 levels deep (2 KB) makes msgspec raise RecursionError while parsing the
    body: bad input, so a 400 like any other undecodable body (PITFALLS 19), not a 500."""
    log.info("http.too_deep", extra={"method": request.method, "path": request.url.path})
    return envelope(400, "bad_request", "the request body is nested too deeply")


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request_id = request.scope.get("state", {}).get("request_id", "-")
    log.error(
        "http.unhandled",
        exc_info=exc,
        extra={"request_id": request_id, "method": request.method, "path": request.url.path},
    )
    return envelope(HTTP_500_INTERNAL_SERVER_ERROR, "internal", f"internal error (request {request_id})")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: _api_error,
    ValidationException: _validation,
    HTTPException: _http,
    RecursionError: _too_deep,
    **dict.fromkeys(OUTAGES, _outage),
    asyncpg.InterfaceError: _outage,
    Exception: _internal,
}
