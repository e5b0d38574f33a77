// Types of the authd browser client (authd.js). See API.md, "JavaScript client".

/** A user as authd returns it. */
export interface User {
  id: string;
  email: string;
  /** Whether the user proved they receive mail at `email` (a verification link, a password
   * reset or an email sign-in). */
  email_verified: boolean;
  roles: string[];
  disabled: boolean;
  /** RFC 3339 UTC */
  created_at: string;
}

export interface AuthClientOptions {
  /** authd's URL, e.g. "http://localhost:8080" (relative URLs resolve against the page). */
  baseUrl: string;
  /**
   * Other origins (e.g. "https://api.example.com") whose requests through `auth.fetch` get the
   * access token. baseUrl's origin always does; no other origin ever does.
   */
  apiOrigins?: string[];
}

/**
 * Why a session ended: the problem `code` authd answered ("session_revoked", "session_expired",
 * "refresh_token_reused", "refresh_token_invalid", "user_disabled", ...), or "logout" after
 * `logout()` in this tab or another tab of the same origin (a tab that was refreshing at that very
 * moment may report "refresh_token_missing" instead: the cookie was already gone).
 */
export type SessionEndReason =
  | "session_revoked"
  | "session_expired"
  | "refresh_token_reused"
  | "refresh_token_invalid"
  | "refresh_token_missing"
  | "user_disabled"
  | "logout"
  | (string & {});

export interface AuthClient {
  /** The signed-in user, or null. */
  readonly user: User | null;

  /** Signs in (this browser gets authd's refresh cookie). Rejects with an AuthError. */
  login(email: string, password: string): Promise<User>;

  /**
   * Silent refresh, for page load: the user of the browser's live session, or null when there is
   * none. Rejects (AuthError) only when authd cannot answer: network failure (status 0), 403
   * csrf_rejected (this origin is not in AUTHD_ALLOWED_ORIGINS), 429, 5xx.
   */
  restore(): Promise<User | null>;

  /**
   * `fetch` with the access token attached to requests for baseUrl's origin and `apiOrigins`.
   * Refreshes ahead of expiry; after a 401 `token_expired` or `invalid_token` (a signing key
   * was rotated or revoked) it refreshes and retries once, resolving to the retry's response
   * (a 401 from the retry is returned without ending the session). Resolves to the 401
   * response once the session has ended. Rejects like `fetch` on a network failure, and with
   * an AuthError when the token has expired and cannot be refreshed right now (offline, 5xx);
   * the session stays and is refreshed again in the background.
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;

  /**
   * Asks authd to mail a password reset link (`{AUTHD_APP_URL}/reset-password#token=…`) to
   * `email`. Resolves the same way whether or not an account exists. Rejects with an AuthError
   * (e.g. 429 rate_limited).
   */
  requestPasswordReset(email: string): Promise<void>;

  /**
   * Sets a new password with the token of a reset link (see `tokenFromFragment`). Marks the
   * address verified and ends every session of that user, this tab's too if it is theirs (the
   * client learns it at its next call: `onSessionEnd("session_revoked")`). Rejects with an
   * AuthError: 400 email_token_invalid (unknown, used or expired link), 400 validation_failed.
   */
  resetPassword(token: string, newPassword: string): Promise<void>;

  /** Mails a new verification link to the signed-in user's address. Rejects with an AuthError
   * (401 unauthorized when signed out, 429 rate_limited). */
  sendVerificationEmail(): Promise<void>;

  /** Asks to change the signed-in user's address: a confirmation link to `newEmail` (confirmed
   * with `verifyEmail`), a notice to the old address. `currentPassword` may be omitted within 5
   * minutes of a code sign-in. Rejects with an AuthError (401 invalid_credentials, 409
   * email_taken, 400 validation_failed, 429 rate_limited). */
  changeEmail(newEmail: string, currentPassword?: string): Promise<void>;

  /**
   * Confirms an address with the token of a verification (or email change) link. Resolves to
   * the updated user; when that is the signed-in user, `user` changes in every tab. Needs no
   * session. Rejects with an AuthError: 400 email_token_invalid.
   */
  verifyEmail(token: string): Promise<User>;

  /**
   * Asks authd to mail a sign-in code and link (`{AUTHD_APP_URL}/email-sign-in#token=…`) to
   * `email`. Resolves the same way whether or not an account exists.
   */
  requestEmailCode(email: string): Promise<void>;

  /**
   * Signs in with the code typed from the message, or with the token of its link; exactly like
   * `login` (a new session, this browser gets the refresh cookie, every tab is signed in). The
   * code and the link of one message are one grant: using either kills the other. Rejects with
   * an AuthError: 401 email_code_invalid (wrong, used, expired or too often tried).
   */
  signInWithEmailCode(
    credentials: { email: string; code: string } | { token: string },
  ): Promise<User>;

  /** Called once per ended session. Returns a function that removes the listener. */
  onSessionEnd(listener: (reason: SessionEndReason) => void): () => void;

  /** Ends the session at authd and in every tab of this origin. Rejects with an AuthError. */
  logout(): Promise<void>;
}

export class AuthError extends Error {
  /** HTTP status; 0 for a network failure. */
  readonly status: number;
  /** The problem `code` ("invalid_credentials", "rate_limited", ...) or "network_error". */
  readonly code: string;
  readonly detail?: string;
  /** Seconds, from a 429's Retry-After. */
  readonly retryAfter?: number;
}

export function createAuthClient(options: AuthClientOptions): AuthClient;

/**
 * The `token` of the page's URL fragment (`#token=…`, as in authd's email links), or null.
 * Unless `clear` is false, the fragment is removed from the address bar and the history entry
 * (history.replaceState), so the token does not linger there.
 */
export function tokenFromFragment(options?: { clear?: boolean }): string | null;
