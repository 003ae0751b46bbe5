/**
 * Live polls on the pages (SPEC section 4, "Polls and reactions"): the participant's poll card,
 * the presenter's poll panel and the open poll's results in present mode.
 *
 * The pages hook these in with little code: each component offers `wrap(handlers)`, which takes a
 * room's `{snapshot, event}` handlers (as given to `RoomcastClient.subscribe`) and returns handlers
 * that also feed the polls (`snapshot.polls`, `snapshot.mine.responses`, `poll.*` events) before
 * calling the page's own. The participant's personal room (`poll.response` from their other tabs)
 * goes through `wrap` too.
 */

import { el, KeyedList } from "./qa.js";
import { ProtocolError } from "./roomcast.js";

const KIND_WORDS = { choice: "Multiple choice", rating: "Rating", word_cloud: "Word cloud" };
const STATUS_WORDS = { draft: "Draft", open: "Open", closed: "Closed" };
const SHOW_WORDS = { live: "Results live", closed: "Results when closed", never: "Results to presenters only" };

/** The polls one room can see, and the viewer's own answers, kept in step with `poll.*` events. */
export class PollStore {
  constructor() {
    this.byId = new Map();
    this.responses = new Map();
  }

  reset(polls = [], responses = null) {
    this.byId = new Map(polls.map((poll) => [poll.id, poll]));
    if (responses) this.responses = new Map(Object.entries(responses));
  }

  /** Apply one event; returns true if it was about polls. */
  apply(event) {
    switch (event.type) {
      case "poll.opened":
      case "poll.closed":
      case "poll.updated": {
        const before = this.byId.get(event.poll.id);
        this.byId.set(event.poll.id, event.poll);
        if (before && before.status === "closed" && event.poll.results?.respondents === 0) {
          this.responses.delete(event.poll.id); // reset: the answers are gone
        }
        return true;
      }
      case "poll.removed":
        this.byId.delete(event.poll_id);
        this.responses.delete(event.poll_id);
        return true;
      case "poll.results": {
        const poll = this.byId.get(event.poll_id);
        if (poll) this.byId.set(poll.id, { ...poll, results: event.results });
        return true;
      }
      case "poll.response":
        this.responses.set(event.poll_id, event.response);
        return true;
      default:
        return false;
    }
  }

  get(id) {
    return this.byId.get(id);
  }

  sorted() {
    return [...this.byId.values()].sort((a, b) => a.position - b.position || a.created_at.localeCompare(b.created_at));
  }

  get open() {
    return this.sorted().find((poll) => poll.status === "open") ?? null;
  }
}

/** Set style properties through the CSSOM: the pages' CSP (`style-src 'self'`) refuses style attributes. */
export function styled(node, properties) {
  for (const [name, value] of Object.entries(properties)) node.style.setProperty(name, value);
  return node;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function share(count, total) {
  return total ? Math.round((count / total) * 100) : 0;
}

/** The results of a poll as bars (choice), a histogram and average (rating) or a word cloud. */
export function resultsView(poll, { large = false } = {}) {
  const results = poll.results;
  const box = el("div", { class: `poll-results${large ? " large" : ""}`, dataset: { kind: poll.kind } });
  if (!results) {
    box.append(el("p", { class: "muted" }, poll.show_results === "closed" ? "Results appear when the poll closes." : "Results are not shown."));
    return box;
  }
  const respondents = results.respondents ?? 0;
  if (!respondents && poll.kind !== "choice") {
    box.append(el("p", { class: "poll-respondents muted" }, "No answers yet."));
    return box;
  }
  if (poll.kind === "choice") {
    const most = Math.max(0, ...Object.values(results.counts ?? {}));
    const bars = el("ol", { class: "poll-bars" });
    for (const option of poll.options) {
      const count = results.counts?.[option.id] ?? 0;
      const percent = share(count, respondents);
      bars.append(
        el(
          "li",
          { class: `poll-bar${count && count === most ? " leading" : ""}`, dataset: { option: option.id } },
          el("span", { class: "bar-label" }, option.text),
          el("span", { class: "bar-track", "aria-hidden": "true" }, styled(el("span", { class: "bar-fill" }), { width: `${percent}%` })),
          el("span", { class: "bar-value" }, `${count} · ${percent}%`),
        ),
      );
    }
    box.append(bars);
  } else if (poll.kind === "rating") {
    const counts = results.counts ?? {};
    const most = Math.max(1, ...Object.values(counts));
    const histogram = el("ol", { class: "poll-histogram", "aria-label": "Answers by rating" });
    for (let value = 1; value <= poll.scale_max; value += 1) {
      const count = counts[String(value)] ?? 0;
      histogram.append(
        el(
          "li",
          { class: "histogram-step", "aria-label": `${value}: ${plural(count, "answer")}` },
          el("span", { class: "histogram-count", "aria-hidden": "true" }, String(count)),
          styled(el("span", { class: "histogram-bar", "aria-hidden": "true" }), { height: `${Math.round((count / most) * 100)}%` }),
          el("span", { class: "histogram-value", "aria-hidden": "true" }, String(value)),
        ),
      );
    }
    const average = results.average === null || results.average === undefined ? "–" : results.average.toFixed(1);
    box.append(el("p", { class: "poll-average" }, el("strong", {}, average), ` average out of ${poll.scale_max}`), histogram);
  } else {
    const words = results.words ?? [];
    const most = Math.max(1, ...words.map((word) => word.count));
    const cloud = el("ul", { class: "word-cloud", "aria-label": "Words, most frequent first" });
    words.forEach((word, index) => {
      const weight = word.count / most;
      const item = el("li", { class: "cloud-word" }, word.text, el("span", { class: "visually-hidden" }, `, ${word.count}`));
      cloud.append(styled(item, { "--weight": weight.toFixed(3), "--hue": String((index * 47) % 360) }));
    });
    if (!words.length) cloud.append(el("li", { class: "muted cloud-empty" }, "No words to show."));
    box.append(cloud);
  }
  box.append(el("p", { class: "poll-respondents muted" }, plural(respondents, "answer")));
  return box;
}

function errorWords(err) {
  if (err instanceof ProtocolError) {
    if (err.code === "conflict") return "This poll is not taking answers right now.";
    if (err.code === "rate_limited") return "Too fast. Wait a moment and try again.";
    if (err.code === "unavailable" || err.code === "timeout") return "The server did not answer. Try again.";
    return err.message;
  }
  return err?.message ?? "Something went wrong. Please try again.";
}

// --- the participant's poll card ----------------------------------------------------------------

/**
 * The open poll with a control for its kind (radio buttons, checkboxes, a rating scale, up to three
 * words), the participant's own answer kept pressed (from `mine` after a reload, and from their
 * other tabs), results as `show_results` allows, and an `aria-live` announcement of a new poll.
 * With no poll open, the most recently closed poll whose results may be shown stays on the card.
 */
export class ParticipantPolls {
  constructor({ root, announcer, client, room }) {
    this.root = root;
    this.announcer = announcer;
    this.client = client;
    this.room = room;
    this.store = new PollStore();
    this.shownId = null;
    this.shownStatus = null;
    this.busy = false;
    this.message = "";
  }

  wrap(handlers = {}) {
    return {
      ...handlers,
      snapshot: (snapshot, joined) => {
        if (Array.isArray(snapshot?.polls)) this.store.reset(snapshot.polls, snapshot.mine?.responses ?? {});
        this.render(true);
        handlers.snapshot?.(snapshot, joined);
      },
      event: (event) => {
        if (this.store.apply(event)) {
          if (event.type === "poll.opened") this.announcer.textContent = `New poll: ${event.poll.title}`;
          this.render(event.type !== "poll.results");
          return;
        }
        handlers.event?.(event);
      },
    };
  }

  /** The poll on the card: the open one, else the last closed one whose results may be shown. */
  current() {
    const open = this.store.open;
    if (open) return open;
    const closed = this.store
      .sorted()
      .filter((poll) => poll.status === "closed" && poll.results)
      .sort((a, b) => (b.closed_at ?? "").localeCompare(a.closed_at ?? ""));
    return closed[0] ?? null;
  }

  render(rebuild = false) {
    const poll = this.current();
    this.root.hidden = !poll;
    if (!poll) {
      this.shownId = null;
      this.root.replaceChildren();
      return;
    }
    const changed = poll.id !== this.shownId || poll.status !== this.shownStatus;
    if (changed || rebuild || !this.root.querySelector(".poll-form")) {
      if (changed) this.message = "";
      this.shownId = poll.id;
      this.shownStatus = poll.status;
      this.build(poll);
    } else {
      this.root.querySelector(".poll-results-slot").replaceChildren(resultsView(poll));
    }
  }

  build(poll) {
    const response = this.store.responses.get(poll.id) ?? null;
    const open = poll.status === "open";
    const titleId = `poll-title-${poll.id}`;
    const kicker = open ? "Live poll" : "Poll closed";
    const form = el("form", { class: "poll-form", novalidate: true, "aria-labelledby": titleId });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit(poll, form);
    });
    form.append(this.control(poll, response, open));
    if (open) {
      form.append(
        el(
          "div",
          { class: "poll-submit" },
          el("button", { class: "button primary", type: "submit" }, response ? "Change answer" : "Send answer"),
          el("span", { class: "poll-hint muted" }, poll.anonymous ? "Anonymous" : "Your name is shown to the presenters"),
        ),
      );
    }
    const status = el("p", { class: "poll-status", role: "status" }, this.message || this.statusWords(poll, response));
    this.root.replaceChildren(
      el("p", { class: `poll-kicker${open ? " live" : ""}` }, kicker),
      el("h2", { id: titleId, class: "poll-title" }, poll.title),
      form,
      status,
      el("p", { class: "poll-error error", role: "alert" }),
      el("div", { class: "poll-results-slot" }, resultsView(poll)),
    );
    this.root.dataset.pollId = poll.id;
    this.root.dataset.status = poll.status;
  }

  statusWords(poll, response) {
    if (!response) return poll.status === "open" ? "" : "You did not answer this poll.";
    return poll.status === "open" ? "Your answer is in. You can change it while the poll is open." : "Your answer is in.";
  }

  control(poll, response, open) {
    const name = `poll-${poll.id}`;
    if (poll.kind === "choice") {
      const chosen = new Set(response?.option_ids ?? []);
      const type = poll.multiple ? "checkbox" : "radio";
      const group = el("fieldset", { class: "poll-options" }, el("legend", { class: "visually-hidden" }, poll.title));
      if (poll.multiple) group.append(el("p", { class: "muted small-text" }, "Choose one or more."));
      poll.options.forEach((option, index) => {
        const id = `${name}-${index}`;
        group.append(
          el(
            "div",
            { class: "poll-option" },
            el("input", { id, type, name, value: option.id, checked: chosen.has(option.id), disabled: !open }),
            el("label", { for: id }, option.text),
          ),
        );
      });
      return group;
    }
    if (poll.kind === "rating") {
      const group = el(
        "fieldset",
        { class: "poll-scale" },
        el("legend", { class: "visually-hidden" }, `${poll.title} (1 to ${poll.scale_max})`),
      );
      for (let value = 1; value <= poll.scale_max; value += 1) {
        const id = `${name}-${value}`;
        group.append(
          el(
            "span",
            { class: "scale-step" },
            el("input", { id, type: "radio", name, value: String(value), checked: response?.value === value, disabled: !open }),
            el("label", { for: id }, String(value)),
          ),
        );
      }
      return group;
    }
    const words = response?.words ?? [];
    const group = el("fieldset", { class: "poll-words" }, el("legend", { class: "visually-hidden" }, poll.title));
    for (let index = 0; index < 3; index += 1) {
      const id = `${name}-${index}`;
      group.append(
        el(
          "div",
          { class: "field" },
          el("label", { for: id, class: index ? "muted small-text" : "" }, index ? `Word ${index + 1} (optional)` : "A word or a short phrase"),
          el("input", { id, type: "text", name, maxlength: "25", autocomplete: "off", value: words[index] ?? "", disabled: !open }),
        ),
      );
    }
    return group;
  }

  answerOf(poll, form) {
    const inputs = [...form.querySelectorAll(`[name="poll-${poll.id}"]`)];
    if (poll.kind === "choice") {
      const ids = inputs.filter((input) => input.checked).map((input) => input.value);
      return ids.length ? { option_ids: ids } : null;
    }
    if (poll.kind === "rating") {
      const picked = inputs.find((input) => input.checked);
      return picked ? { value: Number(picked.value) } : null;
    }
    const words = inputs.map((input) => input.value.trim()).filter(Boolean);
    return words.length ? { words } : null;
  }

  async submit(poll, form) {
    if (this.busy) return;
    const error = this.root.querySelector(".poll-error");
    const answer = this.answerOf(poll, form);
    if (!answer) {
      error.textContent = poll.kind === "word_cloud" ? "Write at least one word." : "Choose an answer first.";
      return;
    }
    error.textContent = "";
    const button = form.querySelector("button[type=submit]");
    this.busy = true;
    button?.setAttribute("aria-busy", "true");
    try {
      const reply = await this.client.request({ type: "respond", room: this.room, poll_id: poll.id, ...answer });
      this.store.responses.set(poll.id, reply.response);
      this.message = "Thanks, your answer is in. You can change it while the poll is open.";
      this.build(this.store.get(poll.id) ?? poll);
      this.root.querySelector("button[type=submit]")?.focus();
    } catch (err) {
      error.textContent = errorWords(err);
    } finally {
      this.busy = false;
      button?.removeAttribute("aria-busy");
    }
  }
}

// --- the presenter's poll panel -------------------------------------------------------------------

/**
 * Every poll of the meeting (drafts too): create and edit them (until first opened), reorder,
 * open, close, reset and delete them, with live results. Setup goes over REST
 * (`/meetings/{id}/polls`), running them over the socket (`poll_action`).
 */
export class PresenterPolls {
  constructor({ root, session, client, meetingId, room, onChange = () => {} }) {
    this.root = root;
    this.session = session;
    this.client = client;
    this.meetingId = meetingId;
    this.room = room;
    this.onChange = onChange;
    this.store = new PollStore();
    this.editing = null; // a poll id, "new", or null
    this.list = null;
    this.setup();
  }

  setClient(client) {
    this.client = client;
  }

  wrap(handlers = {}) {
    return {
      ...handlers,
      snapshot: (snapshot, joined) => {
        if (Array.isArray(snapshot?.polls)) this.store.reset(snapshot.polls);
        this.render();
        handlers.snapshot?.(snapshot, joined);
      },
      event: (event) => {
        if (this.store.apply(event)) {
          this.render();
          return;
        }
        handlers.event?.(event);
      },
    };
  }

  setup() {
    const heading = el("h2", { id: "polls-heading", class: "list-heading" }, "Polls ", el("span", { class: "count poll-count" }));
    const newButton = el("button", { class: "button small primary", type: "button", id: "new-poll" }, "New poll");
    newButton.addEventListener("click", () => this.edit("new"));
    const exportButton = el("button", { class: "button small", type: "button" }, "Download answers (CSV)");
    exportButton.addEventListener("click", () => this.download(exportButton));
    this.editor = el("div", { class: "poll-editor-slot" });
    this.listNode = el("ol", { class: "poll-list", "aria-labelledby": "polls-heading" });
    this.empty = el("p", { class: "empty muted" }, "No polls yet. Prepare one before the session, open it when the time comes.");
    this.notice = el("p", { class: "error poll-panel-error", role: "alert" });
    this.root.replaceChildren(
      el("div", { class: "polls-head" }, heading, el("span", { class: "head-actions" }, exportButton, newButton)),
      this.notice,
      this.editor,
      this.listNode,
      this.empty,
    );
    this.list = new KeyedList(this.listNode, { create: (poll) => this.createItem(poll), update: (li, poll) => this.updateItem(li, poll) });
  }

  render() {
    const polls = this.store.sorted();
    this.list.render(polls);
    this.empty.hidden = polls.length > 0;
    this.root.querySelector(".poll-count").textContent = String(polls.length);
    this.onChange();
  }

  createItem(poll) {
    const id = poll.id;
    const button = (cls, text, onclick) => el("button", { class: `button small ${cls}`, type: "button", onclick }, text);
    const showId = `show-${id}`;
    const select = el(
      "select",
      { id: showId, class: "show-select" },
      ...Object.entries(SHOW_WORDS).map(([value, words]) => el("option", { value }, words)),
    );
    select.addEventListener("change", () => this.patch(id, { show_results: select.value }));
    return el(
      "li",
      { class: "poll-item", dataset: { id } },
      el(
        "div",
        { class: "poll-item-head" },
        el("h3", { class: "poll-item-title" }),
        el("p", { class: "q-tags" }, el("span", { class: "tag poll-kind" }), el("span", { class: "tag poll-state" })),
      ),
      el(
        "div",
        { class: "q-actions" },
        button("primary act-open", "Open", () => this.act(id, "open")),
        button("act-close", "Close", () => this.act(id, "close")),
        button("act-reset", "Reset answers", () => this.act(id, "reset")),
        button("act-edit", "Edit", () => this.edit(id)),
        button("quiet act-up", "Move up", () => this.move(id, -1)),
        button("quiet act-down", "Move down", () => this.move(id, 1)),
        el("span", { class: "show-field" }, el("label", { for: showId }, "Participants see"), select),
        button("danger act-delete", "Delete", () => this.remove(id)),
      ),
      el("p", { class: "q-error error", role: "alert" }),
      el("div", { class: "poll-results-slot" }),
    );
  }

  updateItem(li, poll) {
    const polls = this.store.sorted();
    const index = polls.findIndex((p) => p.id === poll.id);
    li.dataset.status = poll.status;
    li.querySelector(".poll-item-title").textContent = poll.title;
    li.querySelector(".poll-kind").textContent = KIND_WORDS[poll.kind] + (poll.multiple ? ", several answers" : "");
    const state = li.querySelector(".poll-state");
    state.textContent = STATUS_WORDS[poll.status];
    state.className = `tag poll-state state-${poll.status}`;
    const visible = {
      "act-open": poll.status !== "open",
      "act-close": poll.status === "open",
      "act-reset": poll.status === "closed",
      "act-edit": !poll.opened_at,
      "act-up": index > 0,
      "act-down": index < polls.length - 1,
    };
    for (const [cls, on] of Object.entries(visible)) li.querySelector(`.${cls}`).hidden = !on;
    li.querySelector(".act-open").textContent = poll.status === "closed" ? "Reopen" : "Open";
    li.querySelector(".show-select").value = poll.show_results;
    li.querySelector(".poll-results-slot").replaceChildren(resultsView(poll));
  }

  itemError(id, message) {
    const target = this.list.nodes.get(id)?.querySelector(".q-error");
    if (target) target.textContent = message;
    else this.notice.textContent = message;
  }

  async act(id, action) {
    if (!this.client) return;
    this.itemError(id, "");
    if (action === "reset" && !window.confirm("Delete every answer to this poll?")) return;
    try {
      const reply = await this.client.request({ type: "poll_action", room: this.room, poll_id: id, action });
      this.store.byId.set(reply.poll.id, reply.poll);
      this.render();
    } catch (err) {
      this.itemError(id, errorWords(err));
    }
  }

  /** `polls.csv`, fetched with the bearer token and saved from a blob (a plain link carries no header). */
  async download(button) {
    button.setAttribute("aria-busy", "true");
    this.notice.textContent = "";
    try {
      const response = await this.session.fetchRaw(`/meetings/${encodeURIComponent(this.meetingId)}/polls.csv`);
      const url = URL.createObjectURL(await response.blob());
      const save = el("a", { href: url, download: "roomcast-polls.csv", hidden: true });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      this.notice.textContent = `The export failed: ${err.message}`;
    } finally {
      button.removeAttribute("aria-busy");
    }
  }

  async rest(path, options) {
    return this.session.call(`/meetings/${encodeURIComponent(this.meetingId)}/polls${path}`, options);
  }

  async patch(id, body) {
    this.itemError(id, "");
    try {
      const poll = await this.rest(`/${id}`, { method: "PATCH", body });
      this.store.byId.set(poll.id, poll);
      this.render();
    } catch (err) {
      this.itemError(id, err.message);
    }
  }

  async move(id, step) {
    const polls = this.store.sorted();
    const index = polls.findIndex((p) => p.id === id);
    const target = Math.max(0, Math.min(polls.length - 1, index + step));
    const node = this.list.nodes.get(id);
    await this.patch(id, { position: target });
    const refreshed = await this.rest("", {}).catch(() => null); // the others moved too
    if (refreshed) {
      this.store.reset(refreshed.items);
      this.render();
    }
    const button = node?.querySelector(step < 0 ? ".act-up" : ".act-down");
    (button && !button.hidden ? button : node?.querySelector(".act-edit:not([hidden]), .act-delete"))?.focus();
  }

  async remove(id) {
    const poll = this.store.get(id);
    if (!poll || !window.confirm(`Delete the poll “${poll.title}” and its answers?`)) return;
    try {
      await this.rest(`/${id}`, { method: "DELETE" });
      this.store.byId.delete(id);
      this.render();
      this.root.querySelector("#new-poll").focus();
    } catch (err) {
      this.itemError(id, err.message);
    }
  }

  edit(id) {
    this.editing = id;
    const poll = id === "new" ? null : this.store.get(id);
    const field = (label, input, hint = null) =>
      el("div", { class: "field" }, el("label", { for: input.id }, label), input, hint);
    const kind = el(
      "select",
      { id: "poll-kind", name: "kind" },
      ...Object.entries(KIND_WORDS).map(([value, words]) => el("option", { value }, words)),
    );
    kind.value = poll?.kind ?? "choice";
    const title = el("input", { id: "poll-title-input", name: "title", type: "text", maxlength: "200", value: poll?.title ?? "", autocomplete: "off" });
    const options = el("textarea", { id: "poll-options", name: "options", rows: "4" });
    options.value = (poll?.options ?? []).map((option) => option.text).join("\n");
    const multiple = el("input", { id: "poll-multiple", type: "checkbox", checked: Boolean(poll?.multiple) });
    const scale = el("input", { id: "poll-scale", type: "number", min: "2", max: "10", value: String(poll?.scale_max ?? 5) });
    const anonymous = el("input", { id: "poll-anonymous", type: "checkbox", checked: poll ? poll.anonymous : true });
    const show = el("select", { id: "poll-show" }, ...Object.entries(SHOW_WORDS).map(([value, words]) => el("option", { value }, words)));
    show.value = poll?.show_results ?? "live";
    const error = el("p", { class: "error", role: "alert" });
    const optionsField = field("Options, one per line (2 to 12)", options);
    const multipleField = el("span", { class: "check" }, multiple, el("label", { for: "poll-multiple" }, "Several answers allowed"));
    const scaleField = field("Scale from 1 to", scale);
    const sync = () => {
      optionsField.hidden = kind.value !== "choice";
      multipleField.hidden = kind.value !== "choice";
      scaleField.hidden = kind.value !== "rating";
    };
    kind.addEventListener("change", sync);
    sync();
    const form = el(
      "form",
      { class: "poll-editor card", novalidate: true, "aria-label": poll ? "Edit poll" : "New poll" },
      el("h3", {}, poll ? "Edit poll" : "New poll"),
      el("div", { class: "editor-row" }, field("Kind", kind), field("Question", title)),
      optionsField,
      el("div", { class: "editor-row" }, multipleField, scaleField, el("span", { class: "check" }, anonymous, el("label", { for: "poll-anonymous" }, "Anonymous answers")), field("Participants see", show)),
      error,
      el(
        "div",
        { class: "q-actions" },
        el("button", { class: "button primary", type: "submit" }, poll ? "Save poll" : "Create poll"),
        el("button", { class: "button quiet", type: "button", onclick: () => this.closeEditor() }, "Cancel"),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { kind: kind.value, title: title.value, anonymous: anonymous.checked, show_results: show.value };
      if (kind.value === "choice") {
        body.options = options.value.split("\n").map((line) => line.trim()).filter(Boolean);
        body.multiple = multiple.checked;
      } else {
        body.multiple = false; // options and several answers belong to choice polls only
      }
      if (kind.value === "rating") body.scale_max = Number(scale.value);
      error.textContent = "";
      try {
        const saved = poll
          ? await this.rest(`/${poll.id}`, { method: "PATCH", body })
          : await this.rest("", { method: "POST", body });
        this.store.byId.set(saved.id, saved);
        this.closeEditor();
        this.render();
        this.list.nodes.get(saved.id)?.querySelector(".act-open")?.focus();
      } catch (err) {
        const detail = err.details?.[0];
        error.textContent = detail?.message ? `${detail.key ? `${detail.key}: ` : ""}${detail.message}` : err.message;
      }
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.closeEditor();
    });
    this.editor.replaceChildren(form);
    title.focus();
  }

  closeEditor() {
    const was = this.editing;
    this.editing = null;
    this.editor.replaceChildren();
    const back = was && was !== "new" ? this.list.nodes.get(was)?.querySelector(".act-edit") : null;
    (back && !back.hidden ? back : this.root.querySelector("#new-poll")).focus();
  }
}

/** Present mode: the open poll's live results, full size, beside the pinned question. */
export function renderScreenPoll(root, store) {
  const poll = store.open;
  root.hidden = !poll;
  if (!poll) {
    root.replaceChildren();
    return false;
  }
  const results = poll.results ? resultsView(poll, { large: true }) : el("p", { class: "screen-meta" }, "Answer now!");
  root.replaceChildren(el("p", { class: "screen-tag" }, "Live poll"), el("p", { class: "screen-poll-title" }, poll.title), results);
  return true;
}
