// The demo SPA: every authd call goes through the client; nothing is stored in the browser.
// Query parameters: ?authd=<authd base URL> (default http://localhost:8080),
// ?poll=<ms> (automatic /auth/me call, default 5000; 0 turns it off).
import { createAuthClient } from "/clients/js/authd.js";

const params = new URLSearchParams(location.search);
const authdUrl = (params.get("authd") ?? "http://localhost:8080").replace(/\/+$/, "");
const pollMs = Number(params.get("poll") ?? 5000);
const auth = createAuthClient({ baseUrl: authdUrl });

const $ = (selector) => document.querySelector(selector);
const counters = { ok: 0, failed: 0, error: 0 };
let shownUserId = null;

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
  $("#signed-out").hidden = !!user;
  $("#user-email").textContent = user?.email ?? "";
  $("#user-roles").textContent = user?.roles.length ? `(${user.roles.join(", ")})` : "";
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
      ? "Registered: you can log in now."
      : `Register failed: ${problem.code ?? res.status}`;
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

try {
  const user = await auth.restore();
  logEvent(user ? `session restored for ${user.email}` : "no session to restore");
} catch (err) {
  logEvent(`restore failed: ${err.code}`);
}
render();
