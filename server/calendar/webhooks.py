"""Push notifications from the providers: checked, then turned into (coalesced) sync jobs.

Both endpoints answer fast (one indexed read and one Redis round trip) and never trust a body
beyond enqueuing: what changed is always read from the provider by the sync job itself.
- Google sends no body; the headers name the channel (`X-Goog-Channel-ID`), carry the token we
  gave it (`X-Goog-Channel-Token`, an HMAC of the channel id under the server's secret) and say
  what happened (`X-Goog-Resource-State`: `sync` when a channel opens, then `exists`/`not_exists`).
- Graph first validates the address (`?validationToken=...`, echoed as text/plain), then posts
  `{"value": [...]}` notifications with `subscriptionId` and the `clientState` we gave it, and
  lifecycle notifications (`reauthorizationRequired`, `missed`, `subscriptionRemoved`).
Unknown channel or subscription: 404; wrong token or clientState: 401; nothing is enqueued.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from server.calendar.crypto import webhook_secret
from server.calendar.service import Calendar
from server.calendar.sync import connection_of_channel
from server.calendar.tables import CalendarConnection
from server.errors import ApiError, not_found, unauthorized

log = logging.getLogger("roomcast.calendar.webhooks")

MAX_NOTIFICATIONS = 100
"""Graph batches notifications; more than this in one post is not something it sends."""


async def google(calendar: Calendar, headers: dict[str, str]) -> None:
    calendar.provider("google")
    channel_id = headers.get("x-goog-channel-id", "")
    token = headers.get("x-goog-channel-token", "")
    connection_id = connection_of_channel(channel_id) if 36 < len(channel_id) <= 200 else None
    if connection_id is None:
        raise not_found("unknown channel")
    expected = webhook_secret(calendar.services.settings, "google", channel_id)
    if not hmac.compare_digest(token.encode(), expected.encode()):
        log.warning("calendar.webhook_refused", extra={"provider": "google", "channel_id": channel_id[:80]})
        raise unauthorized("wrong channel token")
    row = await calendar.load(connection_id)
    if row is None or row["provider"] != "google":
        raise not_found("unknown channel")
    state = headers.get("x-goog-resource-state", "")
    if state == "sync" or row["revoked"]:  # `sync` only announces a new channel
        return
    queued = await calendar.request_sync(connection_id)
    log.info("calendar.webhook", extra={"provider": "google", "connection_id": str(connection_id), "queued": queued})


async def outlook(calendar: Calendar, body: Any) -> None:
    calendar.provider("outlook")
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or len(items) > MAX_NOTIFICATIONS:
        raise ApiError(400, "expected a Graph notification collection")
    accepted = refused = 0
    for item in items:
        if not isinstance(item, dict):
            continue
        subscription_id = item.get("subscriptionId")
        client_state = item.get("clientState")
        if not isinstance(subscription_id, str) or not 0 < len(subscription_id) <= 200:
            continue
        row = (
            await CalendarConnection.select(CalendarConnection.id, CalendarConnection.revoked)
            .where((CalendarConnection.channel_id == subscription_id) & (CalendarConnection.provider == "outlook"))
            .first()
        )
        if row is None:
            continue
        expected = webhook_secret(calendar.services.settings, "outlook", str(row["id"]))
        if not isinstance(client_state, str) or not hmac.compare_digest(client_state.encode(), expected.encode()):
            refused += 1
            continue
        accepted += 1
        if row["revoked"]:
            continue
        lifecycle = item.get("lifecycleEvent")
        if lifecycle == "reauthorizationRequired":
            await calendar.request_renewal(row["id"])
        elif lifecycle == "subscriptionRemoved":
            await CalendarConnection.update(
                {
                    CalendarConnection.channel_id: None,
                    CalendarConnection.channel_resource_id: None,
                    CalendarConnection.channel_expires_at: None,
                    CalendarConnection.channel_created_at: None,
                }
            ).where((CalendarConnection.id == row["id"]) & (CalendarConnection.channel_id == subscription_id))
            await calendar.request_sync(row["id"])  # the sync opens a new subscription
        else:  # a change, or `missed` (changes were dropped): sync either way
            await calendar.request_sync(row["id"])
        log.info(
            "calendar.webhook",
            extra={"provider": "outlook", "connection_id": str(row["id"]), "lifecycle": lifecycle or "-"},
        )
    if accepted:
        return
    if refused:
        log.warning("calendar.webhook_refused", extra={"provider": "outlook", "refused": refused})
        raise unauthorized("wrong clientState")
    raise not_found("unknown subscription")
