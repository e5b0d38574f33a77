// The failure policy: the feed (reached through a TCP proxy that the test cuts) down past the
// bound makes the example API refuse every token with policy "reject", and answer right through
// POST /auth/introspect with policy "introspect"; once the feed is back, the API is fresh again
// and the revocation made during the outage is there.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { eventually, hello, startCluster, startProxy } from "./harness.mjs";

let cluster;
let proxy;
let rejecting;
let introspecting;
before(async () => {
  cluster = await startCluster({ instances: 1 });
  proxy = await startProxy(new URL(cluster.urls[0]).port);
  const env = { AUTHD_FEED_URL: `${proxy.url}/auth/revocations`, STALE_AFTER_MS: "3000" };
  rejecting = await cluster.startApi(0, { ...env, POLICY: "reject" });
  introspecting = await cluster.startApi(0, { ...env, POLICY: "introspect" });
});
after(async () => {
  await proxy?.close();
  await cluster?.stop();
});

const feedState = async (api) => (await (await fetch(`${api}/healthz`)).json()).feed;

test("feed down past the bound: reject refuses every token, introspect asks authd", async () => {
  const user = await cluster.user();
  const alive = await user.login();
  const revoked = await user.login();
  for (const api of [rejecting, introspecting]) {
    assert.equal((await hello(api, alive.token)).status, 200);
    assert.equal((await hello(api, revoked.token)).status, 200);
  }

  proxy.cut();
  await cluster.revoke(0, revoked); // the APIs cannot hear of this one
  await eventually(async () => (await feedState(rejecting)) === "stale" && (await feedState(introspecting)) === "stale",
    { timeout: 10_000, message: "both APIs to see the feed stale" });

  const refused = await hello(rejecting, alive.token);
  assert.equal(refused.status, 401);
  assert.equal(refused.body.code, "revocation_status_unknown");
  assert.equal(refused.wwwAuthenticate, 'Bearer error="invalid_token"');
  assert.equal((await hello(rejecting, revoked.token)).status, 401);

  const ok = await hello(introspecting, alive.token);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.claims.sid, alive.sid);
  const no = await hello(introspecting, revoked.token);
  assert.equal(no.status, 401);
  assert.equal(no.body.code, "session_revoked");

  proxy.restore();
  for (const api of [rejecting, introspecting]) {
    await eventually(async () => {
      const [a, r] = [await hello(api, alive.token), await hello(api, revoked.token)];
      return (await feedState(api)) === "fresh" && a.status === 200 && r.status === 401 &&
        r.body.code === "session_revoked";
    }, { timeout: 15_000, message: `${api} fresh again, with the outage's revocation` });
  }
});
