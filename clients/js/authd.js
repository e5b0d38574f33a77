// authd browser client: an ES module without dependencies. See API.md, "JavaScript client".
//
// The access token lives only in this module's memory; the refresh token is authd's HttpOnly
// cookie, which this code never sees. Every request that can change that cookie (login,
// refresh, logout) runs under one Web Lock per authd, so tabs of this origin never present the
// same refresh token at once; a tab that refreshed shares the new access token with the others
// over a BroadcastChannel, so they do not refresh again. The email flows (verification, password
// reset, sign-in codes) post the token or code from authd's message; of them only the code sign-in
// touches the cookie.

/** Problem codes of a Bearer request that mean the session is over. */
const SESSION_OVER = new Set(["session_revoked", "session_expired", "user_disabled"]);
/** Problem codes of a Bearer request that a refresh may cure: the token expired, or its key is
 * gone (rotated or revoked, an authd restarted with new keys). */
const REFRESH_AND_RETRY = new Set(["token_expired", "invalid_token"]);
/** A refresh that has not answered after this long is abandoned (and retried, see below). */
const REFRESH_TIMEOUT_MS = 8_000;
/** Retry delays after a failed refresh: 0.5 s, 1 s, 2 s, ... up to 30 s. The first retries come
 * quickly so that a refresh whose response was lost is retried within authd's grace window. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;
/** Refresh a minute before expiry, or at half-life for tokens shorter than two minutes (authd's
 * `exp` is whole seconds, so a token may expire up to a second before `expires_in` says). */
const refreshMargin = (lifetimeMs) => Math.min(60_000, lifetimeMs / 2);

/** fetch's init for a JSON body. */
const json = (value) => ({
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(value),
});

export class AuthError extends Error {
  /**
   * @param {number} status HTTP status, 0 for a network failure
   * @param {string} code the problem `code`, or "network_error"
   */
  constructor(status, code, detail, { retryAfter, cause } = {}) {
    super(detail || code, { cause });
    this.name = "AuthError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

export function createAuthClient({ baseUrl, apiOrigins = [] }) {
  const base = new URL(baseUrl, globalThis.location?.href).href.replace(/\/+$/, "");
  const bearerOrigins = new Set([base, ...apiOrigins].map((o) => new URL(o).origin));
  const lockName = `authd-cookie ${base}`;
  const locks = globalThis.navigator?.locks;
  const channel = globalThis.BroadcastChannel ? new BroadcastChannel(`authd ${base}`) : null;
  const listeners = new Set();

  /**
   * The current session, or null. Times are performance.now() values.
   * @type {{token: string, id: string, user: object, lifetimeMs: number,
   *         expiresAt: number, refreshAt: number} | null}
   */
  let session = null;
  let generation = 0; // bumped when a session ends: refresh results that arrive later are dropped
  let inflight = null;
  let timer;
  let failures = 0;

  const now = () => performance.now(); // monotonic and local: server and client clocks never meet

  /** Runs `fn` while holding the cross-tab lock for the refresh cookie. */
  const withCookieLock = (fn) => (locks ? locks.request(lockName, fn) : fn());

  function schedule(delayMs) {
    clearTimeout(timer);
    const delay = Math.min(Math.max(0, delayMs), 2 ** 31 - 1); // setTimeout's limit
    timer = setTimeout(() => refresh().catch(() => {}), delay);
  }

  /**
   * Takes a token body as the current session. The tab that obtained the token refreshes it ahead
   * of expiry on a timer; tabs it was shared with (`shared`) just use it and refresh on demand a
   * little later, so tabs holding the same token do not race each other to the refresh.
   */
  function adopt(body, { shared = false, lifetimeMs = body.expires_in * 1000, remainingMs } = {}) {
    const expiresAt = now() + (remainingMs ?? lifetimeMs);
    const margin = refreshMargin(lifetimeMs);
    session = {
      token: body.access_token,
      id: body.session_id,
      user: body.user,
      lifetimeMs,
      expiresAt,
      refreshAt: expiresAt - (shared ? margin / 2 : margin),
    };
    failures = 0;
    if (shared) clearTimeout(timer);
    else schedule(session.refreshAt - now());
  }

  function share() {
    const { token, id, user, lifetimeMs, expiresAt } = session;
    channel?.postMessage({
      type: "token",
      body: { access_token: token, session_id: id, user },
      lifetimeMs,
      remainingMs: expiresAt - now(),
    });
  }

  /** Forgets the session and tells the listeners (once) and the other tabs. */
  function end(reason, { tellTabs = true } = {}) {
    generation++;
    if (!session) return;
    const { id } = session;
    session = null;
    clearTimeout(timer);
    if (tellTabs) channel?.postMessage({ type: "ended", sessionId: id, reason });
    for (const listener of listeners) queueMicrotask(() => listener(reason));
  }

  if (channel) {
    channel.onmessage = ({ data }) => {
      if (data?.type === "token") {
        const { body, lifetimeMs, remainingMs } = data;
        adopt(body, { lifetimeMs, remainingMs, shared: true });
      } else if (data?.type === "ended" && session?.id === data.sessionId) {
        end(data.reason, { tellTabs: false });
      } else if (data?.type === "user" && session?.id === data.sessionId) {
        session.user = data.user;
      }
    };
  }
  globalThis.addEventListener?.("online", () => {
    if (session && failures > 0) refresh().catch(() => {});
  });

  /**
   * A POST to authd; resolves to the parsed body (null for 204) or throws an AuthError. Cookies
   * go only where asked (`credentials: "include"`, the cookie endpoints), never elsewhere, even
   * when authd shares the page's origin. `send` (default: plain `fetch`) makes the request.
   */
  async function call(path, { credentials = "omit", send = fetch, ...init } = {}) {
    let res, body;
    try {
      res = await send(base + path, { ...init, method: "POST", credentials });
      body = await readJson(res);
    } catch (err) {
      if (err instanceof AuthError) throw err; // from authFetch: no token to send right now
      throw new AuthError(0, "network_error", String(err?.message ?? err), { cause: err });
    }
    if (!res.ok) {
      const retryAfter = Number(res.headers.get("Retry-After")) || undefined;
      throw new AuthError(res.status, body?.code ?? `http_${res.status}`, body?.detail, {
        retryAfter,
      });
    }
    return body;
  }

  /** A request to one of authd's cookie endpoints; resolves to the parsed body or throws. */
  const cookieCall = (path, init = {}) => call(path, { ...init, credentials: "include" });

  /** Takes a token body from login or a code sign-in as this tab's (and every tab's) session. */
  async function signIn(path, payload) {
    const body = await withCookieLock(() => cookieCall(path, json(payload)));
    adopt(body);
    share();
    return session.user;
  }

  /** Shows `user` as the session's user in this tab and the others, if it is the same user. */
  function updateUser(user) {
    if (!session || session.user?.id !== user?.id) return;
    session.user = user;
    channel?.postMessage({ type: "user", sessionId: session.id, user });
  }

  async function doRefresh() {
    const before = session?.token;
    const started = generation;
    await withCookieLock(async () => {
      if (generation !== started) return; // the session ended meanwhile
      if (session && session.token !== before && now() < session.refreshAt) return; // a tab did it
      let body;
      try {
        const signal = AbortSignal.timeout(REFRESH_TIMEOUT_MS);
        body = await cookieCall("/auth/refresh", { signal });
      } catch (err) {
        if (err.status === 401) end(err.code); // authd cleared the cookie: this session is over
        throw err;
      }
      if (generation !== started) return;
      adopt(body);
      share();
    });
  }

  /** One refresh in flight per tab; a failure that leaves the session alive is retried later. */
  function refresh() {
    inflight ??= doRefresh()
      .catch((err) => {
        if (session && err.status !== 401) {
          const backoff = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** failures++);
          schedule(Math.max(backoff, (err.retryAfter ?? 0) * 1000));
        }
        throw err;
      })
      .finally(() => {
        inflight = null;
      });
    return inflight;
  }

  /** The access token to send now, refreshed first if it is about to expire. */
  async function currentToken() {
    if (session && now() >= session.refreshAt) {
      try {
        await refresh();
      } catch (err) {
        // Refresh failed for now (offline, 5xx): a token that has not expired is still good.
        if (!session || now() >= session.expiresAt) throw err;
      }
    }
    return session;
  }

  /** `fetch` with the Bearer attached for authd and `apiOrigins` (see API.md). */
  async function authFetch(input, init) {
    const request = new Request(input, init);
    if (!bearerOrigins.has(new URL(request.url).origin)) return fetch(request);
    const send = (s) => {
      const r = request.clone();
      if (s) r.headers.set("Authorization", `Bearer ${s.token}`);
      return fetch(r);
    };
    let used = await currentToken();
    let res = await send(used);
    if (!used) return res;
    if (res.status !== 401) {
      used.unproven = false;
      return res;
    }
    let code = await problemCode(res);
    // A token fresh from a refresh that invalid_token prompted, rejected the same way before it
    // was ever accepted: another refresh would not help, and would cost one per request.
    const futile = code === "invalid_token" && used.unproven;
    if (REFRESH_AND_RETRY.has(code) && !futile) {
      if (session === used) await refresh().catch(() => {});
      if (session && session !== used) {
        if (code === "invalid_token") session.unproven ??= true;
        used = session;
        res = await send(used);
        code = res.status === 401 ? await problemCode(res) : null;
        if (res.status !== 401) used.unproven = false;
      }
    }
    // A 401 that outlived the retry goes back to the app; only these codes (or a failed
    // refresh, above) end the session.
    if (SESSION_OVER.has(code) && session?.id === used.id) end(code);
    return res;
  }

  return {
    get user() {
      return session?.user ?? null;
    },

    login(email, password) {
      return signIn("/auth/login", { email, password });
    },

    async restore() {
      try {
        await refresh();
      } catch (err) {
        if (err.status !== 401) throw err;
      }
      return session?.user ?? null;
    },

    fetch: authFetch,

    async requestPasswordReset(email) {
      await call("/auth/password/forgot", json({ email }));
    },

    async resetPassword(token, newPassword) {
      await call("/auth/password/reset", json({ token, new_password: newPassword }));
    },

    async sendVerificationEmail() {
      await call("/auth/email/verify/request", { ...json({}), send: authFetch });
    },

    async verifyEmail(token) {
      const user = await call("/auth/email/verify", json({ token }));
      updateUser(user);
      return user;
    },

    /**
     * Asks to move the account to `newEmail`: a confirmation link goes to the new address (opened,
     * it calls `verifyEmail`), a notice to the old one. `currentPassword` may be omitted right
     * after a code sign-in (within 5 minutes), which is how accounts without a password do it.
     */
    async changeEmail(newEmail, currentPassword) {
      const body = { new_email: newEmail };
      if (currentPassword !== undefined) body.current_password = currentPassword;
      await call("/auth/email/change", { ...json(body), send: authFetch });
    },

    async requestEmailCode(email) {
      await call("/auth/email/code", json({ email }));
    },

    signInWithEmailCode({ email, code, token } = {}) {
      return signIn("/auth/email/code/verify", token !== undefined ? { token } : { email, code });
    },

    onSessionEnd(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async logout() {
      const headers = session ? { Authorization: `Bearer ${session.token}` } : {};
      await withCookieLock(() => cookieCall("/auth/logout", { headers }));
      end("logout");
    },
  };
}

/**
 * The `token` in the page's URL fragment (`#token=…`, as in authd's email links), or null.
 * The fragment is removed from the address bar and the current history entry (unless `clear` is
 * false), so the token does not linger where scripts, screenshots or a shared URL could pick it up.
 */
export function tokenFromFragment({ clear = true } = {}) {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token !== null && clear) {
    history.replaceState(history.state, "", location.pathname + location.search);
  }
  return token || null;
}

async function readJson(res) {
  const type = res.headers.get("Content-Type") ?? "";
  return /[/+]json\b/.test(type) ? res.json() : null;
}

async function problemCode(res) {
  try {
    return (await readJson(res.clone()))?.code ?? null;
  } catch {
    return null;
  }
}
