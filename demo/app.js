// The demo SPA: every authd call goes through the client; nothing is stored in the browser.
// Query parameters: ?authd=<authd base URL> (default: the demo server's /config.json, else
// http://localhost:8080), ?poll=<ms> (automatic /auth/me call, default 5000; 0 turns it off).
// authd's email links land on /verify-email, /reset-password and /email-sign-in (#token=…).
import { createAuthClient, tokenFromFragment } from "/clients/js/authd.js";

// The link's route and token, read once: the token leaves the address bar and the history at
// once and lives on only in this module's memory.
const route = location.pathname;
const linkToken = tokenFromFragment();
if (route !== "/") history.replaceState(null, "", `/${location.search}`);

const params = new URLSearchParams(location.search);
const config = params.has("authd")
  ? {}
  : await fetch("/config.json")
      .then((res) => res.json())
      .catch(() => ({}));
const authdUrl = (params.get("authd") ?? config.authd ?? "http://localhost:8080").replace(/\/+$/, "");
const pollMs = Number(params.get("poll") ?? 5000);
const auth = createAuthClient({ baseUrl: authdUrl });

const $ = (selector) => document.querySelector(selector);
const counters = { ok: 0, failed: 0, error: 0 };
let shownUserId = null;
let view = "login"; // the part of the signed-out panel shown: login, forgot, code
let codeEmail = null; // the address a sign-in code was sent to
let resetToken = null; // a reset link's token, while its form shows

/** Shows a message above the panels; kind "ok" or "error". */
function notice(text, kind = "ok") {
  const p = $("#notice");
  p.textContent = text;
  p.dataset.kind = kind;
  p.hidden = false;
}

function logEvent(text) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("#events").prepend(li);
}

function count(kind, text) {
  counters[kind]++;
  $(`#calls-${kind}`).textContent = counters[kind];
  $("#last-call").textContent = text;
}

/** auth.fetch against authd, counted in the activity panel. */
async function api(method, path) {
  const label = `${method} ${path}`;
  try {
    const res = await auth.fetch(`${authdUrl}${path}`, { method });
    count(res.ok ? "ok" : "failed", `${label} → ${res.status}`);
    return res;
  } catch (err) {
    count("error", `${label} → ${err.message}`);
    return null;
  } finally {
    render();
  }
}

function render() {
  const user = auth.user;
  $("#status").dataset.state = user ? "signed-in" : "signed-out";
  $("#status").textContent = user ? "signed in" : "signed out";
  $("#signed-in").hidden = !user;
  $("#reset").hidden = !resetToken;
  $("#signed-out").hidden = !!user || !!resetToken;
  for (const part of document.querySelectorAll(".view")) part.hidden = part.id !== `view-${view}`;
  $("#code-form").hidden = !codeEmail;
  $("#user-email").textContent = user?.email ?? "";
  $("#user-roles").textContent = user?.roles.length ? `(${user.roles.join(", ")})` : "";
  $("#user-verified").textContent = user ? (user.email_verified ? "✓ verified" : "not verified") : "";
  $("#user-verified").dataset.verified = String(!!user?.email_verified);
  $("#send-verification").hidden = !user || user.email_verified;
  if ((user?.id ?? null) !== shownUserId) {
    shownUserId = user?.id ?? null;
    $("#sessions").replaceChildren();
    if (user) loadSessions();
  }
}

async function loadSessions() {
  const res = await api("GET", "/auth/sessions");
  if (!res?.ok) return;
  const { sessions } = await res.json();
  $("#sessions").replaceChildren(...sessions.map(sessionItem));
}

function sessionItem(s) {
  const li = document.createElement("li");
  li.dataset.sessionId = s.id;
  li.dataset.current = s.current;
  const info = document.createElement("span");
  const lastUsed = new Date(s.last_used_at).toLocaleTimeString();
  info.textContent = `${s.user_agent ?? "unknown device"} · ${s.ip ?? "?"} · last used ${lastUsed}`;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "revoke";
  button.textContent = "Sign out this device";
  button.onclick = async () => {
    await api("DELETE", `/auth/sessions/${s.id}`);
    await loadSessions();
  };
  if (s.current) info.append(Object.assign(document.createElement("em"), { textContent: " this device" }));
  li.append(info, button);
  return li;
}

auth.onSessionEnd((reason) => {
  logEvent(`session ended: ${reason}`);
  render();
});

$("#login-form").onsubmit = async (event) => {
  event.preventDefault();
  const { email, password } = Object.fromEntries(new FormData(event.target));
  $("#form-message").textContent = "";
  try {
    const user = await auth.login(email, password);
    logEvent(`logged in as ${user.email}`);
    event.target.reset();
  } catch (err) {
    $("#form-message").textContent = `Login failed: ${err.code}`;
  }
  render();
};

$("#register").onclick = async () => {
  const form = $("#login-form");
  if (!form.reportValidity()) return;
  const { email, password } = Object.fromEntries(new FormData(form));
  const res = await fetch(`${authdUrl}/auth/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  }).catch(() => null);
  const problem = res && !res.ok ? await res.json().catch(() => ({})) : {};
  $("#form-message").textContent = !res
    ? "Register failed: network error"
    : res.ok
      ? "Registered: you can log in now (a verification link is in your mail)."
      : `Register failed: ${problem.code ?? res.status}`;
};

for (const button of document.querySelectorAll("[data-view]")) {
  button.onclick = () => {
    view = button.dataset.view;
    codeEmail = null;
    render();
  };
}

/** Runs a form's submit handler with its fields; a failure shows `failed: <code>`. */
function onSubmit(form, failed, handler) {
  $(form).onsubmit = async (event) => {
    event.preventDefault();
    try {
      await handler(Object.fromEntries(new FormData(event.target)), event.target);
    } catch (err) {
      notice(`${failed}: ${err.code ?? err.message}`, "error");
    }
    render();
  };
}

onSubmit("#forgot-form", "Reset request failed", async ({ email }, form) => {
  await auth.requestPasswordReset(email);
  notice(`If ${email} has an account, a reset link is on its way.`);
  form.reset();
  view = "login";
});

onSubmit("#code-request-form", "Code request failed", async ({ email }) => {
  await auth.requestEmailCode(email);
  codeEmail = email;
  notice(`If ${email} can sign in, a code is on its way.`);
});

onSubmit("#code-form", "Sign-in failed", async ({ code }, form) => {
  const user = await auth.signInWithEmailCode({ email: codeEmail, code: code.trim() });
  logEvent(`signed in as ${user.email} with a code`);
  notice(`Signed in as ${user.email}.`);
  form.reset();
  $("#code-request-form").reset();
  codeEmail = null;
  view = "login";
});

onSubmit("#reset-form", "Password reset failed", async ({ password }, form) => {
  try {
    await auth.resetPassword(resetToken, password);
  } catch (err) {
    if (err.code === "email_token_invalid") resetToken = null; // the link is dead: no use retrying
    throw err;
  }
  resetToken = null;
  form.reset();
  view = "login";
  notice("Password changed: sign in with the new one. Every device was signed out.");
});

$("#send-verification").onclick = async () => {
  try {
    await auth.sendVerificationEmail();
    notice(`Verification email sent to ${auth.user?.email}.`);
  } catch (err) {
    notice(`Sending failed: ${err.code}`, "error");
  }
};

$("#ping").onclick = () => api("GET", "/auth/me");
$("#reload-sessions").onclick = loadSessions;
$("#revoke-all").onclick = async () => {
  await api("DELETE", "/auth/sessions?scope=all");
  await api("GET", "/auth/me"); // answers 401 session_revoked: the client ends the session
};
$("#logout").onclick = async () => {
  try {
    await auth.logout();
  } catch (err) {
    logEvent(`logout failed: ${err.code}`);
  }
};

$("#authd-url").textContent = authdUrl;
$("#poll").textContent = pollMs > 0 ? `${pollMs} ms` : "(off)";
if (pollMs > 0) {
  setInterval(() => (auth.user ? api("GET", "/auth/me") : render()), pollMs);
}

/** Page load: an email link's action, else (and then) the silent refresh. */
async function start() {
  if (route !== "/" && !linkToken) {
    notice("This link has no token (was it opened before?): use the link from the email.", "error");
  }
  if (route === "/email-sign-in" && linkToken) {
    try {
      const user = await auth.signInWithEmailCode({ token: linkToken });
      logEvent(`signed in as ${user.email} by email link`);
      notice(`Signed in as ${user.email}.`);
      return;
    } catch (err) {
      notice(`Sign-in failed: ${err.code}`, "error");
    }
  }
  try {
    const user = await auth.restore();
    logEvent(user ? `session restored for ${user.email}` : "no session to restore");
  } catch (err) {
    logEvent(`restore failed: ${err.code}`);
  }
  if (route === "/verify-email" && linkToken) {
    try {
      const user = await auth.verifyEmail(linkToken); // the signed-in user, if theirs, too
      notice(`Email verified: ${user.email}.`);
    } catch (err) {
      notice(`Verification failed: ${err.code}`, "error");
    }
  }
  if (route === "/reset-password" && linkToken) resetToken = linkToken;
}

await start();
render();
