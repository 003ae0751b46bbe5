"""Outlook on Microsoft's own client: msal's ConfidentialClientApplication for the auth-code flow
and tokens, and Microsoft Graph (`calendarView/delta`, `subscriptions`) over plain requests.

Facts this module is built around (docs/calendar.md has the rest):
- msal accepts only an https authority and, by default, validates it through Microsoft's
  instance discovery; `instance_discovery=False` skips that, and msal then reads
  `<authority>/v2.0/.well-known/openid-configuration` (which a test fake serves over https with a
  test CA trusted through `REQUESTS_CA_BUNDLE`; verification is never turned off).
- Refresh tokens rotate: the connection keeps msal's whole serialised token cache, and the caller
  holds a per-connection lock around load, acquire and save, so two refreshes never race.
- Delta links expire without notice (410, or `syncStateNotFound`/`resyncRequired`): full resync.
- Event subscriptions live at most 4,230 minutes: we ask for less and store what Graph returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import msal
import msal.exceptions
import requests

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

log = logging.getLogger("roomcast.calendar.microsoft")

SCOPES = ["Calendars.Read", "User.Read"]
"""msal adds openid, profile and offline_access itself (and refuses them here)."""
TIMEOUT_S = 20
PAGE_SIZE = 100
SUBSCRIPTION_MINUTES = 4200
"""Asked for; Graph's current maximum for events is 4,230 minutes, and we keep what it returns."""
RESET_CODES = frozenset({"syncStateNotFound", "resyncRequired", "SyncStateNotFound", "SyncStateInvalid"})
PREFER = 'outlook.timezone="UTC", odata.maxpagesize=' + str(PAGE_SIZE)


class OutlookCalendar:
    name = "outlook"

    def __init__(self, settings: Settings) -> None:
        assert settings.microsoft_client_id is not None
        self._client_id = settings.microsoft_client_id
        self._client_secret = settings.microsoft_client_secret or ""
        self._authority = settings.microsoft_authority
        self._graph = settings.microsoft_graph_url.rstrip("/")

    def _app(self, cache: msal.SerializableTokenCache | None = None) -> msal.ConfidentialClientApplication:
        try:
            return msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._client_secret,
                authority=self._authority,
                instance_discovery=False,
                token_cache=cache,
                timeout=TIMEOUT_S,
            )
        except (ValueError, requests.RequestException, msal.exceptions.MsalError) as err:
            raise ProviderError(f"the Microsoft authority did not answer as expected: {err}") from None

    # --- connect -------------------------------------------------------------------------

    def authorization(self, redirect_uri: str, state: str) -> tuple[str, dict[str, Any]]:
        flow: dict[str, Any] = self._app().initiate_auth_code_flow(
            SCOPES, redirect_uri=redirect_uri, state=state, prompt="select_account"
        )
        return str(flow["auth_uri"]), flow

    def redeem(self, flow: dict[str, Any], params: dict[str, str], redirect_uri: str) -> Grant:
        cache = msal.SerializableTokenCache()
        app = self._app(cache)
        try:
            result = app.acquire_token_by_auth_code_flow(flow, params)
        except ValueError as err:  # msal: state mismatch and the like
            raise ProviderError(f"the authorization answer was refused: {err}") from None
        if "error" in result:
            raise ProviderError(f"Microsoft refused: {result.get('error')}")
        accounts = app.get_accounts()
        if not accounts:
            raise ProviderError("Microsoft sent no account (is offline_access granted?)")
        claims = result.get("id_token_claims") or {}
        email = str(claims.get("email") or claims.get("preferred_username") or "")
        if not email:
            email = self._me_email(str(result["access_token"]))
        return Grant(tokens=_dump(cache.serialize(), accounts[0]["home_account_id"]), account_email=email)

    def _me_email(self, access_token: str) -> str:
        me = self._get(access_token, f"{self._graph}/me")
        return str(me.get("mail") or me.get("userPrincipalName") or "")

    # --- tokens --------------------------------------------------------------------------

    def access_token(self, tokens: Tokens, *, force: bool = False) -> str:
        state = json.loads(tokens.raw)
        cache = msal.SerializableTokenCache()
        cache.deserialize(state["cache"])
        app = self._app(cache)
        account = next((a for a in app.get_accounts() if a.get("home_account_id") == state["account"]), None)
        if account is None:
            raise Revoked("the stored Microsoft account is gone: connect again")
        result = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=force)
        if result is None:
            raise Revoked("Microsoft has no refresh token for this account: connect again")
        if "error" in result:
            if result.get("error") in ("invalid_grant", "interaction_required"):
                raise Revoked(f"Microsoft refused the refresh token ({result['error']}): connect again")
            raise ProviderError(f"token refresh failed: {result.get('error')}")
        if cache.has_state_changed:
            tokens.raw = _dump(cache.serialize(), state["account"])
            tokens.changed = True
        return str(result["access_token"])

    # --- Graph ---------------------------------------------------------------------------

    def _request(self, method: str, access_token: str, url: str, body: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {access_token}", "Prefer": PREFER}
        try:
            response = requests.request(method, url, headers=headers, json=body, timeout=TIMEOUT_S)
        except requests.RequestException as err:
            raise ProviderError(f"Microsoft Graph did not answer: {type(err).__name__}") from None
        if response.status_code >= 400:
            raise _classify(response)
        return response

    def _get(self, access_token: str, url: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("GET", access_token, url).json()
        return answer

    def list_events(self, access_token: str, cursor: str | None) -> Listing:
        if cursor:
            url = cursor
        else:
            now = datetime.now(UTC)
            url = (
                f"{self._graph}/me/calendarView/delta?startDateTime={_iso(now - WINDOW_PAST)}"
                f"&endDateTime={_iso(now + WINDOW_FUTURE)}"
            )
        events: list[CalEvent] = []
        while True:
            page = self._get(access_token, url)
            events.extend(_event(item) for item in page.get("value", []))
            if page.get("@odata.nextLink"):
                url = str(page["@odata.nextLink"])
                continue
            return Listing(events=events, cursor=page.get("@odata.deltaLink"), full=cursor is None)

    def get_event(self, access_token: str, event_id: str) -> CalEvent:
        return _event(self._get(access_token, f"{self._graph}/me/events/{quote(event_id, safe='')}"))

    def watch(self, access_token: str, channel_id: str, secret: str, address: str) -> Channel:
        """A subscription to the user's events; Graph validates `address` (and the lifecycle one) before answering."""
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": address,
            "lifecycleNotificationUrl": address,
            "resource": "me/events",
            "expirationDateTime": _iso(datetime.now(UTC) + timedelta(minutes=SUBSCRIPTION_MINUTES)),
            "clientState": secret,
        }
        answer = self._request("POST", access_token, f"{self._graph}/subscriptions", body).json()
        return Channel(id=str(answer["id"]), resource_id=None, expires_at=utc_time(answer["expirationDateTime"], None))

    def renew(self, access_token: str, channel: Channel, new_id: str, secret: str, address: str) -> Channel:
        """Extend the subscription; one Graph removed meanwhile is created anew."""
        body = {"expirationDateTime": _iso(datetime.now(UTC) + timedelta(minutes=SUBSCRIPTION_MINUTES))}
        try:
            answer = self._request("PATCH", access_token, f"{self._graph}/subscriptions/{channel.id}", body).json()
        except NotFound:
            return self.watch(access_token, new_id, secret, address)
        return Channel(id=channel.id, resource_id=None, expires_at=utc_time(answer["expirationDateTime"], None))

    def stop(self, access_token: str, channel: Channel) -> None:
        with contextlib.suppress(NotFound):  # already gone
            self._request("DELETE", access_token, f"{self._graph}/subscriptions/{channel.id}")


def _classify(response: requests.Response) -> ProviderError:
    status = response.status_code
    code = ""
    with contextlib.suppress(ValueError, AttributeError):
        code = str(response.json().get("error", {}).get("code", ""))
    if status == 410 or code in RESET_CODES:
        return SyncReset(f"Graph answered {status} {code}".strip())
    if (status in (429, 503) and response.headers.get("Retry-After")) or status == 429:
        try:
            retry_after = float(response.headers.get("Retry-After") or 1)
        except ValueError:
            retry_after = 1.0
        return RateLimited(retry_after, f"Graph answered {status} {code}".strip())
    if status == 401:
        return Unauthorized("Graph answered 401")
    if status == 404:
        return NotFound("Graph answered 404")
    return ProviderError(f"Graph answered {status} {code}".strip())


def _event(item: dict[str, Any]) -> CalEvent:
    """A Graph event (or an `@removed` delta entry) as a CalEvent."""
    if "@removed" in item:
        return CalEvent(id=str(item["id"]), title="", starts_at=None, ends_at=None, cancelled=True)
    all_day = bool(item.get("isAllDay"))
    return CalEvent(
        id=str(item["id"]),
        title=str(item.get("subject") or ""),
        starts_at=_when(item.get("start"), all_day),
        ends_at=_when(item.get("end"), all_day),
        cancelled=bool(item.get("isCancelled")),
    )


def _when(value: dict[str, Any] | None, all_day: bool) -> datetime | None:
    if not value or not value.get("dateTime"):
        return None
    if all_day:
        return utc_day(str(value["dateTime"])[:10], value.get("timeZone"))
    return utc_time(str(value["dateTime"]), value.get("timeZone"))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _dump(cache: str, account: str) -> bytes:
    return json.dumps({"cache": cache, "account": account}).encode()
