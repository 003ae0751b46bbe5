/**
 * The presenter page (`/present/<meeting_id>`): sign in, moderate, show the join code, present.
 *
 * REST: `POST /auth/login` (and `/auth/refresh` when a token expires), `GET /meetings/{id}` for
 * the meeting, `GET /meetings/{id}/questions.csv` for the export (fetched with the bearer token
 * and saved from a blob, since a plain link cannot carry an Authorization header).
 * Live: the moderation room `meeting:<id>:moderation` (every question, every status) and the
 * meeting room `meeting:<id>` (presence and meeting changes), both through RoomcastClient.
 */

import { ApiError, clearFieldError, inWords, Session, showFieldErrors } from "./api.js";
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
  $("back-home").hidden = !signedIn;
}

session.addEventListener("change", (event) => {
  if (event.detail.state === "signed-out" && $("sign-in-view").hidden) {
    showSignIn(event.detail.reason === "revoked" ? "This login was ended. Sign in again." : "You are signed out.");
  }
});

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
  $("screen-url").textContent = `${location.host}/m/${meeting.join_code}`;
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
};
let sortBy = "votes"; // "votes" | "time"
let filter = "open"; // "open" | "answered" | "dismissed" | "all"
const FILTERS = {
  open: (q) => q.status === "live",
  answered: (q) => q.status === "answered",
  dismissed: (q) => q.status === "dismissed",
  all: (q) => q.status !== "pending",
};
const muted = new Set(JSON.parse(sessionStorage.getItem(`roomcast.muted.${meetingId}`) ?? "[]")); // question ids

/** Newest first, the pinned question still on top. */
function byTime(a, b) {
  if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
  return Date.parse(b.created_at) - Date.parse(a.created_at) || (a.id < b.id ? 1 : -1);
}

function render() {
  if (!snapshotSeen) return;
  const pending = store.sorted((q) => q.status === "pending");
  let shown = store.sorted(FILTERS[filter]);
  if (sortBy === "time") shown = shown.sort(byTime);
  lists.pending.render(pending);
  lists.live.render(shown);
  const count = (status) => store.sorted((q) => q.status === status).length;
  $("pending-count").textContent = String(pending.length);
  $("live-count").textContent = String(shown.length);
  $("open-count").textContent = String(count("live"));
  $("answered-count").textContent = String(count("answered"));
  $("dismissed-count").textContent = String(count("dismissed"));
  $("no-pending").hidden = pending.length > 0;
  $("no-live").hidden = shown.length > 0;
  // Under post-moderation only the word filter holds questions: no empty Pending column then.
  const showPending = meeting?.settings?.moderation === "pre" || pending.length > 0;
  $("pending-column").hidden = !showPending;
  $("columns").classList.toggle("single", !showPending);
  renderScreen();
}

$("sort-votes").addEventListener("click", () => setSort("votes"));
$("sort-time").addEventListener("click", () => setSort("time"));
function setSort(next) {
  sortBy = next;
  $("sort-votes").setAttribute("aria-pressed", String(sortBy === "votes"));
  $("sort-time").setAttribute("aria-pressed", String(sortBy === "time"));
  render();
}
for (const button of document.querySelectorAll("[data-filter]")) {
  button.addEventListener("click", () => {
    filter = button.dataset.filter;
    for (const other of document.querySelectorAll("[data-filter]")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    render();
  });
}

const REASONS = [
  ["duplicate", "Duplicate"],
  ["off_topic", "Off topic"],
  ["inappropriate", "Inappropriate"],
  ["answered", "Already answered"],
  ["other", "Other"],
];
const REASON_WORDS = Object.fromEntries(REASONS);

function createItem(question) {
  const id = question.id;
  const act = (cls, text, handler) =>
    el("button", { class: `button small ${cls}`, type: "button", onclick: handler }, text);
  const moderateWith = (action) => () => moderate(id, action());
  const answerId = `answer-${id}`;
  const reasonId = `reason-${id}`;
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
        act("primary act-approve", "Approve", moderateWith(() => "approve")),
        act("act-pin", "Pin", moderateWith(() => (store.get(id)?.pinned ? "unpin" : "pin"))),
        act("act-answer", "Mark answered", moderateWith(() => "answer")),
        act("act-write", "Write answer", () => openPanel(id, "answer")),
        act("act-edit-answer", "Edit answer", () => openPanel(id, "answer")),
        act("act-reopen", "Reopen", moderateWith(() => "reopen")),
        act("act-merge", "Merge…", () => openMerge(id)),
        act("danger act-dismiss", "Dismiss…", () => openPanel(id, "dismiss")),
        el(
          "button",
          { class: "button small quiet act-more", type: "button", "aria-expanded": "false", onclick: () => toggleMore(id) },
          "More",
        ),
        el(
          "span",
          { class: "more-actions", hidden: true },
          act("act-mute", "Mute author", () => mute(id, true)),
          act("act-unmute", "Unmute author", () => mute(id, false)),
          act("danger act-delete", "Delete", () => openPanel(id, "delete")),
        ),
      ),
      el(
        "form",
        { class: "panel panel-answer", hidden: true, onsubmit: (e) => (e.preventDefault(), moderate(id, "answer")) },
        el("label", { for: answerId }, "Answer (optional)"),
        el("textarea", { id: answerId, class: "answer-input", rows: "2", maxlength: "5000" }),
        el(
          "span",
          { class: "panel-actions" },
          el("button", { class: "button small primary act-save-answer", type: "submit" }, "Mark answered"),
          act("quiet", "Cancel", () => closePanels(id)),
        ),
      ),
      el(
        "form",
        { class: "panel panel-dismiss", hidden: true, onsubmit: (e) => (e.preventDefault(), dismiss(id)) },
        el("label", { for: reasonId }, "Reason"),
        el(
          "select",
          { id: reasonId, class: "reason" },
          ...REASONS.map(([value, words]) => el("option", { value }, words)),
        ),
        el(
          "span",
          { class: "panel-actions" },
          el("button", { class: "button small danger act-confirm-dismiss", type: "submit" }, "Dismiss question"),
          act("quiet", "Cancel", () => closePanels(id)),
        ),
      ),
      el(
        "div",
        { class: "panel panel-merge", hidden: true },
        el("p", { class: "panel-title" }, "Merge into a similar question (its votes and asker move there):"),
        el("ul", { class: "similar" }),
        el("p", { class: "similar-none muted small-text", hidden: true }, "No similar question found."),
        act("quiet", "Cancel", () => closePanels(id)),
      ),
      el(
        "div",
        { class: "panel panel-delete", hidden: true },
        el("span", {}, "Delete this question for everyone? "),
        act("danger act-confirm-delete", "Yes, delete", () => deleteQuestion(id)),
        act("quiet", "Keep it", () => closePanels(id)),
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
  li.classList.toggle("dismissed", status === "dismissed");
  li.classList.toggle("flagged", Boolean(question.flagged));

  const tags = [];
  if (pinned) tags.push(el("span", { class: "tag tag-pinned" }, "Pinned"));
  if (status === "answered") tags.push(el("span", { class: "tag tag-answered" }, "Answered"));
  if (question.flagged && status === "pending") {
    const words = question.flagged_words?.length ? `: ${question.flagged_words.join(", ")}` : "";
    tags.push(el("span", { class: "tag tag-flagged" }, `Held by the word filter${words}`));
  }
  if (status === "dismissed") {
    const target = question.merged_into ? store.get(question.merged_into) : null;
    const words = question.merged_into
      ? `Merged into “${excerpt(target?.text ?? "another question", 50)}”`
      : `Dismissed${question.dismiss_reason ? `: ${REASON_WORDS[question.dismiss_reason] ?? question.dismiss_reason}` : ""}`;
    tags.push(el("span", { class: "tag tag-dismissed" }, words));
  }
  if (muted.has(question.id)) tags.push(el("span", { class: "tag" }, "Author muted"));
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
    "act-answer": status === "live",
    "act-write": status === "live",
    "act-edit-answer": status === "answered",
    "act-reopen": status === "answered" || (status === "dismissed" && !question.merged_into),
    "act-merge": status !== "dismissed",
    "act-dismiss": status !== "dismissed",
    "act-mute": !muted.has(question.id),
    "act-unmute": muted.has(question.id),
  };
  for (const [cls, on] of Object.entries(visible)) li.querySelector(`.${cls}`).hidden = !on;
  li.querySelector(".act-pin").textContent = pinned ? "Unpin" : "Pin";
  // Every control says which question it acts on.
  const label = excerpt(question.text, 100);
  for (const button of li.querySelectorAll(".q-actions button, .panel button")) {
    button.setAttribute("aria-label", `${button.textContent.replace("…", "")}: ${label}`);
  }
  if (status !== "live" && status !== "answered") hidePanel(li, "answer");
  if (status === "dismissed") hidePanel(li, "dismiss"), hidePanel(li, "merge");
}

function excerpt(text, limit = 80) {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

function itemOf(questionId) {
  return Object.values(lists)
    .map((list) => list.nodes.get(questionId))
    .find(Boolean);
}

function hidePanel(li, name) {
  const panel = li.querySelector(`.panel-${name}`);
  if (panel) panel.hidden = true;
}

function closePanels(questionId, focus = true) {
  const li = itemOf(questionId);
  if (!li) return;
  for (const panel of li.querySelectorAll(".panel")) panel.hidden = true;
  if (focus) li.querySelector(".q-actions button:not([hidden])")?.focus();
}

function openPanel(questionId, name) {
  const li = itemOf(questionId);
  if (!li) return;
  closePanels(questionId, false);
  const panel = li.querySelector(`.panel-${name}`);
  panel.hidden = false;
  toggleMore(questionId, false);
  if (name === "answer") {
    const box = panel.querySelector("textarea");
    box.value = store.get(questionId)?.answer ?? "";
    box.focus();
  } else {
    panel.querySelector("select, button")?.focus();
  }
}

/** The less frequent tools (mute, unmute, delete) behind "More". */
function toggleMore(questionId, open) {
  const li = itemOf(questionId);
  if (!li) return;
  const more = li.querySelector(".act-more");
  const show = open ?? more.getAttribute("aria-expanded") !== "true";
  more.setAttribute("aria-expanded", String(show));
  li.querySelector(".more-actions").hidden = !show;
}

async function dismiss(questionId) {
  const reason = itemOf(questionId)?.querySelector(".reason")?.value || undefined;
  await moderate(questionId, "dismiss", { reason });
}

async function openMerge(questionId) {
  const question = store.get(questionId);
  const li = itemOf(questionId);
  if (!question || !li || !client) return;
  openPanel(questionId, "merge");
  const list = li.querySelector(".similar");
  list.replaceChildren(el("li", { class: "muted small-text" }, "Looking for similar questions…"));
  try {
    const { items } = await client.request({ type: "similar", room: moderationRoom, text: question.text });
    const targets = items.filter((item) => item.question_id !== questionId && store.get(item.question_id)?.status !== "dismissed");
    list.replaceChildren(
      ...targets.map((item) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              class: "button small act-merge-into",
              type: "button",
              "aria-label": `Merge into: ${excerpt(item.text, 100)}`,
              onclick: () => merge(questionId, item.question_id),
            },
            "Merge into",
          ),
          el("span", { class: "similar-text" }, ` ${item.text} `),
          el("span", { class: "muted small-text" }, `(${votesLabel(item.votes)})`),
        ),
      ),
    );
    li.querySelector(".similar-none").hidden = targets.length > 0;
    list.querySelector("button")?.focus();
  } catch (err) {
    list.replaceChildren();
    li.querySelector(".q-error").textContent = frameErrorWords(err);
  }
}

async function merge(questionId, intoId) {
  await send(questionId, { type: "merge", room: moderationRoom, question_id: questionId, into_id: intoId });
}

async function deleteQuestion(questionId) {
  const done = await send(questionId, { type: "delete", room: moderationRoom, question_id: questionId });
  if (done) {
    store.remove(questionId);
    render();
  }
}

async function mute(questionId, on) {
  const done = await moderate(questionId, on ? "mute_author" : "unmute_author");
  if (!done) return;
  if (on) muted.add(questionId);
  else muted.delete(questionId);
  sessionStorage.setItem(`roomcast.muted.${meetingId}`, JSON.stringify([...muted]));
  $("notice").textContent = on
    ? "The author of this question is muted: they can no longer ask or vote here."
    : "The author of this question may ask and vote again.";
  render();
}

async function moderate(questionId, action, extra = {}) {
  const frame = { type: "moderate", room: moderationRoom, question_id: questionId, action, ...extra };
  if (action === "answer") {
    const text = itemOf(questionId)?.querySelector(".answer-input")?.value.trim();
    if (text) frame.text = text;
  }
  return send(questionId, frame);
}

function frameErrorWords(err) {
  if (!(err instanceof ProtocolError)) return "Something went wrong. Please try again.";
  if (err.code === "rate_limited") return `Too fast. Try again ${inWords(err.retryAfterS)}.`;
  if (err.code === "unavailable" || err.code === "timeout") {
    return "The server did not answer. Try again when the connection is back.";
  }
  return err.message;
}

/** Send one moderation frame for a question; resolves true when the server accepted it. */
async function send(questionId, frame) {
  if (busy.has(questionId) || !client) return false;
  const li = itemOf(questionId);
  const error = li?.querySelector(".q-error");
  if (error) error.textContent = "";
  // If the item is about to leave its list, keep the keyboard user's place in that list.
  const next = li?.nextElementSibling ?? li?.previousElementSibling;
  busy.add(questionId);
  try {
    const reply = await client.request(frame);
    if (reply?.question) store.upsert(reply.question);
    closePanels(questionId, false);
    toggleMore(questionId, false);
    render();
    if (li && !li.isConnected && (document.activeElement === document.body || !document.activeElement)) {
      (next?.querySelector("button:not([hidden])") ?? $("main")).focus();
    } else if (li?.isConnected && li.contains(document.activeElement) === false) {
      li.querySelector(".q-actions button:not([hidden])")?.focus();
    }
    return true;
  } catch (err) {
    const target = itemOf(questionId)?.querySelector(".q-error");
    if (target) target.textContent = frameErrorWords(err);
    else $("notice").textContent = frameErrorWords(err);
    return false;
  } finally {
    busy.delete(questionId);
  }
}

// --- live settings ---------------------------------------------------------------------------

function fillSettings() {
  const settings = meeting?.settings ?? {};
  $("set-pre").checked = settings.moderation === "pre";
  $("set-post").checked = settings.moderation !== "pre";
  $("set-blocked").value = (settings.blocked_words ?? []).join(", ");
}

$("settings-toggle").addEventListener("click", () => {
  const open = $("settings").hidden;
  $("settings").hidden = !open;
  $("settings-toggle").setAttribute("aria-expanded", String(open));
  if (open) {
    fillSettings();
    $("settings-error").textContent = "";
    clearFieldError($("set-blocked"));
    ($("set-pre").checked ? $("set-pre") : $("set-post")).focus();
  }
});
$("settings-close").addEventListener("click", () => {
  $("settings").hidden = true;
  $("settings-toggle").setAttribute("aria-expanded", "false");
  $("settings-toggle").focus();
});

$("settings").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("settings-error").textContent = "";
  const fields = { blocked_words: $("set-blocked"), moderation: $("set-post") };
  for (const input of Object.values(fields)) clearFieldError(input);
  const settings = {
    moderation: $("set-pre").checked ? "pre" : "post",
    blocked_words: $("set-blocked")
      .value.split(/[,\n]/)
      .map((word) => word.trim())
      .filter(Boolean),
  };
  try {
    const updated = await session.call(`/meetings/${encodeURIComponent(meetingId)}`, {
      method: "PATCH",
      body: { settings },
    });
    showMeeting(updated);
    render();
    $("notice").textContent = "Settings saved: they apply to new questions at once.";
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showSignIn("Your session has ended. Sign in again.");
    else $("settings-error").textContent = showFieldErrors(err, fields).join(" ");
  }
});

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

/**
 * The room's screen: one question large (the pinned one, else the top by votes; the presenter
 * steps through them with the buttons or the arrow keys), the top questions by votes beside it,
 * and how to join: a QR code of the direct link (drawn by this server), the address and the code.
 * The question's text is sized to fill its box at any resolution (a 1920x1080 projector too).
 */
let screenId = null; // the question on screen, once the presenter has stepped to one
let screenPinned = null; // the pinned question last seen: pinning another one puts it on screen

/** The questions present mode steps through: the pinned one first, then live ones by votes. */
function screenQueue() {
  const pinned = store.sorted((q) => q.pinned && (q.status === "live" || q.status === "answered"));
  return [...pinned, ...store.sorted((q) => q.status === "live" && !q.pinned)];
}

function renderScreen() {
  if ($("screen").hidden) return;
  $("screen").classList.toggle("with-poll", renderScreenPoll($("screen-poll"), polls.store));
  const queue = screenQueue();
  const pinned = queue.find((q) => q.pinned)?.id ?? null;
  if (pinned !== screenPinned) {
    screenPinned = pinned;
    if (pinned) screenId = pinned;
  }
  let index = queue.findIndex((q) => q.id === screenId);
  if (index < 0) index = 0;
  const question = queue[index] ?? null;
  screenId = question?.id ?? null;
  const answer = $("screen-answer");
  $("screen-prev").disabled = index <= 0;
  $("screen-next").disabled = index >= queue.length - 1;
  $("screen-position").textContent = queue.length ? `${index + 1} of ${queue.length}` : "";
  if (!question) {
    $("screen-tag").textContent = meeting?.title ?? "";
    $("screen-text").textContent = "Ask your questions!";
    $("screen-meta").textContent = "";
    answer.hidden = true;
  } else {
    $("screen-tag").textContent = question.pinned ? "Pinned question" : index === 0 ? "Top question" : `Question ${index + 1}`;
    $("screen-text").textContent = question.text;
    const who = question.anonymous ? "Anonymous" : (question.author?.display_name ?? "Anonymous");
    $("screen-meta").textContent = `${who} · ${votesLabel(question.votes)}`;
    answer.hidden = !(question.status === "answered" && question.answer);
    answer.textContent = answer.hidden ? "" : `Answer: ${question.answer}`;
  }
  const top = store.sorted((q) => q.status === "live" && q.id !== screenId).slice(0, 5);
  $("screen-top").replaceChildren(
    ...top.map((q) => el("li", {}, el("span", { class: "screen-top-votes" }, String(q.votes)), el("span", {}, q.text))),
  );
  fitText();
}

/** The largest font size (within bounds) at which the question and its answer fit their box. */
function fitText() {
  const box = $("screen-fit");
  const text = $("screen-text");
  let low = 16;
  let high = Math.max(24, Math.round(Math.min(window.innerWidth / 12, window.innerHeight / 6)));
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    text.style.fontSize = `${middle}px`;
    if (box.scrollHeight > box.clientHeight + 1 || text.scrollWidth > text.clientWidth + 1) high = middle;
    else low = middle;
  }
  text.style.fontSize = `${low}px`;
}

function step(by) {
  const queue = screenQueue();
  const index = Math.max(0, queue.findIndex((q) => q.id === screenId));
  const next = queue[Math.min(queue.length - 1, Math.max(0, index + by))];
  if (next) screenId = next.id;
  renderScreen();
}

function openScreen() {
  const screen = $("screen");
  screen.hidden = false;
  document.body.classList.add("presenting");
  screenId = null;
  screenPinned = null;
  if (meeting) {
    $("screen-qr").src = `/m/${encodeURIComponent(meeting.join_code)}/qr.svg`;
    $("screen-url").textContent = `${location.host}/m/${meeting.join_code}`;
  }
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
$("screen-prev").addEventListener("click", () => step(-1));
$("screen-next").addEventListener("click", () => step(1));
document.addEventListener("keydown", (event) => {
  if ($("screen").hidden) return;
  if (event.key === "Escape") closeScreen();
  else if (event.key === "ArrowRight" || event.key === "PageDown") (event.preventDefault(), step(1));
  else if (event.key === "ArrowLeft" || event.key === "PageUp") (event.preventDefault(), step(-1));
});
document.addEventListener("fullscreenchange", () => {
  if (!document.fullscreenElement && !$("screen").hidden) closeScreen();
});
window.addEventListener("resize", () => {
  if (!$("screen").hidden) fitText();
});

// --- start -----------------------------------------------------------------------------------

if (!meetingId) showProblem("This address names no meeting.");
else if (session.signedIn) openMeeting();
else showSignIn();
