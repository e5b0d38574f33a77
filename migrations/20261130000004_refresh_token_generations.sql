-- Position of each refresh token in its session's chain (the login token is 0, each rotation
-- adds 1). Used tokens are pruned except every 64th (a checkpoint) and the recent ones: a
-- superseded token that was pruned is still recognised by deriving its successors (at most 64
-- HMACs) until one that is kept, so reuse detection stays exact with bounded storage.
ALTER TABLE refresh_tokens ADD COLUMN generation int NOT NULL DEFAULT 0;
-- Existing chains: number them from their login token.
WITH RECURSIVE chain AS (
    SELECT token_hash, 0 AS generation FROM refresh_tokens WHERE parent_hash IS NULL
    UNION ALL
    SELECT t.token_hash, c.generation + 1
    FROM refresh_tokens t JOIN chain c ON t.parent_hash = c.token_hash
)
UPDATE refresh_tokens t SET generation = chain.generation FROM chain
WHERE t.token_hash = chain.token_hash AND chain.generation > 0;
-- Pruning scans used tokens by age.
CREATE INDEX refresh_tokens_used_at_idx ON refresh_tokens (used_at) WHERE used_at IS NOT NULL;
