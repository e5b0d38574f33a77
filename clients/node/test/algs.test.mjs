// AUTHD_SIGNING_ALG=ES256 and RS256: tokens from a running authd verify by their key's algorithm,
// the feed's SETs (signed with that key) revoke sessions, and a token whose header names another
// algorithm than its key's is refused.
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeProtectedHeader } from "jose";
import { createVerifier } from "../src/index.js";
import { RESOURCE_SECRET, eventually, startCluster } from "./harness.mjs";

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");

for (const alg of ["ES256", "RS256"]) {
  test(`${alg}: a running authd's tokens verify, revocations arrive, another header alg is refused`, async () => {
    const cluster = await startCluster({ instances: 1, env: { AUTHD_SIGNING_ALG: alg } });
    const verifier = createVerifier({
      authdUrl: cluster.urls[0],
      issuer: cluster.issuer,
      resourceSecret: RESOURCE_SECRET,
      logger: { warn() {} },
    });
    try {
      await verifier.ready();
      const jwks = await (await fetch(`${cluster.urls[0]}/.well-known/jwks.json`)).json();
      assert.deepEqual(jwks.keys.map((k) => [k.kty, k.alg]), [[alg === "ES256" ? "EC" : "RSA", alg]]);
      const user = await cluster.user();
      const phone = await user.login();
      const laptop = await user.login();
      assert.equal(decodeProtectedHeader(phone.token).alg, alg);
      assert.equal((await verifier.verify(phone.token)).sid, phone.sid);

      const since = Date.now();
      await cluster.revoke(0, phone);
      await eventually(
        () => verifier.verify(phone.token).then(() => false, (err) => err.code === "session_revoked"),
        { timeout: 2_000, interval: 10, message: "the revocation's SET to reach the verifier" },
      );
      assert.ok(Date.now() - since <= 1000, `revocation took ${Date.now() - since} ms`);
      assert.equal((await verifier.verify(laptop.token)).sid, laptop.sid, "the other session lives on");

      // The laptop's token with its header's alg changed (same key, same signature).
      const [header, payload, signature] = laptop.token.split(".");
      const parsed = JSON.parse(Buffer.from(header, "base64url").toString());
      for (const other of ["EdDSA", "ES256", "RS256", "PS256", "HS256", "none"].filter((a) => a !== alg)) {
        const forged = `${b64({ ...parsed, alg: other })}.${payload}.${other === "none" ? "" : signature}`;
        await assert.rejects(verifier.verify(forged), { code: "invalid_token" }, other);
      }
    } finally {
      await verifier.close();
      await cluster.stop();
    }
  });
}
