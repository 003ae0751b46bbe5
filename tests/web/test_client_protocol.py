"""The shared protocol client (`static/roomcast.js`) against a scripted fake WebSocket, in Chromium.

These pin the client's protocol behaviour without a server: auth first, join with since/epoch,
seq order without duplicates, gap detection, reconnect and recovery, ref-matched replies and
errors, close codes 4401 (refresh once) and 4403 (give up). The end-to-end tests in
test_browser.py then run the same client against real server processes.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page, Route

from server.web.routes import PAGES
from tests.web.conftest import OpenTab, Tab

pytestmark = pytest.mark.browser

ORIGIN = "http://roomcast.test"

FAKE_SOCKET = """
window.sockets = [];
class FakeWebSocket {
  static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
  constructor(url) {
    this.url = url; this.readyState = 0; this.sent = [];
    window.sockets.push(this);
    setTimeout(() => { this.readyState = 1; this.onopen?.({}); }, 0);
  }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code = 1000) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code }), 0);
  }
  /* what the test's "server" does */
  deliver(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  drop(code) { this.readyState = 3; this.onclose?.({ code }); }
  last() { return this.sent[this.sent.length - 1]; }
}
window.WebSocket = FakeWebSocket;
window.until = async (check, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out waiting for " + check);
    await new Promise((r) => setTimeout(r, 5));
  }
};
window.welcome = (ws, id = "u1") => ws.deliver({
  type: "welcome", session_id: "s", user: { id, display_name: "Ann", guest: true },
  protocol: 1, heartbeat_s: 25, unread_notifications: 0,
});
"""


async def serve_static(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN)
    if path.startswith("/static/"):
        file = PAGES / "static" / path.removeprefix("/static/")
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if file.suffix == ".js":
            kind = "text/javascript"
        await route.fulfill(status=200, body=file.read_bytes(), content_type=kind)
    else:
        await route.fulfill(status=200, body="<!doctype html><title>client test</title>", content_type="text/html")


@pytest.fixture
async def client_page(open_tab: OpenTab) -> AsyncIterator[Page]:
    tab: Tab = await open_tab(name="client")
    await tab.page.route(f"{ORIGIN}/**", serve_static)
    await tab.page.add_init_script(FAKE_SOCKET)
    await tab.page.goto(f"{ORIGIN}/")
    yield tab.page
    tab.assert_no_errors()


async def run(page: Page, body: str) -> Any:
    """Run an async JS body with `RoomcastClient` in scope; returns what it returns."""
    return await page.evaluate(
        f"""async () => {{
            const {{ RoomcastClient, ProtocolError }} = await import("/static/roomcast.js");
            {body}
        }}"""
    )


async def test_auth_first_then_join_then_events_in_order_once(client_page: Page) -> None:
    result = await run(
        client_page,
        """
        const log = [];
        const c = new RoomcastClient({ url: "ws://x/ws", token: () => "tok" });
        c.subscribe("meeting:m", {
          snapshot: (s, j) => log.push(["snapshot", s.n, j.seq]),
          event: (e) => log.push(["event", e.seq]),
        });
        c.start();
        await until(() => sockets.length === 1 && sockets[0].sent.length === 1);
        const ws = sockets[0];
        const auth = ws.sent[0];
        welcome(ws);
        await until(() => ws.sent.length === 2);
        const join = ws.sent[1];
        ws.deliver({ type: "joined", ref: join.ref, room: "meeting:m", seq: 5, epoch: "e1", recovered: false,
                     snapshot: { n: 1 } });
        for (const seq of [6, 6, 5, 7]) ws.deliver({ type: "x", room: "meeting:m", seq });
        ws.deliver({ type: "x", room: "meeting:other", seq: 8 });  // not followed: ignored
        return { auth, join, log, state: c.state, user: c.user };
        """,
    )
    assert result["auth"] == {"type": "auth", "token": "tok"}
    assert result["join"]["type"] == "join" and result["join"]["room"] == "meeting:m" and result["join"]["ref"]
    assert "since" not in result["join"] and "epoch" not in result["join"]
    assert result["log"] == [["snapshot", 1, 5], ["event", 6], ["event", 7]]
    assert result["state"] == "open" and result["user"]["id"] == "u1"


async def test_a_gap_rejoins_with_since_and_the_replay_fills_it(client_page: Page) -> None:
    result = await run(
        client_page,
        """
        const log = [];
        const c = new RoomcastClient({ url: "ws://x/ws", token: () => "tok" });
        c.subscribe("meeting:m", { snapshot: () => log.push("snapshot"), event: (e) => log.push(e.seq) });
        c.start();
        await until(() => sockets[0]?.sent.length === 1);
        const ws = sockets[0];
        welcome(ws);
        await until(() => ws.sent.length === 2);
        ws.deliver({ type: "joined", ref: ws.last().ref, room: "meeting:m", seq: 7, epoch: "e1", recovered: false,
                     snapshot: {} });
        ws.deliver({ type: "x", room: "meeting:m", seq: 9 });  // 8 is missing
        await until(() => ws.sent.length === 3);
        const rejoin = ws.last();
        ws.deliver({ type: "x", room: "meeting:m", seq: 10 });  // while the join is in flight: dropped
        ws.deliver({ type: "joined", ref: rejoin.ref, room: "meeting:m", seq: 10, epoch: "e1", recovered: true });
        for (const seq of [8, 9, 10, 11]) ws.deliver({ type: "x", room: "meeting:m", seq });
        return { rejoin, log };
        """,
    )
    assert result["rejoin"]["since"] == 7 and result["rejoin"]["epoch"] == "e1"
    assert result["log"] == ["snapshot", 8, 9, 10, 11]


async def test_reconnect_recovers_with_since_or_takes_a_fresh_snapshot(client_page: Page) -> None:
    result = await run(
        client_page,
        """
        const log = [], states = [];
        const c = new RoomcastClient({ url: "ws://x/ws", token: () => "tok", initialBackoffMs: 20 });
        c.addEventListener("state", (e) => states.push(e.detail.state));
        c.subscribe("meeting:m", { snapshot: (s) => log.push("snapshot " + s.n), event: (e) => log.push(e.seq) });
        c.start();
        await until(() => sockets[0]?.sent.length === 1);
        let ws = sockets[0];
        welcome(ws);
        await until(() => ws.sent.length === 2);
        ws.deliver({ type: "joined", ref: ws.last().ref, room: "meeting:m", seq: 3, epoch: "e1", recovered: false,
                     snapshot: { n: 1 } });
        ws.deliver({ type: "x", room: "meeting:m", seq: 4 });
        const inFlight = c.request({ type: "ask", room: "meeting:m", text: "?" }).catch((e) => e.code);
        await until(() => ws.sent.length === 3);
        ws.drop(1006);  // the network drops
        const pendingCode = await inFlight;

        // 1st reconnect: the server still has the history
        await until(() => sockets.length === 2 && sockets[1].sent.length === 1);
        ws = sockets[1];
        welcome(ws);
        await until(() => ws.sent.length === 2);
        const recoverJoin = ws.last();
        ws.deliver({ type: "joined", ref: recoverJoin.ref, room: "meeting:m", seq: 6, epoch: "e1", recovered: true });
        for (const seq of [4, 5, 6]) ws.deliver({ type: "x", room: "meeting:m", seq });

        // 2nd reconnect (server restarting): history is gone, a fresh snapshot comes instead
        ws.drop(1012);
        await until(() => sockets.length === 3 && sockets[2].sent.length === 1);
        ws = sockets[2];
        welcome(ws);
        await until(() => ws.sent.length === 2);
        const freshJoin = ws.last();
        ws.deliver({ type: "joined", ref: freshJoin.ref, room: "meeting:m", seq: 40, epoch: "e2", recovered: false,
                     snapshot: { n: 2 } });
        ws.deliver({ type: "x", room: "meeting:m", seq: 41 });
        return { log, states, pendingCode, recoverJoin, freshJoin, auth: sockets[2].sent[0] };
        """,
    )
    assert result["pendingCode"] == "unavailable"
    assert result["recoverJoin"]["since"] == 4 and result["recoverJoin"]["epoch"] == "e1"
    assert result["freshJoin"]["since"] == 6 and result["freshJoin"]["epoch"] == "e1"
    assert result["log"] == ["snapshot 1", 4, 5, 6, "snapshot 2", 41]
    assert result["auth"] == {"type": "auth", "token": "tok"}
    assert result["states"][:3] == ["connecting", "open", "reconnecting"] and result["states"][-1] == "open"


async def test_replies_and_errors_are_matched_by_ref(client_page: Page) -> None:
    result = await run(
        client_page,
        """
        const c = new RoomcastClient({ url: "ws://x/ws", token: () => "tok" });
        c.start();
        await until(() => sockets[0]?.sent.length === 1);
        const ws = sockets[0];
        welcome(ws);
        await until(() => c.state === "open");
        const first = c.request({ type: "vote", room: "meeting:m", question_id: "q", up: true });
        const second = c.request({ type: "ask", room: "meeting:m", text: "?" });
        const [a, b] = ws.sent.slice(1);
        ws.deliver({ type: "error", ref: b.ref, code: "rate_limited", message: "slow down", retry_after_s: 7 });
        ws.deliver({ type: "reply", ref: a.ref, data: { question_id: "q", votes: 3 } });
        const err = await second.catch((e) => e);
        return { a, b, reply: await first, error: { name: err.name, code: err.code, retry: err.retryAfterS,
                 message: err.message, isProtocolError: err instanceof ProtocolError } };
        """,
    )
    assert result["a"]["ref"] != result["b"]["ref"]
    assert result["reply"] == {"question_id": "q", "votes": 3}
    assert result["error"] == {
        "name": "ProtocolError",
        "code": "rate_limited",
        "retry": 7,
        "message": "slow down",
        "isProtocolError": True,
    }


async def test_an_unsolicited_joined_replaces_the_state(client_page: Page) -> None:
    result = await run(
        client_page,
        """
        const log = [];
        const c = new RoomcastClient({ url: "ws://x/ws", token: () => "tok" });
        c.subscribe("meeting:m", { snapshot: (s) => log.push("snapshot " + s.n), event: (e) => log.push(e.seq) });
        c.start();
        await until(() => sockets[0]?.sent.length === 1);
        const ws = sockets[0];
        welcome(ws);
        await until(() => ws.sent.length === 2);
        ws.deliver({ type: "joined", ref: ws.last().ref, room: "meeting:m", seq: 1, epoch: "e1", recovered: false,
                     snapshot: { n: 1 } });
        ws.deliver({ type: "x", room: "meeting:m", seq: 2 });
        ws.deliver({ type: "joined", room: "meeting:m", seq: 9, epoch: "e2", recovered: false, snapshot: { n: 2 } });
        ws.deliver({ type: "x", room: "meeting:m", seq: 10 });
        return log;
        """,
    )
    assert result == ["snapshot 1", 2, "snapshot 2", 10]


async def test_4401_refreshes_once_and_4403_gives_up(client_page: Page) -> None:
    result = await run(
        client_page,
        """
        let token = "old", refreshes = 0;
        const stopped = [];
        const c = new RoomcastClient({
          url: "ws://x/ws", token: () => token,
          refresh: async () => { refreshes += 1; token = "new"; return true; },
        });
        c.addEventListener("stopped", (e) => stopped.push(e.detail.reason));
        c.start();
        await until(() => sockets[0]?.sent.length === 1);
        sockets[0].drop(4401);  // the access token expired
        await until(() => sockets.length === 2 && sockets[1].sent.length === 1);
        const retried = sockets[1].sent[0];
        welcome(sockets[1]);
        await until(() => c.state === "open");
        sockets[1].drop(4403);  // removed from the meeting
        await new Promise((r) => setTimeout(r, 300));
        const afterRemoved = { sockets: sockets.length, state: c.state };

        // A refresh that fails ends it too.
        const d = new RoomcastClient({ url: "ws://x/ws", token: () => "t", refresh: async () => false });
        d.addEventListener("stopped", (e) => stopped.push(e.detail.reason));
        d.start();
        await until(() => sockets.length === 3 && sockets[2].sent.length === 1);
        sockets[2].drop(4401);
        await until(() => d.state === "stopped");
        await new Promise((r) => setTimeout(r, 200));
        return { retried, refreshes, afterRemoved, stopped, total: sockets.length };
        """,
    )
    assert result["retried"] == {"type": "auth", "token": "new"}
    assert result["refreshes"] == 1
    assert result["afterRemoved"] == {"sockets": 2, "state": "stopped"}
    assert result["stopped"] == ["removed", "unauthorized"]
    assert result["total"] == 3


async def test_the_personal_room_and_url_rotation(client_page: Page) -> None:
    """A room subscribed after `welcome` joins at once; several URLs are tried in turn after failures."""
    result = await run(
        client_page,
        """
        const log = [];
        const c = new RoomcastClient({ url: ["ws://a/ws", "ws://b/ws"], token: () => "tok", initialBackoffMs: 10 });
        c.addEventListener("welcome", (e) => {
          c.subscribe("user:" + e.detail.welcome.user.id, { event: (ev) => log.push(ev.seq) });
        });
        c.start();
        await until(() => sockets[0]?.sent.length === 1);
        sockets[0].drop(1006);  // a never welcomed us: try b
        await until(() => sockets.length === 2 && sockets[1].sent.length === 1);
        const ws = sockets[1];
        welcome(ws, "u9");
        await until(() => ws.sent.length === 2);
        const join = ws.last();
        ws.deliver({ type: "joined", ref: join.ref, room: "user:u9", seq: 0, epoch: "p1", recovered: false });
        ws.deliver({ type: "notification", room: "user:u9", seq: 1 });
        return { urls: sockets.map((s) => s.url), join, log, joins: ws.sent.filter((f) => f.type === "join").length };
        """,
    )
    assert result["urls"] == ["ws://a/ws", "ws://b/ws"]
    assert result["join"]["room"] == "user:u9"
    assert result["joins"] == 1
    assert result["log"] == [1]
