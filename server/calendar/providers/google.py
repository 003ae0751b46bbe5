"""Google Calendar on Google's own clients: google-auth-oauthlib (connect), google-auth (refresh),
google-api-python-client (Calendar v3 `events.list`/`get`/`watch`, `channels.stop`).

Facts this module is built around (docs/calendar.md has the rest):
- A refresh token comes only with `access_type=offline`; `prompt=consent` makes Google send one
  again when an account reconnects.
- Google widens short scopes (`email` becomes `.../userinfo.email`, and `openid` is added), which
  oauthlib reports as "Scope has changed". We ask for the full names, and still accept a token
  whose scope grew, as long as it holds the calendar scope.
- `syncToken` cannot be combined with `timeMin`/`timeMax`; only the last page carries
  `nextSyncToken`; an expired one answers 410 (full resync, which has no deletion records).
- 429, and 403 with reason `rateLimitExceeded`/`userRateLimitExceeded`, are rate limits (retry
  after `Retry-After`); other 403s are not.
- google-auth treats a token as expired a few minutes early; a 401 is refreshed too (by the caller).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import httplib2
from google_auth_httplib2 import AuthorizedHttp
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError

from server.calendar.providers.base import (
    WINDOW_FUTURE,
    WINDOW_PAST,
    CalEvent,
    Channel,
    Grant,
    Listing,
    NotFound,
    ProviderError,
    RateLimited,
    Revoked,
    SyncReset,
    Tokens,
    Unauthorized,
    utc_day,
    utc_time,
)
from server.settings import Settings

log = logging.getLogger("roomcast.calendar.google")

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
SCOPES = ["openid", "https://www.googleapis.com/auth/userinfo.email", CALENDAR_SCOPE]
"""Full scope names, as Google returns them (short ones would be widened and trip oauthlib)."""
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
TIMEOUT_S = 20
PAGE_SIZE = 250
CHANNEL_TTL_S = 7 * 24 * 3600


@cache
def _discovery() -> dict[str, Any]:
    """Calendar v3's discovery document as shipped with google-api-python-client (no network)."""
    document: dict[str, Any] = json.loads(get_static_doc("calendar", "v3"))
    return document


class GoogleCalendar:
    name = "google"

    def __init__(self, settings: Settings) -> None:
        assert settings.google_client_id is not None
        self._client_id = settings.google_client_id
        self._client_secret = settings.google_client_secret or ""
        self._auth_url = settings.google_auth_url
        self._token_url = settings.google_token_url
        self._api_url = settings.google_api_url.rstrip("/") + "/"

    # --- connect -------------------------------------------------------------------------

    def _flow(self, redirect_uri: str, code_verifier: str | None = None) -> Flow:
        config = {
            "web": {
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "auth_uri": self._auth_url,
                "token_uri": self._token_url,
            }
        }
        flow = Flow.from_client_config(config, scopes=SCOPES, code_verifier=code_verifier)
        flow.redirect_uri = redirect_uri
        return flow

    def authorization(self, redirect_uri: str, state: str) -> tuple[str, dict[str, Any]]:
        flow = self._flow(redirect_uri)
        url, _ = flow.authorization_url(
            state=state, access_type="offline", prompt="consent", include_granted_scopes="true"
        )
        return url, {"code_verifier": flow.code_verifier}

    def redeem(self, flow: dict[str, Any], params: dict[str, str], redirect_uri: str) -> Grant:
        if "error" in params:
            raise ProviderError(f"Google refused: {params['error']}")
        session = self._flow(redirect_uri, code_verifier=flow.get("code_verifier"))
        try:
            token = dict(session.fetch_token(code=params.get("code", "")))
        except Warning as widened:  # oauthlib: "Scope has changed" (Google widened what we asked for)
            token = dict(getattr(widened, "token", {}))
            granted = set(getattr(widened, "new_scope", None) or [])
            if CALENDAR_SCOPE not in granted:
                raise ProviderError("the calendar permission was not granted") from None
        except Exception as err:  # oauthlib raises its own errors for error answers
            raise ProviderError(f"the token exchange failed: {type(err).__name__}: {err}") from None
        if not token.get("access_token"):
            raise ProviderError("the token answer carried no access token")
        if not token.get("refresh_token"):
            raise ProviderError("Google sent no refresh token (access_type=offline and prompt=consent are needed)")
        email = _id_token_email(token.get("id_token"))
        return Grant(tokens=_dump(token["access_token"], token["refresh_token"], _expiry(token)), account_email=email)

    # --- tokens --------------------------------------------------------------------------

    def access_token(self, tokens: Tokens, *, force: bool = False) -> str:
        state = json.loads(tokens.raw)
        expiry = datetime.fromisoformat(state["expiry"]).replace(tzinfo=None) if state.get("expiry") else None
        credentials = google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
            token=state["access_token"],
            refresh_token=state["refresh_token"],
            token_uri=self._token_url,
            client_id=self._client_id,
            client_secret=self._client_secret,
            expiry=expiry,
        )
        if force or not credentials.valid:  # `valid` is false a few minutes before the expiry
            try:
                credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
            except google.auth.exceptions.RefreshError as err:
                if "invalid_grant" in str(err):
                    raise Revoked("Google refused the refresh token (invalid_grant): connect again") from None
                raise ProviderError(f"token refresh failed: {err}") from None
            except google.auth.exceptions.TransportError as err:
                raise ProviderError(f"token refresh failed: {err}") from None
            expires = credentials.expiry.replace(tzinfo=UTC) if credentials.expiry else None
            token = str(credentials.token)
            tokens.raw = _dump(token, str(credentials.refresh_token or state["refresh_token"]), expires)
            tokens.changed = True
            return token
        return str(credentials.token)

    # --- Calendar v3 ---------------------------------------------------------------------

    def _service(self, access_token: str) -> Any:
        credentials = google.oauth2.credentials.Credentials(token=access_token)  # type: ignore[no-untyped-call]
        http = AuthorizedHttp(credentials, http=httplib2.Http(timeout=TIMEOUT_S), refresh_status_codes=())
        return build_from_document(_discovery(), http=http, client_options={"api_endpoint": self._api_url})

    def list_events(self, access_token: str, cursor: str | None) -> Listing:
        events_api = self._service(access_token).events()
        args: dict[str, Any] = {"calendarId": "primary", "singleEvents": True, "maxResults": PAGE_SIZE}
        if cursor:
            args["syncToken"] = cursor  # never with timeMin/timeMax
        else:
            now = datetime.now(UTC)
            args["timeMin"] = (now - WINDOW_PAST).isoformat().replace("+00:00", "Z")
            args["timeMax"] = (now + WINDOW_FUTURE).isoformat().replace("+00:00", "Z")
        events: list[CalEvent] = []
        page_token: str | None = None
        while True:
            page = _call(events_api.list(**args, pageToken=page_token) if page_token else events_api.list(**args))
            zone = page.get("timeZone")
            events.extend(_event(item, zone) for item in page.get("items", []))
            page_token = page.get("nextPageToken")
            if not page_token:
                return Listing(events=events, cursor=page.get("nextSyncToken"), full=cursor is None)

    def get_event(self, access_token: str, event_id: str) -> CalEvent:
        item = _call(self._service(access_token).events().get(calendarId="primary", eventId=event_id))
        return _event(item, None)

    def watch(self, access_token: str, channel_id: str, secret: str, address: str) -> Channel:
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": secret,
            "params": {"ttl": str(CHANNEL_TTL_S)},
        }
        answer = _call(self._service(access_token).events().watch(calendarId="primary", body=body))
        expires = datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC)
        return Channel(id=answer["id"], resource_id=answer.get("resourceId"), expires_at=expires)

    def renew(self, access_token: str, channel: Channel, new_id: str, secret: str, address: str) -> Channel:
        """Google channels cannot be extended: open a new one, then stop the old (they overlap a moment)."""
        fresh = self.watch(access_token, new_id, secret, address)
        self.stop(access_token, channel)
        return fresh

    def stop(self, access_token: str, channel: Channel) -> None:
        with contextlib.suppress(NotFound):  # already gone
            _call(
                self._service(access_token)
                .channels()
                .stop(body={"id": channel.id, "resourceId": channel.resource_id or ""})
            )


def _call(request: Any) -> Any:
    """Execute one API request, turning Google's errors into the provider errors."""
    try:
        return request.execute(num_retries=0)
    except HttpError as err:
        raise _classify(err) from None
    except (httplib2.HttpLib2Error, OSError) as err:
        raise ProviderError(f"Google Calendar did not answer: {type(err).__name__}") from None


def _classify(err: HttpError) -> ProviderError:
    status = int(err.resp.status)
    reason = ""
    try:
        body = json.loads(err.content)
        errors = body.get("error", {}).get("errors") or [{}]
        reason = str(errors[0].get("reason", ""))
    except (ValueError, AttributeError, TypeError):
        pass
    if status == 410:
        return SyncReset(f"Google answered 410 {reason}".strip())
    if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
        return RateLimited(_retry_after(err.resp.get("retry-after")), f"Google answered {status} {reason}".strip())
    if status == 401:
        return Unauthorized("Google answered 401")
    if status == 404:
        return NotFound("Google answered 404")
    return ProviderError(f"Google answered {status} {reason}".strip())


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0


def _event(item: dict[str, Any], zone: str | None) -> CalEvent:
    """An events resource as a CalEvent; a deleted one (incremental sync) has only `id` and `status`."""
    cancelled = item.get("status") == "cancelled"
    return CalEvent(
        id=str(item["id"]),
        title=str(item.get("summary") or ""),
        starts_at=_when(item.get("start"), zone),
        ends_at=_when(item.get("end"), zone),
        cancelled=cancelled,
    )


def _when(value: dict[str, Any] | None, zone: str | None) -> datetime | None:
    if not value:
        return None
    own_zone = value.get("timeZone") or zone
    if value.get("dateTime"):
        return utc_time(value["dateTime"], own_zone)
    if value.get("date"):
        return utc_day(value["date"], own_zone)
    return None


def _expiry(token: dict[str, Any]) -> datetime | None:
    if token.get("expires_at"):
        return datetime.fromtimestamp(float(token["expires_at"]), UTC)
    if token.get("expires_in"):
        return datetime.now(UTC) + timedelta(seconds=float(token["expires_in"]))
    return None


def _dump(access_token: str, refresh_token: str, expiry: datetime | None) -> bytes:
    return json.dumps(
        {"access_token": access_token, "refresh_token": refresh_token, "expiry": expiry.isoformat() if expiry else None}
    ).encode()


def _id_token_email(id_token: str | None) -> str:
    """The `email` claim of the id_token that came straight from the token endpoint (TLS, no signature check)."""
    if not id_token or id_token.count(".") != 2:
        return ""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("email") or "")
    except (ValueError, TypeError):
        return ""
