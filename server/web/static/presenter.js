/**
 * The presenter page (`/present/<meeting_id>`): sign in, moderate, show the join code, present.
 *
 * REST: `POST /auth/login` (and `/auth/refresh` when a token expires), `GET /meetings/{id}` for
 * the meeting, `GET /meetings/{id}/questions.csv` for the export (fetched with the bearer token
 * and saved from a blob, since a plain link cannot carry an Authorization header).
 * Live: the moderation room `meeting:<id>:moderation` (every question, every status) and the
 * meeting room `meeting:<id>` (presence and meeting changes), both through RoomcastClient.
 */

import { ApiError, inWords, Session } from "./api.js";
import { el, KeyedList, QuestionStore, shortTime, votesLabel } from "./qa.js";
import { PresenterPolls, renderScreenPoll } from "./polls.js";
import { ReactionLayer } from "./reactions.js";
import { ProtocolError, RoomcastClient, sameOriginWsUrl } from "./roomcast.js";

const $ = (id) => document.getElementById(id);
const STATUS_WORDS = { scheduled: "Scheduled", live: "Live", ended: "Ended", cancelled: "Cancelled" };

const meetingId = decodeURIComponent(location.pathname.match(/^\/present\/([^/]+)/)?.[1] ?? "");
const publicRoom = `meeting:${meetingId}`;
const moderationRoom = `meeting:${meetingId}:moderation`;
const session = new Session();
const store = new QuestionStore();

let client = null;
let meeting = null;
let snapshotSeen = false;
const busy = new Set(); // question ids with a moderate frame in flight
const reactionLayer = new ReactionLayer();
const polls = new PresenterPolls({
  root: $("polls-panel"),
  session,
  client: null,
  meetingId,
  room: moderationRoom,
  onChange: () => renderScreen(),
});

// --- signing in ------------------------------------------------------------------------------

function show(view) {
  for (const id of ["sign-in-view", "problem-view", "moderation-view"]) $(id).hidden = id !== view;
  const signedIn = session.signedIn && view !== "sign-in-view";
  $("sign-out").hidden = !signedIn;
  $("signed-in-as").hidden = !signedIn;
  $("signed-in-as").textContent = signedIn ? (session.user?.display_name ?? "") : "";
}

function showSignIn(message = "") {
  stopClient();
  show("sign-in-view");
  $("sign-in-error").textContent = message;
  document.title = "Presenter sign-in · roomcast";
}

function showProblem(message) {
  stopClient();
  show("problem-view");
  $("problem-text").textContent = message;
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  if (!email || !password) {
    $("sign-in-error").textContent = "Enter your email and your password.";
    (email ? $("password") : $("email")).focus();
    return;
  }
  const button = event.submitter ?? event.target.querySelector("button[type=submit]");
  button.setAttribute("aria-busy", "true");
  $("sign-in-error").textContent = "";
  try {
    await session.login(email, password);
    $("password").value = "";
    await openMeeting();
  } catch (err) {
    let message = "Something went wrong. Please try again.";
    if (err instanceof ApiError) {
      if (err.status === 401) message = "Wrong email or password.";
      else if (err.status === 429) message = `Too many sign-in attempts. Try again ${inWords(err.retryAfterS)}.`;
      else if (err.status === 0 || err.status === 422) message = err.message;
    }
    $("sign-in-error").textContent = message;
  } finally {
    button.removeAttribute("aria-busy");
  }
});

$("sign-out").addEventListener("click", async () => {
  stopClient();
  await session.logout();
  showSignIn();
  $("email").focus();
});

// --- the meeting -----------------------------------------------------------------------------

async function openMeeting() {
  try {
    meeting = await session.call(`/meetings/${encodeURIComponent(meetingId)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showSignIn("Your session has ended. Sign in again.");
    else if (err instanceof ApiError && [403, 404, 400, 422].includes(err.status)) {
      showProblem("There is no such meeting, or you are not its owner or one of its presenters.");
    } else showProblem(err.message);
    return;
  }
  show("moderation-view");
  showMeeting(meeting);
  connect();
}

function connect() {
  stopClient();
  snapshotSeen = false;
  client = new RoomcastClient({
    url: sameOriginWsUrl(),
    token: () => session.accessToken,
    refresh: () => session.refresh(),
  });
  polls.setClient(client);
  window.roomcast = { client, store, polls }; // for the console and the browser tests
  client.addEventListener("state", (e) => {
    const words = { connecting: "Connecting…", reconnecting: "Reconnecting…", stopped: "Disconnected" };
    $("connection").textContent = words[e.detail.state] ?? "";
    $("connection").dataset.state = e.detail.state;
  });
  client.addEventListener("stopped", (e) => {
    if (e.detail.reason === "unauthorized") showSignIn("Your session has ended. Sign in again.");
    else if (e.detail.reason === "removed") showProblem("You are no longer a presenter of this meeting.");
  });
  const refused = (err) =>
    showProblem(
      err.code === "forbidden"
        ? "You are not the owner or a presenter of this meeting."
        : "There is no such meeting, or you are not its owner or one of its presenters.",
    );
  client.subscribe(moderationRoom, polls.wrap({
    snapshot(snapshot) {
      if (snapshot.meeting) showMeeting(snapshot.meeting);
      store.reset(snapshot.questions ?? []);
      if (snapshot.presence) showPresence(snapshot.presence.count);
      snapshotSeen = true;
      render();
    },
    event: onModerationEvent,
    error: refused,
  }));
  client.subscribe(publicRoom, reactionLayer.wrap({
    snapshot(snapshot) {
      if (snapshot.meeting) showMeeting(snapshot.meeting);
      if (snapshot.presence) showPresence(snapshot.presence.count);
    },
    event(event) {
      // Questions come from the moderation room, which sees all of them; here only the rest.
      if (event.type === "presence") showPresence(event.count);
      else if (event.type === "meeting.updated") showMeeting(event.meeting);
    },
    error: refused,
  }));
  client.start();
}

function stopClient() {
  if (client) {
    client.stop();
    client = null;
  }
  closeScreen();
}

function onModerationEvent(event) {
  const outcome = store.apply(event);
  if (outcome === "created" && event.type === "question.created") announce(event.question);
  if (outcome === undefined) {
    if (event.type === "presence") {
      showPresence(event.count);
      return;
    }
    if (event.type !== "meeting.updated") return;
    showMeeting(event.meeting);
  }
  render();
}

function showMeeting(next) {
  meeting = next;
  $("meeting-title").textContent = meeting.title;
  document.title = `${meeting.title} · Presenter · roomcast`;
  const status = $("meeting-status");
  status.textContent = STATUS_WORDS[meeting.status] ?? meeting.status;
  status.dataset.status = meeting.status;
  const pre = meeting.settings?.moderation === "pre";
  $("moderation-mode").textContent = pre ? "Pre-moderation: questions wait for your approval" : "Post-moderation";
  const link = `${location.origin}/m/${meeting.join_code}`;
  $("join-code").textContent = meeting.join_code;
  $("direct-link").textContent = link.replace(/^https?:\/\//, "");
  $("direct-link").href = link;
  $("screen-code").textContent = meeting.join_code;
  $("screen-url").textContent = location.host;
  $("download-csv").href = `/api/v1/meetings/${encodeURIComponent(meeting.id)}/questions.csv`;
  $("download-csv").download = `roomcast-${meeting.join_code}-questions.csv`;
}

function showPresence(count) {
  if (typeof count === "number") $("presence").textContent = `${count} ${count === 1 ? "person" : "people"} here`;
}

function announce(question) {
  const who = question.anonymous ? "Anonymous" : (question.author?.display_name ?? "Anonymous");
  const where = question.status === "pending" ? "awaiting approval" : "live";
  $("announcer").textContent = `New question from ${who}, ${where}: ${question.text}`;
}

// --- the lists -------------------------------------------------------------------------------

const lists = {
  pending: new KeyedList($("pending"), { create: createItem, update: updateItem }),
  live: new KeyedList($("live"), { create: createItem, update: updateItem }),
  dismissed: new KeyedList($("dismissed"), { create: createItem, update: updateItem }),
};

function render() {
  if (!snapshotSeen) return;
  const pending = store.sorted((q) => q.status === "pending");
  const live = store.sorted((q) => q.status === "live" || q.status === "answered");
  const dismissed = store.sorted((q) => q.status === "dismissed");
  lists.pending.render(pending);
  lists.live.render(live);
  lists.dismissed.render(dismissed);
  $("pending-count").textContent = String(pending.length);
  $("live-count").textContent = String(live.length);
  $("dismissed-count").textContent = String(dismissed.length);
  $("no-pending").hidden = pending.length > 0;
  $("no-live").hidden = live.length > 0;
  renderScreen();
}

function createItem(question) {
  const id = question.id;
  const button = (cls, text, action) =>
    el("button", { class: `button small ${cls}`, type: "button", onclick: () => moderate(id, action()) }, text);
  const answerId = `answer-${id}`;
  return el(
    "li",
    { class: "question moderated", dataset: { id } },
    el(
      "div",
      { class: "q-body" },
      el("p", { class: "q-tags" }),
      el("p", { class: "q-text" }),
      el(
        "p",
        { class: "q-meta" },
        el("span", { class: "q-author" }),
        " · ",
        el("time", { class: "q-time" }),
        " · ",
        el("span", { class: "q-votes" }),
      ),
      el("div", { class: "q-answer" }),
      el(
        "div",
        { class: "q-actions" },
        button("primary act-approve", "Approve", () => "approve"),
        button("act-pin", "Pin", () => (store.get(id)?.pinned ? "unpin" : "pin")),
        el(
          "span",
          { class: "answer-field" },
          el("label", { for: answerId }, "Answer (optional)"),
          el("input", { id: answerId, class: "answer-input", type: "text", maxlength: "5000", autocomplete: "off" }),
        ),
        button("act-answer", "Mark answered", () => "answer"),
        button("act-reopen", "Reopen", () => "reopen"),
        button("danger act-dismiss", "Dismiss", () => "dismiss"),
      ),
      el("p", { class: "q-error error", role: "alert" }),
    ),
  );
}

function updateItem(li, question) {
  const { status, pinned } = question;
  li.classList.toggle("pinned", pinned);
  li.classList.toggle("answered", status === "answered");
  li.classList.toggle("pending", status === "pending");
  li.classList.toggle("flagged", Boolean(question.flagged));

  const tags = [];
  if (pinned) tags.push(el("span", { class: "tag tag-pinned" }, "Pinned"));
  if (status === "answered") tags.push(el("span", { class: "tag tag-answered" }, "Answered"));
  if (question.flagged) {
    const words = question.flagged_words?.length ? `: ${question.flagged_words.join(", ")}` : "";
    tags.push(el("span", { class: "tag tag-flagged" }, `Held by the word filter${words}`));
  }
  if (status === "dismissed" && question.merged_into) tags.push(el("span", { class: "tag" }, "Merged"));
  li.querySelector(".q-tags").replaceChildren(...tags);
  li.querySelector(".q-tags").hidden = tags.length === 0;

  li.querySelector(".q-text").textContent = question.text;
  li.querySelector(".q-author").textContent = question.anonymous
    ? "Anonymous"
    : (question.author?.display_name ?? "Anonymous");
  const time = li.querySelector(".q-time");
  time.dateTime = question.created_at;
  time.textContent = shortTime(question.created_at);
  li.querySelector(".q-votes").textContent = votesLabel(question.votes);

  const answer = li.querySelector(".q-answer");
  answer.hidden = !(status === "answered" && question.answer);
  answer.replaceChildren(...(answer.hidden ? [] : [el("span", { class: "answer-label" }, "Answer: "), question.answer]));

  const visible = {
    "act-approve": status === "pending",
    "act-pin": status === "live" || status === "answered",
    "answer-field": status === "live",
    "act-answer": status === "live",
    "act-reopen": status === "answered" || (status === "dismissed" && !question.merged_into),
    "act-dismiss": status !== "dismissed",
  };
  for (const [cls, on] of Object.entries(visible)) li.querySelector(`.${cls}`).hidden = !on;
  li.querySelector(".act-pin").textContent = pinned ? "Unpin" : "Pin";
}

async function moderate(questionId, action) {
  if (busy.has(questionId) || !client) return;
  const li = Object.values(lists)
    .map((list) => list.nodes.get(questionId))
    .find(Boolean);
  const error = li?.querySelector(".q-error");
  if (error) error.textContent = "";
  const frame = { type: "moderate", room: moderationRoom, question_id: questionId, action };
  if (action === "answer") {
    const text = li?.querySelector(".answer-input")?.value.trim();
    if (text) frame.text = text;
  }
  // If the item is about to leave its list, keep the keyboard user's place in that list.
  const next = li?.nextElementSibling ?? li?.previousElementSibling;
  busy.add(questionId);
  try {
    const reply = await client.request(frame);
    store.upsert(reply.question);
    render();
    if (li && !li.isConnected && document.activeElement === document.body) {
      (next?.querySelector("button:not([hidden])") ?? $("main")).focus();
    }
  } catch (err) {
    let message = "Something went wrong. Please try again.";
    if (err instanceof ProtocolError) {
      if (err.code === "rate_limited") message = `Too fast. Try again ${inWords(err.retryAfterS)}.`;
      else if (err.code === "unavailable" || err.code === "timeout")
        message = "The server did not answer. Try again when the connection is back.";
      else message = err.message;
    }
    const current = Object.values(lists)
      .map((list) => list.nodes.get(questionId))
      .find(Boolean);
    const target = current?.querySelector(".q-error");
    if (target) target.textContent = message;
    else $("notice").textContent = message;
  } finally {
    busy.delete(questionId);
  }
}

// --- the CSV export --------------------------------------------------------------------------

$("download-csv").addEventListener("click", async (event) => {
  event.preventDefault();
  if (!meeting) return;
  const link = event.currentTarget;
  link.setAttribute("aria-busy", "true");
  try {
    const response = await session.fetchRaw(`/meetings/${encodeURIComponent(meeting.id)}/questions.csv`);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const save = el("a", { href: url, download: link.download || "questions.csv", hidden: true });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    $("notice").textContent = "";
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showSignIn("Your session has ended. Sign in again.");
    else $("notice").textContent = `The export failed: ${err.message}`;
  } finally {
    link.removeAttribute("aria-busy");
  }
});

// --- present mode ----------------------------------------------------------------------------

/** The question for the room's screen: the pinned one, else the top live one. */
function featured() {
  return store.sorted((q) => q.pinned && (q.status === "live" || q.status === "answered"))[0]
    ?? store.sorted((q) => q.status === "live")[0]
    ?? null;
}

function renderScreen() {
  if ($("screen").hidden) return;
  $("screen").classList.toggle("with-poll", renderScreenPoll($("screen-poll"), polls.store));
  const question = featured();
  const answer = $("screen-answer");
  if (!question) {
    $("screen-tag").textContent = "";
    $("screen-text").textContent = "Ask your questions!";
    $("screen-meta").textContent = meeting?.title ?? "";
    answer.hidden = true;
    return;
  }
  $("screen-tag").textContent = question.pinned ? "Pinned question" : "Top question";
  $("screen-text").textContent = question.text;
  const who = question.anonymous ? "Anonymous" : (question.author?.display_name ?? "Anonymous");
  $("screen-meta").textContent = `${who} · ${votesLabel(question.votes)}`;
  answer.hidden = !(question.status === "answered" && question.answer);
  answer.textContent = answer.hidden ? "" : `Answer: ${question.answer}`;
}

function openScreen() {
  const screen = $("screen");
  screen.hidden = false;
  document.body.classList.add("presenting");
  renderScreen();
  $("exit-present").focus();
  if (document.fullscreenEnabled && !document.fullscreenElement) {
    screen.requestFullscreen?.().catch(() => {
      // refused (no user gesture, or not allowed here): the overlay still fills the window
    });
  }
}

function closeScreen() {
  const screen = $("screen");
  if (screen.hidden) return;
  screen.hidden = true;
  document.body.classList.remove("presenting");
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  $("present").focus();
}

$("present").addEventListener("click", openScreen);
$("exit-present").addEventListener("click", closeScreen);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("screen").hidden) closeScreen();
});
document.addEventListener("fullscreenchange", () => {
  if (!document.fullscreenElement && !$("screen").hidden) closeScreen();
});

// --- start -----------------------------------------------------------------------------------

if (!meetingId) showProblem("This address names no meeting.");
else if (session.signedIn) openMeeting();
else showSignIn();
