/**
 * roomcast protocol client: the reference client for the public WebSocket protocol (SPEC section 4).
 *
 * Both web pages use it, and an integrator can copy it as is (no dependencies, no build step):
 *
 *   import { RoomcastClient } from "/static/roomcast.js";
 *
 *   const client = new RoomcastClient({ url: "wss://example.org/ws", token: () => myToken });
 *   client.subscribe("meeting:" + meetingId, {
 *     snapshot(snapshot, joined) { ... },  // a fresh state: replace everything you know about the room
 *     event(event) { ... },                // one room event, in seq order, never twice
 *   });
 *   client.addEventListener("state", (e) => console.log(e.detail.state));
 *   client.start();
 *   const { question } = await client.request({ type: "ask", room: "meeting:" + meetingId, text: "Hi?" });
 *
 * What it does for you:
 * - connects, sends the `auth` frame first, waits for `welcome`;
 * - joins every subscribed room, and after a reconnect joins again with `since` and `epoch`, so
 *   the server replays what was missed (`recovered: true`) or sends a fresh snapshot;
 * - delivers each room's events in `seq` order exactly once: an event it has seen is dropped, a
 *   gap (a missed seq) makes it join that room again with `since`; an unsolicited `joined`
 *   (the server may have missed events) replaces the room's state with its snapshot;
 * - matches answers to requests by `ref` (`reply` resolves, `error` rejects with a
 *   `ProtocolError` carrying `code` and `retryAfterS`);
 * - reconnects with exponential backoff and jitter after a drop, immediately (after a token
 *   refresh) after close code 4401 when a `refresh` callback is given, and never after 4403;
 * - sends `{"type": "ping"}` when the line has been quiet for a heartbeat, and reconnects when
 *   even that gets no answer (browsers cannot see WebSocket pings).
 *
 * Frames are JSON text frames (no subprotocol). Nothing here is specific to the web pages.
 */

/**
 * Close codes of SPEC section 4: the mirror of `channels.protocol.CloseCode` (a test compares
 * them), plus NORMAL for the client's own close. Every code but REMOVED means "reconnect"
 * (UNAUTHENTICATED only with a fresh token); `RECONNECT` says so per code.
 */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  INVALID_DATA: 1007,
  TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  RESTARTING: 1012,
  TRY_AGAIN_LATER: 1013,
  TOO_SLOW: 4008,
  UNAUTHENTICATED: 4401,
  REMOVED: 4403,
  AUTH_TIMEOUT: 4408,
  FLOODING: 4429,
});

/** Whether a client should reconnect after each close code (`channels.protocol.Close.reconnect`). */
export const RECONNECT = Object.freeze({
  1007: true,
  1009: true,
  1011: true,
  1012: true,
  1013: true,
  4008: true,
  4401: true,
  4403: false,
  4408: true,
  4429: true,
});

/** An `error` frame (or a request that could not be answered: `unavailable`, `timeout`). */
export class ProtocolError extends Error {
  constructor(code, message, { retryAfterS = null, ref = null } = {}) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
    this.retryAfterS = retryAfterS;
    this.ref = ref;
  }
}

/** A random id that works outside secure contexts too (crypto.randomUUID needs https or localhost). */
export function randomId() {
  if (globalThis.crypto?.randomUUID) {
    try {
      return crypto.randomUUID();
    } catch {
      // not a secure context: fall through
    }
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `ws://host/ws` (or `wss://`) for the page's own origin. */
export function sameOriginWsUrl(path = "/ws") {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

const DEFAULT_OPTIONS = {
  initialBackoffMs: 500,
  maxBackoffMs: 15000,
  requestTimeoutMs: 10000,
  /** How long the `auth` frame may go unanswered before the attempt counts as failed. */
  welcomeTimeoutMs: 10000,
};

/**
 * One logical connection to roomcast that survives drops.
 *
 * Emits (it is an EventTarget; every `detail` is a plain object):
 * - `state` `{state, attempt, delayMs, closeCode}`: `connecting` | `open` | `reconnecting` | `stopped`;
 * - `welcome` `{welcome}` after each successful `auth`;
 * - `joined` `{room, joined}` for each `joined` frame (`joined.recovered` says whether it replayed);
 * - `stopped` `{reason, closeCode}` when it gives up: `unauthorized` (4401 and no fresh token),
 *   `removed` (4403) or `stopped` (you called `stop()`);
 * - `frame` `{frame}` for server frames that are neither room events, replies nor joins.
 */
export class RoomcastClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string | string[] | (() => string)} options.url - the `/ws` URL, or several to rotate through on reconnect
   * @param {() => string | Promise<string>} options.token - the bearer credential, asked for on every connect
   * @param {() => Promise<boolean>} [options.refresh] - after close 4401: get a new token; resolve true to retry
   * @param {number} [options.initialBackoffMs] - first reconnect delay (doubles per failed attempt, with jitter)
   * @param {number} [options.maxBackoffMs] - the longest reconnect delay
   * @param {number} [options.requestTimeoutMs] - how long `request()` waits for its answer
   */
  constructor(options) {
    super();
    this.options = { ...DEFAULT_OPTIONS, ...options };
    this.state = "idle";
    /** The last `welcome` frame's user: `{id, display_name, guest}`. */
    this.user = null;
    this.welcome = null;
    this._ws = null;
    this._attempt = 0;
    this._urlIndex = 0;
    this._refs = 0;
    this._pending = new Map(); // ref -> {resolve, reject, timer}
    this._rooms = new Map(); // room -> Subscription
    this._timer = null;
    this._heartbeat = null;
    this._lastMessageAt = 0;
    this._refreshedAt = 0;
    this._nextDelayMs = null;
  }

  /** Connect (and keep reconnecting until `stop()` or a final close code). */
  start() {
    if (this.state !== "idle" && this.state !== "stopped") return;
    this._connect();
  }

  /** Close for good; pending requests reject with `unavailable`. */
  stop() {
    this._stop("stopped", CloseCode.NORMAL);
  }

  /**
   * Close the current socket as if the network had dropped it: the client reconnects (after
   * `delayMs`, or the usual backoff) and recovers every room with `since`. For tests and for a
   * "retry now" button.
   */
  drop(delayMs = null) {
    this._nextDelayMs = delayMs;
    if (this._ws) this._ws.close(4000, "dropped by client");
  }

  /**
   * Send a frame and wait for its answer: resolves with a `reply`'s `data` (or the `joined`
   * frame), rejects with a ProtocolError for an `error` frame. While reconnecting it waits for
   * the connection (up to the request timeout); if the socket drops after sending, it rejects
   * with `unavailable` because the frame may or may not have been applied (retry an `ask` with
   * the same `client_id` to make that safe).
   */
  async request(frame, { timeoutMs = this.options.requestTimeoutMs } = {}) {
    const deadline = Date.now() + timeoutMs;
    if (this.state !== "open") await this._whenOpen(timeoutMs);
    return this._sendRequest(frame, Math.max(0, deadline - Date.now())).promise;
  }

  /** Send `frame` with a fresh `ref` now; returns the ref and the promise of its answer. */
  _sendRequest(frame, timeoutMs = this.options.requestTimeoutMs) {
    const ref = `r${++this._refs}`;
    const promise = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(ref);
        reject(new ProtocolError("timeout", "no answer from the server", { ref }));
      }, timeoutMs);
      this._pending.set(ref, { resolve, reject, timer });
    });
    this._send({ ...frame, ref });
    return { ref, promise };
  }

  /**
   * Follow a room. `handlers.snapshot(snapshot, joined)` gets each fresh state (first join,
   * `recovered: false`, an unsolicited `joined`); `handlers.event(event)` gets every room event
   * in seq order, once. Returns `{ leave() }`. Joining happens now if connected, else on connect.
   * A refused join (`forbidden`, `not_found`) calls `handlers.error(err)` and drops the room.
   */
  subscribe(room, handlers) {
    const sub = { room, handlers, seq: null, epoch: null, joining: false, joinRef: null };
    this._rooms.set(room, sub);
    if (this.state === "open") this._join(sub);
    return {
      leave: () => {
        if (this._rooms.get(room) !== sub) return;
        this._rooms.delete(room);
        if (this.state === "open") this._send({ type: "leave", room });
      },
    };
  }

  // --- connection ------------------------------------------------------------------------

  _url() {
    const { url } = this.options;
    if (typeof url === "function") return url();
    if (Array.isArray(url)) return url[this._urlIndex % url.length];
    return url;
  }

  _setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, attempt: this._attempt, ...extra } }));
  }

  async _connect() {
    this._setState(this._attempt === 0 && !this.welcome ? "connecting" : "reconnecting");
    let token;
    try {
      token = await this.options.token();
    } catch {
      token = null;
    }
    if (this.state === "stopped") return;
    if (!token) {
      this._stop("unauthorized", CloseCode.UNAUTHENTICATED);
      return;
    }
    let ws;
    try {
      ws = new WebSocket(this._url());
    } catch {
      this._scheduleReconnect(null);
      return;
    }
    this._ws = ws;
    let welcomed = false;
    const welcomeTimer = setTimeout(() => {
      if (!welcomed && this._ws === ws) ws.close(4000, "no welcome");
    }, this.options.welcomeTimeoutMs);

    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", token }));
    };
    ws.onmessage = (message) => {
      if (this._ws !== ws) return;
      this._lastMessageAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return; // not ours to understand: ignore
      }
      if (!welcomed) {
        if (frame.type !== "welcome") return;
        welcomed = true;
        clearTimeout(welcomeTimer);
        this._onWelcome(frame);
        return;
      }
      this._onFrame(frame);
    };
    ws.onclose = (event) => {
      clearTimeout(welcomeTimer);
      if (this._ws !== ws) return;
      this._ws = null;
      this._onClose(event.code, welcomed);
    };
    ws.onerror = () => {
      // `close` follows and decides what to do; nothing to log (the browser already did).
    };
  }

  _onWelcome(frame) {
    this._attempt = 0;
    this.welcome = frame;
    this.user = frame.user;
    this._setState("open");
    this._startHeartbeat((frame.heartbeat_s || 25) * 1000);
    this.dispatchEvent(new CustomEvent("welcome", { detail: { welcome: frame } }));
    for (const sub of this._rooms.values()) if (!sub.joining) this._join(sub); // a `welcome` listener may have joined
    this.dispatchEvent(new Event("_open"));
  }

  async _onClose(code, welcomed) {
    this._stopHeartbeat();
    for (const [ref, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new ProtocolError("unavailable", "the connection dropped before an answer came", { ref }));
    }
    this._pending.clear();
    for (const sub of this._rooms.values()) {
      sub.joining = false;
      sub.joinRef = null;
    }
    if (this.state === "stopped") return;

    if (code === CloseCode.REMOVED) {
      this._stop("removed", code);
      return;
    }
    if (code === CloseCode.UNAUTHENTICATED) {
      // One refresh per failure: a token that is refused right after a refresh is not coming back.
      const recently = Date.now() - this._refreshedAt < 5000;
      if (this.options.refresh && !recently) {
        this._setState("reconnecting", { closeCode: code });
        let ok = false;
        try {
          ok = await this.options.refresh();
        } catch {
          ok = false;
        }
        if (this.state === "stopped") return;
        if (ok) {
          this._refreshedAt = Date.now();
          this._connect();
          return;
        }
      }
      this._stop("unauthorized", code);
      return;
    }
    if (!welcomed) this._urlIndex += 1; // that server would not have us: try the next one, if any
    if (code === CloseCode.RESTARTING) this._urlIndex += welcomed ? 1 : 0;
    this._scheduleReconnect(code);
  }

  _scheduleReconnect(code) {
    const { initialBackoffMs, maxBackoffMs } = this.options;
    let delayMs;
    if (this._nextDelayMs !== null) {
      delayMs = this._nextDelayMs;
      this._nextDelayMs = null;
    } else {
      const base = Math.min(maxBackoffMs, initialBackoffMs * 2 ** this._attempt);
      delayMs = base / 2 + (Math.random() * base) / 2; // "equal jitter": never zero, never in lockstep
      if (code === CloseCode.FLOODING) delayMs = Math.max(delayMs, 5000);
    }
    this._attempt += 1;
    this._setState("reconnecting", { delayMs, closeCode: code });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._connect(), delayMs);
  }

  _stop(reason, code) {
    clearTimeout(this._timer);
    this._stopHeartbeat();
    const ws = this._ws;
    this._ws = null;
    this._setState("stopped", { closeCode: code });
    if (ws) ws.close(CloseCode.NORMAL);
    for (const pending of this._pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new ProtocolError("unavailable", "the client stopped"));
    }
    this._pending.clear();
    this.dispatchEvent(new CustomEvent("stopped", { detail: { reason, closeCode: code } }));
  }

  _whenOpen(timeoutMs) {
    if (this.state === "open") return Promise.resolve();
    if (this.state === "stopped" || this.state === "idle") {
      return Promise.reject(new ProtocolError("unavailable", "not connected"));
    }
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.removeEventListener("_open", done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.removeEventListener("_open", done);
        reject(new ProtocolError("unavailable", "not connected"));
      }, timeoutMs);
      this.addEventListener("_open", done);
    });
  }

  _send(frame) {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(JSON.stringify(frame));
  }

  _startHeartbeat(intervalMs) {
    this._stopHeartbeat();
    this._lastMessageAt = Date.now();
    this._heartbeat = setInterval(() => {
      const quiet = Date.now() - this._lastMessageAt;
      if (quiet > 2 * intervalMs) this.drop();
      else if (quiet >= intervalMs) this._send({ type: "ping" });
    }, intervalMs / 2);
  }

  _stopHeartbeat() {
    clearInterval(this._heartbeat);
    this._heartbeat = null;
  }

  // --- rooms -----------------------------------------------------------------------------

  _join(sub) {
    const frame = { type: "join", room: sub.room };
    if (sub.seq !== null && sub.epoch !== null) {
      frame.since = sub.seq;
      frame.epoch = sub.epoch;
    }
    sub.joining = true;
    const { ref, promise } = this._sendRequest(frame);
    sub.joinRef = ref; // its `joined` is applied as it arrives (in _onFrame), before any later frame
    promise.catch((err) => {
      if (this._rooms.get(sub.room) !== sub || sub.joinRef !== ref) return;
      sub.joinRef = null;
      sub.joining = false;
      if (err.code === "forbidden" || err.code === "not_found" || err.code === "bad_request") {
        this._rooms.delete(sub.room);
        sub.handlers.error?.(err);
      } else if (this.state === "open") {
        this.drop(); // timeout or "unavailable": start over; the reconnect rejoins with since
      }
    });
  }

  _onJoined(sub, joined) {
    sub.joining = false;
    sub.epoch = joined.epoch;
    if (!joined.recovered) {
      // A fresh state: everything before joined.seq is in the snapshot.
      sub.seq = joined.seq;
      if (joined.snapshot !== undefined) sub.handlers.snapshot?.(joined.snapshot, joined);
    } else if (sub.seq === null) {
      sub.seq = joined.seq;
    }
    // recovered: keep sub.seq; the missed events follow this frame, in order.
    this.dispatchEvent(new CustomEvent("joined", { detail: { room: sub.room, joined } }));
  }

  _onFrame(frame) {
    const { type } = frame;
    if (frame.ref && this._pending.has(frame.ref) && (type === "reply" || type === "joined" || type === "error")) {
      const pending = this._pending.get(frame.ref);
      this._pending.delete(frame.ref);
      clearTimeout(pending.timer);
      if (type === "joined") {
        const sub = this._rooms.get(frame.room);
        if (sub && sub.joinRef === frame.ref) {
          sub.joinRef = null;
          this._onJoined(sub, frame);
        }
      }
      if (type === "error") {
        pending.reject(
          new ProtocolError(frame.code, frame.message, { retryAfterS: frame.retry_after_s ?? null, ref: frame.ref }),
        );
      } else {
        pending.resolve(type === "reply" ? frame.data : frame);
      }
      return;
    }
    if (type === "joined") {
      // Unsolicited: the server may have missed events of this room; take its snapshot.
      const sub = this._rooms.get(frame.room);
      if (sub) this._onJoined(sub, frame);
      return;
    }
    if (typeof frame.room === "string" && typeof frame.seq === "number") {
      this._onRoomEvent(frame);
      return;
    }
    this.dispatchEvent(new CustomEvent("frame", { detail: { frame } }));
  }

  _onRoomEvent(event) {
    const sub = this._rooms.get(event.room);
    if (!sub || sub.joining) return; // not followed, or a join is in flight: its answer sets the baseline
    if (sub.seq === null) sub.seq = event.seq - 1; // a room the server joined for us (user:<id>)
    if (event.seq <= sub.seq) return; // seen already (a replay overlapping live delivery)
    if (event.seq > sub.seq + 1) {
      // A gap: we missed something. Ask for it again; the join's answer replays or resets.
      this._join(sub);
      return;
    }
    sub.seq = event.seq;
    sub.handlers.event?.(event);
  }
}
