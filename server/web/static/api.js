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

/**
 * A signed-in user's tokens, kept in this tab's sessionStorage.
 *
 * Per tab on purpose: refresh tokens rotate, and two tabs sharing one would race to spend it (a
 * spent refresh token revokes the whole login, SPEC section 3).
 */
export class Session {
  constructor(key = "roomcast.session") {
    this.key = key;
    this._refreshing = null;
    try {
      this.data = JSON.parse(sessionStorage.getItem(key) ?? "null");
    } catch {
      this.data = null;
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

  _save(data) {
    this.data = data;
    if (data) sessionStorage.setItem(this.key, JSON.stringify(data));
    else sessionStorage.removeItem(this.key);
  }

  /** Keep a Session answer the page got elsewhere (password change, reset), or null to forget it. */
  adopt(data) {
    this._save(data);
  }

  async login(email, password) {
    this._save(await api("/auth/login", { method: "POST", body: { email, password } }));
  }

  /** Swap the refresh token for a new session; resolves false (and signs out) if that fails. */
  refresh() {
    if (!this._refreshing) {
      const refreshToken = this.data?.refresh_token;
      this._refreshing = (async () => {
        if (!refreshToken) return false;
        try {
          this._save(await api("/auth/refresh", { method: "POST", body: { refresh_token: refreshToken } }));
          return true;
        } catch (err) {
          if (err instanceof ApiError && err.status === 0) return false; // offline: keep the tokens
          this._save(null);
          return false;
        }
      })().finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  async logout() {
    const refreshToken = this.data?.refresh_token;
    this._save(null);
    if (refreshToken) {
      try {
        await api("/auth/logout", { method: "POST", body: { refresh_token: refreshToken } });
      } catch {
        // the tokens are gone from this tab either way
      }
    }
  }

  /** `api()` with the access token; on 401 refreshes once and retries. */
  async call(path, options = {}) {
    try {
      return await api(path, { ...options, token: this.accessToken });
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401 || !(await this.refresh())) throw err;
      return api(path, { ...options, token: this.accessToken });
    }
  }

  /** A raw authorised GET (for downloads); on 401 refreshes once and retries. */
  async fetchRaw(path) {
    const get = () => fetch(API + path, { headers: { Authorization: `Bearer ${this.accessToken}` } });
    let response = await get();
    if (response.status === 401 && (await this.refresh())) response = await get();
    if (!response.ok) await readResponse(response); // throws the ApiError
    return response;
  }
}
