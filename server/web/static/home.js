/**
 * The owner's home page (`/` when signed in, `/signin`, `/signup`): sign up, sign in, sign out;
 * the meetings you own or present, with their status; create, edit, start, end, cancel and delete
 * meetings; presenters by email; API keys.
 *
 * Everything goes through the public REST API (SPEC section 3) with the user's tokens (`Session`
 * in api.js: refreshed ahead of expiry, shared by this browser's tabs, signed out when the server
 * revokes the login). Validation errors are shown next to the field the envelope's `details` name.
 */

import { ApiError, capitalise, clearFieldError, inWords, Session, setFieldError, showFieldErrors } from "./api.js";
import { el, shortTime } from "./qa.js";

const $ = (id) => document.getElementById(id);
const session = new Session();
const STATUS_WORDS = { scheduled: "Scheduled", live: "Live", ended: "Ended", cancelled: "Cancelled" };
const PAGE_SIZE = 50;

let meetings = [];
let nextCursor = null;
let editing = null; // the Meeting being edited, or null for a new one

// --- views -----------------------------------------------------------------------------------

const VIEWS = ["sign-in-view", "sign-up-view", "meetings-view", "editor-view"];

function show(view) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  const signedIn = session.signedIn;
  $("site-nav").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("signed-in-as").hidden = !signedIn;
  $("signed-in-as").textContent = signedIn ? `Signed in as ${session.user?.display_name ?? ""}` : "";
  const titles = {
    "sign-in-view": "Sign in",
    "sign-up-view": "Create an account",
    "meetings-view": "Your meetings",
    "editor-view": editing ? "Edit meeting" : "New meeting",
  };
  document.title = `${titles[view]} · roomcast`;
}

function notice(text) {
  $("home-notice").textContent = text;
}

function route() {
  const path = location.pathname;
  if (session.signedIn) {
    if (path !== "/") history.replaceState(null, "", "/");
    showMeetings();
  } else if (path === "/signup") {
    show("sign-up-view");
  } else {
    show("sign-in-view");
  }
}

session.addEventListener("change", (event) => {
  const { state, reason } = event.detail;
  if (state === "signed-out") {
    editing = null;
    if (reason === "revoked") notice("You were signed out: this login was ended. Sign in again.");
    show("sign-in-view");
  } else {
    route();
  }
});

function go(event, path) {
  event.preventDefault();
  history.pushState(null, "", path);
  notice("");
  route();
}

$("to-sign-up").addEventListener("click", (e) => go(e, "/signup"));
$("to-sign-in").addEventListener("click", (e) => go(e, "/signin"));
window.addEventListener("popstate", route);

// --- signing in and up -----------------------------------------------------------------------

function busy(button, on) {
  if (on) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  $("sign-in-error").textContent = "";
  if (!email || !password) {
    $("sign-in-error").textContent = "Enter your email and your password.";
    (email ? $("password") : $("email")).focus();
    return;
  }
  const button = event.submitter ?? event.target.querySelector("button[type=submit]");
  busy(button, true);
  try {
    await session.login(email, password);
    $("password").value = "";
    notice("");
  } catch (err) {
    let message = "Something went wrong. Please try again.";
    if (err instanceof ApiError) {
      if (err.status === 401) message = "Wrong email or password.";
      else if (err.status === 429) message = `Too many sign-in attempts. Try again ${inWords(err.retryAfterS)}.`;
      else message = capitalise(err.message);
    }
    $("sign-in-error").textContent = message;
  } finally {
    busy(button, false);
  }
});

$("sign-up-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = { display_name: $("new-name"), email: $("new-email"), password: $("new-password") };
  for (const input of Object.values(fields)) clearFieldError(input);
  $("sign-up-error").textContent = "";
  const name = fields.display_name.value.trim();
  const email = fields.email.value.trim();
  const password = fields.password.value;
  const button = event.submitter ?? event.target.querySelector("button[type=submit]");
  busy(button, true);
  try {
    await session.register(email, password, name);
    fields.password.value = "";
    notice(`Welcome, ${name}! Create your first meeting.`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      setFieldError(fields.email, "An account with this email already exists. Sign in instead.");
      fields.email.focus();
    } else if (err instanceof ApiError && err.status === 429) {
      $("sign-up-error").textContent = `Too many sign-ups from this network. Try again ${inWords(err.retryAfterS)}.`;
    } else {
      $("sign-up-error").textContent = showFieldErrors(err, fields).join(" ");
    }
  } finally {
    busy(button, false);
  }
});

$("sign-out").addEventListener("click", async () => {
  await session.logout();
  notice("You are signed out.");
  history.replaceState(null, "", "/signin");
  $("email").focus();
});

// --- the meetings ----------------------------------------------------------------------------

async function showMeetings() {
  editing = null;
  show("meetings-view");
  await Promise.all([loadMeetings(), loadKeys()]);
}

async function loadMeetings(more = false) {
  $("meetings-error").textContent = "";
  try {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (more && nextCursor) query.set("cursor", nextCursor);
    const page = await session.call(`/meetings?${query}`);
    meetings = more ? [...meetings, ...page.items] : page.items;
    nextCursor = page.next_cursor;
    renderMeetings();
  } catch (err) {
    if (session.signedIn) $("meetings-error").textContent = `Your meetings could not be loaded: ${err.message}`;
  }
}

$("more-meetings").addEventListener("click", () => loadMeetings(true));

function isOwner(meeting) {
  return meeting.owner_id === session.user?.id;
}

function when(meeting) {
  if (!meeting.starts_at) return "No time set";
  const start = shortTime(meeting.starts_at);
  return meeting.ends_at ? `${start} – ${shortTime(meeting.ends_at)}` : start;
}

function renderMeetings() {
  const list = $("meetings");
  list.replaceChildren(...meetings.map(meetingItem));
  $("no-meetings").hidden = meetings.length > 0;
  $("more-meetings").hidden = !nextCursor;
}

function meetingItem(meeting) {
  const owner = isOwner(meeting);
  const { status, title } = meeting;
  const action = (label, handler, cls = "") =>
    el("button", { class: `button small ${cls}`, type: "button", "aria-label": `${label}: ${title}`, onclick: handler }, label);
  const actions = [
    el("a", { class: "button small primary", href: `/present/${meeting.id}`, "aria-label": `Moderate: ${title}` }, "Moderate"),
    action("Edit", () => openEditor(meeting)),
  ];
  if (status === "scheduled") actions.push(action("Start", () => setStatus(meeting, "live")));
  if (status === "live") actions.push(action("End", () => setStatus(meeting, "ended")));
  if (status === "scheduled" || status === "live") actions.push(action("Cancel meeting", () => setStatus(meeting, "cancelled")));
  if (owner) actions.push(action("Delete", () => confirmDelete(meeting), "quiet danger"));

  const li = el(
    "li",
    { class: "meeting-card card", dataset: { id: meeting.id } },
    el(
      "div",
      { class: "meeting-main" },
      el("h2", { class: "meeting-name" }, title),
      el(
        "p",
        { class: "meeting-meta" },
        el("span", { class: "badge", dataset: { status } }, STATUS_WORDS[status] ?? status),
        el("span", {}, owner ? "Owner" : "Presenter"),
        el("span", {}, when(meeting)),
        el("span", {}, "Code ", el("strong", { class: "code" }, meeting.join_code)),
        meeting.settings?.moderation === "pre" ? el("span", {}, "Pre-moderated") : null,
      ),
      meeting.description ? el("p", { class: "muted small-text description" }, meeting.description) : null,
    ),
    el("div", { class: "meeting-actions" }, ...actions),
    el("p", { class: "error", role: "alert" }),
  );
  return li;
}

function cardOf(meeting) {
  return $("meetings").querySelector(`[data-id="${meeting.id}"]`);
}

async function setStatus(meeting, status) {
  const card = cardOf(meeting);
  const error = card?.querySelector(".error");
  if (error) error.textContent = "";
  try {
    const updated = await session.call(`/meetings/${meeting.id}`, { method: "PATCH", body: { status } });
    meetings = meetings.map((m) => (m.id === updated.id ? updated : m));
    renderMeetings();
    const words = { live: "is live", ended: "has ended", cancelled: "is cancelled" }[status];
    notice(`“${updated.title}” ${words}.`);
    cardOf(updated)?.querySelector("button")?.focus();
  } catch (err) {
    if (error) error.textContent = capitalise(err.message) + ".";
  }
}

function confirmDelete(meeting) {
  const card = cardOf(meeting);
  if (!card) return;
  const box = el(
    "div",
    { class: "confirm", role: "group", "aria-label": `Delete ${meeting.title}?` },
    el("p", {}, `Delete “${meeting.title}” and all its questions? This cannot be undone.`),
    el(
      "button",
      { class: "button small danger", type: "button", onclick: () => deleteMeeting(meeting) },
      "Yes, delete it",
    ),
    el("button", { class: "button small quiet", type: "button", onclick: () => (box.remove(), card.querySelector("button")?.focus()) }, "Keep it"),
  );
  card.querySelector(".confirm")?.remove();
  card.append(box);
  box.querySelector("button.quiet").focus();
}

async function deleteMeeting(meeting) {
  try {
    await session.call(`/meetings/${meeting.id}`, { method: "DELETE" });
    meetings = meetings.filter((m) => m.id !== meeting.id);
    renderMeetings();
    notice(`“${meeting.title}” was deleted.`);
    $("new-meeting").focus();
  } catch (err) {
    const error = cardOf(meeting)?.querySelector(".error");
    if (error) error.textContent = capitalise(err.message) + ".";
  }
}

// --- create and edit -------------------------------------------------------------------------

const form = {
  title: $("m-title"),
  description: $("m-description"),
  starts_at: $("m-starts"),
  ends_at: $("m-ends"),
  moderation: $("m-post"),
  anonymous_questions: $("m-anonymous"),
  max_question_length: $("m-max"),
  blocked_words: $("m-blocked"),
};

/** "2026-12-07T14:05" in local time, for a datetime-local input. */
function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function isoOf(value) {
  return value ? new Date(value).toISOString() : null;
}

function openEditor(meeting = null) {
  editing = meeting;
  const settings = meeting?.settings ?? {};
  $("editor-heading").textContent = meeting ? `Edit “${meeting.title}”` : "New meeting";
  $("save-meeting").textContent = meeting ? "Save changes" : "Create meeting";
  $("cancel-edit").textContent = meeting ? "Back to meetings" : "Cancel";
  form.title.value = meeting?.title ?? "";
  form.description.value = meeting?.description ?? "";
  form.starts_at.value = localInput(meeting?.starts_at);
  form.ends_at.value = localInput(meeting?.ends_at);
  $("m-pre").checked = settings.moderation === "pre";
  $("m-post").checked = settings.moderation !== "pre";
  form.anonymous_questions.checked = settings.anonymous_questions !== false;
  form.max_question_length.value = String(settings.max_question_length ?? 300);
  form.blocked_words.value = (settings.blocked_words ?? []).join(", ");
  for (const input of Object.values(form)) clearFieldError(input);
  $("meeting-form-error").textContent = "";
  $("presenters-box").hidden = !(meeting && isOwner(meeting));
  $("presenter-error").textContent = "";
  show("editor-view");
  if (meeting && isOwner(meeting)) loadPresenters();
  form.title.focus();
}

$("new-meeting").addEventListener("click", () => openEditor());
$("cancel-edit").addEventListener("click", () => {
  notice("");
  showMeetings();
});

function blockedWords(text) {
  return text
    .split(/[,\n]/)
    .map((word) => word.trim())
    .filter(Boolean);
}

$("meeting-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  for (const input of Object.values(form)) clearFieldError(input);
  $("meeting-form-error").textContent = "";
  const max = form.max_question_length.value.trim();
  const body = {
    title: form.title.value,
    description: form.description.value.trim() || null,
    starts_at: isoOf(form.starts_at.value),
    ends_at: isoOf(form.ends_at.value),
    settings: {
      moderation: $("m-pre").checked ? "pre" : "post",
      anonymous_questions: form.anonymous_questions.checked,
      max_question_length: /^\d+$/.test(max) ? Number(max) : max, // not a number: the server says so, by the field
      blocked_words: blockedWords(form.blocked_words.value),
    },
  };
  const button = event.submitter ?? $("save-meeting");
  busy(button, true);
  try {
    if (editing) {
      const updated = await session.call(`/meetings/${editing.id}`, { method: "PATCH", body });
      notice(`Saved “${updated.title}”.`);
      await showMeetings();
    } else {
      if (!body.description) delete body.description;
      const created = await session.call("/meetings", { method: "POST", body });
      meetings = [created, ...meetings];
      openEditor(created);
      notice(`Created “${created.title}”. Its join code is ${created.join_code}. Add presenters below, or go back to your meetings.`);
    }
  } catch (err) {
    $("meeting-form-error").textContent = showFieldErrors(err, form).join(" ");
  } finally {
    busy(button, false);
  }
});

// --- presenters ------------------------------------------------------------------------------

async function loadPresenters() {
  const meeting = editing;
  try {
    const { items } = await session.call(`/meetings/${meeting.id}/presenters`);
    if (editing !== meeting) return;
    renderPresenters(items);
  } catch (err) {
    $("presenter-error").textContent = `The presenters could not be loaded: ${err.message}`;
  }
}

function renderPresenters(items) {
  $("presenters").replaceChildren(
    ...items.map((p) =>
      el(
        "li",
        { class: "presenter" },
        el("span", {}, el("strong", {}, p.display_name), p.email ? ` · ${p.email}` : ""),
        el(
          "button",
          {
            class: "button small quiet danger",
            type: "button",
            "aria-label": `Remove presenter: ${p.display_name}`,
            onclick: () => removePresenter(p),
          },
          "Remove",
        ),
      ),
    ),
  );
  $("no-presenters").hidden = items.length > 0;
}

$("presenter-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("presenter-email");
  clearFieldError(input);
  $("presenter-error").textContent = "";
  const email = input.value.trim();
  if (!email) {
    setFieldError(input, "Enter the email of the presenter's roomcast account.");
    input.focus();
    return;
  }
  try {
    await session.call(`/meetings/${editing.id}/presenters`, { method: "POST", body: { email } });
    input.value = "";
    notice(`${email} is now a presenter.`);
    await loadPresenters();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) setFieldError(input, "No roomcast account has this email.");
    else if (err instanceof ApiError && err.status === 409) setFieldError(input, "That is you: the owner runs the meeting already.");
    else $("presenter-error").textContent = showFieldErrors(err, { email: input }).join(" ");
    input.focus();
  }
});

async function removePresenter(presenter) {
  try {
    await session.call(`/meetings/${editing.id}/presenters/${presenter.user_id}`, { method: "DELETE" });
    notice(`${presenter.display_name} is no longer a presenter.`);
    await loadPresenters();
    $("presenter-email").focus();
  } catch (err) {
    $("presenter-error").textContent = capitalise(err.message) + ".";
  }
}

// --- API keys --------------------------------------------------------------------------------

async function loadKeys() {
  try {
    renderKeys(await session.call("/api-keys"));
  } catch (err) {
    if (session.signedIn) $("key-error").textContent = `Your API keys could not be loaded: ${err.message}`;
  }
}

function renderKeys(keys) {
  $("keys").replaceChildren(
    ...keys.map((key) =>
      el(
        "li",
        { class: "key" },
        el(
          "span",
          {},
          el("strong", {}, key.name),
          ` · created ${shortTime(key.created_at)}`,
          ` · ${key.last_used_at ? `last used ${shortTime(key.last_used_at)}` : "never used"}`,
        ),
        el(
          "button",
          { class: "button small quiet danger", type: "button", "aria-label": `Revoke key: ${key.name}`, onclick: () => revokeKey(key) },
          "Revoke",
        ),
      ),
    ),
  );
  $("no-keys").hidden = keys.length > 0;
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("key-name");
  clearFieldError(input);
  $("key-error").textContent = "";
  const name = input.value.trim();
  if (!name) {
    setFieldError(input, "Name the key after what will use it.");
    input.focus();
    return;
  }
  try {
    const created = await session.call("/api-keys", { method: "POST", body: { name } });
    input.value = "";
    $("new-key").hidden = false;
    $("new-key-value").value = created.key;
    $("copy-status").textContent = "";
    $("copy-key").focus();
    await loadKeys();
  } catch (err) {
    $("key-error").textContent = showFieldErrors(err, { name: input }).join(" ");
  }
});

$("copy-key").addEventListener("click", async () => {
  const value = $("new-key-value").value;
  try {
    await navigator.clipboard.writeText(value);
  } catch {
    $("new-key-value").select(); // no clipboard access (plain http): select it for Ctrl+C
    document.execCommand?.("copy");
  }
  $("copy-status").textContent = "Copied.";
});

async function revokeKey(key) {
  try {
    await session.call(`/api-keys/${key.id}`, { method: "DELETE" });
    notice(`The key “${key.name}” was revoked; it stops working at once.`);
    $("new-key").hidden = true;
    $("new-key-value").value = "";
    await loadKeys();
    $("key-name").focus();
  } catch (err) {
    $("key-error").textContent = capitalise(err.message) + ".";
  }
}

// --- start -----------------------------------------------------------------------------------

route();
