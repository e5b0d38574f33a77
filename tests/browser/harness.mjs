// Test harness: a real authd (target/debug/authd) on its own fresh database, a real SMTP server
// (tests/support/smtp_sink.py) that authd mails through, the demo's static server and a headless
// Debian Chromium, all on 127.0.0.1 and all stopped when the suite ends.
import { execFile, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const AUTHD_BIN = process.env.AUTHD_BIN ?? join(repo, "target/debug/authd");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const PG_SERVER = "postgres://postgres@127.0.0.1:5432";
const ARTIFACTS = fileURLToPath(new URL("artifacts/", import.meta.url));
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
export const PASSWORD = "a perfectly fine passphrase";

const run = promisify(execFile);
const children = new Set();
const databases = new Set();
const tempDirs = new Set();

// Last resort when the runner exits early: no process or database outlives the tests.
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  for (const db of databases) {
    try {
      psqlSync(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    } catch {}
  }
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(1));

function psqlSync(sql, db = "postgres") {
  return execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atqc", sql], {
    encoding: "utf8",
  });
}

async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/** Polls `check` until it returns a truthy value (returned) or the deadline passes. */
export async function eventually(check, { timeout = 10_000, interval = 100, message } = {}) {
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

/**
 * Spawns a process, keeps its output for the failure report, and kills it with the suite.
 * `stdin: "pipe"` keeps a pipe to its stdin open (the SMTP sink stops when it closes).
 */
function start(name, command, args, { stdin = "ignore", ...options } = {}) {
  const child = spawn(command, args, { ...options, stdio: [stdin, "pipe", "pipe"] });
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
  if (child.stdin) {
    // Processes that listen to their stdin stop when it closes.
    child.stdin.end();
    const exited = await Promise.race([child.exited.then(() => true), sleep(5_000)]);
    if (exited) return;
  }
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await child.exited;
  clearTimeout(timer);
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Starts demo/serve.mjs on a free port, talking to `authdUrl`, and resolves to its port. */
async function startDemo(authdUrl) {
  const child = start("demo", process.execPath, [join(repo, "demo/serve.mjs"), "0", authdUrl]);
  const port = await eventually(() => /localhost:(\d+)/.exec(child.log.join(""))?.[1], {
    timeout: 10_000,
    message: "demo server to print its port",
  });
  return { child, port: Number(port) };
}

let venvPython;
/** The python of the tests' venv (tests/support/venv.sh, which installs aiosmtpd once). */
function python() {
  venvPython ??= run("bash", [join(repo, "tests/support/venv.sh")]).then((r) => r.stdout.trim());
  return venvPython;
}

/** Starts tests/support/smtp_sink.py, writing messages to `dir`; resolves to it and its port. */
async function startSmtpSink(dir) {
  const sink = join(repo, "tests/support/smtp_sink.py");
  const child = start("smtp", await python(), [sink, "--dir", dir], { stdin: "pipe" });
  const port = await eventually(
    () => (child.exitCode !== null ? "exited" : /^ready (\d+)$/m.exec(child.log.join(""))?.[1]),
    { timeout: 30_000, message: "the SMTP sink to print its port" },
  );
  if (port === "exited") throw new Error(`the SMTP sink exited: ${child.log.join("")}`);
  return { child, port: Number(port) };
}

/**
 * The messages the SMTP sink received, parsed by tests/browser/read_mail.py: `{file, rcpt, from,
 * to, subject, text, html}`, in the order they arrived.
 */
function mailbox(dir) {
  const parsed = new Map(); // file name -> message (files are complete once they are visible)
  return async () => {
    const files = readdirSync(dir).filter((f) => /^\d+\.eml$/.test(f));
    const fresh = files.filter((f) => !parsed.has(f));
    if (fresh.length) {
      const { stdout } = await run(await python(), [
        fileURLToPath(new URL("read_mail.py", import.meta.url)),
        ...fresh.map((f) => join(dir, f)),
      ]);
      JSON.parse(stdout).forEach((message, i) => parsed.set(fresh[i], message));
    }
    return files.sort((a, b) => parseInt(a) - parseInt(b)).map((f) => parsed.get(f));
  };
}

/**
 * Starts the whole stack. `env` adds authd settings (e.g. AUTHD_ACCESS_TTL); `extraDemos` starts
 * more demo servers whose origins are NOT allowed by authd.
 */
export async function startStack({ env = {}, extraDemos = 0 } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium`);
  }
  if (!existsSync(AUTHD_BIN)) throw new Error(`${AUTHD_BIN} is missing: run cargo build`);
  const stack = { processes: [], contexts: new Set() };
  const port = await freePort();
  stack.authdUrl = `http://localhost:${port}`;

  const demo = await startDemo(stack.authdUrl);
  stack.processes.push(demo.child);
  stack.demoUrl = `http://localhost:${demo.port}`;
  stack.otherDemoPorts = [];
  for (let i = 0; i < extraDemos; i++) {
    const other = await startDemo(stack.authdUrl);
    stack.processes.push(other.child);
    stack.otherDemoPorts.push(other.port);
  }

  const mailDir = mkdtempSync(join(tmpdir(), "authd-browser-mail-"));
  tempDirs.add(mailDir);
  const smtp = await startSmtpSink(mailDir);
  stack.processes.push(smtp.child);
  stack.mails = mailbox(mailDir);

  const db = `authd_browser_${randomBytes(8).toString("hex")}`;
  databases.add(db);
  stack.db = db;
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("AUTHD_") && k !== "DATABASE_URL"),
  );
  stack.authdEnv = {
    ...inherited,
    DATABASE_URL: `${PG_SERVER}/${db}`,
    AUTHD_BIND: `127.0.0.1:${port}`,
    AUTHD_ISSUER: stack.authdUrl,
    AUTHD_ALLOWED_ORIGINS: stack.demoUrl,
    AUTHD_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    AUTHD_APP_URL: stack.demoUrl,
    AUTHD_RATE_LIMIT: "off",
    AUTHD_LOG_FORMAT: "json",
    ...env,
  };
  // cwd: a directory without a .env file (authd reads one if present).
  const authd = start("authd", AUTHD_BIN, ["serve"], { env: stack.authdEnv, cwd: tmpdir() });
  stack.processes.push(authd);
  await eventually(
    async () => authd.exitCode !== null || (await fetch(`${stack.authdUrl}/readyz`)).ok,
    { timeout: 30_000, message: "authd /readyz" },
  );
  if (authd.exitCode !== null) throw new Error(`authd exited: ${authd.log.join("")}`);

  /**
   * Starts clients/node/examples/api.mjs (a resource server on @authd/verifier) against this
   * stack's authd, allowing the demo's origin; resolves to its URL once its revocation feed is
   * ready. Needs AUTHD_RESOURCE_SECRET in `env` of startStack, and clients/node's npm ci.
   */
  stack.startExampleApi = async () => {
    const api = start("example-api", process.execPath, [join(repo, "clients/node/examples/api.mjs")], {
      env: {
        ...inherited,
        AUTHD_URL: stack.authdUrl,
        AUTHD_ISSUER: stack.authdUrl,
        AUTHD_RESOURCE_SECRET: stack.authdEnv.AUTHD_RESOURCE_SECRET,
        ALLOWED_ORIGINS: stack.demoUrl,
        PORT: "0",
      },
    });
    stack.processes.push(api);
    const url = await eventually(
      () => {
        const log = api.log.join("");
        if (api.exitCode !== null) throw new Error(`example API exited: ${log}`);
        const m = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        return m && log.includes("revocation feed ready") ? m[1] : null;
      },
      { timeout: 20_000, message: "the example API and its revocation feed" },
    );
    return url;
  };

  stack.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });

  /** A new browser context (one "device"), closed after the current test. */
  stack.newContext = async (options) => {
    const context = await stack.browser.newContext(options);
    stack.contexts.add(context);
    return context;
  };

  /** Opens the demo in a new tab of `context`, calling authd every `poll` ms (0: never). */
  stack.openDemo = async (context, { poll = 500 } = {}) => {
    const page = await context.newPage();
    const query = new URLSearchParams({ authd: stack.authdUrl, poll: String(poll) });
    await page.goto(`${stack.demoUrl}/?${query}`);
    await page.waitForSelector('#status:not([data-state="loading"])');
    return page;
  };

  stack.sql = async (sql) => {
    const { stdout } = await run("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atqc", sql]);
    return stdout.trim();
  };

  /** authd's JSON API from Node (no Origin header: a non-browser client). */
  stack.api = async (method, path, { token, body } = {}) => {
    const res = await fetch(`${stack.authdUrl}${path}`, {
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

  /** Registers a fresh user; returns { id, email }. */
  stack.createUser = async (prefix = "user") => {
    const email = `${prefix}-${randomBytes(4).toString("hex")}@example.com`;
    const res = await stack.api("POST", "/auth/register", { body: { email, password: PASSWORD } });
    if (res.status !== 201) throw new Error(`register: ${JSON.stringify(res)}`);
    return res.body;
  };

  /** Runs authd's command line on this stack's database; resolves to its stdout. */
  stack.cli = async (...args) =>
    (await run(AUTHD_BIN, args, { env: stack.authdEnv, cwd: tmpdir() })).stdout;

  /** Creates an admin with authd's CLI and returns an admin access token. */
  stack.adminToken = async () => {
    const email = `admin-${randomBytes(4).toString("hex")}@example.com`;
    await run(AUTHD_BIN, ["user", "add", "--email", email, "--admin"], {
      env: { ...stack.authdEnv, AUTHD_PASSWORD: PASSWORD },
      cwd: tmpdir(),
    });
    const res = await stack.api("POST", "/auth/login", { body: { email, password: PASSWORD } });
    if (res.status !== 200) throw new Error(`admin login: ${JSON.stringify(res)}`);
    return res.body.access_token;
  };

  /**
   * Waits for the `nth` (1-based) message to `to` that carries a link to the demo's `path`
   * ("/verify-email", "/reset-password", "/email-sign-in") and returns it with `link` (the
   * text/plain line that is that link alone) and `code` (a line that is 6 to 8 digits alone, or
   * null).
   */
  stack.waitForMail = async (to, path, nth = 1) => {
    const prefix = escapeRegExp(`${stack.demoUrl}${path}#token=`);
    const linkLine = new RegExp(`^${prefix}[A-Za-z0-9_-]{43,}$`); // >= 256 bits, base64url
    const lines = (m) => (m.text ?? "").split(/\r?\n/).map((l) => l.trim());
    return eventually(
      async () => {
        const matching = (await stack.mails())
          .filter((m) => m.rcpt.some((r) => r.toLowerCase() === to.toLowerCase()))
          .filter((m) => lines(m).some((l) => linkLine.test(l)));
        const m = matching[nth - 1];
        if (!m) return null;
        const link = lines(m).find((l) => linkLine.test(l));
        const code = lines(m).find((l) => /^\d{6,8}$/.test(l)) ?? null;
        return { ...m, link, code };
      },
      { timeout: 15_000, message: `message ${nth} to ${to} with a ${path} link` },
    );
  };

  stack.stop = async () => {
    try {
      await stack.browser?.close();
    } finally {
      await Promise.all(stack.processes.map(stop));
      psqlSync(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      databases.delete(db);
      rmSync(mailDir, { recursive: true, force: true });
      tempDirs.delete(mailDir);
    }
  };
  return stack;
}

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Logs in through the demo's form and waits for the signed-in view. */
export async function login(page, email, password = PASSWORD) {
  await page.fill('#login-form input[name="email"]', email);
  await page.fill('#login-form input[name="password"]', password);
  await page.click('#login-form button[type="submit"]');
  await page.waitForSelector('#status[data-state="signed-in"]');
}

/** What the demo shows: state, counters of auth.fetch calls, event log. */
export async function appState(page) {
  return page.evaluate(() => ({
    state: document.querySelector("#status").dataset.state,
    ok: Number(document.querySelector("#calls-ok").textContent),
    failed: Number(document.querySelector("#calls-failed").textContent),
    errors: Number(document.querySelector("#calls-error").textContent),
    lastCall: document.querySelector("#last-call").textContent,
    events: [...document.querySelectorAll("#events li")].map((li) => li.textContent),
  }));
}

/**
 * `test` against the stack returned by `getStack()`: on failure, screenshots of every open tab
 * and authd's log go to tests/browser/artifacts/; the test's browser contexts are closed after.
 */
export function browserTest(name, getStack, fn) {
  test(name, { timeout: 90_000 }, async (t) => {
    const stack = getStack();
    try {
      await fn(t, stack);
    } catch (err) {
      await saveArtifacts(name, stack).catch((e) => console.error("artifacts:", e));
      throw err;
    } finally {
      await Promise.all([...stack.contexts].map((c) => c.close()));
      stack.contexts.clear();
    }
  });
}

async function saveArtifacts(name, stack) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
  let i = 0;
  for (const context of stack.contexts) {
    for (const page of context.pages()) {
      await page.screenshot({ path: join(ARTIFACTS, `${slug}-${i++}.png`), fullPage: true });
    }
  }
  for (const child of stack.processes) {
    writeFileSync(join(ARTIFACTS, `${slug}-${child.label}-${child.pid}.log`), child.log.join(""));
  }
}
