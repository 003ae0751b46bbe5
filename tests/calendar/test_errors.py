"""How each provider's error answers are classified: table-driven, against the providers' own error shapes."""

from __future__ import annotations

import json
from typing import Any

import httplib2
import pytest
import requests
from googleapiclient.errors import HttpError

from server.calendar.providers import google, microsoft
from server.calendar.providers.base import (
    NotFound,
    ProviderError,
    RateLimited,
    SyncReset,
    Unauthorized,
    utc_day,
    utc_time,
)


def google_error(status: int, reason: str, headers: dict[str, str] | None = None) -> HttpError:
    body = {"error": {"code": status, "message": reason, "errors": [{"domain": "usageLimits", "reason": reason}]}}
    response = httplib2.Response({"status": str(status), **{k.lower(): v for k, v in (headers or {}).items()}})
    return HttpError(response, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (410, "fullSyncRequired", SyncReset),
        (429, "rateLimitExceeded", RateLimited),
        (403, "rateLimitExceeded", RateLimited),
        (403, "userRateLimitExceeded", RateLimited),
        (403, "forbidden", ProviderError),  # not a rate limit: not retried as one
        (403, "insufficientPermissions", ProviderError),
        (401, "authError", Unauthorized),
        (404, "notFound", NotFound),
        (500, "backendError", ProviderError),
    ],
)
def test_google_errors(status: int, reason: str, expected: type[Exception]) -> None:
    error = google._classify(google_error(status, reason, {"Retry-After": "7"}))
    assert type(error) is expected
    if isinstance(error, RateLimited):
        assert error.retry_after == 7.0


def graph_response(status: int, code: str, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps({"error": {"code": code, "message": code}}).encode()
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(
    ("status", "code", "headers", "expected"),
    [
        (410, "syncStateNotFound", {}, SyncReset),
        (400, "syncStateNotFound", {}, SyncReset),
        (400, "resyncRequired", {}, SyncReset),
        (410, "SyncStateInvalid", {}, SyncReset),
        (429, "TooManyRequests", {"Retry-After": "3"}, RateLimited),
        (503, "ServiceUnavailable", {"Retry-After": "2"}, RateLimited),
        (503, "ServiceUnavailable", {}, ProviderError),
        (401, "InvalidAuthenticationToken", {}, Unauthorized),
        (404, "ErrorItemNotFound", {}, NotFound),
        (403, "ErrorAccessDenied", {}, ProviderError),
    ],
)
def test_graph_errors(status: int, code: str, headers: dict[str, str], expected: type[Exception]) -> None:
    assert type(microsoft._classify(graph_response(status, code, headers))) is expected


@pytest.mark.parametrize(
    ("item", "zone", "starts"),
    [
        ({"dateTime": "2026-12-08T10:00:00+01:00", "timeZone": "Europe/Paris"}, None, "2026-12-08T09:00:00+00:00"),
        ({"dateTime": "2026-07-08T10:00:00-04:00"}, "America/New_York", "2026-07-08T14:00:00+00:00"),
        ({"date": "2026-12-08"}, "Europe/Paris", "2026-12-07T23:00:00+00:00"),  # all day: midnight there
        ({"date": "2026-12-08"}, None, "2026-12-08T00:00:00+00:00"),
    ],
)
def test_google_times_arrive_in_the_calendars_zone(item: dict[str, Any], zone: str | None, starts: str) -> None:
    event = google._event({"id": "e", "status": "confirmed", "start": item, "end": item}, zone)
    assert event.starts_at is not None and event.starts_at.isoformat() == starts


def test_graph_times() -> None:
    assert utc_time("2026-12-08T10:00:00.0000000", "UTC").isoformat() == "2026-12-08T10:00:00+00:00"
    assert utc_time("2026-12-08T10:00:00", "Europe/Paris").isoformat() == "2026-12-08T09:00:00+00:00"
    assert utc_time("2026-12-08T10:00:00", "Pacific Standard Time").isoformat() == "2026-12-08T10:00:00+00:00"
    assert utc_day("2026-12-08", "UTC").isoformat() == "2026-12-08T00:00:00+00:00"
    removed = microsoft._event({"id": "x", "@removed": {"reason": "deleted"}})
    assert removed.cancelled and removed.starts_at is None
