// Pages on origins authd does not allow cannot use the victim's refresh cookie.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { appState, browserTest, eventually, login, startStack } from "./harness.mjs";

describe("foreign origins and the refresh cookie", () => {
  let stack;
  before(async () => {
    // A second copy of the demo, on an origin authd does not allow.
    stack = await startStack({ extraDemos: 1 });
  });
  after(() => stack?.stop());
  const it = (name, fn) => browserTest(name, () => stack, fn);

  /** A signed-in victim tab and a way to count the victim's consumed refresh tokens. */
  async function victim() {
    const user = await stack.createUser();
    const context = await stack.newContext();
    const page = await stack.openDemo(context);
    await login(page, user.email);
    const sessionId = await page.getAttribute('#sessions li[data-current="true"]', "data-session-id");
    const usedTokens = () =>
      stack.sql(`SELECT count(used_at) FROM refresh_tokens WHERE session_id = '${sessionId}'`);
    return { context, page, sessionId, usedTokens };
  }

  /** The victim still works: the tab calls authd, a reload restores the session. */
  async function assertVictimUnharmed(v, usedBefore) {
    assert.equal(await v.usedTokens(), usedBefore, "the refresh token was not consumed");
    await v.page.click("#ping");
    await eventually(async () => (await appState(v.page)).lastCall === "GET /auth/me → 200");
    await v.page.reload();
    await v.page.waitForSelector('#status[data-state="signed-in"]');
    assert.equal(
      await stack.sql(`SELECT revoked_at IS NULL FROM sessions WHERE id = '${v.sessionId}'`),
      "t",
    );
  }

  /**
   * Opens the attacker's page in the victim's browser and POSTs to /auth/refresh from it three
   * ways. Returns what went over the wire for each, read through the DevTools protocol (a
   * response that CORS blocks is invisible to the page and to Playwright's events).
   */
  async function attack(v, attackerOrigin) {
    const page = await v.context.newPage();
    const cdp = await v.context.newCDPSession(page);
    await cdp.send("Network.enable");
    const wire = new Map();
    const entry = (id) => wire.get(id) ?? wire.set(id, {}).get(id);
    const lower = (headers) =>
      Object.fromEntries(Object.entries(headers).map(([k, x]) => [k.toLowerCase(), x]));
    cdp.on("Network.requestWillBeSent", (e) =>
      Object.assign(entry(e.requestId), { url: e.request.url }),
    );
    cdp.on("Network.requestWillBeSentExtraInfo", (e) =>
      Object.assign(entry(e.requestId), { sent: lower(e.headers), cookies: e.associatedCookies }),
    );
    cdp.on("Network.responseReceivedExtraInfo", (e) =>
      Object.assign(entry(e.requestId), { status: e.statusCode, received: lower(e.headers) }),
    );

    // 1. The demo itself, served from the attacker's origin: its restore() tries to refresh.
    const query = new URLSearchParams({ authd: stack.authdUrl, poll: "0" });
    await page.goto(`${attackerOrigin}/?${query}`);
    await page.waitForSelector('#status:not([data-state="loading"])');
    const { events } = await appState(page);
    // 2. A plain fetch() with credentials.
    const fetched = await page.evaluate(
      (url) =>
        fetch(url, { method: "POST", credentials: "include" }).then(
          (res) => `status ${res.status}`,
          (err) => `rejected: ${err.name}`,
        ),
      `${stack.authdUrl}/auth/refresh`,
    );
    // 3. A classic form POST: a top-level navigation, no CORS involved, its answer is shown.
    const navigation = page.waitForResponse(`${stack.authdUrl}/auth/refresh`);
    await page.evaluate((url) => {
      const form = Object.assign(document.createElement("form"), { method: "POST", action: url });
      document.body.append(form);
      form.submit();
    }, `${stack.authdUrl}/auth/refresh`);
    const formBody = await (await navigation).json();
    const answered = () =>
      [...wire.values()].filter((r) => r.url?.endsWith("/auth/refresh") && r.status);
    await eventually(() => answered().length === 3, { message: "3 answered refresh attempts" });
    return { events, fetched, formBody, attempts: answered() };
  }

  function assertRejected({ attempts, formBody }, attackerOrigin, { cookieSent }) {
    for (const a of attempts) {
      assert.equal(a.sent.origin, attackerOrigin);
      assert.equal(a.status, 403);
      assert.equal(a.received["set-cookie"], undefined, "no cookie set or cleared");
      assert.equal(a.received["access-control-allow-origin"], undefined);
      const cookie = a.sent.cookie ?? "";
      assert.equal(cookie.includes("authd_refresh="), cookieSent, `cookie: ${cookie}`);
      if (!cookieSent) {
        const blocked = a.cookies.find((c) => c.cookie.name === "authd_refresh")?.blockedReasons;
        assert.ok(blocked?.some((r) => r.endsWith("SameSiteStrict")), `blocked: ${blocked}`);
      }
    }
    assert.equal(formBody.code, "csrf_rejected");
  }

  it("a cross-site page (127.0.0.1) cannot refresh with the victim's cookie", async () => {
    const v = await victim();
    const used = await v.usedTokens();
    const origin = `http://127.0.0.1:${stack.otherDemoPorts[0]}`;
    const result = await attack(v, origin);

    assert.equal(result.fetched, "rejected: TypeError", "CORS keeps the answer from the attacker");
    const { events } = result;
    assert.ok(events.some((e) => e.endsWith("restore failed: network_error")), events.join("\n"));
    assertRejected(result, origin, { cookieSent: false }); // SameSite=Strict, and the CSRF check
    await assertVictimUnharmed(v, used);
  });

  it("a same-site page on an origin that is not allowed (another localhost port) is refused too", async () => {
    const v = await victim();
    const used = await v.usedTokens();
    const origin = `http://localhost:${stack.otherDemoPorts[0]}`;
    const result = await attack(v, origin);

    assert.equal(result.fetched, "rejected: TypeError");
    // Same site: the browser sends the SameSite=Strict cookie, so only the Origin check stops it.
    assertRejected(result, origin, { cookieSent: true });
    await assertVictimUnharmed(v, used);
  });
});
