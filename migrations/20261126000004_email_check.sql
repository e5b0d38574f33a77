-- The email CHECK compared authd's Unicode lower-casing with Postgres' lower(), which differ for
-- some characters (Rust lower-cases 'İ' to "i̇", Postgres to "i"), and measured length before
-- authd's normalization could lengthen the address. authd's Email type is the one place that
-- normalizes; the database only bounds the length, in characters as authd counts them.
ALTER TABLE users DROP CONSTRAINT users_email_check;
ALTER TABLE users ADD CONSTRAINT users_email_length CHECK (char_length(email) <= 254);
