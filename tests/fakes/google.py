"""A fake of Google's OAuth 2.0 endpoints and Calendar API v3, in Google's wire format.

Endpoints (paths as Google's, under one local base URL):
- `GET /o/oauth2/v2/auth`: the consent page (a form whose "Allow" is `GET /o/oauth2/v2/approve`,
  which redirects to `redirect_uri?state&code&scope` as Google does, scope widened).
- `POST /token`: `authorization_code` (PKCE S256 checked, single-use code, refresh token only with
  `access_type=offline`, an `id_token` with the email) and `refresh_token` (`invalid_grant` once
  revoked). Client credentials by HTTP Basic or in the body, as requests-oauthlib and google-auth send them.
- `GET /calendar/v3/calendars/primary/events`: `events.list` with `pageToken`/`maxResults`,
  `timeMin`/`timeMax` (full sync) or `syncToken` (incremental; combining both is 400, an expired
  token is 410 `fullSyncRequired`), `nextSyncToken` on the last page only, deleted events as
  `status: cancelled` in incremental answers only, times in the calendar's zone.
- `GET .../events/{id}`, `POST .../events/watch` (answers an `api#channel` and then posts the
  `sync` message to the address), `POST /calendar/v3/channels/stop`.
Push notifications carry no body, only the `X-Goog-*` headers.

Checked against Google's reference pages for these methods and the push guide, and by driving the
real google-auth-oauthlib, google-auth and google-api-python-client against it (tests/calendar).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx

from tests.fakes.base import Answer, FakeServer, Request

CLIENT_ID = "fake-google-client.apps.googleusercontent.com"
CLIENT_SECRET = "fake-google-secret"
ZONE = "Europe/Paris"
WIDEN = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}


def _error(status: int, reason: str, message: str, status_text: str | None = None) -> Answer:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "errors": [{"domain": "global", "reason": reason, "message": message}],
    }
    if status_text:
        error["status"] = status_text
    return Answer(status, {"error": error})  # fmt: skip


@dataclass
class Event:
    id: str
    summary: str
    start: datetime
    end: datetime
    all_day: bool = False
    status: str = "confirmed"
    seq: int = 0
    """The change counter value of its last change (sync tokens are counter values)."""
    etag: str = ""

    def resource(self, zone: str) -> dict[str, Any]:
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if self.status == "cancelled":
            return {"kind": "calendar#event", "etag": self.etag, "id": self.id, "status": "cancelled"}
        if self.all_day:
            start: dict[str, str] = {"date": self.start.date().isoformat()}
            end: dict[str, str] = {"date": self.end.date().isoformat()}
        else:
            tz = ZoneInfo(zone)
            start = {"dateTime": self.start.astimezone(tz).isoformat(), "timeZone": zone}
            end = {"dateTime": self.end.astimezone(tz).isoformat(), "timeZone": zone}
        return {
            "kind": "calendar#event",
            "etag": self.etag,
            "id": self.id,
            "status": self.status,
            "htmlLink": f"https://www.google.com/calendar/event?eid={self.id}",
            "created": stamp,
            "updated": stamp,
            "summary": self.summary,
            "creator": {"email": "ada@example.com", "self": True},
            "organizer": {"email": "ada@example.com", "self": True},
            "start": start,
            "end": end,
            "iCalUID": f"{self.id}@google.com",
            "sequence": 0,
            "eventType": "default",
        }


@dataclass
class Channel:
    id: str
    resource_id: str
    token: str
    address: str
    expiration_ms: int
    messages: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class FakeGoogle(FakeServer):
    """Google's OAuth and Calendar v3 for one account (`email`), its primary calendar in `ZONE`."""

    def __init__(self, email: str = "ada@example.com") -> None:
        super().__init__()
        self.email = email
        self.lock = threading.RLock()
        self.events: dict[str, Event] = {}
        self.counter = itertools.count(1)
        self.seq = 0
        self.token_floor = 0
        """Sync tokens below this are expired (410)."""
        self.codes: dict[str, dict[str, str]] = {}
        self.refresh_tokens: dict[str, bool] = {}
        """refresh token -> still valid"""
        self.access_tokens: dict[str, float] = {}
        """access token -> expiry (time.time())"""
        self.access_ttl_s = 3599
        self.channels: dict[str, Channel] = {}
        self.channel_ttl_s = 7 * 24 * 3600
        self.page_size_cap = 250
        self.pushes: list[tuple[float, str]] = []
        """(time.monotonic(), channel id) of every push notification sent."""

    # --- what a test does at "Google" ----------------------------------------------------

    def _bump(self, event: Event) -> None:
        self.seq += 1
        event.seq = self.seq
        event.etag = f'"{self.seq}"'

    def add_event(
        self, summary: str, start: datetime, end: datetime, *, all_day: bool = False, notify: bool = True
    ) -> str:
        with self.lock:
            event = Event(f"ev{next(self.counter):04d}{secrets.token_hex(3)}", summary, start, end, all_day)
            self._bump(event)
            self.events[event.id] = event
        if notify:
            self.push_all()
        return event.id

    def move(self, event_id: str, start: datetime, end: datetime, *, notify: bool = True) -> None:
        with self.lock:
            event = self.events[event_id]
            event.start, event.end = start, end
            self._bump(event)
        if notify:
            self.push_all()

    def rename(self, event_id: str, summary: str, *, notify: bool = True) -> None:
        with self.lock:
            event = self.events[event_id]
            event.summary = summary
            self._bump(event)
        if notify:
            self.push_all()

    def delete(self, event_id: str, *, notify: bool = True) -> None:
        with self.lock:
            event = self.events[event_id]
            event.status = "cancelled"
            self._bump(event)
        if notify:
            self.push_all()

    def forget(self, event_id: str) -> None:
        """Delete an event so that no incremental answer will ever mention it (only a full listing can tell)."""
        with self.lock:
            del self.events[event_id]
            self.seq += 1

    def expire_sync_tokens(self) -> None:
        with self.lock:
            self.token_floor = self.seq + 1

    def revoke(self) -> None:
        """The user removed the app's access: every refresh token is now `invalid_grant`, access tokens 401."""
        with self.lock:
            for token in self.refresh_tokens:
                self.refresh_tokens[token] = False
            self.access_tokens.clear()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def push_all(self, state: str = "exists") -> None:
        with self.lock:
            channels = list(self.channels.values())
        for channel in channels:
            self.push(channel, state)

    def push(self, channel: Channel, state: str) -> httpx.Response:
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Token": channel.token,
            "X-Goog-Channel-Expiration": format_datetime(
                datetime.fromtimestamp(channel.expiration_ms / 1000, UTC), usegmt=True
            ),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": f"{self.base}/calendar/v3/calendars/primary/events?alt=json",
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(next(channel.messages)),
        }
        self.pushes.append((time.monotonic(), channel.id))
        return httpx.post(channel.address, headers=headers, content=b"", timeout=10)

    # --- routes --------------------------------------------------------------------------

    def route(self, request: Request) -> Answer:
        path = request.path
        if path == "/o/oauth2/v2/auth" and request.method == "GET":
            return self._consent(request)
        if path == "/o/oauth2/v2/approve" and request.method == "GET":
            return self._approve(request)
        if path == "/token" and request.method == "POST":
            return self._token(request)
        if path == "/_fake/events":
            return self._control(request)
        if path.startswith("/calendar/v3/"):
            if not self._authorised(request):
                return _error(401, "authError", "Request had invalid authentication credentials.",
                              status_text="UNAUTHENTICATED")  # fmt: skip
            return self._calendar(request, path.removeprefix("/calendar/v3"))
        return _error(404, "notFound", "Not Found")

    def _control(self, request: Request) -> Answer:
        """Not Google's: for trying roomcast by hand. GET lists events; POST `{id, shift_minutes}` moves one."""
        if request.method == "POST":
            body = request.json()
            with self.lock:
                event = self.events[body["id"]]
                delta = timedelta(minutes=int(body.get("shift_minutes", 60)))
                start, end = event.start + delta, event.end + delta
            self.move(event.id, start, end)
        with self.lock:
            return Answer(200, [{"id": e.id, "summary": e.summary, "start": e.start.isoformat(),
                                 "status": e.status} for e in self.events.values()])  # fmt: skip

    def _consent(self, request: Request) -> Answer:
        q = request.query
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code" or not q.get("redirect_uri"):
            return Answer(400, "Error 400: invalid_request", content_type="text/html; charset=utf-8")
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in q.items()
        )
        page = (
            "<!doctype html><title>Sign in - Google Accounts</title><h1>Fake Google</h1>"
            f"<p>roomcast wants to see the calendar of {html.escape(self.email)}.</p>"
            f'<form method="get" action="/o/oauth2/v2/approve">{fields}<button id="allow">Allow</button></form>'
        )
        return Answer(200, page, content_type="text/html; charset=utf-8")

    def _approve(self, request: Request) -> Answer:
        q = request.query
        requested = q.get("scope", "").split()
        granted = ["openid", *sorted({WIDEN.get(s, s) for s in requested if s != "openid"})]
        code = "4/0A" + secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {
                "redirect_uri": q.get("redirect_uri", ""),
                "scope": " ".join(granted),
                "challenge": q.get("code_challenge", ""),
                "offline": "1" if q.get("access_type") == "offline" else "",
            }
        params = {"state": q.get("state", ""), "code": code, "scope": " ".join(granted), "authuser": "0",
                  "prompt": "consent"}  # fmt: skip
        return Answer(302, None, {"Location": f"{q['redirect_uri']}?{urlencode(params)}"})

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return client_id == CLIENT_ID and secret == CLIENT_SECRET

    def _token(self, request: Request) -> Answer:
        form = request.form()
        if not self._client_ok(request, form):
            return Answer(401, {"error": "invalid_client", "error_description": "Unauthorized"})
        with self.lock:
            if form.get("grant_type") == "authorization_code":
                grant = self.codes.pop(form.get("code", ""), None)
                if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                    return Answer(400, {"error": "invalid_grant", "error_description": "Bad Request"})
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if grant["challenge"] and challenge != grant["challenge"]:
                    return Answer(400, {"error": "invalid_grant", "error_description": "Invalid code verifier."})
                answer = self._issue(grant["scope"])
                if grant["offline"]:
                    refresh = "1//0g" + secrets.token_urlsafe(32)
                    self.refresh_tokens[refresh] = True
                    answer["refresh_token"] = refresh
                answer["id_token"] = self._id_token()
                return Answer(200, answer)
            if form.get("grant_type") == "refresh_token":
                if not self.refresh_tokens.get(form.get("refresh_token", "")):
                    return Answer(
                        400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
                    )
                return Answer(200, self._issue("openid https://www.googleapis.com/auth/userinfo.email "
                                                "https://www.googleapis.com/auth/calendar.readonly"))  # fmt: skip
        return Answer(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})

    def _issue(self, scope: str) -> dict[str, Any]:
        token = "ya29." + secrets.token_urlsafe(32)
        self.access_tokens[token] = time.time() + self.access_ttl_s
        return {"access_token": token, "expires_in": self.access_ttl_s, "scope": scope, "token_type": "Bearer"}

    def _id_token(self) -> str:
        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        now = int(time.time())
        claims = {"iss": "https://accounts.google.com", "aud": CLIENT_ID, "sub": "1234567890", "email": self.email,
                  "email_verified": True, "iat": now, "exp": now + 3600}  # fmt: skip
        return f"{part({'alg': 'RS256', 'kid': 'fake', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"

    def _authorised(self, request: Request) -> bool:
        with self.lock:
            expiry = self.access_tokens.get(request.bearer)
        return expiry is not None and expiry > time.time()

    def _calendar(self, request: Request, path: str) -> Answer:
        if path == "/calendars/primary/events" and request.method == "GET":
            return self._list(request.query)
        if path == "/calendars/primary/events/watch" and request.method == "POST":
            return self._watch(request.json())
        if path.startswith("/calendars/primary/events/") and request.method == "GET":
            with self.lock:
                event = self.events.get(path.rsplit("/", 1)[1])
                if event is None:
                    return _error(404, "notFound", "Not Found")
                return Answer(200, event.resource(ZONE))
        if path == "/channels/stop" and request.method == "POST":
            body = request.json()
            with self.lock:
                channel = self.channels.get(body.get("id", ""))
                if channel is None or channel.resource_id != body.get("resourceId"):
                    return _error(404, "notFound", f"Channel '{body.get('id')}' not found for project '1'")
                del self.channels[channel.id]
            return Answer(204)
        return _error(404, "notFound", "Not Found")

    def _list(self, q: dict[str, str]) -> Answer:
        sync_token = q.get("syncToken")
        if sync_token and (q.get("timeMin") or q.get("timeMax")):
            return _error(400, "invalid", "Sync token cannot be used with timeMin or timeMax.")
        page_size = min(int(q.get("maxResults") or 250), self.page_size_cap)
        with self.lock:
            if q.get("pageToken"):
                mode, since, offset, snapshot = q["pageToken"].split(":")
                since_seq, start, upto = int(since), int(offset), int(snapshot)
            else:
                since_seq, start, upto = 0, 0, self.seq
                if sync_token:
                    if not sync_token.startswith("st") or int(sync_token[2:]) < self.token_floor:
                        return _error(
                            410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required."
                        )
                    since_seq = int(sync_token[2:])
                mode = "inc" if sync_token else "full"
            if mode == "inc":
                chosen = [e for e in self.events.values() if since_seq < e.seq]
            else:
                low = _parse(q.get("timeMin"))
                high = _parse(q.get("timeMax"))
                chosen = [
                    e for e in self.events.values()
                    if e.status != "cancelled" and (low is None or e.end > low) and (high is None or e.start < high)
                ]  # fmt: skip
            chosen.sort(key=lambda e: (e.start, e.id))
            page = chosen[start : start + page_size]
            body: dict[str, Any] = {
                "kind": "calendar#events",
                "etag": f'"{upto}"',
                "summary": self.email,
                "updated": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "timeZone": ZONE,
                "accessRole": "owner",
                "defaultReminders": [{"method": "popup", "minutes": 10}],
                "items": [e.resource(ZONE) for e in page],
            }
            if start + page_size < len(chosen):
                body["nextPageToken"] = f"{mode}:{since_seq}:{start + page_size}:{upto}"
            else:
                body["nextSyncToken"] = f"st{self.seq}"
        return Answer(200, body)

    def _watch(self, body: dict[str, Any]) -> Answer:
        if body.get("type") != "web_hook" or not body.get("id") or not body.get("address"):
            return _error(400, "invalid", "Invalid channel")
        ttl = min(int((body.get("params") or {}).get("ttl") or self.channel_ttl_s), self.channel_ttl_s)
        channel = Channel(
            id=body["id"],
            resource_id="res-" + secrets.token_hex(8),
            token=body.get("token", ""),
            address=body["address"],
            expiration_ms=int((time.time() + ttl) * 1000),
        )
        with self.lock:
            if channel.id in self.channels:
                return _error(400, "channelIdNotUnique", f"Channel id {channel.id} not unique")
            self.channels[channel.id] = channel
        threading.Timer(0.05, self._sync_message, args=(channel,)).start()
        return Answer(
            200,
            {
                "kind": "api#channel",
                "id": channel.id,
                "resourceId": channel.resource_id,
                "resourceUri": f"{self.base}/calendar/v3/calendars/primary/events?alt=json",
                "token": channel.token,
                "expiration": str(channel.expiration_ms),
            },
        )

    def _sync_message(self, channel: Channel) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.push(channel, "sync")


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def approve(authorization_url: str) -> str:
    """What clicking "Allow" on the consent page does: the redirect back to roomcast's callback."""
    parts = urlsplit(authorization_url)
    response = httpx.get(f"{parts.scheme}://{parts.netloc}/o/oauth2/v2/approve?{parts.query}")
    assert response.status_code == 302, response.text
    return response.headers["location"]


def in_hours(hours: float, minutes: int = 0) -> datetime:
    """A whole-minute UTC time `hours` from now (event times in tests)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now + timedelta(hours=hours, minutes=minutes)
