// A resource server protected by @authd/verifier (Express): GET /hello answers the token's
// claims; a revoked session is refused within a second through authd's revocation feed.
//
//   AUTHD_URL=http://localhost:8080 AUTHD_RESOURCE_SECRET=... node examples/api.mjs
//
// Env: AUTHD_URL (default http://localhost:8080), AUTHD_ISSUER (default AUTHD_URL),
// AUTHD_AUDIENCE (default authd), AUTHD_RESOURCE_SECRET (required), AUTHD_INTROSPECTION_SECRET
// (needed with POLICY=introspect), POLICY (reject | introspect, default reject),
// STALE_AFTER_MS (default 5000), AUTHD_FEED_URL (default <AUTHD_URL>/auth/revocations),
// PORT (default 3000; 0 picks a free one), ALLOWED_ORIGINS (comma-separated browser origins that
// may call it with a Bearer token: CORS, no cookies). Listens on 127.0.0.1 and prints its URL.
import express from "express";
import { createVerifier, expressAuth } from "../src/index.js";

const env = process.env;
const authdUrl = env.AUTHD_URL ?? "http://localhost:8080";
const verifier = createVerifier({
  authdUrl,
  issuer: env.AUTHD_ISSUER ?? authdUrl,
  audience: env.AUTHD_AUDIENCE ?? "authd",
  resourceSecret: env.AUTHD_RESOURCE_SECRET,
  introspectionSecret: env.AUTHD_INTROSPECTION_SECRET,
  policy: env.POLICY ?? "reject",
  staleAfterMs: Number(env.STALE_AFTER_MS ?? 5000),
  feedUrl: env.AUTHD_FEED_URL || undefined,
});

const app = express();
// CORS for the SPA origins that call this API with `Authorization: Bearer` (no cookies).
const allowed = new Set((env.ALLOWED_ORIGINS ?? "").split(",").map((o) => o.trim()).filter(Boolean));
app.use((req, res, next) => {
  const origin = req.get("origin");
  if (origin && allowed.has(origin)) {
    res.set("Access-Control-Allow-Origin", origin);
    res.set("Vary", "Origin");
    if (req.method === "OPTIONS") {
      res.set("Access-Control-Allow-Headers", "Authorization");
      res.set("Access-Control-Allow-Methods", "GET");
      res.set("Access-Control-Max-Age", "600");
      return res.status(204).end();
    }
  }
  next();
});
app.get("/healthz", (_req, res) => res.json({ feed: verifier.isFresh() ? "fresh" : "stale" }));
app.get("/hello", expressAuth(verifier), (req, res) => {
  res.json({ hello: req.auth.sub, claims: req.auth });
});

const server = app.listen(Number(env.PORT ?? 3000), "127.0.0.1", () => {
  console.log(`example API listening on http://127.0.0.1:${server.address().port}`);
});
verifier.ready().then(
  () => console.log("revocation feed ready"),
  (err) => console.error(`revocation feed: ${err.message}`),
);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    verifier.close().then(() => process.exit(0));
  });
}
