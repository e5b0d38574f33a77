// Signing keys in the browser: a key revoked under a signed-in tab costs the app nothing but one
// refresh (`authd keys revoke`, then the tab's next auth.fetch).
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { appState, browserTest, eventually, login, startStack } from "./harness.mjs";

const kidOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[0], "base64url")).kid;

describe("signing keys", () => {
  let stack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack?.stop());
  const it = (name, fn) => browserTest(name, () => stack, fn);

  it("after its token's key is revoked, the next auth.fetch refreshes and succeeds transparently", async () => {
    const user = await stack.createUser();
    const context = await stack.newContext();
    const page = await stack.openDemo(context, { poll: 0 });
    /** What went over the wire to authd while recording, in order: "METHOD /path status kid". */
    const wire = [];
    let recording = false;
    context.on("requestfinished", async (req) => {
      if (!recording || !req.url().startsWith(stack.authdUrl) || req.method() === "OPTIONS") return;
      const slot = wire.push(null) - 1; // the order requests finished in, not the handlers
      const res = await req.response();
      const bearer = (await req.allHeaders()).authorization?.slice("Bearer ".length);
      const { pathname } = new URL(req.url());
      wire[slot] = `${req.method()} ${pathname} ${res?.status()} ${bearer ? kidOf(bearer) : "-"}`;
    });
    await login(page, user.email);
    await page.click("#ping");
    await eventually(async () => (await appState(page)).lastCall === "GET /auth/me → 200");
    const kid = await stack.sql("SELECT kid FROM signing_keys WHERE revoked_at IS NULL");

    const out = await stack.cli("keys", "revoke", "--kid", kid);
    assert.match(out, /new signing key (\S+) signs now/);
    const newKid = /new signing key (\S+) signs now/.exec(out)[1];
    await eventually(
      async () => {
        const { body } = await stack.api("GET", "/.well-known/jwks.json");
        return body.keys.map((k) => k.kid).join() === newKid;
      },
      { message: "authd dropped the revoked key" },
    );
    const { ok, failed } = await appState(page);
    recording = true;
    await page.click("#ping");
    const state = await eventually(
      async () => {
        const s = await appState(page);
        return s.ok + s.failed + s.errors > ok + failed && s;
      },
      { message: "the ping after the revocation answered" },
    );
    assert.equal(state.lastCall, "GET /auth/me → 200");
    assert.equal(state.state, "signed-in");
    assert.equal(state.failed, failed, "no 401 reached the app");
    assert.equal(state.errors, 0);
    assert.deepEqual(state.events.filter((e) => e.includes("session ended")), []);
    await eventually(() => wire.length >= 3 && wire.every(Boolean));
    assert.deepEqual(
      wire,
      [`GET /auth/me 401 ${kid}`, "POST /auth/refresh 200 -", `GET /auth/me 200 ${newKid}`],
      "one refresh, one retry with the new key's token",
    );
  });
});
