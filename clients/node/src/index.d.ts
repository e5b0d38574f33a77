// Types for @authd/verifier (hand-written; the implementation is plain ESM JavaScript).

/** What to do once the revocation feed has been stale for longer than `staleAfterMs`. */
export type FailurePolicy = "reject" | "introspect";

export interface Logger {
  warn(message: string): void;
  info?(message: string): void;
}

export interface VerifierOptions {
  /** authd's base URL, e.g. "https://auth.example.com". */
  authdUrl: string;
  /** Expected `iss` of tokens and SETs (authd's AUTHD_ISSUER). Default: authdUrl. */
  issuer?: string;
  /** Expected `aud` of tokens and SETs (authd's AUTHD_AUDIENCE). Default: "authd". */
  audience?: string;
  /** authd's AUTHD_RESOURCE_SECRET: authenticates GET /auth/revocations. */
  resourceSecret: string;
  /**
   * "reject" (default): when the feed is stale, every token is rejected (fail closed).
   * "introspect": when the feed is stale, each request asks POST /auth/introspect.
   */
  policy?: FailurePolicy;
  /** How long without any feed event (authd heartbeats every 2 s) counts as stale. Default 5000, at least 3000. */
  staleAfterMs?: number;
  /** authd's AUTHD_INTROSPECTION_SECRET; required with policy "introspect". */
  introspectionSecret?: string;
  /** Leeway on `exp`/`nbf`, in seconds: 0..30, default 30. */
  clockTolerance?: number;
  /** Overrides of the URLs derived from authdUrl. */
  jwksUrl?: string;
  feedUrl?: string;
  introspectUrl?: string;
  /** Where warnings go (forged events, feed errors). Default: console.warn. */
  logger?: Logger;
}

/** The claims of an accepted authd access token (RFC 9068). */
export interface AccessTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat?: number;
  nbf?: number;
  jti?: string;
  /** The session id: what the revocation feed names. */
  sid: string;
  roles?: string[];
  [claim: string]: unknown;
}

export type VerifyErrorCode =
  | "unauthorized"
  | "invalid_token"
  | "token_expired"
  | "session_revoked"
  | "revocation_status_unknown";

/** Why a token was not accepted. Always maps to HTTP 401. */
export class VerifyError extends Error {
  constructor(code: VerifyErrorCode, message: string, cause?: unknown);
  readonly code: VerifyErrorCode;
  readonly status: 401;
}

export interface Verifier {
  /** Verifies an access token; rejects with a VerifyError. */
  verify(token: string): Promise<AccessTokenClaims>;
  /** Resolves once the deny-list is complete the first time (the feed's `ready`). */
  ready(): Promise<void>;
  /** Whether the feed is fresh now (an event within staleAfterMs, after `ready`). */
  isFresh(): boolean;
  /** Closes the feed connection and timers; verify() then rejects. */
  close(): Promise<void>;
}

/** Creates a verifier and opens the revocation feed at once. */
export function createVerifier(options: VerifierOptions): Verifier;

/** The token of an `Authorization: Bearer <token>` header value, or null. */
export function bearerToken(header: string | undefined | null): string | null;

/** Express middleware: sets `req.auth` to the claims, or answers 401 (problem+json). */
export function expressAuth(
  verifier: Verifier,
): (req: any, res: any, next: (err?: unknown) => void) => void;

/** Hono middleware: `c.set("auth", claims)`, or answers 401 (problem+json). */
export function honoAuth(
  verifier: Verifier,
): (c: any, next: () => Promise<void>) => Promise<Response | void>;
