"""What every provider module offers, and the few errors the sync job tells apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ProviderName = str
"""`google` or `outlook`."""

WINDOW_PAST = timedelta(days=30)
WINDOW_FUTURE = timedelta(days=365)
"""A full sync lists the events overlapping [now - WINDOW_PAST, now + WINDOW_FUTURE]; incremental
syncs carry that window in their cursor."""


@dataclass(frozen=True, slots=True)
class CalEvent:
    """One event (one occurrence of a recurring series) as roomcast keeps it: UTC times."""

    id: str
    title: str
    starts_at: datetime | None
    ends_at: datetime | None
    cancelled: bool = False


@dataclass(slots=True)
class Listing:
    """One sync's result: changed events (or every event, when `full`), and the cursor for the next sync."""

    events: list[CalEvent]
    cursor: str | None
    full: bool
    """True for a full listing: an event we hold that is not in it was deleted (no deletion records)."""


@dataclass(frozen=True, slots=True)
class Channel:
    """A push channel (Google) or subscription (Graph), with the expiry the provider returned."""

    id: str
    resource_id: str | None
    expires_at: datetime


@dataclass(slots=True)
class Grant:
    """What a finished connect flow yields."""

    tokens: bytes
    """The provider's token state, serialised (encrypted by the caller before it is stored)."""
    account_email: str


@dataclass(slots=True)
class Tokens:
    """A connection's token state while a provider uses it; `changed` tells the caller to store it again."""

    raw: bytes
    changed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """The provider answered with an error we do not retry here."""


class SyncReset(ProviderError):
    """The sync cursor expired (Google 410, Graph syncStateNotFound): run a full sync."""


class RateLimited(ProviderError):
    """429, or a 403 whose reason is a rate limit: try again after `retry_after` seconds."""

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unauthorized(ProviderError):
    """401 with a fresh access token: refresh and try once more."""


class Revoked(ProviderError):
    """The refresh token is no longer good (`invalid_grant`): the user must connect again."""


class NotFound(ProviderError):
    """No such event (or no such channel)."""


class Provider(Protocol):
    """A calendar provider; every method blocks (run it in a thread)."""

    name: ProviderName

    def authorization(self, redirect_uri: str, state: str) -> tuple[str, dict[str, Any]]:
        """The URL to send the browser to, and the flow data the callback will need (kept server-side)."""
        ...

    def redeem(self, flow: dict[str, Any], params: dict[str, str], redirect_uri: str) -> Grant:
        """Exchange the callback's code for tokens. ProviderError when the provider refuses."""
        ...

    def access_token(self, tokens: Tokens, *, force: bool = False) -> str:
        """A valid access token, refreshed first when it (nearly) expired or `force`; Revoked on invalid_grant."""
        ...

    def list_events(self, access_token: str, cursor: str | None) -> Listing:
        """Every page of changes since `cursor` (a full listing of the sync window when None)."""
        ...

    def get_event(self, access_token: str, event_id: str) -> CalEvent: ...

    def watch(self, access_token: str, channel_id: str, secret: str, address: str) -> Channel: ...

    def renew(self, access_token: str, channel: Channel, new_id: str, secret: str, address: str) -> Channel:
        """A channel that lasts longer (Google: a new one, the old stopped; Graph: the same, extended)."""
        ...

    def stop(self, access_token: str, channel: Channel) -> None: ...


def utc_time(value: str, zone: str | None) -> datetime:
    """An RFC 3339 date-time (with an offset) or a zone-less one in `zone`, as UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:  # Graph sends 7 fractional digits; Python takes at most 6
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tail}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(zone))
    return parsed.astimezone(UTC)


def utc_day(value: str, zone: str | None) -> datetime:
    """An all-day event's date: midnight of that day in the calendar's zone, as UTC."""
    return datetime.combine(date.fromisoformat(value), time(0), tzinfo=_zone(zone)).astimezone(UTC)


def _zone(name: str | None) -> ZoneInfo:
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")  # Windows zone names: Graph is asked for UTC (Prefer: outlook.timezone)
