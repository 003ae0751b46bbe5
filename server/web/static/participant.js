/**
 * The participant page (`/` and `/m/<join_code>`): join as a guest, then ask and upvote live.
 *
 * REST: `POST /api/v1/meetings/join` once. Everything else over `/ws` through RoomcastClient:
 * the meeting room `meeting:<id>` (questions, votes, presence, meeting changes) and the personal
 * room `user:<id>` (what became of your own questions, notifications).
 *
 * Kept in this tab's sessionStorage: the guest token per join code (a reload resumes without
 * asking again) and which questions you upvoted (the protocol's Question has no "voted by me"
 * field, so the page remembers its own votes).
 */

import { api, ApiError, inWords } from "./api.js";
import { el, KeyedList, QuestionStore, shortTime, votesLabel } from "./qa.js";
import { ProtocolError, randomId, RoomcastClient, sameOriginWsUrl } from "./roomcast.js";

const $ = (id) => document.getElementById(id);
const PUBLIC = new Set(["live", "answered"]);
const STATUS_WORDS = { scheduled: "Not started yet", live: "Live", ended: "Ended", cancelled: "Cancelled" };

/** What a person typed, as the server stores it: upper case, no spaces or dashes. */
function normaliseCode(code) {
  return code.trim().toUpperCase().replace(/[\s-]/g, "");
}

function codeFromPath() {
  const match = location.pathname.match(/^\/m\/([^/]+)\/?$/);
  return match ? normaliseCode(decodeURIComponent(match[1])) : null;
}

function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

function characters(text) {
  return [...text].length; // code points, as the server counts
}

const storage = {
  guestKey: (code) => `roomcast.guest.${code}`,
  loadGuest(code) {
    try {
      const saved = JSON.parse(sessionStorage.getItem(this.guestKey(code)) ?? "null");
      if (saved && (!saved.expires_at || saved.expires_at > Date.now() + 60_000)) return saved;
    } catch {
      // unreadable: join again
    }
    return null;
  },
  saveGuest(guest) {
    sessionStorage.setItem(this.guestKey(guest.join_code), JSON.stringify(guest));
  },
  forgetGuest(code) {
    sessionStorage.removeItem(this.guestKey(code));
  },
  loadSet(key) {
    try {
      return new Set(JSON.parse(sessionStorage.getItem(key) ?? "[]"));
    } catch {
      return new Set();
    }
  },
  saveSet(key, set) {
    sessionStorage.setItem(key, JSON.stringify([...set]));
  },
};

// --- joining ---------------------------------------------------------------------------------

const directCode = codeFromPath();

function showJoinForm(message = "") {
  $("meeting-view").hidden = true;
  $("join-view").hidden = false;
  $("leave").hidden = true;
  if (directCode) {
    $("join-code-field").hidden = true;
    $("join-code").value = directCode;
    $("join-heading").textContent = "Join the meeting";
    $("join-intro").textContent = `Meeting code ${directCode}. Tell the room who you are.`;
  }
  const name = localStorage.getItem("roomcast.name");
  if (name && !$("display-name").value) $("display-name").value = name;
  $("join-error").textContent = message;
  document.title = "Join a meeting · roomcast";
}

function joinErrorMessage(err, code) {
  if (!(err instanceof ApiError)) return "Something went wrong. Please try again.";
  if (err.status === 404) return `No meeting has the code ${code}. Check the code and try again.`;
  if (err.status === 429) return `Too many people are joining from this network right now. Try again ${inWords(err.retryAfterS)}.`;
  if (err.status === 422 || err.status === 400) return capitalise(err.message);
  return err.message;
}

$("join-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const codeInput = $("join-code");
  const nameInput = $("display-name");
  const code = directCode ?? normaliseCode(codeInput.value);
  const name = nameInput.value.trim();
  codeInput.removeAttribute("aria-invalid");
  nameInput.removeAttribute("aria-invalid");
  if (!code) {
    codeInput.setAttribute("aria-invalid", "true");
    $("join-error").textContent = "Enter the join code shown in the room.";
    codeInput.focus();
    return;
  }
  if (!name) {
    nameInput.setAttribute("aria-invalid", "true");
    $("join-error").textContent = "Enter your name, so the room knows who is asking.";
    nameInput.focus();
    return;
  }
  const button = event.submitter ?? event.target.querySelector("button[type=submit]");
  button.setAttribute("aria-busy", "true");
  $("join-error").textContent = "";
  try {
    const joined = await api("/meetings/join", { method: "POST", body: { join_code: code, display_name: name } });
    localStorage.setItem("roomcast.name", name);
    const guest = {
      join_code: code,
      meeting_id: joined.meeting_id,
      guest_token: joined.guest_token,
      display_name: name,
      expires_at: joined.expires_in ? Date.now() + joined.expires_in * 1000 : null,
    };
    storage.saveGuest(guest);
    if (!directCode) history.replaceState(null, "", `/m/${encodeURIComponent(code)}`);
    enterMeeting(guest);
  } catch (err) {
    const message = joinErrorMessage(err, code);
    if (err instanceof ApiError && err.status === 404 && !directCode) codeInput.setAttribute("aria-invalid", "true");
    $("join-error").textContent = message;
  } finally {
    button.removeAttribute("aria-busy");
  }
});

// --- the meeting -----------------------------------------------------------------------------

let client = null;
let guest = null;
let me = null; // welcome.user
let meeting = null;
let room = null;
const store = new QuestionStore();
let voted = new Set();
let votesKey = null;
const voting = new Set(); // question ids with a vote frame in flight
let questionList = null;
let snapshotSeen = false;

function enterMeeting(saved) {
  guest = saved;
  room = `meeting:${guest.meeting_id}`;
  $("join-view").hidden = true;
  $("meeting-view").hidden = false;
  $("leave").hidden = false;
  $("meeting-title").textContent = "Connecting…";
  $("questions").replaceChildren(); // a second join in this tab starts from a clean list
  store.reset([]);
  snapshotSeen = false;
  me = null;
  questionList = new KeyedList($("questions"), { create: createItem, update: updateItem });

  client = new RoomcastClient({ url: sameOriginWsUrl(), token: () => guest.guest_token });
  window.roomcast = { client, store }; // for the console and the browser tests
  client.addEventListener("state", (e) => showConnection(e.detail.state));
  client.addEventListener("welcome", (e) => {
    const first = me === null;
    me = e.detail.welcome.user;
    if (first) {
      votesKey = `roomcast.votes.${guest.meeting_id}.${me.id}`;
      voted = storage.loadSet(votesKey);
      client.subscribe(`user:${me.id}`, { event: onUserEvent });
    }
  });
  client.addEventListener("stopped", (e) => {
    const { reason } = e.detail;
    if (reason === "unauthorized") {
      storage.forgetGuest(guest.join_code);
      showJoinForm("Your session has ended. Join again to continue.");
    } else if (reason === "removed") {
      storage.forgetGuest(guest.join_code);
      showJoinForm("This meeting is no longer available to you: it was deleted, or you were removed from it.");
    }
  });
  client.subscribe(room, {
    snapshot: onSnapshot,
    event: onMeetingEvent,
    error: (err) => {
      storage.forgetGuest(guest.join_code);
      client.stop();
      showJoinForm(
        err.code === "forbidden" ? "You may not join this meeting." : "This meeting is no longer available.",
      );
    },
  });
  client.start();
}

function showConnection(state) {
  const status = $("connection");
  const words = { connecting: "Connecting…", reconnecting: "Reconnecting…", stopped: "Disconnected" };
  status.textContent = words[state] ?? "";
  status.dataset.state = state;
  document.body.dataset.connection = state;
}

function onSnapshot(snapshot) {
  showMeeting(snapshot.meeting);
  store.reset(snapshot.questions ?? []);
  showPresence(snapshot.presence?.count);
  snapshotSeen = true;
  render();
}

function onMeetingEvent(event) {
  const outcome = store.apply(event);
  if (outcome === "created" && event.type === "question.created" && !isMine(event.question)) announce(event.question);
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

/** Your own questions, as your personal room tells it: approved, dismissed, answered, deleted. */
function onUserEvent(event) {
  if (event.type === "question.created" || event.type === "question.updated") {
    const question = event.question;
    if (question.meeting_id !== guest.meeting_id) return;
    if (question.status === "dismissed") {
      if (store.get(question.id)) {
        store.remove(question.id);
        const why = question.merged_into
          ? "it was merged with a similar question, which now has your vote"
          : reasonWords(question.dismiss_reason);
        notice(`A moderator dismissed your question${why ? `: ${why}` : ""}.`);
      }
    } else {
      const before = store.get(question.id)?.status;
      store.upsert(question);
      if (before === "pending" && question.status === "live") notice("Your question was approved.");
    }
    render();
  } else if (event.type === "question.removed") {
    if (store.remove(event.question_id)) render();
  } else if (event.type === "notification" && event.notification?.kind === "question.answered") {
    notice(event.notification.title || "Your question was answered.");
  }
}

function reasonWords(reason) {
  return {
    duplicate: "it duplicates another question",
    off_topic: "it is off topic",
    inappropriate: "it is not appropriate here",
    answered: "it has already been answered",
    other: "",
  }[reason];
}

function showMeeting(next) {
  if (!next) return;
  meeting = next;
  $("meeting-title").textContent = meeting.title;
  document.title = `${meeting.title} · roomcast`;
  const status = $("meeting-status");
  status.hidden = meeting.status === "live";
  status.textContent = STATUS_WORDS[meeting.status] ?? meeting.status;
  status.dataset.status = meeting.status;
  const closed = meeting.status === "ended" || meeting.status === "cancelled";
  $("question").disabled = closed;
  $("ask").disabled = closed;
  $("anonymous").disabled = closed;
  if (closed) notice(`This meeting has ${meeting.status === "ended" ? "ended" : "been cancelled"}; questions are closed.`);
  const settings = meeting.settings ?? {};
  $("anonymous-field").hidden = settings.anonymous_questions === false;
  if (settings.anonymous_questions === false) $("anonymous").checked = false;
  updateCounter();
}

function showPresence(count) {
  if (typeof count !== "number") return;
  $("presence").textContent = `${count} ${count === 1 ? "person" : "people"} here`;
}

function notice(text) {
  $("meeting-notice").textContent = text;
}

function announce(question) {
  const who = question.author?.display_name ?? "Anonymous";
  $("announcer").textContent = `New question from ${who}: ${question.text}`;
}

function isMine(question) {
  return Boolean(me && question.author && question.author.id === me.id);
}

function visible(question) {
  return PUBLIC.has(question.status) || (question.status === "pending" && isMine(question));
}

function render() {
  if (!snapshotSeen) return;
  const questions = store.sorted(visible);
  questionList.render(questions);
  $("no-questions").hidden = questions.length > 0;
  $("question-count").textContent = questions.length ? `(${questions.length})` : "";
}

// --- one question ----------------------------------------------------------------------------

function createItem(question) {
  const upvote = el(
    "button",
    { class: "upvote", type: "button", "aria-pressed": "false", onclick: () => toggleVote(question.id) },
    el("span", { class: "arrow", "aria-hidden": "true" }),
    "Upvote",
  );
  return el(
    "li",
    { class: "question", dataset: { id: question.id } },
    el(
      "div",
      { class: "q-body" },
      el("p", { class: "q-tags" }),
      el("p", { class: "q-text" }),
      el("p", { class: "q-meta" }, el("span", { class: "q-author" }), " · ", el("time", { class: "q-time" })),
      el("div", { class: "q-answer" }),
      el("p", { class: "q-error error", role: "alert" }),
    ),
    el("div", { class: "q-side" }, el("span", { class: "q-votes" }), upvote),
  );
}

function updateItem(li, question) {
  const mine = isMine(question);
  li.classList.toggle("pinned", question.pinned);
  li.classList.toggle("answered", question.status === "answered");
  li.classList.toggle("pending", question.status === "pending");
  li.classList.toggle("mine", mine);

  const tags = [];
  if (question.pinned) tags.push(el("span", { class: "tag tag-pinned" }, "Pinned"));
  if (question.status === "pending") tags.push(el("span", { class: "tag tag-pending" }, "Awaiting approval"));
  if (question.status === "answered") tags.push(el("span", { class: "tag tag-answered" }, "Answered"));
  li.querySelector(".q-tags").replaceChildren(...tags);
  li.querySelector(".q-tags").hidden = tags.length === 0;

  li.querySelector(".q-text").textContent = question.text;
  const author = question.anonymous ? "Anonymous" : (question.author?.display_name ?? "Anonymous");
  li.querySelector(".q-author").textContent = mine ? `${author} (you)` : author;
  const time = li.querySelector(".q-time");
  time.dateTime = question.created_at;
  time.textContent = shortTime(question.created_at);

  const answer = li.querySelector(".q-answer");
  if (question.status === "answered" && question.answer) {
    answer.replaceChildren(el("span", { class: "answer-label" }, "Answer: "), question.answer);
    answer.hidden = false;
  } else {
    answer.replaceChildren();
    answer.hidden = true;
  }

  li.querySelector(".q-votes").textContent = votesLabel(question.votes);
  const upvote = li.querySelector(".upvote");
  upvote.setAttribute("aria-pressed", String(voted.has(question.id)));
  upvote.disabled = question.status === "pending";
}

async function toggleVote(questionId) {
  if (voting.has(questionId)) return;
  const question = store.get(questionId);
  if (!question) return;
  const up = !voted.has(questionId);
  const li = questionList.nodes.get(questionId);
  const error = li?.querySelector(".q-error");
  if (error) error.textContent = "";
  voting.add(questionId);
  const stamp = question.votesStamp;
  try {
    const reply = await client.request({ type: "vote", room, question_id: questionId, up });
    if (up) voted.add(questionId);
    else voted.delete(questionId);
    storage.saveSet(votesKey, voted);
    // Events may overtake the reply; a `question.votes` that came meanwhile is at least as new.
    if (store.get(questionId)?.votesStamp === stamp) store.setVotes(reply.question_id, reply.votes);
    render();
  } catch (err) {
    if (error) error.textContent = frameErrorWords(err, "vote");
  } finally {
    voting.delete(questionId);
  }
}

function frameErrorWords(err, what) {
  if (!(err instanceof ProtocolError)) return "Something went wrong. Please try again.";
  if (err.code === "rate_limited") {
    return what === "ask"
      ? `You are asking too fast. Try again ${inWords(err.retryAfterS)}.`
      : `Too many votes at once. Try again ${inWords(err.retryAfterS)}.`;
  }
  if (err.code === "unavailable" || err.code === "timeout") {
    return "The server did not answer in time. Check your connection and try again.";
  }
  return capitalise(err.message) + (/[.!?]$/.test(err.message) ? "" : ".");
}

// --- asking ----------------------------------------------------------------------------------

let asking = false;
let lastAsk = null; // {text, clientId}: an unanswered ask retried with the same client_id is not asked twice

function maxLength() {
  return meeting?.settings?.max_question_length ?? 300;
}

function updateCounter() {
  const count = characters($("question").value.trim());
  const counter = $("counter");
  counter.replaceChildren(`${count} / ${maxLength()}`, el("span", { class: "visually-hidden" }, " characters"));
  counter.classList.toggle("over", count > maxLength());
}

$("question").addEventListener("input", () => {
  updateCounter();
  if ($("ask-error").dataset.kind === "length" && characters($("question").value.trim()) <= maxLength()) {
    showAskError("");
  }
});

$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    $("ask-form").requestSubmit();
  }
});

function showAskError(text, kind = "") {
  $("ask-error").textContent = text;
  $("ask-error").dataset.kind = kind;
  if (text) $("question").setAttribute("aria-invalid", "true");
  else $("question").removeAttribute("aria-invalid");
}

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (asking || !client) return;
  const textarea = $("question");
  const text = textarea.value.trim();
  const length = characters(text);
  if (!text) {
    showAskError("Write your question first.");
    textarea.focus();
    return;
  }
  if (length > maxLength()) {
    showAskError(
      `Your question is too long: ${length} characters, and the limit is ${maxLength()}. Shorten it by ${length - maxLength()}.`,
      "length",
    );
    textarea.focus();
    return;
  }
  const anonymous = !$("anonymous-field").hidden && $("anonymous").checked;
  const clientId = lastAsk && lastAsk.text === text ? lastAsk.clientId : randomId();
  lastAsk = { text, clientId };
  asking = true;
  $("ask").setAttribute("aria-busy", "true");
  showAskError("");
  const frame = { type: "ask", room, text, anonymous, client_id: clientId };
  try {
    let reply;
    try {
      reply = await client.request(frame);
    } catch (err) {
      if (!(err instanceof ProtocolError && err.code === "unavailable")) throw err;
      reply = await client.request(frame); // same client_id: the server will not store it twice
    }
    lastAsk = null;
    textarea.value = "";
    updateCounter();
    store.upsert(reply.question);
    render();
    notice(
      reply.question.status === "pending"
        ? "Thanks! Your question is awaiting approval by a moderator."
        : "Thanks! Your question is live.",
    );
  } catch (err) {
    showAskError(frameErrorWords(err, "ask"), err.code ?? "");
  } finally {
    asking = false;
    $("ask").removeAttribute("aria-busy");
  }
});

$("leave").addEventListener("click", () => {
  client?.stop();
  if (guest) storage.forgetGuest(guest.join_code);
  location.assign("/");
});

// --- start -----------------------------------------------------------------------------------

const resumable = directCode ? storage.loadGuest(directCode) : null;
if (resumable) enterMeeting(resumable);
else showJoinForm();
