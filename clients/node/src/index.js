// @authd/verifier: offline verification of authd access tokens for Node resource servers, with
// authd's revocation feed and Express/Hono middleware. Types: index.d.ts.
export { createVerifier, VerifyError } from "./verifier.js";
export { bearerToken, expressAuth, honoAuth } from "./middleware.js";
