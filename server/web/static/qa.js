/**
 * The Q&A state both pages keep: questions by id, in the snapshot's order, fed by snapshots and
 * room events (SPEC section 4, "Q&A"). Plus two small DOM helpers the pages share.
 */

/** The snapshot's order: pinned first, then by votes, then oldest first (id breaks ties). */
export function compareQuestions(a, b) {
  if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
  if (a.votes !== b.votes) return b.votes - a.votes;
  const byAge = Date.parse(a.created_at) - Date.parse(b.created_at);
  if (byAge) return byAge;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Questions by id. One user may get the same change twice (their own questions reach both the
 * meeting room and their `user:<id>` room), and the two rooms are not ordered against each other,
 * so an update older than the one held (by `updated_at`) is ignored.
 */
export class QuestionStore {
  constructor() {
    this.byId = new Map();
  }

  /** Replace everything (a snapshot). */
  reset(questions) {
    this.byId = new Map(questions.map((q) => [q.id, { ...q }]));
  }

  /** Add or update; returns "created", "updated" or null when the update was stale. */
  upsert(question) {
    const held = this.byId.get(question.id);
    if (!held) {
      this.byId.set(question.id, { ...question });
      return "created";
    }
    const age = Date.parse(question.updated_at) - Date.parse(held.updated_at);
    if (age < 0) return null;
    // The meeting room hides an anonymous author even from the author; keep what we knew.
    const author = question.author ?? (question.anonymous ? held.author : null);
    // The same change seen twice (a reply and an event, or two rooms): the held vote count may be
    // newer, since `question.votes` events do not touch updated_at.
    const votes = age === 0 ? held.votes : question.votes;
    this.byId.set(question.id, { ...held, ...question, author, votes, votesStamp: held.votesStamp });
    return "updated";
  }

  /** A new vote count; `votesStamp` counts them, so a late reply can tell it is stale. */
  setVotes(id, votes) {
    const held = this.byId.get(id);
    if (held) {
      held.votes = votes;
      held.votesStamp = (held.votesStamp ?? 0) + 1;
    }
  }

  remove(id) {
    return this.byId.delete(id);
  }

  /**
   * Apply one room event about questions: `question.created`, `.updated`, `.removed`, `.votes`.
   * Returns what `upsert` returns for created/updated ("created", "updated" or null when stale),
   * "changed" for removals and vote counts, or undefined for an event that is not about questions.
   */
  apply(event) {
    switch (event.type) {
      case "question.created":
      case "question.updated":
        return this.upsert(event.question);
      case "question.removed":
        this.remove(event.question_id);
        return "changed";
      case "question.votes":
        this.setVotes(event.question_id, event.votes);
        return "changed";
      default:
        return undefined;
    }
  }

  get(id) {
    return this.byId.get(id);
  }

  /** The questions that pass `filter`, in the snapshot's order. */
  sorted(filter = () => true) {
    return [...this.byId.values()].filter(filter).sort(compareQuestions);
  }
}

/** `el("li", {class: "x", dataset: {id}}, child, "text")`: a small element builder. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/**
 * Keep a `<ul>` in step with a list of items without rebuilding it: each item's `<li>` is made
 * once (`create(item)`), refreshed in place (`update(li, item)`) and moved only when its place
 * changed, so a focused button keeps its focus while the list reorders around it.
 */
export class KeyedList {
  constructor(list, { key = (item) => item.id, create, update }) {
    this.list = list;
    this.key = key;
    this.create = create;
    this.update = update;
    this.nodes = new Map();
  }

  render(items) {
    const focused = document.activeElement;
    const wanted = new Set();
    let cursor = this.list.firstElementChild;
    for (const item of items) {
      const id = this.key(item);
      wanted.add(id);
      let node = this.nodes.get(id);
      if (!node) {
        node = this.create(item);
        this.nodes.set(id, node);
      }
      this.update(node, item);
      if (node === cursor) {
        cursor = cursor.nextElementSibling;
      } else {
        this.list.insertBefore(node, cursor);
      }
    }
    for (const [id, node] of this.nodes) {
      if (!wanted.has(id)) {
        node.remove();
        this.nodes.delete(id);
      }
    }
    if (focused && focused !== document.activeElement && focused.isConnected) focused.focus({ preventScroll: true });
  }
}

/** "3 votes", "1 vote". */
export function votesLabel(votes) {
  return `${votes} vote${votes === 1 ? "" : "s"}`;
}

/** "14:05" for today, else "24 Nov, 14:05", in the reader's locale. */
export function shortTime(iso) {
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}
