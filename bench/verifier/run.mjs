// Benchmark of the verifiers (issue 15's scenario 5): @authd/verifier (clients/node) and
// authd-verifier (crates/authd-verifier), against real authd instances (release build) on one
// fresh database:
//   1. revocation reach: N sessions revoked through authd B; the delay from B's 204 to the first
//      401 of each example API (Node: clients/node/examples/api.mjs, Rust:
//      examples/resource_server.rs, both subscribed to authd A's feed; polled back to back), next
//      to the same-instance figure (authd A's own /auth/me after a revocation through A) and the
//      cross-instance one (A after B);
//   2. cost per request: verify(token) vs plain offline verification with the same library, key
//      and checks but no deny-list (jose jwtVerify; jsonwebtoken decode), same process, same
//      token, 5 interleaved pairs of BENCH_CALLS calls;
//   3. memory: a verifier process holding BENCH_DENIED live revocations (inserted into the
//      database, delivered by the feed's snapshot) against the same process before.
// Usage: bench/verifier/run.sh (builds, then runs this). Env BENCH_REVOCATIONS=120,
// BENCH_CALLS=20000, BENCH_DENIED=100000. Prints one JSON object. Everything listens on
// 127.0.0.1 and is stopped at the end; the database it creates is dropped.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const AUTHD = join(repo, "target/release/authd");
const N = Number(process.env.BENCH_REVOCATIONS ?? 120);
const CALLS = Number(process.env.BENCH_CALLS ?? 20000);
const DENIED = Number(process.env.BENCH_DENIED ?? 100000);
const SECRET = "bench-resource-secret-0123456789abcdef0123";
const PASSWORD = "bench verifier passphrase";
const db = `authd_bench_verifier_${randomBytes(4).toString("hex")}`;
const work = mkdtempSync(join(tmpdir(), "authd-bench-verifier-"));
const children = [];

const psql = (sql, database = "postgres") =>
  execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", database, "-Atqc", sql], {
    encoding: "utf8",
  }).trim();
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const q = (v, p) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(p * v.length))];
const stats = (v) => ({ n: v.length, p50_ms: q(v, 0.5), p99_ms: q(v, 0.99), max_ms: Math.max(...v) });

async function freePort() {
  const s = createServer();
  await new Promise((ok) => s.listen(0, "127.0.0.1", ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

function start(cmd, args, env) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  child.out = "";
  child.stdout.on("data", (d) => (child.out += d));
  child.stderr.on("data", (d) => (child.out += d));
  children.push(child);
  return child;
}

async function until(check, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check().catch((err) => {
      if (String(err?.message).includes("exited")) throw err;
      return null;
    });
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

async function call(base, method, path, { token, body } = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function main() {
  const [pa, pb] = [await freePort(), await freePort()];
  const A = `http://127.0.0.1:${pa}`;
  const B = `http://127.0.0.1:${pb}`;
  const env = {
    DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${db}`,
    AUTHD_ISSUER: A,
    AUTHD_RESOURCE_SECRET: SECRET,
    AUTHD_RATE_LIMIT: "off",
    AUTHD_MAX_SESSIONS: "10000",
    AUTHD_LOG_FORMAT: "json",
    RUST_LOG: "warn",
    AUTHD_EMAIL_OUTBOX: join(work, "outbox"),
  };
  execFileSync(AUTHD, ["migrate"], { env: { ...process.env, ...env } });
  for (const port of [pa, pb]) start(AUTHD, ["serve"], { ...env, AUTHD_BIND: `127.0.0.1:${port}` });
  for (const base of [A, B]) await until(async () => (await fetch(`${base}/readyz`)).ok, 30_000, "authd");
  const email = "bench@verifier.test";
  await call(B, "POST", "/auth/register", { body: { email, password: PASSWORD } });

  const apiPort = await freePort();
  const api = start(process.execPath, [join(repo, "clients/node/examples/api.mjs")], {
    AUTHD_URL: A,
    AUTHD_ISSUER: A,
    AUTHD_RESOURCE_SECRET: SECRET,
    PORT: String(apiPort),
  });
  const API = `http://127.0.0.1:${apiPort}`;
  await until(async () => api.out.includes("revocation feed ready"), 20_000, "Node example API");
  const rustPort = await freePort();
  const rustApi = start(join(repo, "target/release/examples/resource_server"), [], {
    AUTHD_URL: A,
    AUTHD_ISSUER: A,
    AUTHD_RESOURCE_SECRET: SECRET,
    BIND: `127.0.0.1:${rustPort}`,
  });
  const RUST = `http://127.0.0.1:${rustPort}`;
  await until(async () => rustApi.out.includes("listening on"), 20_000, "Rust example API");

  // 1. revocation reach
  const logins = [];
  for (let i = 0; i < N * 2; i++) {
    const r = await call(B, "POST", "/auth/login", { body: { email, password: PASSWORD } });
    logins.push(r.json);
  }
  const viaB = [];
  const rustViaB = [];
  const sameInstance = [];
  const crossInstance = [];
  for (let i = 0; i < N; i++) {
    const t = logins[i];
    for (const base of [API, RUST]) {
      const before = await call(base, "GET", "/hello", { token: t.access_token });
      if (before.status !== 200) throw new Error(`${base} before: ${before.status}`);
    }
    await call(B, "DELETE", `/auth/sessions/${t.session_id}`, { token: t.access_token });
    const t0 = performance.now();
    let apiAt = null;
    let rustAt = null;
    let aAt = null;
    while (apiAt === null || rustAt === null || aAt === null) {
      if (apiAt === null && (await call(API, "GET", "/hello", { token: t.access_token })).status === 401) apiAt = performance.now();
      if (rustAt === null && (await call(RUST, "GET", "/hello", { token: t.access_token })).status === 401) rustAt = performance.now();
      if (aAt === null && (await call(A, "GET", "/auth/me", { token: t.access_token })).status === 401) aAt = performance.now();
      if (performance.now() - t0 > 5000) throw new Error(`not refused within 5 s (${apiAt}, ${rustAt}, ${aAt})`);
    }
    viaB.push(apiAt - t0);
    rustViaB.push(rustAt - t0);
    crossInstance.push(aAt - t0);
    const s = logins[N + i];
    await call(A, "DELETE", `/auth/sessions/${s.session_id}`, { token: s.access_token });
    const s0 = performance.now();
    while ((await call(A, "GET", "/auth/me", { token: s.access_token })).status !== 401) {
      if (performance.now() - s0 > 5000) throw new Error("A did not refuse its own revocation");
    }
    sameInstance.push(performance.now() - s0);
  }

  // 2. cost per request, in this process
  const { createVerifier } = await import(join(repo, "clients/node/src/index.js"));
  const { importJWK, jwtVerify } = await import(join(repo, "clients/node/node_modules/jose/dist/webapi/index.js"));
  const verifier = createVerifier({ authdUrl: A, issuer: A, resourceSecret: SECRET });
  await verifier.ready();
  const live = (await call(B, "POST", "/auth/login", { body: { email, password: PASSWORD } })).json;
  const jwks = (await call(A, "GET", "/.well-known/jwks.json")).json;
  const key = await importJWK(jwks.keys[0], "EdDSA");
  const plain = (token) =>
    jwtVerify(token, key, { algorithms: ["EdDSA"], typ: "at+jwt", issuer: A, audience: "authd", clockTolerance: 30 });
  const time = async (fn) => {
    const t0 = performance.now();
    for (let i = 0; i < CALLS; i++) await fn(live.access_token);
    return ((performance.now() - t0) * 1000) / CALLS; // µs per call
  };
  await time(plain);
  await time((t) => verifier.verify(t)); // warm-up
  const pairs = [];
  for (let r = 0; r < 5; r++) {
    const p = await time(plain);
    const v = await time((t) => verifier.verify(t));
    pairs.push({ plain_us: p, verifier_us: v, ratio: v / p });
  }
  await verifier.close();

  // 3. memory with DENIED live revocations, delivered by the feed's snapshot
  const userId = (await call(A, "GET", "/auth/me", { token: live.access_token })).json.id;
  psql(
    `INSERT INTO sessions (id, user_id, expires_at, absolute_expires_at, access_expires_at, revoked_at, revoked_reason)
     SELECT gen_random_uuid(), '${userId}', now() + interval '1 day', now() + interval '1 day',
            now() + interval '1 hour', now(), 'bench'
     FROM generate_series(1, ${DENIED})`,
    db,
  );
  const memProbe = start(process.execPath, ["--expose-gc", join(repo, "bench/verifier/node-memory.mjs")], {
    AUTHD_URL: A,
    AUTHD_RESOURCE_SECRET: SECRET,
  });
  const mem = await until(async () => {
    const m = memProbe.out.match(/^MEMORY (.*)$/m);
    return m ? JSON.parse(m[1]) : null;
  }, 600_000, "memory probe");
  const rustProbe = start(join(repo, "target/release/examples/verifier_probe"), [], {
    AUTHD_URL: A,
    AUTHD_RESOURCE_SECRET: SECRET,
    TOKEN: live.access_token,
    CALLS: String(CALLS),
  });
  const rust = await until(async () => {
    const line = rustProbe.out.split("\n").find((l) => l.startsWith("{"));
    if (line) return JSON.parse(line);
    if (rustProbe.exitCode !== null) throw new Error(`Rust probe exited: ${rustProbe.out}`);
    return null;
  }, 600_000, "Rust verifier probe");

  const result = {
    revocations: N,
    node_api_refuses_after_revocation_via_b: stats(viaB),
    rust_api_refuses_after_revocation_via_b: stats(rustViaB),
    authd_a_refuses_after_revocation_via_b: stats(crossInstance),
    authd_a_refuses_after_revocation_via_a: stats(sameInstance),
    node_cost_per_request: { calls: CALLS, pairs, ratio_median: q(pairs.map((p) => p.ratio), 0.5) },
    node_memory_with_denied: { denied: DENIED, ...mem },
    rust_cost_per_request: rust.cost,
    rust_memory_with_denied: { denied: DENIED, ...rust.memory },
  };
  console.log(JSON.stringify(result, null, 2));
}

try {
  await main();
} finally {
  for (const c of children) c.kill("SIGTERM");
  await sleep(500);
  try {
    psql(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  } catch {}
  rmSync(work, { recursive: true, force: true });
}
