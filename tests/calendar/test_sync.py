"""Sync end to end: a real server, a real SAQ worker, real sockets, the fakes pushing webhooks.

An event moved at the provider reaches the meeting room (`meeting.updated`) and the owner's
`user:` room (`calendar.updated`, a `meeting.changed` notification) within a second of the
provider's webhook; an expired cursor is a full resync that diffs out deletions and repeats
nothing; revoked consent stops the connection once; webhooks coalesce into one sync at a time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.calendar.conftest import CalendarApp
from tests.fakes.google import in_hours
from tests.helpers import API, assert_error, auth_header
from tests.support import eventually
from tests.wsclient import Frame, connect

LIST_PATH = "/calendar/v3/calendars/primary/events"
DELTA_PATH = "/v1.0/me/calendarView/delta"


def iso(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def same_time(wire: str | None, expected: Any) -> bool:
    return wire is not None and wire.replace(".000000", "").replace("+00:00", "Z").startswith(iso(expected)[:-1])


def add(app: CalendarApp, provider: str, title: str, start: Any, end: Any) -> str:
    fake = app.google if provider == "google" else app.microsoft
    return fake.add_event(title, start, end, notify=False)


def move(app: CalendarApp, provider: str, event_id: str, start: Any, end: Any) -> float:
    """Move the event at the provider, which then posts its webhook(s); returns when the first was sent."""
    fake = app.google if provider == "google" else app.microsoft
    before = len(fake.pushes)
    fake.move(event_id, start, end)
    return fake.pushes[before][0]


def of_type(kind: str, room: str | None = None) -> Callable[[Frame], bool]:
    return lambda f: f["type"] == kind and (room is None or f.get("room") == room)


@pytest.mark.parametrize("provider", ["google", "outlook"])
async def test_a_moved_event_moves_its_meeting_live(calendar_app: CalendarApp, provider: str) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    start, end = in_hours(30), in_hours(31)
    event_id = add(app, provider, "Quarterly review", start, end)
    connection = await app.connect(owner, provider)
    meeting = await app.meeting_from(owner, connection["id"], event_id)
    assert meeting["title"] == "Quarterly review"
    assert same_time(meeting["starts_at"], start) and same_time(meeting["ends_at"], end)
    assert meeting["source"] == {"provider": provider, "calendar_event_id": event_id, "connection_id": connection["id"]}

    async with connect(app.server.ws_url, owner.token) as ws:
        await ws.join(f"meeting:{meeting['id']}")
        new_start, new_end = in_hours(32), in_hours(33, 30)
        pushed = await asyncio.to_thread(move, app, provider, event_id, new_start, new_end)
        updated = await ws.wait_for(of_type("meeting.updated", f"meeting:{meeting['id']}"), timeout=5)
        arrived = time.monotonic()
        assert same_time(updated["meeting"]["starts_at"], new_start)
        assert same_time(updated["meeting"]["ends_at"], new_end)
        calendar = await ws.wait_for(of_type("calendar.updated", f"user:{owner.id}"), timeout=5)
        notification = await ws.wait_for(of_type("notification", f"user:{owner.id}"), timeout=5)
        assert arrived - pushed < 1.0, f"{arrived - pushed:.3f} s from webhook to meeting room"
        assert calendar["connection_id"] == connection["id"]
        [change] = calendar["changes"]
        assert change["calendar_event_id"] == event_id and change["change"] == "moved"
        assert change["meeting_ids"] == [meeting["id"]] and same_time(change["starts_at"], new_start)
        assert notification["notification"]["kind"] == "meeting.changed"
        assert notification["notification"]["data"]["meeting_id"] == meeting["id"]

        # deleted at the provider: the meeting is cancelled, the owner told
        fake = app.google if provider == "google" else app.microsoft
        await asyncio.to_thread(fake.delete, event_id)
        cancelled = await ws.wait_for(of_type("meeting.updated", f"meeting:{meeting['id']}"), timeout=5)
        assert cancelled["meeting"]["status"] == "cancelled"
        calendar = await ws.wait_for(of_type("calendar.updated", f"user:{owner.id}"), timeout=5)
        assert [c["change"] for c in calendar["changes"]] == ["cancelled"]
        await ws.wait_for(of_type("notification", f"user:{owner.id}"), timeout=5)

        # an unrelated change elsewhere in the calendar moves nothing and says only that
        await asyncio.to_thread(fake.add_event, "Lunch", in_hours(40), in_hours(41))
        calendar = await ws.wait_for(of_type("calendar.updated", f"user:{owner.id}"), timeout=5)
        assert [c["change"] for c in calendar["changes"]] == ["created"]
        await asyncio.sleep(0.5)
        assert len(ws.events(f"meeting:{meeting['id']}", "meeting.updated")) == 2
        assert len([f for f in ws.frames if f["type"] == "notification"]) == 2


async def test_expired_sync_token_is_a_full_resync_that_diffs_deletions(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    kept = add(app, "google", "Kept", in_hours(20), in_hours(21))
    gone = add(app, "google", "Gone", in_hours(22), in_hours(23))
    add(app, "google", "Other", in_hours(24), in_hours(25))
    connection = await app.connect(owner, "google")
    kept_meeting = await app.meeting_from(owner, connection["id"], kept)
    gone_meeting = await app.meeting_from(owner, connection["id"], gone)
    app.google.page_size_cap = 1  # every page followed to the end
    async with connect(app.server.ws_url, owner.token) as ws:
        for meeting in (kept_meeting, gone_meeting):
            await ws.join(f"meeting:{meeting['id']}")
        app.google.forget(gone)  # deleted with no record an incremental sync could see
        app.google.expire_sync_tokens()
        before = app.google.count(LIST_PATH)
        await asyncio.to_thread(app.google.push_all)
        calendar = await ws.wait_for(of_type("calendar.updated"), timeout=10)
        assert [(c["calendar_event_id"], c["change"]) for c in calendar["changes"]] == [(gone, "cancelled")]
        cancelled = await ws.wait_for(of_type("meeting.updated", f"meeting:{gone_meeting['id']}"), timeout=5)
        assert cancelled["meeting"]["status"] == "cancelled"
        statuses = [c.query for c in app.google.calls[before:] if c.path == LIST_PATH]
        assert "syncToken" in statuses[0] and "syncToken" not in statuses[1] and "timeMin" in statuses[1]
        assert len(statuses) >= 3  # 410, then a full listing of two one-event pages

        # the next webhook finds nothing new: nothing is sent again
        await asyncio.to_thread(app.google.push_all)
        await eventually(lambda: app.google.count(LIST_PATH) > len(statuses) + before, timeout=5)
        await asyncio.sleep(1.0)
    assert len([f for f in ws.frames if f["type"] == "calendar.updated"]) == 1
    assert ws.events(f"meeting:{kept_meeting['id']}", "meeting.updated") == []
    assert len([f for f in ws.frames if f["type"] == "notification"]) == 1


async def test_expired_delta_link_is_a_full_resync(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    event_id = add(app, "outlook", "Standup", in_hours(20), in_hours(21))
    connection = await app.connect(owner, "outlook")
    await app.meeting_from(owner, connection["id"], event_id)
    async with connect(app.server.ws_url, owner.token) as ws:
        app.microsoft.expire_delta_tokens()
        before = app.microsoft.graph.count(DELTA_PATH)
        new_start = in_hours(25)
        await asyncio.to_thread(app.microsoft.move, event_id, new_start, in_hours(26))
        calendar = await ws.wait_for(of_type("calendar.updated"), timeout=10)
        assert [c["change"] for c in calendar["changes"]] == ["moved"]
        queries = [c.query for c in app.microsoft.graph.calls if c.path == DELTA_PATH][before:]
        assert "$deltatoken" in queries[0] and "startDateTime" in queries[1]


async def test_revoked_consent_marks_the_connection_and_notifies_once(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    connection = await app.connect(owner, "google")
    async with connect(app.server.ws_url, owner.token) as ws:
        app.google.revoke()
        await asyncio.to_thread(app.google.push_all)
        notification = await ws.wait_for(of_type("notification"), timeout=10)
        assert notification["notification"]["kind"] == "calendar.sync_failed"
        assert notification["notification"]["data"]["connection_id"] == connection["id"]
        [listed] = await app.connections(owner)
        assert listed["status"] == "error" and "connect again" in listed["error"]
        token_calls = app.google.count("/token")
        for _ in range(3):
            await asyncio.to_thread(app.google.push_all)
        await asyncio.sleep(1.5)
        assert app.google.count("/token") == token_calls, "retried after invalid_grant"
    assert len([f for f in ws.frames if f["type"] == "notification"]) == 1
    response = await app.http.post(
        f"{API}/calendar/connections/{connection['id']}/sync", headers=auth_header(owner.token)
    )
    assert_error(response, 409, "conflict")


async def test_webhooks_coalesce_into_one_sync_at_a_time(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    await app.connect(owner, "google")
    app.google.slow(LIST_PATH, 1.0)
    before = app.google.count(LIST_PATH)
    # a burst of webhooks at once
    await asyncio.gather(*(asyncio.to_thread(app.google.push_all) for _ in range(5)))
    await eventually(lambda: app.google.in_flight[LIST_PATH] == 1, timeout=5)
    # more during the running sync: exactly one more sync
    await asyncio.gather(*(asyncio.to_thread(app.google.push_all) for _ in range(3)))
    await eventually(lambda: app.google.count(LIST_PATH) - before >= 2, timeout=10)
    await asyncio.sleep(3)
    assert app.google.max_in_flight[LIST_PATH] == 1
    assert app.google.count(LIST_PATH) - before == 2


async def test_rate_limits_wait_for_retry_after_and_401_refreshes(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    event_id = add(app, "google", "Review", in_hours(20), in_hours(21))
    connection = await app.connect(owner, "google")
    await app.meeting_from(owner, connection["id"], event_id)
    app.google.fail(LIST_PATH, 429, {"error": {"code": 429, "message": "Rate Limit Exceeded"}},
                    headers={"Retry-After": "1"})  # fmt: skip
    rate_limited = {"error": {"code": 403, "message": "Rate Limit Exceeded", "errors": [
        {"domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"}]}}  # fmt: skip
    app.google.fail(LIST_PATH, 403, rate_limited, headers={"Retry-After": "1"})
    app.google.expire_access_tokens()
    refreshes = app.google.count("/token")
    async with connect(app.server.ws_url, owner.token) as ws:
        pushed = await asyncio.to_thread(move, app, "google", event_id, in_hours(22), in_hours(23))
        await ws.wait_for(of_type("calendar.updated"), timeout=15)
        waited = time.monotonic() - pushed
    assert waited >= 2.0, f"Retry-After not honoured ({waited:.2f} s)"
    assert app.google.count("/token") > refreshes  # the 401 made it refresh


async def test_webhook_checks(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    await app.connect(owner, "google")
    channel = next(iter(app.google.channels.values()))
    url = f"{API}/calendar/webhooks/google"
    headers = {"X-Goog-Channel-ID": channel.id, "X-Goog-Resource-State": "exists", "X-Goog-Resource-ID": "r"}
    before = app.google.count(LIST_PATH)
    for wrong, status in (
        ({**headers, "X-Goog-Channel-Token": "forged"}, 401),
        ({**headers, "X-Goog-Channel-Token": ""}, 401),
        ({**headers, "X-Goog-Channel-ID": str(uuid.uuid4()) + "-abc", "X-Goog-Channel-Token": channel.token}, 401),
        ({"X-Goog-Channel-ID": "nope", "X-Goog-Channel-Token": channel.token}, 404),
    ):
        response = await app.http.post(url, headers=wrong)
        assert response.status_code == status, response.text
    response = await app.http.post(url, headers={**headers, "X-Goog-Resource-State": "sync",
                                                  "X-Goog-Channel-Token": channel.token})  # fmt: skip
    assert response.status_code == 200
    await asyncio.sleep(1.0)
    assert app.google.count(LIST_PATH) == before, "a refused or `sync` webhook enqueued a sync"

    # fast: median of 20 genuine webhooks under 100 ms
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        response = await app.http.post(url, headers={**headers, "X-Goog-Channel-Token": channel.token})
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    assert statistics.median(timings) < 0.1, timings


async def test_outlook_webhooks_and_lifecycle(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    await app.connect(owner, "outlook")
    # Graph validated both addresses when the subscription was made: exact echo, text/plain
    assert app.microsoft.validations
    for _url, token, status, content_type, body in app.microsoft.validations:
        assert status == 200 and content_type.startswith("text/plain") and body == token
    url = f"{API}/calendar/webhooks/outlook"
    echo = await app.http.post(url, params={"validationToken": "a <b> & c"})
    assert echo.status_code == 200 and echo.text == "a <b> & c"
    assert echo.headers["content-type"].startswith("text/plain")

    [subscription] = app.microsoft.subscriptions.values()
    before = app.microsoft.graph.count(DELTA_PATH)
    item = {"subscriptionId": subscription.id, "clientState": "forged", "changeType": "updated",
            "resource": "Users/x/Events/y"}  # fmt: skip
    assert (await app.http.post(url, json={"value": [item]})).status_code == 401
    item_unknown = {**item, "subscriptionId": str(uuid.uuid4()), "clientState": subscription.client_state}
    assert (await app.http.post(url, json={"value": [item_unknown]})).status_code == 404
    assert (await app.http.post(url, content=b"[[[[")).status_code == 400
    await asyncio.sleep(1.0)
    assert app.microsoft.graph.count(DELTA_PATH) == before

    # reauthorizationRequired: the subscription is renewed (PATCH); missed: a sync
    patches = app.microsoft.graph.count(f"/v1.0/subscriptions/{subscription.id}", "PATCH")
    response = await asyncio.to_thread(app.microsoft.lifecycle, subscription.id, "reauthorizationRequired")
    assert response.status_code == 202
    await eventually(
        lambda: app.microsoft.graph.count(f"/v1.0/subscriptions/{subscription.id}", "PATCH") > patches, timeout=10
    )
    response = await asyncio.to_thread(app.microsoft.lifecycle, subscription.id, "missed")
    assert response.status_code == 202
    await eventually(lambda: app.microsoft.graph.count(DELTA_PATH) > before, timeout=10)
    # subscriptionRemoved: a new subscription is made
    response = await asyncio.to_thread(app.microsoft.lifecycle, subscription.id, "subscriptionRemoved")
    assert response.status_code == 202
    await eventually(lambda: len(app.microsoft.subscriptions) == 1, timeout=10)
    assert subscription.id not in app.microsoft.subscriptions


async def test_disconnect_stops_the_channel_and_deletes_the_tokens(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    google = await app.connect(owner, "google")
    outlook = await app.connect(owner, "outlook")
    assert len(app.google.channels) == 1 and len(app.microsoft.subscriptions) == 1
    for connection in (google, outlook):
        response = await app.http.delete(
            f"{API}/calendar/connections/{connection['id']}", headers=auth_header(owner.token)
        )
        assert response.status_code == 204
    assert app.google.channels == {} and app.microsoft.subscriptions == {}
    assert await app.sql("SELECT id FROM calendar_connections") == []
    assert await app.connections(owner) == []


async def test_upcoming_events_and_manual_sync(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    later = add(app, "google", "Later", in_hours(48), in_hours(49))
    sooner = add(app, "google", "Sooner", in_hours(2), in_hours(3))
    add(app, "google", "Past", in_hours(-5), in_hours(-4))
    connection = await app.connect(owner, "google")
    meeting = await app.meeting_from(owner, connection["id"], later, title="My own title")
    assert meeting["title"] == "My own title"
    response = await app.http.get(
        f"{API}/calendar/connections/{connection['id']}/events", headers=auth_header(owner.token)
    )
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["calendar_event_id"] for i in items] == [sooner, later]
    assert items[1]["meeting_ids"] == [meeting["id"]] and items[0]["meeting_ids"] == []
    before = app.google.count(LIST_PATH)
    response = await app.http.post(
        f"{API}/calendar/connections/{connection['id']}/sync", headers=auth_header(owner.token)
    )
    assert response.status_code == 202 and response.json()["id"] == connection["id"]
    await eventually(lambda: app.google.count(LIST_PATH) > before, timeout=10)


async def test_meetings_from_events_refuse_unknown_and_foreign(calendar_app: CalendarApp) -> None:
    app = calendar_app
    owner = await app.world.user("Olive")
    stranger = await app.world.user("Eve")
    event_id = add(app, "google", "Board", in_hours(20), in_hours(21))
    connection = await app.connect(owner, "google")
    cases = [
        (owner, {"connection_id": connection["id"], "calendar_event_id": "no-such-event"}),
        (stranger, {"connection_id": connection["id"], "calendar_event_id": event_id}),
        (owner, {"connection_id": str(uuid.uuid4()), "calendar_event_id": event_id}),
        (owner, {"connection_id": "not-a-uuid", "calendar_event_id": event_id}),
    ]
    for person, source in cases:
        response = await app.http.post(f"{API}/meetings", json={"source": source}, headers=auth_header(person.token))
        assert_error(response, 404, "not_found")
    response = await app.http.post(
        f"{API}/meetings", json={"source": {"connection_id": connection["id"]}}, headers=auth_header(owner.token)
    )
    assert_error(response, 422, "validation_error")
    response = await app.http.post(f"{API}/meetings", json={}, headers=auth_header(owner.token))
    assert_error(response, 422, "validation_error")
    assert await app.sql("SELECT id FROM meetings") == []


async def test_channels_and_subscriptions_are_renewed_before_they_expire(calendar_app: CalendarApp) -> None:
    app = calendar_app
    app.google.channel_ttl_s = 24  # the fakes hand out short lives; the scan renews at half of the returned one
    app.microsoft.max_subscription_minutes = 0.4
    owner = await app.world.user("Olive")
    await app.connect(owner, "google")
    await app.connect(owner, "outlook")
    [first_channel] = app.google.channels.values()
    [subscription] = app.microsoft.subscriptions.values()
    first_expiry = subscription.expires
    patch_path = f"/v1.0/subscriptions/{subscription.id}"

    def renewed() -> bool:
        channels = list(app.google.channels.values())
        google_done = len(channels) == 1 and channels[0].id != first_channel.id
        return google_done and app.microsoft.graph.count(patch_path, "PATCH") >= 1

    await eventually(renewed, timeout=40, interval=0.5)
    assert first_channel.id not in app.google.channels, "the old Google channel was not stopped"
    assert app.microsoft.subscriptions[subscription.id].expires > first_expiry
    assert time.time() * 1000 < first_channel.expiration_ms, "renewed only after the channel expired"
    rows = await app.sql("SELECT provider, channel_id, channel_expires_at FROM calendar_connections ORDER BY provider")
    assert rows[0]["channel_id"] == next(iter(app.google.channels))
    assert rows[1]["channel_id"] == subscription.id
