//! What the deny-lists are built from: revoked sessions and tombstones of deleted ones, each with
//! `access_expires_at` (when the last access token issued for the session expires), and the
//! cleanup that keeps both exactly as long as a token may need them.
//!
//! Times are returned as unix seconds, rounded up. `keep_after` is how long past
//! `access_expires_at` a token may still be accepted (verification leeway + clock slack); the
//! callers pass `live::denylist::KEEP_AFTER_ACCESS_EXPIRY`.

use std::time::Duration;

use sqlx::PgExecutor;
use uuid::Uuid;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Whether a session's access tokens must be rejected: it is revoked, tombstoned (deleted while
/// its tokens could be alive) or unknown. The authoritative check (database fallback,
/// introspection).
pub async fn is_revoked(db: impl PgExecutor<'_>, session_id: Uuid) -> Result<bool, sqlx::Error> {
    let live: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND revoked_at IS NULL)
            AND NOT EXISTS (SELECT 1 FROM session_tombstones WHERE session_id = $1)",
    )
    .bind(session_id)
    .fetch_one(db)
    .await?;
    Ok(!live)
}

/// Every revoked or tombstoned session whose tokens may still be accepted (`access_expires_at`
/// later than `keep_after` ago), with its `access_expires_at` (unix s, rounded up). What a deny
/// list reloads after (re)connecting its listener.
pub async fn denied_sessions(
    db: impl PgExecutor<'_>,
    keep_after: Duration,
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, ceil(extract(epoch FROM access_expires_at))::int8 FROM sessions
         WHERE revoked_at IS NOT NULL
           AND access_expires_at > now() - make_interval(secs => $1)
         UNION ALL
         SELECT session_id, ceil(extract(epoch FROM access_expires_at))::int8
         FROM session_tombstones
         WHERE access_expires_at > now() - make_interval(secs => $1)",
    )
    .bind(secs(keep_after))
    .fetch_all(db)
    .await
}

/// `access_expires_at` (unix s, rounded up) of the given sessions, from their rows or
/// tombstones; sessions with neither are left out (no token of theirs can be alive). For
/// `Revocations::insert` after revoking them: `revocations.insert(access_expiry(db, &ids))`.
pub async fn access_expiry(
    db: impl PgExecutor<'_>,
    session_ids: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, max(ceil(extract(epoch FROM access_expires_at)))::int8 FROM (
            SELECT id, access_expires_at FROM sessions WHERE id = ANY($1)
            UNION ALL
            SELECT session_id, access_expires_at FROM session_tombstones
            WHERE session_id = ANY($1)
         ) s GROUP BY id",
    )
    .bind(session_ids)
    .fetch_all(db)
    .await
}

/// Deletes up to `batch` sessions (and, by cascade, their refresh tokens) that ended — revoked or
/// past their idle expiry — more than `retention` ago AND whose access tokens are all dead
/// (`access_expires_at` more than `keep_after` ago), whatever `retention` says: a reconnecting
/// listener reloads revocations from these rows. Short transactions; concurrent cleaners skip
/// each other's rows. Returns how many were deleted.
pub async fn delete_ended(
    db: impl PgExecutor<'_>,
    retention: Duration,
    keep_after: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM sessions WHERE id IN (
            SELECT id FROM sessions
            WHERE (expires_at < now() - make_interval(secs => $1)
                   OR revoked_at < now() - make_interval(secs => $1))
              AND access_expires_at < now() - make_interval(secs => $2)
            LIMIT $3
            FOR UPDATE SKIP LOCKED
         )",
    )
    .bind(secs(retention))
    .bind(secs(keep_after))
    .bind(batch)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Deletes up to `batch` tombstones whose sessions' tokens are all dead (`access_expires_at`
/// more than `keep_after` ago). Returns how many.
pub async fn delete_dead_tombstones(
    db: impl PgExecutor<'_>,
    keep_after: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM session_tombstones WHERE session_id IN (
            SELECT session_id FROM session_tombstones
            WHERE access_expires_at < now() - make_interval(secs => $1)
            LIMIT $2
            FOR UPDATE SKIP LOCKED
         )",
    )
    .bind(secs(keep_after))
    .bind(batch)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A revocation as the revocation feed tells it (`live::feed`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedEntry {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// Unix seconds (rounded up) until which access tokens of the session could be valid.
    pub tokens_until: i64,
    /// Unix seconds of the revocation (or deletion).
    pub revoked_at: i64,
    /// `sessions.revoked_reason`; `None` for a deleted session.
    pub reason: Option<String>,
}

/// Every revocation whose tokens may still be alive (the feed's snapshot), or, with `only`,
/// those of the given sessions.
pub async fn feed_entries(
    db: impl PgExecutor<'_>,
    keep_after: Duration,
    only: Option<&[Uuid]>,
) -> Result<Vec<FeedEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id AS session_id, user_id,
                ceil(extract(epoch FROM access_expires_at))::int8 AS tokens_until,
                floor(extract(epoch FROM revoked_at))::int8 AS revoked_at,
                revoked_reason AS reason
         FROM sessions
         WHERE revoked_at IS NOT NULL
           AND access_expires_at > now() - make_interval(secs => $1)
           AND ($2::uuid[] IS NULL OR id = ANY($2))
         UNION ALL
         SELECT session_id, user_id, ceil(extract(epoch FROM access_expires_at))::int8,
                floor(extract(epoch FROM deleted_at))::int8, NULL
         FROM session_tombstones
         WHERE access_expires_at > now() - make_interval(secs => $1)
           AND ($2::uuid[] IS NULL OR session_id = ANY($2))",
    )
    .bind(secs(keep_after))
    .bind(only)
    .fetch_all(db)
    .await
}
