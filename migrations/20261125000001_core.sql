-- Core schema: users, sessions, the refresh-token chain of each session, signing keys and
-- server secrets. Postgres is the single source of truth for sessions and revocation.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    -- stored trimmed and lower-cased, so the plain unique index is case-insensitive
    email         text NOT NULL CHECK (email = lower(btrim(email)) AND length(email) <= 254),
    password_hash text NOT NULL,
    roles         text[] NOT NULL DEFAULT '{}',
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- One row per device/browser login.
CREATE TABLE sessions (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz NOT NULL DEFAULT now(),
    -- idle expiry: pushed forward by every refresh, never past absolute_expires_at
    expires_at          timestamptz NOT NULL,
    -- absolute expiry: fixed at login, never extended
    absolute_expires_at timestamptz NOT NULL,
    user_agent          text,
    ip                  text,
    revoked_at          timestamptz,
    revoked_reason      text,
    CHECK (expires_at <= absolute_expires_at)
);
-- "the user's live sessions" (listing, revoke-all)
CREATE INDEX sessions_user_live_idx ON sessions (user_id, created_at DESC) WHERE revoked_at IS NULL;
-- "revocations whose access tokens may still be alive" (revocation cache reload)
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- The refresh-token chain of each session. Only SHA-256 hashes are stored. A token is consumed
-- by setting used_at; its successor is HMAC(server secret, token), so the successor's hash can be
-- recomputed from a re-presented token (concurrent-refresh grace) without storing any token.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    parent_hash bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- Ed25519 signing keys, shared by every instance. The newest non-retired key signs; every key
-- whose tokens may still be alive is published in the JWKS.
CREATE TABLE signing_keys (
    kid         text PRIMARY KEY,
    alg         text NOT NULL DEFAULT 'EdDSA',
    private_der bytea NOT NULL,
    public_key  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- set when a newer key takes over; the key stays published until no token signed by it
    -- can still be valid
    retired_at  timestamptz
);

-- Random server secrets shared by every instance (e.g. the refresh-successor HMAC key).
CREATE TABLE server_secrets (
    name       text PRIMARY KEY,
    secret     bytea NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
