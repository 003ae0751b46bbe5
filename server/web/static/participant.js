/**
 * The participant page (`/` and `/m/<join_code>`): join as a guest, then ask and upvote live.
 *
 * REST: `POST /api/v1/meetings/join` once. Everything else over `/ws` through RoomcastClient:
 * the meeting room `meeting:<id>` (questions, votes, presence, meeting changes) and the personal
 * room `user:<id>` (what became of your own questions, notifications).
 *
 * Kept in this tab's sessionStorage: the guest token per join code (a reload resumes without
 * asking again), your own questions with what became of them (so a reload still shows a dismissed
 * one and its reason), and which questions you upvoted (used until the snapshot carries `mine`).
 *
 * What became of your question is told from whichever of the two rooms says it first: the meeting
 * room (approved, answered) or your own room (everything, dismissals with their reason too). The
 * two rooms are not ordered against each other, so each outcome is told once per question, keyed
 * by what changed, whatever order the events arrive in.
 */

import { api, ApiError, inWords } from "./api.js";
import { compareQuestions, el, KeyedList, QuestionStore, shortTime, votesLabel } from "./qa.js";
import { ParticipantPolls } from "./polls.js";
import { ReactionBar, ReactionLayer } from "./reactions.js";
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
  loadList(key) {
    try {
      const list = JSON.parse(sessionStorage.getItem(key) ?? "[]");
      return Array.isArray(list) ? list : [];
    } catch {
      return [];
    }
  },
  saveList(key, list) {
    sessionStorage.setItem(key, JSON.stringify(list));
  },
};

// --- joining ---------------------------------------------------------------------------------

const directCode = codeFromPath();

function showJoinForm(message = "") {
  $("meeting-view").hidden = true;
  $("join-view").hidden = false;
  $("leave").hidden = true;
  $("you-are").hidden = true;
  $("sign-in-link").hidden = false;
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
const mine = new QuestionStore(); // your own questions, dismissed ones too
const told = new Map(); // question id -> the outcome last told for it
let mineKey = null;
let voted = new Set();
let votesKey = null;
let view = "all"; // "all" | "mine"
let order = "popular"; // "popular" | "recent"
const voting = new Set(); // question ids with a vote frame in flight
let questionList = null;
let snapshotSeen = false;
let polls = null; // the poll card (polls.js)
const reactionLayer = new ReactionLayer();

function enterMeeting(saved) {
  guest = saved;
  room = `meeting:${guest.meeting_id}`;
  $("join-view").hidden = true;
  $("meeting-view").hidden = false;
  $("leave").hidden = false;
  $("sign-in-link").hidden = true;
  $("meeting-title").textContent = "Connecting…";
  $("questions").replaceChildren(); // a second join in this tab starts from a clean list
  store.reset([]);
  mine.reset([]);
  told.clear();
  snapshotSeen = false;
  me = null;
  questionList = new KeyedList($("questions"), { create: createItem, update: updateItem });

  client = new RoomcastClient({ url: sameOriginWsUrl(), token: () => guest.guest_token });
  polls = new ParticipantPolls({ root: $("poll-card"), announcer: $("announcer"), client, room });
  new ReactionBar({ root: $("reaction-bar"), client, room });
  window.roomcast = { client, store, polls }; // for the console and the browser tests
  client.addEventListener("state", (e) => showConnection(e.detail.state));
  client.addEventListener("welcome", (e) => {
    const first = me === null;
    me = e.detail.welcome.user;
    if (first) {
      votesKey = `roomcast.votes.${guest.meeting_id}.${me.id}`;
      voted = storage.loadSet(votesKey);
      mineKey = `roomcast.mine.${guest.meeting_id}.${me.id}`;
      for (const question of storage.loadList(mineKey)) {
        mine.upsert(question);
        told.set(question.id, outcomeKey(question)); // told before the reload
      }
      $("you-are").textContent = `You are ${me.display_name}`;
      $("you-are").hidden = false;
      client.subscribe(`user:${me.id}`, polls.wrap({ event: onUserEvent }));
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
  const roomHandlers = {
    snapshot: onSnapshot,
    event: onMeetingEvent,
    error: (err) => {
      storage.forgetGuest(guest.join_code);
      client.stop();
      showJoinForm(
        err.code === "forbidden" ? "You may not join this meeting." : "This meeting is no longer available.",
      );
    },
  };
  client.subscribe(room, reactionLayer.wrap(polls.wrap(roomHandlers)));
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
  for (const question of snapshot.questions ?? []) if (isMine(question)) learn(question, { tell: false });
  if (Array.isArray(snapshot.mine?.votes)) {
    voted = new Set(snapshot.mine.votes); // the server's word, from any tab or device
    storage.saveSet(votesKey, voted);
  }
  showPresence(snapshot.presence?.count);
  snapshotSeen = true;
  render();
}

function onMeetingEvent(event) {
  const outcome = store.apply(event);
  if ((event.type === "question.created" || event.type === "question.updated") && mine.get(event.question.id)) {
    learn(event.question); // approved or answered: the meeting room may say so before your own room
  }
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

/** Your own questions, as your personal room tells it: approved, answered, dismissed (why), merged, deleted. */
function onUserEvent(event) {
  if (event.type === "question.created" || event.type === "question.updated") {
    const question = event.question;
    if (question.meeting_id !== guest.meeting_id) return;
    learn(question);
    if (question.status === "dismissed") store.remove(question.id);
    else store.upsert(question);
    render();
  } else if (event.type === "question.removed") {
    const held = mine.get(event.question_id);
    if (held) {
      mine.remove(held.id); // not by you (deleting your own forgets it first): a moderator deleted it
      told.delete(held.id);
      saveMine();
      notice(`A moderator deleted your question “${excerpt(held.text)}”.`);
    }
    store.remove(event.question_id);
    render();
  } else if (event.type === "notification") {
    onNotification(event.notification);
  }
}

/** The notifications about your questions say the same as the room events; whichever comes first is told. */
function onNotification(notification) {
  const data = notification?.data ?? {};
  if (data.meeting_id && data.meeting_id !== guest.meeting_id) return;
  const held = data.question_id ? mine.get(data.question_id) : null;
  if (notification.kind === "question.dismissed") {
    if (held) {
      learn({ ...held, status: "dismissed", dismiss_reason: data.reason ?? null, merged_into: data.merged_into ?? null });
      store.remove(held.id);
      render();
    } else notice(`${notification.title}: ${notification.body}`);
  } else if (notification.kind === "question.answered") {
    if (held) {
      learn({ ...held, status: "answered", answer: held.answer ?? notification.body ?? null });
      render();
    } else notice(`${notification.title}: ${notification.body}`);
  }
}

/** What a question's outcome is, as far as its asker is concerned. */
function outcomeKey(question) {
  return [question.status, question.dismiss_reason ?? "", question.merged_into ?? "", question.answer ?? ""].join("|");
}

/** Keep your own question up to date and tell you, once, what became of it. */
function learn(question, { tell = true } = {}) {
  const before = mine.get(question.id);
  if (mine.upsert(question) === null) return; // older than what we hold
  const now = mine.get(question.id);
  saveMine();
  const key = outcomeKey(now);
  const previous = told.get(now.id);
  if (previous === key) return;
  told.set(now.id, key);
  if (!tell) return;
  const was = previous?.split("|")[0] ?? before?.status;
  const message = outcomeWords(now, was);
  if (message) notice(message);
}

function outcomeWords(question, was) {
  const quoted = `“${excerpt(question.text)}”`;
  switch (question.status) {
    case "live":
      if (was === "pending") return `Your question ${quoted} was approved and is now live.`;
      if (was === "answered" || was === "dismissed") return `Your question ${quoted} was reopened.`;
      return "";
    case "answered":
      return question.answer
        ? `Your question ${quoted} was answered: ${question.answer}`
        : `Your question ${quoted} was answered.`;
    case "dismissed":
      if (question.merged_into) {
        const target = store.get(question.merged_into) ?? mine.get(question.merged_into);
        const into = target ? `“${excerpt(target.text)}”` : "a similar question";
        return `Your question ${quoted} was merged into ${into}; your vote now counts there.`;
      }
      return `A moderator dismissed your question ${quoted}${reasonWords(question.dismiss_reason, ": ")}.`;
    default:
      return "";
  }
}

function reasonWords(reason, prefix = "") {
  const words = {
    duplicate: "it was already asked",
    off_topic: "it is off topic",
    inappropriate: "it is not appropriate here",
    answered: "it has already been answered",
  }[reason];
  return words ? prefix + words : "";
}

function excerpt(text, limit = 80) {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

function saveMine() {
  if (mineKey) storage.saveList(mineKey, mine.sorted());
}

function showMeeting(next) {
  if (!next) return;
  meeting = next;
  $("meeting-title").textContent = meeting.title;
  $("meeting-description").textContent = meeting.description ?? "";
  $("meeting-description").hidden = !meeting.description;
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
  return Boolean(me && ((question.author && question.author.id === me.id) || mine.get(question.id)));
}

function visible(question) {
  return PUBLIC.has(question.status) || (question.status === "pending" && isMine(question));
}

/** Newest first, the pinned question still on top. */
function byRecent(a, b) {
  if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
  return Date.parse(b.created_at) - Date.parse(a.created_at) || (a.id < b.id ? 1 : -1);
}

function render() {
  if (!snapshotSeen) return;
  const own = mine.sorted().map((q) => (q.status === "dismissed" ? q : (store.get(q.id) ?? q)));
  let questions = view === "mine" ? own : store.sorted(visible);
  if (order === "recent") questions = [...questions].sort(byRecent);
  else if (view === "mine") questions = [...questions].sort(compareQuestions);
  questionList.render(questions);
  const empty = $("no-questions");
  empty.hidden = questions.length > 0;
  empty.textContent = view === "mine" ? "You have not asked anything yet." : "No questions yet. Be the first to ask.";
  const shown = store.sorted(visible).length;
  $("question-count").textContent = shown ? `(${shown})` : "";
  $("mine-count").textContent = own.length ? String(own.length) : "";
}

function setView(next) {
  view = next;
  $("view-all").setAttribute("aria-pressed", String(view === "all"));
  $("view-mine").setAttribute("aria-pressed", String(view === "mine"));
  render();
}

function setOrder(next) {
  order = next;
  $("sort-popular").setAttribute("aria-pressed", String(order === "popular"));
  $("sort-recent").setAttribute("aria-pressed", String(order === "recent"));
  render();
}

$("view-all").addEventListener("click", () => setView("all"));
$("view-mine").addEventListener("click", () => setView("mine"));
$("sort-popular").addEventListener("click", () => setOrder("popular"));
$("sort-recent").addEventListener("click", () => setOrder("recent"));

// --- one question ----------------------------------------------------------------------------

function createItem(question) {
  const id = question.id;
  const upvote = el(
    "button",
    { class: "upvote", type: "button", "aria-pressed": "false", onclick: () => toggleVote(id) },
    el("span", { class: "arrow", "aria-hidden": "true" }),
    "Upvote",
  );
  const editId = `edit-${id}`;
  return el(
    "li",
    { class: "question", dataset: { id } },
    el(
      "div",
      { class: "q-body" },
      el("p", { class: "q-tags" }),
      el("p", { class: "q-text" }),
      el(
        "form",
        { class: "q-edit", hidden: true, onsubmit: (e) => (e.preventDefault(), saveEdit(id)) },
        el("label", { for: editId, class: "visually-hidden" }, "New wording"),
        el("textarea", { id: editId, class: "q-edit-text", rows: "2" }),
        el(
          "span",
          { class: "q-edit-actions" },
          el("button", { class: "button small primary act-save", type: "submit" }, "Save"),
          el("button", { class: "button small quiet act-cancel", type: "button", onclick: () => closeEdit(id) }, "Cancel"),
        ),
      ),
      el("p", { class: "q-meta" }, el("span", { class: "q-author" }), " · ", el("time", { class: "q-time" })),
      el("div", { class: "q-answer" }),
      el(
        "div",
        { class: "q-own" },
        el("button", { class: "button small quiet act-edit", type: "button", onclick: () => openEdit(id) }, "Edit"),
        el("button", { class: "button small quiet danger act-delete", type: "button", onclick: () => askDelete(id) }, "Delete"),
        el(
          "span",
          { class: "q-confirm", hidden: true },
          "Delete this question? ",
          el("button", { class: "button small danger act-confirm", type: "button", onclick: () => deleteOwn(id) }, "Yes, delete"),
          el("button", { class: "button small quiet act-keep", type: "button", onclick: () => keepOwn(id) }, "Keep it"),
        ),
      ),
      el("p", { class: "q-error error", role: "alert" }),
    ),
    el("div", { class: "q-side" }, el("span", { class: "q-votes" }), upvote),
  );
}

function updateItem(li, question) {
  const own = isMine(question);
  const { status } = question;
  li.classList.toggle("pinned", question.pinned);
  li.classList.toggle("answered", status === "answered");
  li.classList.toggle("pending", status === "pending");
  li.classList.toggle("dismissed", status === "dismissed");
  li.classList.toggle("mine", own);

  const tags = [];
  if (question.pinned && status !== "dismissed") tags.push(el("span", { class: "tag tag-pinned" }, "Pinned"));
  if (status === "pending") tags.push(el("span", { class: "tag tag-pending" }, "Awaiting approval"));
  if (status === "answered") tags.push(el("span", { class: "tag tag-answered" }, "Answered"));
  if (own && status === "live" && view === "mine") tags.push(el("span", { class: "tag tag-live" }, "Live"));
  if (status === "dismissed") {
    const target = question.merged_into ? (store.get(question.merged_into) ?? mine.get(question.merged_into)) : null;
    const why = question.merged_into
      ? `Merged into “${excerpt(target?.text ?? "a similar question", 60)}”`
      : `Dismissed${reasonWords(question.dismiss_reason, ": ")}`;
    tags.push(el("span", { class: "tag tag-dismissed" }, why));
  }
  li.querySelector(".q-tags").replaceChildren(...tags);
  li.querySelector(".q-tags").hidden = tags.length === 0;

  li.querySelector(".q-text").textContent = question.text;
  const author = question.anonymous ? "Anonymous" : (question.author?.display_name ?? "Anonymous");
  li.querySelector(".q-author").textContent = own ? `${author} (you)` : author;
  const time = li.querySelector(".q-time");
  time.dateTime = question.created_at;
  time.textContent = shortTime(question.created_at);

  const answer = li.querySelector(".q-answer");
  if (status === "answered" && question.answer) {
    answer.replaceChildren(el("span", { class: "answer-label" }, "Answer: "), question.answer);
    answer.hidden = false;
  } else {
    answer.replaceChildren();
    answer.hidden = true;
  }

  const label = excerpt(question.text, 120);
  li.querySelector(".q-votes").textContent = votesLabel(question.votes);
  const upvote = li.querySelector(".upvote");
  upvote.setAttribute("aria-pressed", String(voted.has(question.id)));
  upvote.setAttribute("aria-label", `Upvote: ${label}`);
  upvote.disabled = status === "pending" || status === "dismissed";
  li.querySelector(".q-side").hidden = status === "dismissed";

  // Your own question: edit while it is not answered (SPEC: author, while not answered), delete while it shows.
  const editable = own && (status === "pending" || status === "live");
  const editing = !li.querySelector(".q-edit").hidden;
  li.querySelector(".q-own").hidden = !own || status === "dismissed";
  li.querySelector(".act-edit").hidden = !editable || editing;
  li.querySelector(".act-edit").setAttribute("aria-label", `Edit: ${label}`);
  li.querySelector(".act-delete").setAttribute("aria-label", `Delete: ${label}`);
  li.querySelector(".act-confirm").setAttribute("aria-label", `Yes, delete: ${label}`);
  if (editing && !editable) closeEdit(question.id);
  li.querySelector(".q-text").hidden = editing && editable;
}

function itemOf(id) {
  return questionList?.nodes.get(id) ?? null;
}

function openEdit(id) {
  const li = itemOf(id);
  const question = mine.get(id) ?? store.get(id);
  if (!li || !question) return;
  li.querySelector(".q-edit").hidden = false;
  li.querySelector(".q-text").hidden = true;
  li.querySelector(".act-edit").hidden = true;
  const box = li.querySelector(".q-edit-text");
  box.value = question.text;
  box.focus();
}

function closeEdit(id) {
  const li = itemOf(id);
  if (!li) return;
  li.querySelector(".q-edit").hidden = true;
  li.querySelector(".q-text").hidden = false;
  render();
}

async function saveEdit(id) {
  const li = itemOf(id);
  const text = li?.querySelector(".q-edit-text").value.trim() ?? "";
  const error = li?.querySelector(".q-error");
  if (error) error.textContent = "";
  if (!text) {
    if (error) error.textContent = "Write your question first.";
    return;
  }
  try {
    const reply = await client.request({ type: "edit", room, question_id: id, text });
    learn(reply.question, { tell: false });
    store.upsert(reply.question);
    closeEdit(id);
    notice("Your question was changed.");
  } catch (err) {
    const current = itemOf(id)?.querySelector(".q-error");
    if (current) current.textContent = frameErrorWords(err, "edit");
  }
}

function askDelete(id) {
  const li = itemOf(id);
  if (!li) return;
  li.querySelector(".q-confirm").hidden = false;
  li.querySelector(".act-delete").hidden = true;
  li.querySelector(".act-keep").focus();
}

function keepOwn(id) {
  const li = itemOf(id);
  if (!li) return;
  li.querySelector(".q-confirm").hidden = true;
  li.querySelector(".act-delete").hidden = false;
  li.querySelector(".act-delete").focus();
}

async function deleteOwn(id) {
  try {
    await client.request({ type: "delete", room, question_id: id });
    mine.remove(id);
    told.delete(id);
    saveMine();
    store.remove(id);
    render();
    notice("Your question was deleted.");
    $("question").focus();
  } catch (err) {
    const current = itemOf(id)?.querySelector(".q-error");
    if (current) current.textContent = frameErrorWords(err, "delete");
  }
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
    if (what === "ask") return `You are asking too fast. Try again ${inWords(err.retryAfterS)}.`;
    if (what === "vote") return `Too many votes at once. Try again ${inWords(err.retryAfterS)}.`;
    return `Too fast. Try again ${inWords(err.retryAfterS)}.`;
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
    learn(reply.question, { tell: false });
    store.upsert(reply.question);
    if (view === "mine" || visible(reply.question)) render();
    showNew(reply.question.id);
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

/** Bring your new question into view (it may sort far down the list) and mark it for a moment. */
function showNew(id) {
  const li = itemOf(id);
  if (!li) return;
  li.scrollIntoView({ block: "nearest", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
  li.classList.add("just-asked");
  setTimeout(() => li.classList.remove("just-asked"), 2500);
}

$("leave").addEventListener("click", () => {
  client?.stop();
  if (guest) storage.forgetGuest(guest.join_code);
  location.assign("/");
});

// --- start -----------------------------------------------------------------------------------

const resumable = directCode ? storage.loadGuest(directCode) : null;
if (resumable) enterMeeting(resumable);
else showJoinForm();
