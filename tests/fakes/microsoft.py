"""A fake of the Microsoft identity platform (over https) and Microsoft Graph (over http), in their wire formats.

Identity (`login`, https with a test CA, because msal accepts only https authorities):
- `GET /{tenant}/v2.0/.well-known/openid-configuration`: what msal reads with `instance_discovery=False`.
- `GET /{tenant}/oauth2/v2.0/authorize`: the consent page; "Accept" is `GET .../approve`, which
  redirects to `redirect_uri?code&state&session_state`.
- `POST /{tenant}/oauth2/v2.0/token`: `authorization_code` (PKCE checked, `client_secret_post`)
  and `refresh_token` (refresh tokens rotate; revoked: 400 `invalid_grant` with AADSTS codes),
  answering `access_token`, `refresh_token`, `id_token` (with msal's `nonce`), `client_info`.
Graph (`graph`, plain http, base `/v1.0`):
- `GET /me/calendarView/delta` (`startDateTime`/`endDateTime`, then `@odata.nextLink` pages with
  `$skiptoken` and a final `@odata.deltaLink` with `$deltatoken`; deleted events as `@removed`;
  an expired delta token is 410 `syncStateNotFound`), `GET /me/events/{id}`, `GET /me`.
- `POST/PATCH/DELETE /subscriptions`: creation validates `notificationUrl` and
  `lifecycleNotificationUrl` first (POST `?validationToken=...`, expects 200 text/plain echo
  within 10 s), caps `expirationDateTime` at the resource's maximum, then answers 201.
- Change notifications and lifecycle notifications (`reauthorizationRequired`, `missed`,
  `subscriptionRemoved`) are posted as Graph posts them, with the subscription's `clientState`.

Checked against Microsoft's identity-platform and Graph reference pages (token endpoint, OpenID
configuration, event delta, subscription resource, lifecycle notifications), and by driving the
real msal and our Graph client against it (tests/calendar).
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from tests.fakes.base import Answer, FakeServer, Request
from tests.fakes.tls import TestCA

CLIENT_ID = "00000000-0000-0000-0000-00000000c0de"
CLIENT_SECRET = "fake-microsoft-secret"
TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
MAX_SUBSCRIPTION_MINUTES = 4230


def graph_error(status: int, code: str, message: str) -> Answer:
    inner = {"request-id": str(uuid.uuid4()), "date": _iso(datetime.now(UTC))}
    return Answer(status, {"error": {"code": code, "message": message, "innerError": inner}})


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000")


def _iso_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@dataclass
class Event:
    id: str
    subject: str
    start: datetime
    end: datetime
    deleted: bool = False
    seq: int = 0

    def resource(self) -> dict[str, Any]:
        if self.deleted:
            return {"@odata.type": "#microsoft.graph.event", "id": self.id, "@removed": {"reason": "deleted"}}
        stamp = _iso_z(datetime.now(UTC))
        return {
            "@odata.type": "#microsoft.graph.event",
            "@odata.etag": f'W/"{self.seq}"',
            "id": self.id,
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "changeKey": str(self.seq),
            "subject": self.subject,
            "isAllDay": False,
            "isCancelled": False,
            "type": "singleInstance",
            "start": {"dateTime": _iso(self.start), "timeZone": "UTC"},
            "end": {"dateTime": _iso(self.end), "timeZone": "UTC"},
            "organizer": {"emailAddress": {"name": "Ada", "address": "ada@contoso.example"}},
        }


@dataclass
class Subscription:
    id: str
    resource: str
    change_type: str
    notification_url: str
    lifecycle_url: str
    client_state: str
    expires: datetime


class FakeMicrosoft:
    """One Microsoft account (`email`) with its calendar; `login` is https, `graph` is http."""

    def __init__(self, ca: TestCA, email: str = "ada@contoso.example") -> None:
        self.email = email
        self.user_id = str(uuid.uuid4())
        self.lock = threading.RLock()
        self.events: dict[str, Event] = {}
        self.seq = 0
        self.delta_floor = 0
        self.counter = itertools.count(1)
        self.codes: dict[str, dict[str, str]] = {}
        self.refresh_tokens: dict[str, bool] = {}
        self.access_tokens: dict[str, float] = {}
        self.access_ttl_s = 3599
        self.subscriptions: dict[str, Subscription] = {}
        self.max_subscription_minutes = MAX_SUBSCRIPTION_MINUTES
        self.pushes: list[tuple[float, str]] = []
        self.validations: list[tuple[str, str, int, str, str]] = []
        """(url, token, status, content type, body) of every validation request sent."""
        self.login = _Login(self, ca)
        self.graph = _Graph(self)

    def start(self) -> FakeMicrosoft:
        self.login.start()
        self.graph.start()
        return self

    def stop(self) -> None:
        self.login.stop()
        self.graph.stop()

    @property
    def authority(self) -> str:
        return f"{self.login.base}/common"

    @property
    def graph_url(self) -> str:
        return f"{self.graph.base}/v1.0"

    # --- what a test does at "Microsoft" -------------------------------------------------

    def _bump(self, event: Event) -> None:
        self.seq += 1
        event.seq = self.seq

    def add_event(self, subject: str, start: datetime, end: datetime, *, notify: bool = True) -> str:
        with self.lock:
            event = Event("AAMkAG" + secrets.token_urlsafe(12) + str(next(self.counter)), subject, start, end)
            self._bump(event)
            self.events[event.id] = event
        if notify:
            self.notify_all("created", event.id)
        return event.id

    def move(self, event_id: str, start: datetime, end: datetime, *, notify: bool = True) -> None:
        with self.lock:
            event = self.events[event_id]
            event.start, event.end = start, end
            self._bump(event)
        if notify:
            self.notify_all("updated", event_id)

    def delete(self, event_id: str, *, notify: bool = True) -> None:
        with self.lock:
            event = self.events[event_id]
            event.deleted = True
            self._bump(event)
        if notify:
            self.notify_all("deleted", event_id)

    def expire_delta_tokens(self) -> None:
        with self.lock:
            self.delta_floor = self.seq + 1

    def revoke(self) -> None:
        with self.lock:
            for token in self.refresh_tokens:
                self.refresh_tokens[token] = False
            self.access_tokens.clear()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def notify_all(self, change: str, event_id: str) -> None:
        with self.lock:
            subscriptions = list(self.subscriptions.values())
        for subscription in subscriptions:
            resource = f"Users/{self.user_id}/Events/{event_id}"
            item = {
                "subscriptionId": subscription.id,
                "subscriptionExpirationDateTime": _iso_z(subscription.expires),
                "changeType": change,
                "resource": resource,
                "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource,
                                 "@odata.etag": 'W/"1"', "id": event_id},
                "clientState": subscription.client_state,
                "tenantId": TENANT_ID,
            }  # fmt: skip
            self.post(subscription.notification_url, item, subscription.id)

    def lifecycle(self, subscription_id: str, event: str, *, client_state: str | None = None) -> httpx.Response:
        subscription = self.subscriptions[subscription_id]
        item = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": _iso_z(subscription.expires),
            "tenantId": TENANT_ID,
            "clientState": subscription.client_state if client_state is None else client_state,
            "lifecycleEvent": event,
        }
        if event == "subscriptionRemoved":
            with self.lock:
                self.subscriptions.pop(subscription_id, None)
        return self.post(subscription.lifecycle_url, item, subscription.id)

    def post(self, url: str, item: dict[str, Any], subscription_id: str) -> httpx.Response:
        self.pushes.append((time.monotonic(), subscription_id))
        return httpx.post(url, json={"value": [item]}, timeout=10)

    # --- tokens --------------------------------------------------------------------------

    def issue(self, scope: str, nonce: str | None) -> dict[str, Any]:
        access = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(32)
        refresh = "0.AAAA" + secrets.token_urlsafe(40)
        self.access_tokens[access] = time.time() + self.access_ttl_s
        self.refresh_tokens[refresh] = True
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": CLIENT_ID,
            "iss": f"{self.login.base}/{TENANT_ID}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": "Ada Lovelace",
            "oid": self.user_id,
            "preferred_username": self.email,
            "sub": "fake-subject",
            "tid": TENANT_ID,
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        return {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": self.access_ttl_s,
            "ext_expires_in": self.access_ttl_s,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": f"{_b64({'typ': 'JWT', 'alg': 'RS256', 'kid': 'fake'})}.{_b64(claims)}.c2ln",
            "client_info": _b64({"uid": self.user_id, "utid": TENANT_ID}),
        }


class _Login(FakeServer):
    def __init__(self, account: FakeMicrosoft, ca: TestCA) -> None:
        super().__init__(tls=ca.server_context())
        self.account = account

    def route(self, request: Request) -> Answer:
        parts = request.path.strip("/").split("/")
        if len(parts) < 2:
            return Answer(404, {"error": "not_found"})
        tenant, rest = parts[0], "/".join(parts[1:])
        base = f"{self.base}/{tenant}"
        if rest == "v2.0/.well-known/openid-configuration":
            return Answer(200, {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post", "private_key_jwt", "client_secret_basic"
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{self.base}/{{tenantid}}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{self.account.graph_url}/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "name", "tid"],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": None,
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            })  # fmt: skip
        if rest == "oauth2/v2.0/authorize" and request.method == "GET":
            q = request.query
            if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
                return Answer(400, "AADSTS700016: Application not found", content_type="text/html")
            fields = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in q.items()
            )
            page = (
                "<!doctype html><title>Sign in to your account</title><h1>Fake Microsoft</h1>"
                f"<p>roomcast wants to read the calendar of {html.escape(self.account.email)}.</p>"
                f'<form method="get" action="approve">{fields}<button id="accept">Accept</button></form>'
            )
            return Answer(200, page, content_type="text/html; charset=utf-8")
        if rest == "oauth2/v2.0/approve" and request.method == "GET":
            q = request.query
            code = "0.AXoA" + secrets.token_urlsafe(32)
            with self.account.lock:
                self.account.codes[code] = {
                    "redirect_uri": q.get("redirect_uri", ""),
                    "challenge": q.get("code_challenge", ""),
                    "nonce": q.get("nonce", ""),
                    "scope": q.get("scope", ""),
                }
            params = {"code": code, "state": q.get("state", ""), "session_state": str(uuid.uuid4())}
            return Answer(302, None, {"Location": f"{q['redirect_uri']}?{urlencode(params)}"})
        if rest == "oauth2/v2.0/token" and request.method == "POST":
            return self._token(request.form())
        return Answer(404, {"error": "not_found"})

    def _token(self, form: dict[str, str]) -> Answer:
        def refused(code: int, description: str, error: str = "invalid_grant") -> Answer:
            return Answer(400, {"error": error, "error_description": f"AADSTS{code}: {description}",
                                "error_codes": [code], "timestamp": str(datetime.now(UTC)),
                                "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())})  # fmt: skip

        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return refused(7000215, "Invalid client secret provided.", "invalid_client")
        account = self.account
        scope = "Calendars.Read User.Read profile openid email"
        with account.lock:
            if form.get("grant_type") == "authorization_code":
                grant = account.codes.pop(form.get("code", ""), None)
                if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                    return refused(70008, "The provided authorization code or refresh token has expired.")
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if grant["challenge"] and digest != grant["challenge"]:
                    return refused(501481, "The Code_Verifier does not match the code_challenge.")
                return Answer(200, account.issue(scope, grant["nonce"]))
            if form.get("grant_type") == "refresh_token":
                token = form.get("refresh_token", "")
                if not account.refresh_tokens.get(token):
                    return refused(50173, "The provided grant has expired due to it being revoked.")
                account.refresh_tokens[token] = False  # rotated: each refresh token is good once
                return Answer(200, account.issue(scope, None))
        return refused(70003, "The app requested an unsupported grant type.", "unsupported_grant_type")


class _Graph(FakeServer):
    def __init__(self, account: FakeMicrosoft) -> None:
        super().__init__()
        self.account = account

    def route(self, request: Request) -> Answer:
        account = self.account
        if request.path == "/_fake/events":  # not Graph's: for trying roomcast by hand
            if request.method == "POST":
                body = request.json()
                with account.lock:
                    event = account.events[body["id"]]
                    delta = timedelta(minutes=int(body.get("shift_minutes", 60)))
                    start, end = event.start + delta, event.end + delta
                account.move(event.id, start, end)
            with account.lock:
                return Answer(200, [{"id": e.id, "subject": e.subject, "start": e.start.isoformat()}
                                    for e in account.events.values()])  # fmt: skip
        with account.lock:
            expiry = account.access_tokens.get(request.bearer)
        if expiry is None or expiry < time.time():
            return graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        path = request.path.removeprefix("/v1.0")
        if path == "/me" and request.method == "GET":
            return Answer(200, {"id": account.user_id, "displayName": "Ada Lovelace", "mail": account.email,
                                "userPrincipalName": account.email})  # fmt: skip
        if path == "/me/calendarView/delta" and request.method == "GET":
            return self._delta(request)
        if path.startswith("/me/events/") and request.method == "GET":
            with account.lock:
                event = account.events.get(path.removeprefix("/me/events/"))
                if event is None or event.deleted:
                    return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
                return Answer(200, event.resource())
        if path == "/subscriptions" and request.method == "POST":
            return self._subscribe(request.json())
        if path.startswith("/subscriptions/"):
            return self._subscription(request, path.removeprefix("/subscriptions/"))
        return graph_error(400, "BadRequest", f"Resource not found for the segment '{path}'.")

    def _delta(self, request: Request) -> Answer:
        account = self.account
        q = request.query
        page_size = 50
        prefer = request.headers.get("prefer", "")
        if "odata.maxpagesize=" in prefer:
            page_size = int(prefer.split("odata.maxpagesize=")[1].split(",")[0].strip())
        with account.lock:
            if "$skiptoken" in q:
                since, offset, snapshot, low, high = q["$skiptoken"].split("~")
                since_seq, start = int(since), int(offset)
            elif "$deltatoken" in q:
                since_seq, start, snapshot = int(q["$deltatoken"]), 0, str(account.seq)
                if since_seq < account.delta_floor:
                    return graph_error(410, "syncStateNotFound", "The sync state generation is not found.")
                low, high = q.get("startDateTime", ""), q.get("endDateTime", "")
            else:
                if not q.get("startDateTime") or not q.get("endDateTime"):
                    return graph_error(400, "ErrorInvalidParameter", "startDateTime and endDateTime are required.")
                since_seq, start, snapshot = 0, 0, str(account.seq)
                low, high = q["startDateTime"], q["endDateTime"]
            events = [e for e in account.events.values() if e.seq > since_seq and (since_seq or not e.deleted)]
            events.sort(key=lambda e: (e.start, e.id))
            page = events[start : start + page_size]
            body: dict[str, Any] = {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
                "value": [e.resource() for e in page],
            }
            link = f"{account.graph_url}/me/calendarView/delta"
            if start + page_size < len(events):
                body["@odata.nextLink"] = f"{link}?$skiptoken={since_seq}~{start + page_size}~{snapshot}~{low}~{high}"
            else:
                body["@odata.deltaLink"] = f"{link}?$deltatoken={account.seq}"
        return Answer(200, body)

    def _validate(self, url: str) -> bool:
        token = "Validation: Testing client application reachability " + secrets.token_hex(8)
        try:
            response = httpx.post(url, params={"validationToken": token}, content=b"", timeout=10,
                                  headers={"Content-Type": "text/plain; charset=utf-8"})  # fmt: skip
        except httpx.HTTPError:
            self.account.validations.append((url, token, 0, "", ""))
            return False
        content_type = response.headers.get("content-type", "")
        self.account.validations.append((url, token, response.status_code, content_type, response.text))
        return response.status_code == 200 and content_type.startswith("text/plain") and response.text == token

    def _subscribe(self, body: dict[str, Any]) -> Answer:
        account = self.account
        for key in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not body.get(key):
                return graph_error(400, "InvalidRequest", f"'{key}' is required.")
        wanted = datetime.fromisoformat(body["expirationDateTime"].replace("Z", "+00:00")[:26] + "+00:00")
        latest = datetime.now(UTC) + timedelta(minutes=MAX_SUBSCRIPTION_MINUTES)
        if wanted > latest + timedelta(minutes=1):
            return graph_error(400, "ExtensionError", "Subscription expiration can only be 4230 minutes in the future.")
        for url in {body["notificationUrl"], body.get("lifecycleNotificationUrl") or body["notificationUrl"]}:
            if not self._validate(url):
                return graph_error(400, "ValidationError", "Subscription validation request failed. Notification "
                                   "endpoint must respond with 200 OK to validation request.")  # fmt: skip
        expires = min(wanted, datetime.now(UTC) + timedelta(minutes=account.max_subscription_minutes))
        subscription = Subscription(
            id=str(uuid.uuid4()),
            resource=body["resource"],
            change_type=body["changeType"],
            notification_url=body["notificationUrl"],
            lifecycle_url=body.get("lifecycleNotificationUrl") or body["notificationUrl"],
            client_state=body.get("clientState") or "",
            expires=expires,
        )
        with account.lock:
            account.subscriptions[subscription.id] = subscription
        return Answer(201, self._view(subscription))

    def _view(self, s: Subscription) -> dict[str, Any]:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": s.id,
            "resource": s.resource,
            "applicationId": CLIENT_ID,
            "changeType": s.change_type,
            "clientState": s.client_state,
            "notificationUrl": s.notification_url,
            "lifecycleNotificationUrl": s.lifecycle_url,
            "expirationDateTime": _iso_z(s.expires),
            "creatorId": self.account.user_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "notificationUrlAppId": None,
        }

    def _subscription(self, request: Request, subscription_id: str) -> Answer:
        account = self.account
        with account.lock:
            subscription = account.subscriptions.get(subscription_id)
            if subscription is None:
                return graph_error(404, "ResourceNotFound", f"The object '{subscription_id}' doesn't exist.")
            if request.method == "DELETE":
                del account.subscriptions[subscription_id]
                return Answer(204)
            if request.method == "PATCH":
                raw = request.json()["expirationDateTime"]
                wanted = datetime.fromisoformat(raw.replace("Z", "+00:00")[:26] + "+00:00")
                subscription.expires = min(
                    wanted, datetime.now(UTC) + timedelta(minutes=account.max_subscription_minutes)
                )
                return Answer(200, self._view(subscription))
        return graph_error(405, "MethodNotAllowed", "Method not allowed")


def approve(authorization_url: str, ca: TestCA) -> str:
    """What pressing "Accept" on the consent page does: the redirect back to roomcast's callback."""
    parts = urlsplit(authorization_url)
    path = parts.path.rsplit("/", 1)[0] + "/approve"
    verify = ssl.create_default_context(cafile=str(ca.ca_path))
    response = httpx.get(f"{parts.scheme}://{parts.netloc}{path}?{parts.query}", verify=verify)
    assert response.status_code == 302, response.text
    return response.headers["location"]
