// A forged revocation event (a SET signed with another Ed25519 key, under authd's kid or an
// unknown one) from a fake feed is ignored; a genuine SET relayed by the same fake feed is used.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair } from "jose";
import { createVerifier } from "../src/index.js";
import { SseParser } from "../src/sse.js";
import { RESOURCE_SECRET, startCluster } from "./harness.mjs";

const SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
let cluster;
let fake;
before(async () => {
  cluster = await startCluster({ instances: 1 });
});
after(async () => {
  fake?.closeAllConnections();
  await new Promise((ok) => (fake ? fake.close(ok) : ok()));
  await cluster?.stop();
});

/** The genuine SETs authd's feed sends in its snapshot. */
async function genuineSets() {
  const controller = new AbortController();
  const res = await fetch(`${cluster.urls[0]}/auth/revocations`, {
    headers: { Authorization: `Bearer ${RESOURCE_SECRET}` },
    signal: controller.signal,
  });
  assert.equal(res.status, 200);
  const sets = [];
  let done = false;
  const parser = new SseParser((e) => {
    if (e.event === "revocation") sets.push(e.data);
    if (e.event === "ready") done = true;
  });
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    parser.push(decoder.decode(chunk, { stream: true }));
    if (done) break;
  }
  controller.abort();
  return sets;
}

/** A SET like authd's, for `session`, signed with `key` under `kid`. */
async function forgedSet(session, key, kid) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    sid: session.sid,
    sub: decodeJwt(session.token).sub,
    events: {
      [SESSION_REVOKED]: {
        subject: { format: "complex", session: { format: "opaque", id: session.sid } },
        event_timestamp: now,
        tokens_valid_until: now + 900,
      },
    },
  })
    .setProtectedHeader({ alg: "EdDSA", typ: "secevent+jwt", kid })
    .setIssuer(cluster.issuer)
    .setAudience("authd")
    .setIssuedAt(now)
    .setJti(crypto.randomUUID())
    .sign(key);
}

test("a forged SET is ignored, a genuine one from the same feed is applied", async () => {
  const user = await cluster.user();
  const target = await user.login(); // what the forger wants signed out
  const really = await user.login(); // signed out for real
  await cluster.revoke(0, really);
  const genuine = (await genuineSets()).filter((s) => decodeJwt(s).sid === really.sid);
  assert.equal(genuine.length, 1);

  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const authdKid = decodeProtectedHeader(target.token).kid;
  const forged = [
    await forgedSet(target, privateKey, authdKid),
    await forgedSet(target, privateKey, "forged-kid"),
  ];
  fake = createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    for (const set of [...forged, genuine[0]]) {
      res.write(`event: revocation\nid: ${decodeJwt(set).jti}\ndata: ${set}\n\n`);
    }
    res.write(`event: ready\ndata: {"snapshot": 3}\n\n`);
    const beat = setInterval(() => res.write(`event: heartbeat\ndata: {"time": ${Date.now()}}\n\n`), 500);
    res.on("close", () => clearInterval(beat));
  });
  await new Promise((ok) => fake.listen(0, "127.0.0.1", ok));

  const warnings = [];
  const verifier = createVerifier({
    authdUrl: cluster.urls[0],
    issuer: cluster.issuer,
    resourceSecret: RESOURCE_SECRET,
    feedUrl: `http://127.0.0.1:${fake.address().port}/auth/revocations`,
    logger: { warn: (m) => warnings.push(m) },
  });
  try {
    await verifier.ready();
    const claims = await verifier.verify(target.token);
    assert.equal(claims.sid, target.sid);
    await assert.rejects(verifier.verify(really.token), { code: "session_revoked" });
    const ignored = warnings.filter((w) => /ignored a revocation event/.test(w));
    assert.equal(ignored.length, 2, warnings.join("\n"));
  } finally {
    await verifier.close();
  }
});
