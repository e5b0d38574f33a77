// The token rules (API.md "Tokens") on tokens signed with a key the test controls, served from a
// local JWKS and feed: the algorithm of the key the kid names (EdDSA, ES256, RS256), typ at+jwt, iss, aud, exp/nbf leeway, crit, unknown kid,
// claims of the wrong JSON type. And the SSE parser on awkward framing.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { SignJWT, exportJWK, generateKeyPair, importJWK } from "jose";
import { Hono } from "hono";
import { createVerifier, honoAuth } from "../src/index.js";
import { SseParser } from "../src/sse.js";
import { eventually } from "./harness.mjs";

const ISS = "http://issuer.test";
let server;
let verifier;
let key;
let jwksFetches = 0;
let publicJwks = [];
before(async () => {
  key = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  publicJwks = [{ ...(await exportJWK(key.publicKey)), kid: "k1", use: "sig", alg: "EdDSA" }];
  server = createServer((req, res) => {
    if (req.url === "/.well-known/jwks.json") {
      jwksFetches++;
      res.writeHead(200, { "Content-Type": "application/json" });
      return res.end(JSON.stringify({ keys: publicJwks }));
    }
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    res.write("event: ready\ndata: {\"snapshot\": 0}\n\n");
    const beat = setInterval(() => res.write(`event: heartbeat\ndata: {}\n\n`), 500);
    res.on("close", () => clearInterval(beat));
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  verifier = createVerifier({ authdUrl: base, issuer: ISS, resourceSecret: "x".repeat(32), logger: { warn() {} } });
  await verifier.ready();
});
after(async () => {
  await verifier?.close();
  server?.closeAllConnections();
  await new Promise((ok) => server.close(ok));
});

const now = () => Math.floor(Date.now() / 1000);
function token({ header = {}, claims = {}, signWith = key.privateKey, crit } = {}) {
  return new SignJWT({ sub: "u1", sid: "s1", aud: "authd", iss: ISS, exp: now() + 600, iat: now(), ...claims })
    .setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: "k1", ...header })
    .sign(signWith, crit ? { crit } : undefined);
}
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");

test("a well-formed token verifies", async () => {
  assert.equal((await verifier.verify(await token())).sid, "s1");
  // Within the 30 s leeway on exp.
  assert.equal((await verifier.verify(await token({ claims: { exp: now() - 20 } }))).sub, "u1");
});

test("each broken rule rejects", async () => {
  const cases = {
    "typ JWT": await token({ header: { typ: "JWT" } }),
    "wrong iss": await token({ claims: { iss: "http://evil.test" } }),
    "wrong aud": await token({ claims: { aud: "other" } }),
    "expired past the leeway": await token({ claims: { exp: now() - 60 } }),
    "nbf in the future": await token({ claims: { nbf: now() + 120 } }),
    "exp a string": await token({ claims: { exp: String(now() + 600) } }),
    "sid a number": await token({ claims: { sid: 42 } }),
    "no sid": await token({ claims: { sid: undefined } }),
    "unknown crit": await token({ header: { crit: ["x-unknown"], "x-unknown": 1 }, crit: { "x-unknown": true } }),
    "other key": await token({ signWith: (await generateKeyPair("EdDSA", { crv: "Ed25519" })).privateKey }),
    "alg none": `${b64({ alg: "none", typ: "at+jwt", kid: "k1" })}.${b64({ sub: "u1", sid: "s1", aud: "authd", iss: ISS, exp: now() + 600 })}.`,
    "alg HS256": `${b64({ alg: "HS256", typ: "at+jwt", kid: "k1" })}.${b64({ sub: "u1", sid: "s1", aud: "authd", iss: ISS, exp: now() + 600 })}.c2ln`,
  };
  for (const [name, t] of Object.entries(cases)) {
    await assert.rejects(verifier.verify(t), (err) => {
      assert.ok(["invalid_token", "token_expired"].includes(err.code), `${name}: ${err.code}`);
      return true;
    }, name);
  }
  await assert.rejects(verifier.verify(await token({ claims: { exp: now() - 60 } })), { code: "token_expired" });
});

test("an unknown kid refetches the JWKS at most once a second, and a new key is found", async () => {
  const newKey = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const unknown = await token({ header: { kid: "k2" }, signWith: newKey.privateKey });
  await assert.rejects(verifier.verify(unknown), { code: "invalid_token" });
  const before = jwksFetches;
  const started = Date.now();
  const flood = await Promise.allSettled(Array.from({ length: 20 }, () => verifier.verify(unknown)));
  assert.ok(flood.every((r) => r.status === "rejected" && r.reason.code === "invalid_token"));
  const allowed = 1 + Math.floor((Date.now() - started) / 1000);
  assert.ok(jwksFetches - before <= allowed, `${jwksFetches - before} fetches for 20 unknown-kid tokens`);
  publicJwks = [...publicJwks, { ...(await exportJWK(newKey.publicKey)), kid: "k2" }];
  const start = Date.now();
  const claims = await (async () => {
    for (;;) {
      try {
        return await verifier.verify(unknown);
      } catch (err) {
        if (Date.now() - start > 3000) throw err;
        await new Promise((ok) => setTimeout(ok, 100));
      }
    }
  })();
  assert.equal(claims.sub, "u1");
});

test("the SSE parser handles CRLF, split chunks, comments, multi-line data", () => {
  const events = [];
  const parser = new SseParser((e) => events.push(e));
  for (const chunk of [": hi\r\nevent: revo", "cation\r\nid: 1\r", "\ndata: a\ndata: b\r\n\r\n", "data: x\n\n"]) {
    parser.push(chunk);
  }
  assert.deepEqual(events, [
    { event: "revocation", data: "a\nb", id: "1" },
    { event: "message", data: "x", id: "1" },
  ]);
});

test("the Hono middleware sets c.get('auth') or answers 401 problem+json", async () => {
  const app = new Hono();
  app.use("/api/*", honoAuth(verifier));
  app.get("/api/hello", (c) => c.json(c.get("auth")));
  const ok = await app.request("/api/hello", { headers: { Authorization: `Bearer ${await token()}` } });
  assert.equal(ok.status, 200);
  assert.equal((await ok.json()).sid, "s1");
  const bad = await app.request("/api/hello", { headers: { Authorization: "Bearer x.y.z" } });
  assert.equal(bad.status, 401);
  assert.equal(bad.headers.get("www-authenticate"), 'Bearer error="invalid_token"');
  assert.equal(bad.headers.get("content-type"), "application/problem+json");
  assert.equal((await bad.json()).code, "invalid_token");
  const none = await app.request("/api/hello");
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("www-authenticate"), "Bearer");
});

test("ES256 and RS256 keys verify only their own algorithm", async () => {
  const ec = await generateKeyPair("ES256");
  const rsa = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  const mislabelled = await generateKeyPair("ES256");
  publicJwks = [
    ...publicJwks,
    { ...(await exportJWK(ec.publicKey)), kid: "ec", use: "sig", alg: "ES256" },
    { ...(await exportJWK(rsa.publicKey)), kid: "rsa", use: "sig", alg: "RS256" },
    // An EC key whose JWK claims RS256 is skipped.
    { ...(await exportJWK(mislabelled.publicKey)), kid: "bad", alg: "RS256" },
  ];
  const es = await token({ header: { alg: "ES256", kid: "ec" }, signWith: ec.privateKey });
  // The verifier refetches the JWKS on the unknown kid (at most once a second).
  await eventually(() => verifier.verify(es).then(() => true, () => false), { timeout: 3000 });
  assert.equal((await verifier.verify(await token({ header: { alg: "RS256", kid: "rsa" }, signWith: rsa.privateKey }))).sid, "s1");
  // The RSA key's own private half, as a PS256 key: a valid PS256 signature by that key.
  const rsaPss = await importJWK(await exportJWK(rsa.privateKey), "PS256");
  const cases = {
    "ES256 signature, kid of the RSA key": await token({ header: { alg: "ES256", kid: "rsa" }, signWith: ec.privateKey }),
    "RS256 signature, kid of the EC key": await token({ header: { alg: "RS256", kid: "ec" }, signWith: rsa.privateKey }),
    "EdDSA signature, kid of the EC key": await token({ header: { alg: "EdDSA", kid: "ec" } }),
    "PS256 claimed for the RSA key": await token({ header: { alg: "PS256", kid: "rsa" }, signWith: rsaPss }),
    "ES256 with a key whose JWK says RS256": await token({ header: { alg: "ES256", kid: "bad" }, signWith: mislabelled.privateKey }),
  };
  for (const [name, t] of Object.entries(cases)) {
    await assert.rejects(verifier.verify(t), { code: "invalid_token" }, name);
  }
});
