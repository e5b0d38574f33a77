-- Signing keys, reworked (security review, issue 12):
-- * A key from AUTHD_SIGNING_KEY_FILE is stored without its private part, so a dump of the
--   database cannot forge tokens with it: `private_der` is NULL for such keys.
-- * A rotated key is published before it signs: it signs from `activates_at` on, once resource
--   servers' cached copies of the JWKS have expired. The key signing at any moment is the one
--   activated last; it retires when the next one activates and stays published until every
--   token it signed has expired. (This replaces `retired_at`, which could not express a
--   retirement in the future.)
-- * A compromised key is revoked at once: `revoked_at` removes it from the JWKS and from
--   verification on every instance.
ALTER TABLE signing_keys ALTER COLUMN private_der DROP NOT NULL;
ALTER TABLE signing_keys ADD COLUMN activates_at timestamptz;
ALTER TABLE signing_keys ADD COLUMN revoked_at timestamptz;
-- Keys from before this change: retired keys in the order they were created, the key signing
-- now after every retirement (it may be an older key made current again by
-- AUTHD_SIGNING_KEY_FILE).
UPDATE signing_keys SET activates_at = CASE
    WHEN retired_at IS NULL THEN greatest(created_at, (SELECT max(retired_at) FROM signing_keys))
    ELSE created_at
END;
ALTER TABLE signing_keys
    ALTER COLUMN activates_at SET NOT NULL,
    ALTER COLUMN activates_at SET DEFAULT now(),
    DROP COLUMN retired_at;
