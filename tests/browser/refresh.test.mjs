// Silent refresh with 3-second access tokens: expiries, a skewed or stopped tab clock, two tabs,
// going offline, a lost refresh response.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { appState, browserTest, eventually, login, startStack } from "./harness.mjs";

const TTL_SECONDS = 3;
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url"));
const cookieValue = (header) => /authd_refresh=([^;]*)/.exec(header ?? "")?.[1];

/** The app kept working: signed in, no auth.fetch call answered an error, no session ended. */
async function assertHealthy(page, { offline = false } = {}) {
  const state = await appState(page);
  assert.equal(state.state, "signed-in");
  assert.equal(state.failed, 0, "no error response (such as a 401) reached the app");
  if (!offline) assert.equal(state.errors, 0, "no network errors");
  assert.deepEqual(state.events.filter((e) => e.includes("session ended")), []);
  assert.ok(state.ok > 0);
}

async function assertSessionLive(stack, email) {
  const rows = await stack.sql(`SELECT revoked_at IS NULL FROM sessions s
    JOIN users u ON u.id = s.user_id WHERE u.email = '${email}'`);
  assert.equal(rows, "t", "exactly one session, not revoked");
}

/** Records each /auth/refresh request with the cookie it presented and what authd answered. */
function recordRefreshes(context, stack) {
  const requests = [];
  context.on("request", (req) => {
    if (req.url() === `${stack.authdUrl}/auth/refresh`) requests.push(req);
  });
  return async () =>
    Promise.all(
      requests.map(async (req) => {
        const res = await req.response();
        return {
          at: req.timing().startTime,
          cookie: cookieValue((await req.allHeaders()).cookie),
          status: res?.status() ?? "failed",
          successor: cookieValue((await res?.allHeaders())?.["set-cookie"]),
        };
      }),
    );
}

describe(`silent refresh with ${TTL_SECONDS}-second access tokens`, () => {
  let stack;
  before(async () => {
    stack = await startStack({ env: { AUTHD_ACCESS_TTL: `${TTL_SECONDS}s` } });
  });
  after(() => stack?.stop());
  const it = (name, fn) => browserTest(name, () => stack, fn);

  it("the app keeps working across several expiries, refreshing ahead of each, whatever the tab's clock says", async () => {
    const user = await stack.createUser();
    const context = await stack.newContext();
    // The tab's clock is an hour fast: only expires_in (relative time) can be trusted.
    await context.clock.install({ time: Date.now() + 3_600_000 });
    const page = await stack.openDemo(context, { poll: 250 });
    const bearerCalls = [];
    const authdStatuses = [];
    let refreshCount = 0;
    context.on("requestfinished", (req) => {
      const token = req.headers().authorization?.slice("Bearer ".length);
      // timing() is the browser's network clock (the real one, shared with authd), not the page's.
      if (token) {
        bearerCalls.push({ token, sentAt: req.timing().startTime / 1000, exp: claims(token).exp });
      }
      if (req.url().endsWith("/auth/refresh")) refreshCount++;
    });
    context.on("response", (res) => {
      if (res.url().startsWith(stack.authdUrl)) authdStatuses.push(res.status());
    });
    await login(page, user.email);
    const started = Date.now();

    // Four token lifetimes: each token is replaced before it expires, over and over.
    await eventually(() => new Set(bearerCalls.map((c) => c.token)).size >= 8, {
      timeout: 30_000,
      message: "bearer calls with 8 different tokens",
    });
    const periods = (Date.now() - started) / 1000 / (TTL_SECONDS / 2);
    await assertHealthy(page);
    assert.deepEqual(authdStatuses.filter((s) => s >= 400), [], "no 401 token_expired to retry");
    const late = bearerCalls.filter((c) => c.sentAt >= c.exp);
    assert.deepEqual(late, [], "every token was used before its exp");
    assert.ok(refreshCount <= periods + 1, `${refreshCount} refreshes in ${periods.toFixed(1)} periods`);
    await assertSessionLive(stack, user.email);
  });

  it("a call with a token that expired while the tab's clock stood still is refreshed and retried once", async () => {
    const user = await stack.createUser();
    const context = await stack.newContext();
    await context.clock.install();
    const page = await stack.openDemo(context, { poll: 0 });
    const loginResponse = page.waitForResponse((r) => r.url().endsWith("/auth/login"));
    await login(page, user.email);
    const { access_token: token } = await (await loginResponse).json();
    await page.waitForSelector("#sessions li"); // the demo's own first calls are done
    // A laptop lid closed: the tab's time stops, authd's does not.
    await page.clock.pauseAt((await page.evaluate(() => Date.now())) + 100);
    const expired = async () =>
      (await stack.api("GET", "/auth/me", { token })).body?.code === "token_expired";
    await eventually(expired, { timeout: 20_000, interval: 250, message: "token expired at authd" });

    const answers = [];
    context.on("response", async (res) => {
      const { origin, pathname } = new URL(res.url());
      if (origin === stack.authdUrl && res.request().method() !== "OPTIONS") {
        answers.push(`${pathname} ${res.status()}`);
      }
    });
    await page.click("#ping");
    await eventually(async () => (await appState(page)).lastCall === "GET /auth/me → 200");
    assert.deepEqual(answers, ["/auth/me 401", "/auth/refresh 200", "/auth/me 200"]);
    const state = await appState(page);
    assert.equal(state.failed, 0, "the 401 did not reach the app");
  });

  it("two tabs holding the same token share one refresh per expiry and stay signed in", async () => {
    const user = await stack.createUser();
    const context = await stack.newContext();
    const tokensOf = (page) => {
      const tokens = new Set();
      page.on("request", (req) => {
        const auth = req.headers().authorization;
        if (auth) tokens.add(auth);
      });
      return tokens;
    };
    const pageA = await stack.openDemo(context, { poll: 200 });
    const tokensA = tokensOf(pageA);
    await login(pageA, user.email);
    const refreshes = recordRefreshes(context, stack);
    const pageB = await stack.openDemo(context, { poll: 200 }); // restore() shares its token with A
    const tokensB = tokensOf(pageB);

    await eventually(async () => (await refreshes()).length >= 10, {
      timeout: 30_000,
      message: "10 refreshes",
    });
    const all = await refreshes();

    for (const page of [pageA, pageB]) await assertHealthy(page);
    assert.deepEqual(all.filter((r) => r.status !== 200), [], "every refresh succeeded");
    const presented = all.map((r) => r.cookie);
    assert.equal(new Set(presented).size, presented.length, "a refresh token presented twice");
    // The tabs use the same access tokens, so they meet each expiry together...
    const shared = [...tokensB].filter((t) => tokensA.has(t));
    assert.ok(shared.length >= 4, `tabs shared ${shared.length} tokens`);
    // ...and one refresh serves both: about one per refresh period (half a lifetime), not two.
    // (A few extra are fine: a tab may take the lock just before the news of a refresh arrives.)
    const steady = all.slice(1).filter((r) => r.status === 200); // after B's restore
    const periods = (steady.at(-1).at - steady[0].at) / (TTL_SECONDS * 500);
    const intervals = steady.length - 1;
    assert.ok(intervals <= periods * 1.4 + 1, `${intervals} refreshes in ${periods.toFixed(1)} periods`);
    await assertSessionLive(stack, user.email);
  });

  it("two tabs whose tokens expired offline come back online together without a 401", async () => {
    const user = await stack.createUser();
    const context = await stack.newContext();
    const pageA = await stack.openDemo(context, { poll: 200 });
    await login(pageA, user.email);
    const pageB = await stack.openDemo(context, { poll: 200 });
    const refreshes = recordRefreshes(context, stack);
    const failedRefresh = new Set();
    for (const page of [pageA, pageB]) {
      page.on("requestfailed", (req) => {
        if (req.url().endsWith("/auth/refresh")) failedRefresh.add(page);
      });
    }

    // Offline (a laptop asleep, a tunnel): both tabs try to refresh, fail, and keep the session.
    await context.setOffline(true);
    const offlineAt = Date.now();
    await eventually(() => failedRefresh.size === 2 && Date.now() - offlineAt > TTL_SECONDS * 1000, {
      timeout: 20_000,
      message: "both tabs failing to refresh while their tokens expire",
    });
    for (const page of [pageA, pageB]) await assertHealthy(page, { offline: true });

    // Back online: both tabs refresh at the same moment.
    const onlineAt = Date.now();
    await context.setOffline(false);
    const callsAuthd = async (page) => (await appState(page)).lastCall === "GET /auth/me → 200";
    await eventually(async () => (await callsAuthd(pageA)) && (await callsAuthd(pageB)), {
      message: "both tabs calling authd again",
    });
    const answered = (await refreshes()).filter((r) => r.status !== "failed");
    const first = answered.find((r) => r.at >= onlineAt);
    const burst = answered.filter((r) => r.at >= first.at && r.at - first.at < 1_000);
    assert.ok(burst.length <= 2, `${burst.length} refreshes at once`);
    assert.deepEqual(answered.filter((r) => r.status !== 200), [], "every refresh succeeded");
    const presented = answered.map((r) => r.cookie);
    assert.equal(new Set(presented).size, presented.length, "a refresh token presented twice");
    for (const page of [pageA, pageB]) await assertHealthy(page, { offline: true });
    await assertSessionLive(stack, user.email);
  });

  it("a refresh whose response is lost is retried within the grace window", async () => {
    const user = await stack.createUser();
    const context = await stack.newContext();
    const page = await stack.openDemo(context, { poll: 250 });
    await login(page, user.email);
    const refreshes = recordRefreshes(context, stack);
    let lost;
    await context.route(`${stack.authdUrl}/auth/refresh`, async (route) => {
      if (lost) return route.continue();
      lost = { at: Date.now() };
      // authd receives and handles the refresh (rotating the token)...
      const headers = await route.request().allHeaders();
      const forwarded = ["cookie", "origin", "sec-fetch-site", "user-agent"];
      const res = await fetch(route.request().url(), {
        method: "POST",
        headers: Object.fromEntries(forwarded.map((h) => [h, headers[h]])),
      });
      Object.assign(lost, {
        status: res.status,
        cookie: cookieValue(headers.cookie),
        successor: cookieValue(res.headers.get("set-cookie")),
      });
      // ...but the browser never gets the answer.
      await route.abort("connectionreset");
    });

    await eventually(async () => (await refreshes()).filter((r) => r.status === 200).length >= 2, {
      timeout: 20_000,
      message: "two refreshes after the lost one",
    });
    const [first, retry, next] = await refreshes();
    assert.equal(lost.status, 200, "authd handled the lost refresh");
    assert.equal(first.status, "failed");
    assert.deepEqual(
      { cookie: retry.cookie, status: retry.status, successor: retry.successor },
      { cookie: lost.cookie, status: 200, successor: lost.successor },
      "the retry presented the same token and got the same successor",
    );
    assert.ok(retry.at - lost.at < 10_000, "retried within AUTHD_REFRESH_GRACE");
    assert.deepEqual(
      { cookie: next.cookie, status: next.status },
      { cookie: lost.successor, status: 200 },
      "then the successor was used: the rotation goes on",
    );
    await assertHealthy(page);
    await assertSessionLive(stack, user.email);
  });
});
