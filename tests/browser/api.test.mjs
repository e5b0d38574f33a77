// Forced logout reaches the APIs an SPA calls: "sign out this device" in one browser makes the
// other device's calls to a resource server (clients/node/examples/api.mjs, verifying tokens
// offline with @authd/verifier and authd's revocation feed) fail within a second.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { PASSWORD, browserTest, login, startStack } from "./harness.mjs";

describe("the revocation feed in the browser", () => {
  let stack;
  let apiUrl;
  before(async () => {
    stack = await startStack({
      env: { AUTHD_RESOURCE_SECRET: "browser-test-resource-secret-0123456789" },
    });
    apiUrl = await stack.startExampleApi();
  });
  after(() => stack?.stop());
  const it = (name, fn) => browserTest(name, () => stack, fn);

  it("'sign out this device' in browser A makes device B's API calls fail within a second", async () => {
    const user = await stack.createUser("api");
    // Device B: an SPA calling the example API through the JS client (Bearer to apiOrigins).
    const deviceB = await (await stack.newContext()).newPage();
    await deviceB.goto(`${stack.demoUrl}/`);
    const first = await deviceB.evaluate(
      async ({ authdUrl, apiUrl, email, password }) => {
        const { createAuthClient } = await import("/clients/js/authd.js");
        const auth = createAuthClient({ baseUrl: authdUrl, apiOrigins: [apiUrl] });
        await auth.login(email, password);
        window.callApi = async () => {
          const res = await auth.fetch(`${apiUrl}/hello`);
          return { status: res.status, body: await res.json() };
        };
        return window.callApi();
      },
      { authdUrl: stack.authdUrl, apiUrl, email: user.email, password: PASSWORD },
    );
    assert.equal(first.status, 200, JSON.stringify(first));
    assert.equal(first.body.hello, user.id);

    // Browser A signs device B out from its session list.
    const pageA = await stack.openDemo(await stack.newContext(), { poll: 0 });
    await login(pageA, user.email);
    await pageA.click("#reload-sessions");
    const other = '#sessions li[data-current="false"] button.revoke';
    await pageA.waitForSelector(other);
    const revoked = pageA.waitForResponse(
      (r) => r.request().method() === "DELETE" && r.url().includes("/auth/sessions/"),
    );
    await pageA.click(other);
    assert.equal((await revoked).status(), 204);
    const t0 = Date.now();

    let last;
    for (;;) {
      last = await deviceB.evaluate(() => window.callApi());
      if (last.status === 401 || Date.now() - t0 > 1_000) break;
      await new Promise((ok) => setTimeout(ok, 25));
    }
    const took = Date.now() - t0;
    assert.equal(last.status, 401, `the API still answered ${last.status} after ${took} ms`);
    assert.ok(took <= 1_000, `refused within a second (${took} ms)`);
    assert.equal(last.body.code, "session_revoked");
    // Browser A's own session is untouched.
    const stillA = await pageA.evaluate(() => document.querySelector("#status").dataset.state);
    assert.equal(stillA, "signed-in");
  });
});
