// Verify an authd access token in a Node API. npm install jose
import { fileURLToPath } from "node:url";
import { createRemoteJWKSet, jwtVerify } from "jose";

const AUTHD_URL = process.env.AUTHD_URL ?? "http://localhost:8080";
// Fetched once, cached, refetched when a token names an unknown kid (key rotation).
const jwks = createRemoteJWKSet(new URL("/.well-known/jwks.json", AUTHD_URL));

export async function verifyAccessToken(token) {
  const { payload } = await jwtVerify(token, jwks, {
    issuer: process.env.AUTHD_ISSUER ?? AUTHD_URL, // AUTHD_ISSUER of the server
    audience: process.env.AUTHD_AUDIENCE ?? "authd",
    typ: "at+jwt",
    algorithms: ["EdDSA", "ES256", "RS256"], // each JWK verifies only its own alg
    requiredClaims: ["exp", "iat", "sub", "sid"],
  });
  return payload; // sub: user id, sid: session id, roles, exp
}

// node verify.mjs <token>: prints the claims (exit 1 with the reason if the token is refused).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    console.log(JSON.stringify(await verifyAccessToken(process.argv[2])));
  } catch (err) {
    console.error(`refused: ${err.code ?? err.message}`);
    process.exit(1);
  }
}
