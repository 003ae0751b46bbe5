/**
 * The calendar view: connect Google Calendar or Outlook, see each connection's status and last
 * sync, sync now, disconnect, and create a meeting from one of the next events (SPEC section 5).
 *
 * `mountCalendar(root, { session })` renders into any element holding the markup of
 * `calendar.html`'s `#calendar-root` (data-role / data-connect hooks), so the owner's home page
 * can embed it; on `/calendar` itself this module also runs the sign-in around it.
 *
 * REST: `GET /calendar/connections`, `GET /calendar/{provider}/connect` (then the browser goes to
 * the provider and comes back to `/calendar?connected=<provider>`), `POST .../sync`, `DELETE`,
 * `GET .../events`, `POST /meetings` with `source`. Live: the user's `user:<id>` room, where
 * `calendar.updated` and `notification` frames arrive, so the view follows syncs as they happen.
 */

import { ApiError, Session, inWords } from "/static/api.js";
import { RoomcastClient, sameOriginWsUrl } from "/static/roomcast.js";

const PROVIDERS = { google: "Google Calendar", outlook: "Outlook" };
const STATUS_WORDS = { active: "Active", syncing: "Syncing", error: "Error" };
const REFRESH_MS = 15000;
const SYNCING_REFRESH_MS = 2000; // a "Syncing" badge settles soon, and a sync that changed nothing sends no frame
const SYNCING_LOOKS = 15; // then the regular refresh: a worker that died mid-sync leaves "Syncing" until its lock expires

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "type" || key === "href") {
      node.setAttribute(key, value === true ? "" : String(value));
    } else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function when(iso) {
  if (!iso) return "no time";
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

function span(startIso, endIso) {
  if (!startIso) return "no time";
  const start = new Date(startIso);
  if (!endIso) return when(startIso);
  const end = new Date(endIso);
  const sameDay = start.toDateString() === end.toDateString();
  const endText = sameDay
    ? new Intl.DateTimeFormat(undefined, { timeStyle: "short" }).format(end)
    : when(endIso);
  return `${when(startIso)} – ${endText}`;
}

function ago(iso) {
  if (!iso) return "not synced yet";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 45) return "synced just now";
  if (seconds < 90 * 60) return `synced ${Math.round(seconds / 60)} min ago`;
  return `synced ${when(iso)}`;
}

function problemText(err) {
  if (err instanceof ApiError) {
    if (err.status === 404 && err.message.includes("not enabled")) return "That provider is not set up on this server.";
    if (err.status === 429) return `Too many requests. Try again ${inWords(err.retryAfterS)}.`;
    if (err.status === 0) return err.message;
    return err.message;
  }
  return "Something went wrong. Please try again.";
}

/**
 * Render the calendar view into `root` and keep it current. Returns `{ refresh, onFrame, stop }`:
 * a host page that already has a protocol client can feed it `user:` room events with `onFrame`.
 */
export function mountCalendar(root, { session, flash = "" }) {
  const list = root.querySelector('[data-role="connections"]');
  const empty = root.querySelector('[data-role="empty"]');
  const flashLine = root.querySelector('[data-role="flash"]');
  const problem = root.querySelector('[data-role="problem"]');
  const changed = new Set(); // calendar event ids that just changed, highlighted once
  let timer = null;
  let settle = null; // the sooner look while a connection says "Syncing"
  let looks = 0; // sooner looks since the last time nothing said "Syncing"
  let loading = null;
  let followUp = null; // one more load after the one in flight, for callers that know of something newer
  let stopped = false;

  flashLine.textContent = flash;

  function say(message) {
    problem.textContent = message;
  }

  for (const button of root.querySelectorAll("[data-connect]")) {
    button.addEventListener("click", async () => {
      const provider = button.dataset.connect;
      button.setAttribute("aria-busy", "true");
      say("");
      try {
        const { authorization_url: url } = await session.call(`/calendar/${provider}/connect`);
        location.assign(url); // the provider sends the browser back to /calendar?connected=<provider>
      } catch (err) {
        say(problemText(err));
        button.removeAttribute("aria-busy");
      }
    });
  }

  function eventRow(connection, event) {
    const row = el(
      "li",
      { class: `event-row${changed.has(event.calendar_event_id) ? " just-changed" : ""}` },
      el(
        "div",
        { class: "event-main" },
        el("span", { class: "event-title", textContent: event.title || "(untitled event)" }),
        el("span", { class: "event-when", textContent: span(event.starts_at, event.ends_at) }),
      ),
    );
    if (event.meeting_ids.length) {
      row.append(
        el("a", { class: "button small", href: `/present/${event.meeting_ids[0]}`, textContent: "Open meeting" }),
      );
    } else {
      const create = el("button", { class: "button small primary", type: "button", textContent: "Create meeting" });
      create.addEventListener("click", async () => {
        create.setAttribute("aria-busy", "true");
        say("");
        try {
          const meeting = await session.call("/meetings", {
            method: "POST",
            body: { source: { connection_id: connection.id, calendar_event_id: event.calendar_event_id } },
          });
          flashLine.textContent = `Meeting “${meeting.title}” created; join code ${meeting.join_code}.`;
          await refresh(true);
        } catch (err) {
          say(problemText(err));
          create.removeAttribute("aria-busy");
        }
      });
      row.append(create);
    }
    return row;
  }

  function connectionCard(connection, events) {
    const sync = el("button", { class: "button small", type: "button", textContent: "Sync now" });
    sync.disabled = connection.status === "error" && Boolean(connection.error?.includes("connect"));
    sync.addEventListener("click", async () => {
      sync.setAttribute("aria-busy", "true");
      say("");
      try {
        await session.call(`/calendar/connections/${connection.id}/sync`, { method: "POST" });
        flashLine.textContent = `Syncing ${PROVIDERS[connection.provider] ?? connection.provider}…`;
        setTimeout(() => refresh(true), 1500);
      } catch (err) {
        say(problemText(err));
      } finally {
        sync.removeAttribute("aria-busy");
      }
    });
    const disconnect = el("button", { class: "button small danger", type: "button", textContent: "Disconnect" });
    disconnect.addEventListener("click", async () => {
      const name = `${PROVIDERS[connection.provider] ?? connection.provider} (${connection.account_email})`;
      if (!confirm(`Disconnect ${name}? Meetings made from its events stay, but stop following them.`)) return;
      disconnect.setAttribute("aria-busy", "true");
      try {
        await session.call(`/calendar/connections/${connection.id}`, { method: "DELETE" });
        flashLine.textContent = `${name} disconnected.`;
        await refresh(true);
      } catch (err) {
        say(problemText(err));
        disconnect.removeAttribute("aria-busy");
      }
    });
    const eventsList = el("ul", { class: "events", "aria-label": "Next events" });
    if (events === null) eventsList.append(el("li", { class: "muted small-text", textContent: "Events not available." }));
    else if (!events.length) {
      eventsList.append(
        el("li", {
          class: "muted small-text",
          textContent: connection.last_synced_at ? "No upcoming events." : "The first sync is running…",
        }),
      );
    } else for (const event of events) eventsList.append(eventRow(connection, event));
    return el(
      "li",
      { class: "card connection-card", "data-connection": connection.id, "data-status": connection.status },
      el(
        "div",
        { class: "connection-top" },
        el(
          "h2",
          {},
          el("span", {
            class: "provider-mark",
            "data-provider": connection.provider,
            "aria-hidden": "true",
            textContent: connection.provider === "google" ? "G" : "O",
          }),
          el("span", { textContent: PROVIDERS[connection.provider] ?? connection.provider }),
          el("span", { class: "account", textContent: connection.account_email }),
        ),
        el("span", {
          class: "badge",
          "data-status": connection.status,
          textContent: STATUS_WORDS[connection.status] ?? connection.status,
        }),
      ),
      el("p", { class: "connection-meta", textContent: ago(connection.last_synced_at) }),
      connection.error ? el("p", { class: "error", textContent: connection.error }) : null,
      el("div", { class: "connection-actions" }, sync, disconnect),
      el("h3", { class: "events-heading", textContent: "Next events" }),
      eventsList,
    );
  }

  async function load() {
    const connections = await session.call("/calendar/connections");
    const events = await Promise.all(
      connections.map((c) =>
        session.call(`/calendar/connections/${c.id}/events?limit=5`).then(
          (page) => page.items,
          () => null,
        ),
      ),
    );
    if (stopped) return; // signed out meanwhile: this view is gone
    list.replaceChildren(...connections.map((c, i) => connectionCard(c, events[i])));
    empty.hidden = connections.length > 0;
    for (const button of root.querySelectorAll("[data-connect]")) {
      const provider = button.dataset.connect;
      const has = connections.some((c) => c.provider === provider);
      button.textContent = `${has ? "Connect another" : "Connect"} ${PROVIDERS[provider]}`;
    }
    if (!followUp) changed.clear(); // a newer frame's ids wait for the load that follows it
    clearTimeout(settle);
    settle = null;
    const syncing = connections.some((c) => c.status === "syncing");
    looks = syncing ? looks + 1 : 0;
    if (syncing && looks <= SYNCING_LOOKS && !stopped) settle = setTimeout(refresh, SYNCING_REFRESH_MS);
  }

  /**
   * Load the view again. `fresh`: the caller knows of a change (a frame, its own action) that a load
   * already in flight may predate, so one more load follows it (shared by every such caller).
   */
  async function refresh(fresh = false) {
    if (stopped) return;
    if (loading) {
      if (!fresh) return loading;
      followUp ??= loading.then(() => {
        followUp = null;
        return refresh();
      });
      return followUp;
    }
    loading = load()
      .catch((err) => say(problemText(err)))
      .finally(() => {
        loading = null;
      });
    return loading;
  }

  function onFrame(frame) {
    if (frame.type === "calendar.updated") {
      for (const change of frame.changes) changed.add(change.calendar_event_id);
      const moved = frame.changes.filter((c) => c.meeting_ids.length && c.change !== "created" && c.change !== "updated");
      if (moved.length) {
        const c = moved[0];
        flashLine.textContent =
          c.change === "cancelled"
            ? `“${c.title}” was cancelled in the calendar; its meeting is cancelled too.`
            : `“${c.title}” moved to ${when(c.starts_at)}; its meeting moved with it.`;
      }
      refresh(true);
    } else if (frame.type === "notification" && frame.notification.kind === "calendar.sync_failed") {
      say(frame.notification.body);
      refresh(true);
    }
  }

  refresh();
  timer = setInterval(refresh, REFRESH_MS);
  return {
    refresh,
    onFrame,
    stop() {
      stopped = true;
      clearInterval(timer);
      clearTimeout(settle);
    },
  };
}

// --- the /calendar page itself: sign-in, the live socket, the view ---------------------------

function page() {
  const $ = (id) => document.getElementById(id);
  const session = new Session();
  let view = null;
  let client = null;

  function show(signedIn) {
    $("sign-in-view").hidden = signedIn;
    $("calendar-root").hidden = !signedIn;
    $("sign-out").hidden = !signedIn;
    $("site-nav").hidden = !signedIn;
    $("signed-in-as").hidden = !signedIn;
    $("signed-in-as").textContent = signedIn ? `Signed in as ${session.user?.display_name ?? ""}` : "";
  }

  function start() {
    show(true);
    const params = new URLSearchParams(location.search);
    const connected = params.get("connected");
    const flash = connected && PROVIDERS[connected] ? `${PROVIDERS[connected]} connected. The first sync is running…` : "";
    if (connected) history.replaceState(null, "", location.pathname);
    view = mountCalendar($("calendar-root"), { session, flash });
    client = new RoomcastClient({
      url: sameOriginWsUrl(),
      token: () => session.accessToken,
      refresh: () => session.refresh(),
    });
    client.addEventListener("state", (e) => {
      const state = e.detail.state;
      $("connection").dataset.state = state;
      $("connection").textContent = state === "reconnecting" ? "Reconnecting…" : "";
    });
    let subscribed = false;
    client.addEventListener("welcome", (e) => {
      if (subscribed) return; // the client joins its rooms again by itself after a reconnect
      subscribed = true;
      client.subscribe(`user:${e.detail.welcome.user.id}`, { event: (frame) => view.onFrame(frame) });
    });
    client.start();
  }

  function signOutView(message = "") {
    view?.stop();
    client?.stop();
    show(false);
    $("sign-in-error").textContent = message;
  }

  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const email = $("email").value.trim();
    const password = $("password").value;
    if (!email || !password) {
      $("sign-in-error").textContent = "Enter your email and your password.";
      return;
    }
    const button = event.submitter ?? event.target.querySelector("button[type=submit]");
    button.setAttribute("aria-busy", "true");
    try {
      await session.login(email, password);
      $("password").value = "";
      start();
    } catch (err) {
      $("sign-in-error").textContent =
        err instanceof ApiError && err.status === 401 ? "Wrong email or password." : problemText(err);
    } finally {
      button.removeAttribute("aria-busy");
    }
  });

  $("sign-out").addEventListener("click", async () => {
    await session.logout();
    signOutView();
  });

  if (session.signedIn) start();
  else signOutView();
}

if (document.body?.dataset.page === "calendar") page();
