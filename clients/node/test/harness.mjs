// Test harness: real authd instances (target/debug/authd serve) sharing one fresh database, the
// example API (examples/api.mjs) as child processes, and a TCP proxy that can cut the feed. All on
// 127.0.0.1; every process and the database are gone when the suite ends (or the runner exits).
import { execFile, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const repo = fileURLToPath(new URL("../../..", import.meta.url));
const AUTHD_BIN = process.env.AUTHD_BIN ?? join(repo, "target/debug/authd");
const EXAMPLE_API = fileURLToPath(new URL("../examples/api.mjs", import.meta.url));
const PG_SERVER = process.env.AUTHD_TEST_DATABASE_SERVER ?? "postgres://postgres@127.0.0.1:5432";
export const PASSWORD = "a perfectly fine passphrase";
export const RESOURCE_SECRET = `resource-${randomBytes(24).toString("hex")}`;
export const INTROSPECTION_SECRET = `introspection-${randomBytes(24).toString("hex")}`;

const run = promisify(execFile);
const children = new Set();
const databases = new Set();
const tempDirs = new Set();

// Last resort when the runner exits early: no process or database outlives the tests.
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  for (const db of databases) dropDatabase(db);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(1));

function dropDatabase(db) {
  try {
    const url = new URL(PG_SERVER);
    execFileSync(
      "psql",
      ["-h", url.hostname, "-p", url.port || "5432", "-U", url.username || "postgres", "-d", "postgres",
        "-Atqc", `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`],
      { stdio: "ignore" },
    );
  } catch {}
}

export async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/** Polls `check` until it returns a truthy value (returned) or the deadline passes. */
export async function eventually(check, { timeout = 10_000, interval = 50, message } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms: ${message ?? check}`, { cause: last });
    }
    await new Promise((ok) => setTimeout(ok, interval));
  }
}

/** Spawns a process, keeps its output for failure reports, and kills it with the suite. */
function start(name, command, args, options) {
  const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.log = [];
  const keep = (chunk) => {
    child.log.push(chunk.toString());
    if (child.log.length > 2000) child.log.shift();
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  child.exited = new Promise((ok) => child.on("exit", ok));
  child.exited.then(() => children.delete(child));
  child.label = name;
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await child.exited;
  clearTimeout(timer);
}

/**
 * A fresh database and `instances` authd processes on it (same issuer, own ports; `env`: extra
 * variables for every instance and the CLI, e.g. AUTHD_SIGNING_ALG). Methods:
 * start/stop an instance, run the CLI, register+login, revoke, start the example API, stop all.
 */
export async function startCluster({ instances = 2, env = {} } = {}) {
  if (!existsSync(AUTHD_BIN)) throw new Error(`${AUTHD_BIN} is missing: run cargo build`);
  const db = `authd_node_${randomBytes(8).toString("hex")}`;
  databases.add(db);
  const outbox = mkdtempSync(join(tmpdir(), "authd-node-outbox-"));
  tempDirs.add(outbox);
  const ports = [];
  for (let i = 0; i < instances; i++) ports.push(await freePort());
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("AUTHD_") && k !== "DATABASE_URL"),
  );
  const issuer = `http://127.0.0.1:${ports[0]}`;
  const envFor = (port) => ({
    ...inherited,
    DATABASE_URL: `${PG_SERVER}/${db}`,
    AUTHD_BIND: `127.0.0.1:${port}`,
    AUTHD_ISSUER: issuer,
    AUTHD_RESOURCE_SECRET: RESOURCE_SECRET,
    AUTHD_INTROSPECTION_SECRET: INTROSPECTION_SECRET,
    AUTHD_EMAIL_OUTBOX: outbox,
    AUTHD_LOG_FORMAT: "json",
    AUTHD_RATE_LIMIT: "off",
    ...env,
  });
  const cluster = {
    db,
    issuer,
    urls: ports.map((p) => `http://127.0.0.1:${p}`),
    processes: new Array(instances).fill(null),
    apis: [],
  };

  /** Starts (or restarts, on the same port) instance `i` and waits for /readyz. */
  cluster.startInstance = async (i) => {
    // cwd: a directory without a .env file (authd reads one if present).
    const child = start(`authd${i}`, AUTHD_BIN, ["serve"], { env: envFor(ports[i]), cwd: tmpdir() });
    cluster.processes[i] = child;
    await eventually(
      async () => child.exitCode !== null || (await fetch(`${cluster.urls[i]}/readyz`)).ok,
      { timeout: 30_000, message: `authd${i} /readyz` },
    );
    if (child.exitCode !== null) throw new Error(`authd${i} exited: ${child.log.join("")}`);
  };
  cluster.stopInstance = (i) => stop(cluster.processes[i]);

  /** authd's command line on this database; resolves to its stdout. */
  cluster.cli = async (...args) =>
    (await run(AUTHD_BIN, args, { env: envFor(ports[0]), cwd: tmpdir() })).stdout;

  /** authd's JSON API at instance `i`. */
  cluster.api = async (i, method, path, { token, body } = {}) => {
    const res = await fetch(`${cluster.urls[i]}${path}`, {
      method,
      headers: {
        ...(body ? { "Content-Type": "application/json" } : {}),
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  /** Registers a user once; `login(i)` opens a new session at instance i: { token, sid }. */
  cluster.user = async () => {
    const email = `node-${randomBytes(4).toString("hex")}@example.com`;
    const reg = await cluster.api(0, "POST", "/auth/register", { body: { email, password: PASSWORD } });
    if (reg.status !== 201) throw new Error(`register: ${JSON.stringify(reg)}`);
    return {
      login: async (i = 0) => {
        const res = await cluster.api(i, "POST", "/auth/login", { body: { email, password: PASSWORD } });
        if (res.status !== 200) throw new Error(`login: ${JSON.stringify(res)}`);
        return { token: res.body.access_token, sid: res.body.session_id };
      },
    };
  };

  /** Signs session `session` out through instance `i` ("sign out this device"). */
  cluster.revoke = async (i, session) => {
    const res = await cluster.api(i, "DELETE", `/auth/sessions/${session.sid}`, { token: session.token });
    if (res.status !== 204 && res.status !== 200) throw new Error(`revoke: ${JSON.stringify(res)}`);
  };

  /** Starts examples/api.mjs against instance `i` with extra env; resolves to its base URL. */
  cluster.startApi = async (i, env = {}) => {
    const child = start("api", process.execPath, [EXAMPLE_API], {
      env: {
        ...inherited,
        AUTHD_URL: cluster.urls[i],
        AUTHD_ISSUER: issuer,
        AUTHD_RESOURCE_SECRET: RESOURCE_SECRET,
        AUTHD_INTROSPECTION_SECRET: INTROSPECTION_SECRET,
        PORT: "0",
        ...env,
      },
    });
    cluster.apis.push(child);
    const url = await eventually(
      () => (child.exitCode !== null ? "exited" : /listening on (http:\S+)/.exec(child.log.join(""))?.[1]),
      { timeout: 10_000, message: "the example API to print its URL" },
    );
    if (url === "exited") throw new Error(`the example API exited: ${child.log.join("")}`);
    await eventually(() => /revocation feed ready/.test(child.log.join("")), {
      timeout: 10_000,
      message: "the example API's feed to be ready",
    });
    return url;
  };

  cluster.stop = async () => {
    await Promise.all([...cluster.apis, ...cluster.processes].filter(Boolean).map(stop));
    dropDatabase(db);
    databases.delete(db);
    rmSync(outbox, { recursive: true, force: true });
    tempDirs.delete(outbox);
  };

  for (let i = 0; i < instances; i++) await cluster.startInstance(i);
  return cluster;
}

/** GET /hello on an example API with `token`: { status, body, wwwAuthenticate, type }. */
export async function hello(apiUrl, token) {
  const res = await fetch(`${apiUrl}/hello`, { headers: { Authorization: `Bearer ${token}` } });
  return {
    status: res.status,
    body: await res.json(),
    wwwAuthenticate: res.headers.get("www-authenticate"),
    type: res.headers.get("content-type"),
  };
}

/**
 * A TCP proxy to `target` (host:port) that can be cut (open connections destroyed, new ones
 * refused) and restored, to take the feed down without stopping authd.
 */
export async function startProxy(targetPort) {
  const sockets = new Set();
  let up = true;
  const server = createServer((client) => {
    if (!up) return client.destroy();
    const upstream = connect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      up = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      up = true;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((ok) => server.close(ok));
    },
  };
}
