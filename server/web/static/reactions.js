/**
 * Reactions (SPEC section 4): a bar of seven reaction buttons, and reactions floating up the screen.
 *
 * The server sums everyone's reactions over every process and sends one `reactions {counts}` event
 * a second at most; each screen floats up a few emoji for it (at most `MAX_FLOATING` per event, so
 * a room of 5,000 clapping stays readable). Under `prefers-reduced-motion` nothing moves: a small
 * tally fades in and out instead. Reactions are not stored, and at most 10 per 10 s are accepted
 * from one person: the bar rests for a moment when the server says `rate_limited`.
 */

import { styled } from "./polls.js";
import { el } from "./qa.js";
import { ProtocolError } from "./roomcast.js";

export const REACTIONS = [
  ["like", "👍", "Like"],
  ["love", "❤️", "Love"],
  ["laugh", "😂", "Laugh"],
  ["clap", "👏", "Clap"],
  ["celebrate", "🎉", "Celebrate"],
  ["wow", "😮", "Wow"],
  ["confused", "😕", "Confused"],
];
const EMOJI = Object.fromEntries(REACTIONS.map(([name, emoji]) => [name, emoji]));
const MAX_FLOATING = 24;

/** The layer reactions float up in: one per page, fixed over everything, hidden from screen readers. */
export class ReactionLayer {
  constructor(parent = document.body) {
    this.node = el("div", { class: "reaction-layer", "aria-hidden": "true" });
    this.tally = el("div", { class: "reaction-tally" });
    this.node.append(this.tally);
    parent.append(this.node);
    this.calm = window.matchMedia?.("(prefers-reduced-motion: reduce)");
  }

  /** Hook into a room's handlers: `reactions` events float up, everything else goes to the page. */
  wrap(handlers = {}) {
    return {
      ...handlers,
      event: (event) => {
        if (event.type === "reactions") {
          this.show(event.counts ?? {});
          return;
        }
        handlers.event?.(event);
      },
    };
  }

  show(counts) {
    const entries = Object.entries(counts).filter(([name, count]) => EMOJI[name] && count > 0);
    if (!entries.length) return;
    if (this.calm?.matches) {
      this.tally.replaceChildren(...entries.map(([name, count]) => el("span", { class: "tally-item" }, `${EMOJI[name]} ${count}`)));
      this.tally.classList.remove("shown");
      void this.tally.offsetWidth; // restart the fade
      this.tally.classList.add("shown");
      return;
    }
    const total = entries.reduce((sum, [, count]) => sum + count, 0);
    const scale = Math.min(1, MAX_FLOATING / total);
    for (const [name, count] of entries) {
      const shown = Math.max(1, Math.round(count * scale));
      for (let n = 0; n < shown; n += 1) {
        const bubble = styled(el("span", { class: "reaction-float" }, EMOJI[name]), {
          left: `${4 + Math.random() * 26}%`,
          "animation-delay": `${Math.round(Math.random() * 800)}ms`,
          "--drift": `${Math.round(Math.random() * 60 - 30)}px`,
        });
        bubble.addEventListener("animationend", () => bubble.remove());
        this.node.append(bubble);
      }
    }
  }
}

/** The bar of reaction buttons; `client` may be swapped later (`setClient`) when the page reconnects. */
export class ReactionBar {
  constructor({ root, client, room, layer = null }) {
    this.root = root;
    this.client = client;
    this.room = room;
    this.layer = layer;
    this.status = el("span", { class: "reaction-status muted small-text", role: "status" });
    const buttons = REACTIONS.map(([name, emoji, words]) =>
      el(
        "button",
        { class: "reaction-button", type: "button", "aria-label": words, title: words, dataset: { reaction: name }, onclick: () => this.send(name) },
        emoji,
      ),
    );
    root.replaceChildren(el("div", { class: "reaction-buttons", role: "group", "aria-label": "React" }, ...buttons), this.status);
    root.hidden = false;
  }

  setClient(client) {
    this.client = client;
  }

  async send(reaction) {
    if (!this.client) return;
    try {
      await this.client.request({ type: "react", room: this.room, reaction });
      this.status.textContent = "";
    } catch (err) {
      if (err instanceof ProtocolError && err.code === "rate_limited") {
        const wait = Math.max(1, err.retryAfterS ?? 5);
        this.status.textContent = "Easy there! Try again in a moment.";
        for (const button of this.root.querySelectorAll("button")) button.disabled = true;
        setTimeout(() => {
          for (const button of this.root.querySelectorAll("button")) button.disabled = false;
          this.status.textContent = "";
        }, wait * 1000);
      }
    }
  }
}
