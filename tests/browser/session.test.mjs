// Login, reload, and sessions ended elsewhere (another device, an admin), against a real authd.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { PASSWORD, appState, browserTest, eventually, login, startStack } from "./harness.mjs";

describe("sessions in the browser", () => {
  let stack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack?.stop());
  const it = (name, fn) => browserTest(name, () => stack, fn);

  it("login keeps the refresh token away from JavaScript and the access token out of storage", async () => {
    const user = await stack.createUser();
    const context = await stack.newContext();
    const page = await stack.openDemo(context, { poll: 0 });
    const requests = [];
    context.on("request", (req) => requests.push(req));

    const loginResponse = page.waitForResponse((r) => r.url().endsWith("/auth/login"));
    await login(page, user.email);
    const { access_token: accessToken } = await (await loginResponse).json();

    const cookies = await context.cookies(`${stack.authdUrl}/auth/refresh`);
    const refresh = cookies.find((c) => c.name === "authd_refresh");
    assert.ok(refresh, `refresh cookie set: ${JSON.stringify(cookies)}`);
    const { httpOnly, secure, sameSite, path } = refresh;
    assert.deepEqual(
      { httpOnly, secure, sameSite, path },
      { httpOnly: true, secure: true, sameSite: "Strict", path: "/auth" },
    );
    const seen = await page.evaluate(async () => ({
      cookie: document.cookie,
      storage: JSON.stringify([{ ...localStorage }, { ...sessionStorage }]),
      indexedDbs: (await indexedDB.databases()).length,
    }));
    assert.ok(!seen.cookie.includes(refresh.value) && !seen.cookie.includes("authd_refresh"));
    assert.ok(!seen.storage.includes(accessToken), "access token in Web Storage");
    assert.ok(!seen.storage.includes(refresh.value), "refresh token in Web Storage");
    assert.equal(seen.indexedDbs, 0);

    // The app works, and only the cookie endpoints get the cookie (here: the reload's refresh).
    await page.click("#ping");
    await eventually(async () => (await appState(page)).lastCall === "GET /auth/me → 200");
    await page.click("#reload-sessions");
    await eventually(async () => (await appState(page)).lastCall === "GET /auth/sessions → 200");
    await page.reload();
    await page.waitForSelector('#status[data-state="signed-in"]');
    const cookieSentTo = [];
    for (const req of requests) {
      const { pathname } = new URL(req.url());
      if ((await req.allHeaders()).cookie) cookieSentTo.push(`${req.method()} ${pathname}`);
    }
    assert.deepEqual(cookieSentTo, ["POST /auth/refresh"]);
  });

  it("a reload restores the session by silent refresh; without a session restore() gives null", async () => {
    const context = await stack.newContext();
    const page = await stack.openDemo(context);
    let state = await appState(page);
    assert.equal(state.state, "signed-out");
    assert.ok(state.events.some((e) => e.endsWith("no session to restore")), state.events.join("\n"));

    const user = { email: `registered-${Date.now()}@example.com` };
    await page.fill('#login-form input[name="email"]', user.email);
    await page.fill('#login-form input[name="password"]', PASSWORD);
    await page.click("#register");
    await page.waitForSelector('#form-message:text("Registered")');
    await login(page, user.email);
    const refreshed = page.waitForResponse((r) => r.url().endsWith("/auth/refresh"));
    await page.reload();
    assert.equal((await refreshed).status(), 200);
    await page.waitForSelector('#status[data-state="signed-in"]');
    state = await appState(page);
    assert.ok(state.events.some((e) => e.endsWith(`session restored for ${user.email}`)));
    assert.equal(await page.textContent("#user-email"), user.email);
    await page.click("#ping");
    await eventually(async () => (await appState(page)).lastCall === "GET /auth/me → 200");

    // A second tab of the same browser is signed in too.
    const tab = await stack.openDemo(context);
    assert.equal((await appState(tab)).state, "signed-in");
  });

  it("logout ends the session in every tab of the browser, and a reload stays signed out", async () => {
    const user = await stack.createUser();
    const context = await stack.newContext();
    const tab1 = await stack.openDemo(context, { poll: 0 });
    await login(tab1, user.email);
    const tab2 = await stack.openDemo(context, { poll: 0 });
    assert.equal((await appState(tab2)).state, "signed-in");

    await tab1.click("#logout");
    for (const tab of [tab1, tab2]) {
      await tab.waitForSelector('#status[data-state="signed-out"]');
      const { events } = await appState(tab);
      assert.deepEqual(endings(events), ["session ended: logout"]);
    }
    const cookies = await context.cookies(`${stack.authdUrl}/auth/refresh`);
    assert.deepEqual(cookies, [], "the refresh cookie is gone");
    assert.equal(
      await stack.sql(`SELECT revoked_reason FROM sessions WHERE user_id = '${user.id}'`),
      "logout",
    );
    await tab2.reload();
    await tab2.waitForSelector('#status[data-state="signed-out"]');
  });

  it("'sign out everywhere' ends this browser's session at once and the others' within seconds", async () => {
    const user = await stack.createUser();
    const [pageA, pageB] = await Promise.all(
      [0, 1].map(async () => {
        const page = await stack.openDemo(await stack.newContext());
        await login(page, user.email);
        return page;
      }),
    );
    await pageA.click("#revoke-all");
    await pageA.waitForSelector('#status[data-state="signed-out"]', { timeout: 2_000 });
    await pageB.waitForSelector('#status[data-state="signed-out"]', { timeout: 5_000 });
    for (const page of [pageA, pageB]) {
      const { events } = await appState(page);
      assert.deepEqual(endings(events), ["session ended: session_revoked"]);
    }
    const live = `SELECT count(*) FROM sessions WHERE user_id = '${user.id}' AND revoked_at IS NULL`;
    assert.equal(await stack.sql(live), "0");
  });

  it("signing out a device from another browser ends that browser's session within seconds", async () => {
    const user = await stack.createUser();
    const [pageA, pageB] = await Promise.all(
      [0, 1].map(async () => {
        const page = await stack.openDemo(await stack.newContext());
        await login(page, user.email);
        return page;
      }),
    );
    const sessionB = await pageB.getAttribute('#sessions li[data-current="true"]', "data-session-id");
    await pageA.click("#reload-sessions");
    await pageA.click(`#sessions li[data-session-id="${sessionB}"] button.revoke`);

    await pageB.waitForSelector('#status[data-state="signed-out"]', { timeout: 5_000 });
    await pageB.waitForSelector("#login-form", { state: "visible" });
    const b = await appState(pageB);
    assert.deepEqual(endings(b.events), ["session ended: session_revoked"]);
    assert.match(b.lastCall, /→ 401$/, "the call that met the revocation got the 401 response");
    assert.equal(b.errors, 0);

    const a = await appState(pageA);
    assert.equal(a.state, "signed-in");
    await pageA.waitForSelector(`#sessions li[data-session-id="${sessionB}"]`, { state: "detached" });
    assert.equal(
      await stack.sql(`SELECT revoked_at IS NOT NULL FROM sessions WHERE id = '${sessionB}'`),
      "t",
    );
  });

  it("an admin's revoke-all signs the user out in every browser and tab", async () => {
    const user = await stack.createUser();
    const contextA = await stack.newContext();
    const pageA1 = await stack.openDemo(contextA);
    await login(pageA1, user.email);
    const pageA2 = await stack.openDemo(contextA); // restored from the shared cookie
    const pageB = await stack.openDemo(await stack.newContext());
    await login(pageB, user.email);
    const pages = [pageA1, pageA2, pageB];
    for (const page of pages) assert.equal((await appState(page)).state, "signed-in");

    const admin = await stack.adminToken();
    const res = await stack.api("DELETE", `/admin/users/${user.id}/sessions`, { token: admin });
    assert.deepEqual(res, { status: 200, body: { revoked: 2 } });

    for (const page of pages) {
      await page.waitForSelector('#status[data-state="signed-out"]', { timeout: 5_000 });
    }
    for (const page of pages) {
      const { events } = await appState(page);
      assert.deepEqual(endings(events), ["session ended: session_revoked"]);
    }
  });
});

/** The demo's "session ended: <reason>" events, without their time stamps. */
const endings = (events) =>
  events.filter((e) => e.includes("session ended")).map((e) => e.slice(e.indexOf("session ended")));
