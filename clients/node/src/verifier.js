// The verifier: authd access tokens checked offline (jose; the algorithm is the one of the JWKS key
// the kid names: EdDSA, ES256 or RS256, never the token's choice), a deny-list kept from
// authd's revocation feed (GET /auth/revocations, signed SETs over SSE), and the failure policy
// for when the feed is stale (reject every token, or ask POST /auth/introspect per request).
import { errors as joseErrors, importJWK, jwtVerify } from "jose";
import { SseParser } from "./sse.js";

const SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const MAX_CLOCK_TOLERANCE = 30; // seconds (API.md "Tokens": at most 30 s of leeway)
const JWKS_MIN_INTERVAL_MS = 1000; // refetch on an unknown kid at most once a second
const MIN_STALE_AFTER_MS = 3000; // authd heartbeats every 2 s
// The algorithms authd signs with (AUTHD_SIGNING_ALG); each key verifies exactly one of them.
const ALGORITHMS = ["EdDSA", "ES256", "RS256"];

/**
 * The one algorithm a JWK of authd's set verifies, from its type: OKP/Ed25519 is EdDSA, EC/P-256
 * is ES256, RSA is RS256 (jose refuses RSA keys under 2048 bits); null for anything else.
 * @returns {[string, object] | null} the algorithm and the public members to import
 */
function algorithmOf(jwk) {
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return ["EdDSA", { kty: "OKP", crv: jwk.crv, x: jwk.x }];
  if (jwk.kty === "EC" && jwk.crv === "P-256") {
    return ["ES256", { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y }];
  }
  if (jwk.kty === "RSA") return ["RS256", { kty: "RSA", n: jwk.n, e: jwk.e }];
  return null;
}
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

/**
 * A token that was not accepted. `code` is one of authd's problem codes: `unauthorized` (no
 * token), `invalid_token`, `token_expired`, `session_revoked`, or `revocation_status_unknown`
 * (the feed is stale and the policy or introspection could not vouch for the session).
 */
export class VerifyError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {unknown} [cause]
   */
  constructor(code, message, cause) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "VerifyError";
    this.code = code;
    this.status = 401;
  }
}

/** The default logger: warnings only, prefixed. */
const defaultLogger = {
  warn: (...args) => console.warn("[authd-verifier]", ...args),
  info: () => {},
};

/**
 * Creates a verifier. See index.d.ts for the options and README.md for the guarantees.
 * @param {import("./index.js").VerifierOptions} options
 */
export function createVerifier(options) {
  const {
    authdUrl,
    issuer = authdUrl,
    audience = "authd",
    resourceSecret,
    policy = "reject",
    staleAfterMs = 5000,
    introspectionSecret,
    clockTolerance = MAX_CLOCK_TOLERANCE,
    logger = defaultLogger,
  } = options ?? {};
  if (!authdUrl) throw new TypeError("createVerifier: authdUrl is required");
  if (!resourceSecret) throw new TypeError("createVerifier: resourceSecret is required");
  if (policy !== "reject" && policy !== "introspect") {
    throw new TypeError('createVerifier: policy must be "reject" or "introspect"');
  }
  if (policy === "introspect" && !introspectionSecret) {
    throw new TypeError('createVerifier: policy "introspect" needs introspectionSecret');
  }
  if (!(staleAfterMs >= MIN_STALE_AFTER_MS)) {
    // authd heartbeats every 2 s: a shorter bound would call a healthy feed stale.
    throw new TypeError(`createVerifier: staleAfterMs must be at least ${MIN_STALE_AFTER_MS}`);
  }
  if (!(clockTolerance >= 0 && clockTolerance <= MAX_CLOCK_TOLERANCE)) {
    throw new TypeError(`createVerifier: clockTolerance must be 0..${MAX_CLOCK_TOLERANCE} s`);
  }
  const base = authdUrl.replace(/\/+$/, "");
  const jwksUrl = options.jwksUrl ?? `${base}/.well-known/jwks.json`;
  const feedUrl = options.feedUrl ?? `${base}/auth/revocations`;
  const introspectUrl = options.introspectUrl ?? `${base}/auth/introspect`;

  const jwks = new JwksCache(jwksUrl);
  const keyFor = (header) => jwks.key(header);

  /** Session id -> time (ms) after which no token of that session can be valid any more. */
  const denied = new Map();
  /** Last time (ms) the deny-list was known complete (an event on a stream past `ready`). */
  let completeAt = -Infinity;
  let closed = false;
  const controller = new AbortController();

  let readyResolve;
  let readyReject;
  const readyPromise = new Promise((ok, fail) => {
    readyResolve = ok;
    readyReject = fail;
  });
  readyPromise.catch(() => {}); // a rejection nobody awaited is not a crash
  let readySettled = false;

  const isFresh = () => Date.now() - completeAt <= staleAfterMs;

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [sid, until] of denied) if (until <= now) denied.delete(sid);
  }, 30_000);
  sweep.unref();

  /** Verifies one SET and adds its session to the deny-list; forged or malformed: logged, ignored. */
  async function onRevocation(set) {
    let payload;
    try {
      ({ payload } = await jwtVerify(set, keyFor, {
        algorithms: ALGORITHMS,
        typ: "secevent+jwt",
        issuer,
        audience,
        clockTolerance,
      }));
    } catch (err) {
      logger.warn(`ignored a revocation event that failed verification: ${err.code ?? err.message}`);
      return;
    }
    const event = payload.events?.[SESSION_REVOKED];
    const sid = event?.subject?.session?.id;
    const until = event?.tokens_valid_until;
    if (typeof sid !== "string" || typeof until !== "number") {
      logger.warn("ignored a revocation event without a session id or tokens_valid_until");
      return;
    }
    // Kept until the session's last token has expired, plus the leeway tokens get on `exp`.
    const keepUntil = (until + clockTolerance) * 1000;
    if (keepUntil > Date.now() && (denied.get(sid) ?? 0) < keepUntil) denied.set(sid, keepUntil);
  }

  /** One connection to the feed, until it ends; resolves when it does. */
  async function connectOnce() {
    const attempt = new AbortController();
    const abortAttempt = () => attempt.abort();
    controller.signal.addEventListener("abort", abortAttempt);
    // A stream that says nothing for longer than the bound is dropped and reopened.
    let watchdog;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => attempt.abort(new Error("feed silent")), staleAfterMs);
      watchdog.unref();
    };
    let sawReady = false;
    try {
      arm();
      const res = await fetch(feedUrl, {
        headers: { Authorization: `Bearer ${resourceSecret}`, Accept: "text/event-stream" },
        signal: attempt.signal,
      });
      if (!res.ok || !res.body) {
        await res.body?.cancel();
        const err = new Error(`revocation feed answered ${res.status}`);
        if (res.status === 401 || res.status === 404) err.permanent = true;
        throw err;
      }
      // Events are handled one at a time, in order (SET verification is async).
      let chain = Promise.resolve();
      const parser = new SseParser((event) => {
        chain = chain.then(async () => {
          arm();
          if (event.event === "revocation") await onRevocation(event.data);
          else if (event.event === "keys") await jwks.refresh(true).catch((e) => logger.warn(`JWKS refetch failed: ${e.message}`));
          if (event.event === "ready") {
            sawReady = true;
            backoff = BACKOFF_MIN_MS;
            if (!readySettled) {
              readySettled = true;
              readyResolve();
            }
          }
          if (sawReady) completeAt = Date.now();
        });
      });
      const decoder = new TextDecoder();
      for await (const chunk of res.body) {
        parser.push(decoder.decode(chunk, { stream: true }));
        await chain;
      }
      await chain;
    } catch (err) {
      if (!closed) {
        logger.warn(`revocation feed: ${err?.message ?? err}; reconnecting`);
        if (err?.permanent && !readySettled) {
          readySettled = true;
          readyReject(new VerifyError("revocation_status_unknown", err.message));
        }
      }
    } finally {
      clearTimeout(watchdog);
      controller.signal.removeEventListener("abort", abortAttempt);
    }
  }

  let backoff = BACKOFF_MIN_MS;
  const loop = (async () => {
    while (!closed) {
      await connectOnce();
      if (closed) break;
      const wait = backoff / 2 + Math.random() * (backoff / 2);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      await new Promise((ok) => {
        const timer = setTimeout(ok, wait);
        controller.signal.addEventListener("abort", () => (clearTimeout(timer), ok()), { once: true });
      });
    }
  })();

  /** POST /auth/introspect: is this token's session still alive (authoritative)? */
  async function introspect(token) {
    let res;
    try {
      res = await fetch(introspectUrl, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${introspectionSecret}`,
          "Content-Type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ token }).toString(),
        signal: AbortSignal.timeout(5000),
      });
    } catch (err) {
      throw new VerifyError("revocation_status_unknown", "introspection failed", err);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new VerifyError("revocation_status_unknown", `introspection answered ${res.status}`);
    }
    const answer = await res.json().catch(() => null);
    if (answer?.active !== true) throw new VerifyError("session_revoked", "the session is no longer active");
  }

  return {
    async verify(token) {
      if (closed) throw new VerifyError("revocation_status_unknown", "the verifier is closed");
      if (typeof token !== "string" || token === "") {
        throw new VerifyError("unauthorized", "no access token");
      }
      let payload;
      try {
        ({ payload } = await jwtVerify(token, keyFor, {
          algorithms: ALGORITHMS,
          typ: "at+jwt",
          issuer,
          audience,
          clockTolerance,
          requiredClaims: ["exp", "sub", "sid"],
        }));
      } catch (err) {
        if (err instanceof joseErrors.JWTExpired) {
          throw new VerifyError("token_expired", "the access token has expired", err);
        }
        throw new VerifyError("invalid_token", "the access token is invalid", err);
      }
      if (typeof payload.sid !== "string" || typeof payload.sub !== "string") {
        throw new VerifyError("invalid_token", "the access token's sid/sub are not strings");
      }
      const until = denied.get(payload.sid);
      if (until !== undefined && until > Date.now()) {
        throw new VerifyError("session_revoked", "the session has been revoked");
      }
      if (!isFresh()) {
        if (policy === "reject") {
          throw new VerifyError("revocation_status_unknown", "the revocation feed is stale");
        }
        await introspect(token);
      }
      return payload;
    },
    ready: () => readyPromise,
    isFresh,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweep);
      controller.abort();
      if (!readySettled) {
        readySettled = true;
        readyReject(new VerifyError("revocation_status_unknown", "the verifier was closed"));
      }
      await loop;
    },
  };
}

/**
 * authd's JWKS, cached: keys by `kid`, refetched on an unknown `kid` (at most once a second) and
 * when the feed announces new keys. Only Ed25519, P-256 and RSA signing keys are used, each for its
 * one algorithm (a JWK whose `alg` says otherwise is skipped); `jku`/`jwk`/`x5u` headers are
 * never followed (keys come only from the configured URL).
 */
class JwksCache {
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    this.keys = new Map(); // kid -> { alg, key: CryptoKey }
    this.fetchedAt = -Infinity;
    this.inflight = null;
  }

  /**
   * Refetches the JWKS. Without `force`, a fetch within a second of the last one waits for the
   * second to pass (callers share that one fetch), so an unknown kid costs at most one fetch a
   * second and a key published just after the last fetch is still found.
   */
  async refresh(force = false) {
    if (this.inflight) return this.inflight;
    const wait = this.fetchedAt + JWKS_MIN_INTERVAL_MS - Date.now();
    if (!force && wait > 0) {
      this.inflight = new Promise((ok) => setTimeout(ok, wait)).then(() => {
        this.inflight = null;
        return this.refresh(true);
      });
      return this.inflight;
    }
    this.fetchedAt = Date.now();
    this.inflight = (async () => {
      const res = await fetch(this.url, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`JWKS answered ${res.status}`);
      const body = await res.json();
      const keys = new Map();
      for (const jwk of body?.keys ?? []) {
        const usable = jwk && typeof jwk.kid === "string" ? algorithmOf(jwk) : null;
        if (!usable) continue;
        const [alg, members] = usable;
        if (jwk.alg !== undefined && jwk.alg !== alg) continue;
        if (jwk.use !== undefined && jwk.use !== "sig") continue;
        try {
          keys.set(jwk.kid, { alg, key: await importJWK(members, alg) });
        } catch {}
      }
      this.keys = keys;
    })().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  /** The key for a JWS header (jose's key resolver). */
  async key(header) {
    if (!ALGORITHMS.includes(header.alg)) throw new joseErrors.JOSEAlgNotAllowed("unsupported alg");
    if (typeof header.kid !== "string") throw new joseErrors.JWKSNoMatchingKey();
    if (!this.keys.has(header.kid)) {
      await this.refresh().catch(() => {});
    }
    const entry = this.keys.get(header.kid);
    if (!entry) throw new joseErrors.JWKSNoMatchingKey();
    // The key's algorithm, not the token's choice (no confusion between key types).
    if (header.alg !== entry.alg) throw new joseErrors.JOSEAlgNotAllowed("alg must be the key's");
    return entry.key;
  }
}
