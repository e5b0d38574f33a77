-- Account lifecycle by email (API.md "Email"): verification, password reset, sign-in codes and
-- email change, all as single-use grants mailed to an address. Only hashes are stored.

-- An account created by an emailed code has no password until it sets one (through a reset).
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;

-- How a session was signed in (RFC 8176 spirit): 'password' or 'email_code' (a code or link
-- mailed to the account's address). Re-authentication for sensitive actions (account deletion)
-- accepts a recent 'email_code' sign-in in place of the password.
ALTER TABLE sessions ADD COLUMN auth_method text NOT NULL DEFAULT 'password'
    CHECK (auth_method IN ('password', 'email_code'));

-- One mailed grant: a link token (≥ 256 bits, stored as SHA-256) and, for sign-in, a short code
-- in the same message (stored as HMAC-SHA256 under a server secret, compared in constant time).
-- Both are one grant: using either consumes the row.
CREATE TABLE email_grants (
    id          uuid PRIMARY KEY,
    purpose     text NOT NULL
                CHECK (purpose IN ('verify_email', 'password_reset', 'sign_in', 'email_change')),
    -- NULL only for a sign-in code that may create the account (AUTHD_EMAIL_SIGNUP)
    user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
    -- the normalized address the message went to (for email_change: the new address)
    email       text NOT NULL CHECK (length(email) <= 254),
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    code_hmac   bytea CHECK (length(code_hmac) = 32),
    -- wrong codes so far; the grant dies at 5
    attempts    int NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CHECK (user_id IS NOT NULL OR purpose = 'sign_in')
);
-- "the live sign-in code for this address"
CREATE INDEX email_grants_live_idx ON email_grants (email, purpose) WHERE used_at IS NULL;
CREATE INDEX email_grants_user_idx ON email_grants (user_id) WHERE used_at IS NULL;
-- cleanup of expired grants
CREATE INDEX email_grants_expires_idx ON email_grants (expires_at);
