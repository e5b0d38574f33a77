// The example API (Express + @authd/verifier) against two real authd instances on one database:
// revocations through either instance reach it within a second, a feed killed and restored loses
// nothing, and a key rotation is picked up without a restart.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { decodeProtectedHeader } from "jose";
import { eventually, hello, startCluster } from "./harness.mjs";

let cluster;
let apis; // one example API per authd instance, each following its instance's feed
before(async () => {
  cluster = await startCluster({ instances: 2 });
  apis = [await cluster.startApi(0), await cluster.startApi(1)];
});
after(() => cluster?.stop());

/** Polls every API until the token is refused as revoked; resolves to the slowest delay (ms). */
async function revokedEverywhere(token, since) {
  let slowest = 0;
  for (const api of apis) {
    await eventually(async () => {
      const res = await hello(api, token);
      return res.status === 401 && res.body.code === "session_revoked";
    }, { timeout: 5_000, interval: 10, message: `${api} to refuse the revoked session` });
    slowest = Math.max(slowest, Date.now() - since);
  }
  return slowest;
}

test("a session revoked through either authd instance is refused by the APIs within 1 s", async () => {
  const user = await cluster.user();
  for (const via of [0, 1]) {
    const session = await user.login(1 - via); // logged in at the other instance
    const other = await user.login(via);
    for (const api of apis) {
      const ok = await hello(api, session.token);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(ok.body.claims.sid, session.sid);
    }
    const since = Date.now();
    await cluster.revoke(via, session);
    const delay = await revokedEverywhere(session.token, since);
    assert.ok(delay <= 1000, `revocation through instance ${via} took ${delay} ms`);
    const res = await hello(apis[0], session.token);
    assert.equal(res.wwwAuthenticate, 'Bearer error="invalid_token"');
    assert.match(res.type, /^application\/problem\+json/);
    assert.equal(res.body.status, 401);
    // Only that session: the same user's other session still works.
    for (const api of apis) assert.equal((await hello(api, other.token)).status, 200);
  }
});

test("no Bearer token, a garbage token, or a token for another audience: 401", async () => {
  const none = await fetch(`${apis[0]}/hello`);
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("www-authenticate"), "Bearer");
  assert.equal((await none.json()).code, "unauthorized");
  const garbage = await hello(apis[0], "not.a.jwt");
  assert.equal(garbage.status, 401);
  assert.equal(garbage.body.code, "invalid_token");
  const otherAudience = await cluster.startApi(0, { AUTHD_AUDIENCE: "someone-else" });
  const session = await (await cluster.user()).login(0);
  assert.equal((await hello(apis[0], session.token)).status, 200);
  assert.equal((await hello(otherAudience, session.token)).body.code, "invalid_token");
});

test("the feed killed and restored loses no revocation", async () => {
  const user = await cluster.user();
  const kept = await user.login(1);
  const revoked = await user.login(1);
  assert.equal((await hello(apis[0], revoked.token)).status, 200);
  // apis[0] follows instance 0's feed: kill it, revoke through instance 1 meanwhile.
  await cluster.stopInstance(0);
  await cluster.revoke(1, revoked);
  await cluster.startInstance(0);
  await eventually(async () => {
    const [k, r] = [await hello(apis[0], kept.token), await hello(apis[0], revoked.token)];
    return k.status === 200 && r.status === 401 && r.body.code === "session_revoked";
  }, { timeout: 15_000, message: "the restored feed to bring the revocation (and freshness) back" });
});

test("after `authd keys rotate --now`, tokens from the new key verify without a restart", async () => {
  const user = await cluster.user();
  const before = await user.login(0);
  const oldKid = decodeProtectedHeader(before.token).kid;
  await cluster.cli("keys", "rotate", "--now");
  const fresh = await eventually(async () => {
    const s = await user.login(0);
    return decodeProtectedHeader(s.token).kid !== oldKid && s;
  }, { timeout: 10_000, message: "authd to sign with the new key" });
  for (const api of apis) {
    const res = await hello(api, fresh.token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
});
