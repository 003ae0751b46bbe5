/**
 * The Account page (`/account`) and the password-reset page (`/reset`), SPEC section 3 "Account
 * self-service". Both speak only REST through `api.js`; the signed-in session is the tab's own
 * (sessionStorage), shared with the presenter page of the same tab.
 */
import { ApiError, Session, api, inWords } from "./api.js";

const $ = (id) => document.getElementById(id);
const session = new Session();

/** A message for an ApiError, or the fallback. */
function describe(err, fallback) {
  if (!(err instanceof ApiError)) return fallback;
  if (err.status === 0) return err.message;
  if (err.status === 429) return `Too many attempts. Try again ${inWords(err.retryAfterS)}.`;
  const message = err.message || fallback;
  return message.charAt(0).toUpperCase() + message.slice(1);
}

/** `session.call`, where a 401 that survives the token refresh means the password typed was wrong. */
async function withPassword(path, options) {
  try {
    return await session.call(path, options);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && session.signedIn) {
      throw new ApiError(401, "unauthorized", "That password is wrong.");
    }
    throw err;
  }
}

/** Run `work` with the form's submit button busy; errors land in `errorEl`. */
async function busy(form, errorEl, work) {
  const button = form.querySelector("button[type=submit]");
  errorEl.textContent = "";
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (err) {
    errorEl.textContent = describe(err, "Something went wrong. Try again.");
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** "Chrome on Linux" from a User-Agent header, or the header itself when it is not a browser's. */
function device(userAgent) {
  if (!userAgent) return "Unknown device";
  const browser =
    [
      ["Edg/", "Edge"],
      ["Firefox/", "Firefox"],
      ["Chrome/", "Chrome"],
      ["Safari/", "Safari"],
    ].find(([mark]) => userAgent.includes(mark))?.[1] ?? null;
  const system =
    [
      ["Android", "Android"],
      ["iPhone", "iPhone"],
      ["iPad", "iPad"],
      ["Windows", "Windows"],
      ["Mac OS", "macOS"],
      ["Linux", "Linux"],
    ].find(([mark]) => userAgent.includes(mark))?.[1] ?? null;
  if (browser && system) return `${browser} on ${system}`;
  return browser ?? (userAgent.length > 60 ? `${userAgent.slice(0, 57)}…` : userAgent);
}

// --- /account ---------------------------------------------------------------------------------

function showAccountView(view) {
  for (const id of ["sign-in-view", "account-view", "deleted-view"]) $(id).hidden = id !== view;
  const signedIn = view === "account-view";
  $("signed-in-as").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("site-nav").hidden = !signedIn;
  if (signedIn) $("signed-in-as").textContent = `Signed in as ${session.user?.display_name ?? ""}`;
}

function showSignIn(message = "") {
  showAccountView("sign-in-view");
  $("sign-in-error").textContent = message;
  document.title = "Sign in · roomcast";
}

function fillProfile(user) {
  $("display-name").value = user.display_name;
  $("email").value = user.email ?? "";
  $("email").dataset.current = user.email ?? "";
  $("email-password-field").hidden = true;
  $("email-password").value = "";
  $("signed-in-as").textContent = `Signed in as ${user.display_name}`;
}

async function loadAccount() {
  try {
    const user = await session.call("/me");
    session.adopt({ ...session.data, user });
    fillProfile(user);
    showAccountView("account-view");
    document.title = "Account · roomcast";
    await loadSessions();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      await session.logout();
      showSignIn("Your session has ended. Sign in again.");
    } else {
      showSignIn(describe(err, "Could not load your account."));
    }
  }
}

async function loadSessions() {
  const list = $("sessions");
  let items;
  try {
    items = await session.call("/me/sessions");
  } catch (err) {
    $("sessions-error").textContent = describe(err, "Could not list where you are signed in.");
    return;
  }
  list.replaceChildren(
    ...items.map((item) => {
      const row = document.createElement("li");
      row.className = "session";
      row.dataset.sessionId = item.id;
      const text = document.createElement("div");
      const name = document.createElement("strong");
      name.textContent = device(item.user_agent);
      text.append(name);
      if (item.current) {
        const badge = document.createElement("span");
        badge.className = "badge this-device";
        badge.textContent = "This device";
        text.append(" ", badge);
      }
      const meta = document.createElement("p");
      meta.className = "muted small-text";
      meta.textContent = `Signed in ${when(item.created_at)} · last active ${when(item.last_used_at)}`;
      text.append(meta);
      row.append(text);
      if (!item.current) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "button small";
        button.textContent = "Sign out";
        button.setAttribute("aria-label", `Sign out ${device(item.user_agent)}, signed in ${when(item.created_at)}`);
        button.addEventListener("click", () => endSessions([item.id], button, "That device is signed out."));
        row.append(button);
      }
      return row;
    }),
  );
  const others = items.filter((item) => !item.current).map((item) => item.id);
  $("sign-out-others").disabled = others.length === 0;
  $("sign-out-others").onclick = () => endSessions(others, $("sign-out-others"), "Every other device is signed out.");
}

async function endSessions(ids, button, done) {
  $("sessions-error").textContent = "";
  $("sessions-notice").textContent = "";
  button.disabled = true;
  try {
    for (const id of ids) {
      try {
        await session.call(`/me/sessions/${id}`, { method: "DELETE" });
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err; // already gone is fine
      }
    }
    $("sessions-notice").textContent = done;
  } catch (err) {
    $("sessions-error").textContent = describe(err, "Could not sign that device out.");
  } finally {
    button.disabled = false;
    await loadSessions();
  }
}

function startAccountPage() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const email = $("sign-in-email").value.trim();
    const password = $("sign-in-password").value;
    if (!email || !password) {
      $("sign-in-error").textContent = "Enter your email and your password.";
      return;
    }
    busy(event.target, $("sign-in-error"), async () => {
      try {
        await session.login(email, password);
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) throw new ApiError(401, "unauthorized", "Wrong email or password.");
        throw err;
      }
      $("sign-in-password").value = "";
      await loadAccount();
    });
  });

  $("sign-out").addEventListener("click", async () => {
    await session.logout();
    showSignIn();
  });

  $("email").addEventListener("input", () => {
    $("email-password-field").hidden = $("email").value.trim().toLowerCase() === $("email").dataset.current;
  });

  $("profile-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("profile-notice").textContent = "";
    const body = { display_name: $("display-name").value };
    const email = $("email").value.trim();
    if (email.toLowerCase() !== $("email").dataset.current) {
      body.email = email;
      body.current_password = $("email-password").value;
    }
    busy(event.target, $("profile-error"), async () => {
      const user = await withPassword("/me", { method: "PATCH", body });
      session.adopt({ ...session.data, user });
      fillProfile(user);
      $("profile-notice").textContent = "Saved.";
    });
  });

  $("password-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("password-notice").textContent = "";
    const body = { current_password: $("current-password").value, new_password: $("new-password").value };
    if (body.new_password.length < 8) {
      $("password-error").textContent = "The new password needs at least 8 characters.";
      return;
    }
    busy(event.target, $("password-error"), async () => {
      session.adopt(await withPassword("/me/password", { method: "POST", body }));
      $("current-password").value = "";
      $("new-password").value = "";
      $("password-notice").textContent = "Password changed. Every other device is signed out.";
      await loadSessions();
    });
  });

  $("export").addEventListener("click", async () => {
    const button = $("export");
    $("export-error").textContent = "";
    button.disabled = true;
    try {
      const response = await session.fetchRaw("/me/export");
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = "roomcast-export.json";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      $("export-error").textContent = describe(err, "Could not prepare your data.");
    } finally {
      button.disabled = false;
    }
  });

  $("delete-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const password = $("delete-password").value;
    if (!password) {
      $("delete-error").textContent = "Enter your password to confirm.";
      return;
    }
    busy(event.target, $("delete-error"), async () => {
      await withPassword("/me", { method: "DELETE", body: { password } });
      session.adopt(null);
      showAccountView("deleted-view");
      document.title = "Account deleted · roomcast";
    });
  });

  // signed out in another tab, or this login was revoked (a password change elsewhere)
  session.addEventListener("change", (event) => {
    if (event.detail.state === "signed-out" && $("deleted-view").hidden) showSignIn();
  });

  if (session.signedIn) loadAccount();
  else showSignIn();
}

// --- /reset -----------------------------------------------------------------------------------

function showResetView(view) {
  for (const id of ["request-view", "sent-view", "choose-view"]) $(id).hidden = id !== view;
}

function startResetPage() {
  // the token travels in the fragment (never sent to a server); drop it from the address bar and history
  let token = null;
  const readToken = () => {
    const found = new URLSearchParams(location.hash.slice(1)).get("token");
    if (!found) return;
    token = found;
    history.replaceState(null, "", location.pathname);
    $("choose-error").textContent = "";
    showResetView("choose-view");
  };
  window.addEventListener("hashchange", readToken); // a link opened in a tab already on /reset

  $("request-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const email = $("reset-email").value.trim();
    if (!email) {
      $("request-error").textContent = "Enter the email of your account.";
      return;
    }
    busy(event.target, $("request-error"), async () => {
      try {
        await api("/auth/password-reset", { method: "POST", body: { email } });
      } catch (err) {
        if (err instanceof ApiError && err.status === 422) throw new ApiError(422, "validation_error", "That is not an email address.");
        throw err;
      }
      $("sent-to").textContent = email;
      showResetView("sent-view");
    });
  });

  $("choose-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const password = $("reset-new-password").value;
    if (password.length < 8) {
      $("choose-error").textContent = "The new password needs at least 8 characters.";
      return;
    }
    if (password !== $("reset-repeat-password").value) {
      $("choose-error").textContent = "The two passwords differ.";
      return;
    }
    busy(event.target, $("choose-error"), async () => {
      let data;
      try {
        data = await api("/auth/password-reset/confirm", { method: "POST", body: { token, new_password: password } });
      } catch (err) {
        if (err instanceof ApiError && err.status === 400) {
          showResetView("request-view");
          $("request-error").textContent = "That link is invalid, expired or already used. Ask for a new one.";
          return;
        }
        throw err;
      }
      session.adopt(data);
      location.assign("/account");
    });
  });

  showResetView("request-view");
  readToken();
}

if (document.body.dataset.page === "reset") startResetPage();
else startAccountPage();
