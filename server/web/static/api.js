/**
 * REST helpers for the pages (SPEC sections 2 and 3): JSON in and out, the error envelope as an
 * ApiError, and a signed-in session that refreshes its access token when the server says 401.
 */

const API = "/api/v1";

/** A REST error: `status`, the envelope's `code` and `message`, and `retryAfterS` for 429. */
export class ApiError extends Error {
  constructor(status, code, message, { details = null, retryAfterS = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfterS = retryAfterS;
  }
}

/** Call `/api/v1<path>`; resolves with the parsed JSON body (null for 204), rejects with ApiError. */
export async function api(path, { method = "GET", body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached. Check your connection and try again.");
  }
  return readResponse(response);
}

async function readResponse(response) {
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.ok) return data;
  const error = data?.error ?? {};
  const retry = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  throw new ApiError(response.status, error.code ?? "internal", error.message ?? `HTTP ${response.status}`, {
    details: error.details ?? null,
    retryAfterS: Number.isFinite(retry) ? retry : null,
  });
}

/** "in 42 seconds", "in 3 minutes": for rate-limit messages. */
export function inWords(seconds) {
  const s = Math.max(1, Math.ceil(seconds ?? 1));
  if (s < 90) return `in ${s} second${s === 1 ? "" : "s"}`;
  const m = Math.ceil(s / 60);
  return `in ${m} minute${m === 1 ? "" : "s"}`;
}

/** Set while someone is signed in in this browser, so `/` serves the owner's home page instead of the join form. */
const SIGNED_IN_COOKIE = "roomcast_signed_in";

/** Refresh the access token this long before it expires. */
const REFRESH_AHEAD_MS = 60_000;

/**
 * A signed-in user's tokens, kept in localStorage and shared by this browser's tabs (the home
 * page, the presenter page, Account, Calendar).
 *
 * Refresh tokens rotate and a spent one revokes the whole login (SPEC section 3), so tabs must
 * never spend the same one twice: a refresh runs under a Web Lock (where the browser offers them)
 * and first re-reads storage, taking the tokens another tab already got. The access token is
 * refreshed REFRESH_AHEAD_MS before it expires; a refresh refused with 401 (reuse detected, the
 * login revoked) signs this browser out. Listeners of "change" hear every sign-in and sign-out,
 * from this tab or another.
 */
export class Session extends EventTarget {
  constructor(key = "roomcast.session") {
    super();
    this.key = key;
    this._refreshing = null;
    this._timer = null;
    this.data = this._read();
    this._schedule();
    window.addEventListener("storage", (event) => {
      if (event.key !== this.key) return;
      const before = this.signedIn;
      this.data = this._read();
      this._schedule();
      if (before !== this.signedIn || !this.signedIn) this._changed(this.signedIn ? "signed-in" : "signed-out");
    });
  }

  _read() {
    try {
      const data = JSON.parse(localStorage.getItem(this.key) ?? "null");
      return data?.access_token ? data : null;
    } catch {
      return null;
    }
  }

  get signedIn() {
    return Boolean(this.data?.access_token);
  }

  get user() {
    return this.data?.user ?? null;
  }

  get accessToken() {
    return this.data?.access_token ?? null;
  }

  _save(data, reason = null) {
    if (data && data.expires_in && !data.expires_at) data = { ...data, expires_at: Date.now() + data.expires_in * 1000 };
    const was = this.signedIn;
    this.data = data;
    if (data) {
      localStorage.setItem(this.key, JSON.stringify(data));
      document.cookie = `${SIGNED_IN_COOKIE}=1; Path=/; SameSite=Strict; Max-Age=31536000`;
    } else {
      localStorage.removeItem(this.key);
      document.cookie = `${SIGNED_IN_COOKIE}=; Path=/; SameSite=Strict; Max-Age=0`;
    }
    this._schedule();
    if (!data && was) this._changed("signed-out", reason);
    if (data && !was) this._changed("signed-in");
  }

  _changed(state, reason = null) {
    this.dispatchEvent(new CustomEvent("change", { detail: { state, reason } }));
  }

  /** Refresh a while before the access token expires, so neither REST nor /ws ever presents a stale one. */
  _schedule() {
    clearTimeout(this._timer);
    this._timer = null;
    if (!this.data?.expires_at) return;
    const wait = Math.max(1_000, this.data.expires_at - Date.now() - REFRESH_AHEAD_MS);
    this._timer = setTimeout(() => this.refresh(), Math.min(wait, 2 ** 31 - 1));
  }

  /** Keep a Session answer the page got elsewhere (password change, reset), or null to forget it. */
  adopt(data) {
    this._save(data);
  }

  async login(email, password) {
    this._save(await api("/auth/login", { method: "POST", body: { email, password } }));
  }

  async register(email, password, displayName) {
    this._save(
      await api("/auth/register", { method: "POST", body: { email, password, display_name: displayName } }),
    );
  }

  /** Swap the refresh token for a new session; resolves false (and signs out) if that fails. */
  refresh() {
    if (!this._refreshing) {
      const locks = navigator.locks;
      const run = () => this._refreshOnce();
      this._refreshing = (locks ? locks.request(`${this.key}.refresh`, run) : run()).finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  async _refreshOnce() {
    const held = this.data?.refresh_token;
    const stored = this._read();
    if (stored && stored.refresh_token !== held && stored.expires_at - Date.now() > REFRESH_AHEAD_MS) {
      this.data = stored; // another tab refreshed meanwhile: take its tokens, spend nothing
      this._schedule();
      return true;
    }
    const refreshToken = stored?.refresh_token ?? held;
    if (!refreshToken) return false;
    try {
      this._save(await api("/auth/refresh", { method: "POST", body: { refresh_token: refreshToken } }));
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 0) return false; // offline: keep the tokens
      this._save(null, "revoked");
      return false;
    }
  }

  async logout() {
    const refreshToken = this.data?.refresh_token;
    this._save(null, "signed-out");
    if (refreshToken) {
      try {
        await api("/auth/logout", { method: "POST", body: { refresh_token: refreshToken } });
      } catch {
        // the tokens are gone from this browser either way
      }
    }
  }

  /** Refresh first when the access token expires within REFRESH_AHEAD_MS. */
  async _fresh() {
    if (this.data?.expires_at && this.data.expires_at - Date.now() < REFRESH_AHEAD_MS) await this.refresh();
  }

  /** `api()` with the access token (refreshed ahead of expiry); on 401 refreshes once and retries. */
  async call(path, options = {}) {
    await this._fresh();
    try {
      return await api(path, { ...options, token: this.accessToken });
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401 || !(await this.refresh())) throw err;
      return api(path, { ...options, token: this.accessToken });
    }
  }

  /** A raw authorised GET (for downloads); on 401 refreshes once and retries. */
  async fetchRaw(path) {
    await this._fresh();
    const get = () => fetch(API + path, { headers: { Authorization: `Bearer ${this.accessToken}` } });
    let response = await get();
    if (response.status === 401 && (await this.refresh())) response = await get();
    if (!response.ok) await readResponse(response); // throws the ApiError
    return response;
  }
}

/**
 * Show an ApiError's `details` next to the fields they name: `fields` maps a detail key (its
 * first part: `settings.max_question_length` -> `max_question_length`, `blocked_words[3]` ->
 * `blocked_words`) to an input. Returns the messages no field took, for a general error line.
 */
export function showFieldErrors(err, fields) {
  for (const input of Object.values(fields)) clearFieldError(input);
  const rest = [];
  const details = Array.isArray(err?.details) ? err.details : [];
  for (const detail of details) {
    const key = String(detail.key ?? "");
    const parts = key.replace(/\[\d+\]/g, "").split(".");
    const input = fields[key] ?? fields[parts[parts.length - 1]] ?? fields[parts[0]];
    const message = fieldWords(detail.message ?? "");
    if (input) setFieldError(input, message);
    else rest.push(message);
  }
  if (!details.length && err?.message) rest.push(capitalise(err.message));
  const first = Object.values(fields).find((input) => input.getAttribute("aria-invalid") === "true");
  first?.focus();
  return rest;
}

export function setFieldError(input, message) {
  input.setAttribute("aria-invalid", "true");
  const note = fieldNote(input);
  note.textContent = message;
  note.hidden = false;
}

export function clearFieldError(input) {
  input.removeAttribute("aria-invalid");
  const note = document.getElementById(`${input.id}-error`);
  if (note) {
    note.textContent = "";
    note.hidden = true;
  }
}

function fieldNote(input) {
  const id = `${input.id}-error`;
  let note = document.getElementById(id);
  if (!note) {
    note = document.createElement("p");
    note.id = id;
    note.className = "field-error";
    (input.closest(".field") ?? input.parentElement).append(note);
    const described = input.getAttribute("aria-describedby");
    input.setAttribute("aria-describedby", described ? `${described} ${id}` : id);
  }
  return note;
}

/** msgspec's words ("Expected `int` >= 1") in a person's words. */
function fieldWords(message) {
  const words = message
    .replace(/^Expected `(str|array)` of length >= 1$/, "must not be empty")
    .replace(/^Expected `str` of length <= (\d+)$/, "must be at most $1 characters")
    .replace(/^Expected `array` of length <= (\d+)$/, "can have at most $1 entries")
    .replace(/^Expected `int` >= (\d+)$/, "must be at least $1")
    .replace(/^Expected `int` <= (\d+)$/, "must be at most $1")
    .replace(/^Expected `int`, got `\w+`$/, "must be a whole number")
    .replace(/^ends_at is before starts_at$/, "the end is before the start")
    .replace(/^\w+ must/, "must")
    .replace(/_/g, " ");
  return capitalise(words) + (/[.!?]$/.test(words) ? "" : ".");
}

export function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}
