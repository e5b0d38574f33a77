// Express and Hono middleware: take the Bearer token, verify it, expose the claims (Express:
// req.auth; Hono: c.get("auth")), or answer 401 with RFC 6750's WWW-Authenticate and an RFC 9457
// problem (authd's own error shape). Neither framework is imported: they are peer dependencies.
import { VerifyError } from "./verifier.js";

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header) {
  if (typeof header !== "string") return null;
  const match = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header);
  return match ? match[1] : null;
}

/** Verifies the request's token; resolves to { claims } or { problem, headers }. */
async function check(verifier, header) {
  const token = bearerToken(header);
  try {
    if (token === null) throw new VerifyError("unauthorized", "a Bearer access token is required");
    return { claims: await verifier.verify(token) };
  } catch (err) {
    const code = err instanceof VerifyError ? err.code : "invalid_token";
    const detail = err instanceof VerifyError ? err.message : "the access token could not be verified";
    return {
      problem: JSON.stringify({ type: "about:blank", title: "Unauthorized", status: 401, code, detail }),
      headers: {
        "Content-Type": "application/problem+json",
        "Cache-Control": "no-store",
        // RFC 6750 §3.1: no error code when the request had no token at all.
        "WWW-Authenticate": token === null ? "Bearer" : 'Bearer error="invalid_token"',
      },
    };
  }
}

/** Express middleware: `app.get("/x", expressAuth(verifier), (req, res) => res.json(req.auth))`. */
export function expressAuth(verifier) {
  return (req, res, next) => {
    check(verifier, req.headers.authorization).then(({ claims, problem, headers }) => {
      if (problem === undefined) {
        req.auth = claims;
        next();
        return;
      }
      res.statusCode = 401;
      for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
      res.end(problem);
    }, next);
  };
}

/** Hono middleware: `app.use("/api/*", honoAuth(verifier))`, then `c.get("auth")`. */
export function honoAuth(verifier) {
  return async (c, next) => {
    const { claims, problem, headers } = await check(verifier, c.req.header("authorization"));
    if (problem !== undefined) return new Response(problem, { status: 401, headers });
    c.set("auth", claims);
    await next();
  };
}
