//! Periodic deletion of ended sessions, dead tombstones, ended email grants and old audit events, in small batches
//! so no statement holds locks for long.
//!
//! Part of the revocation invariant (see `live`): a session is deleted only once every access
//! token it ever had is dead, however short AUTHD_CLEANUP_RETENTION is, because a reconnecting
//! listener reloads revocations from these rows.

use std::time::Duration;

use sqlx::PgPool;

use crate::{db, live::denylist::KEEP_AFTER_ACCESS_EXPIRY};

/// Rows deleted per statement (a session cascades to its refresh tokens).
pub const BATCH: i64 = 200;

/// Deletes every session that ended (revoked or idle-expired) more than `retention` ago and
/// whose access tokens have all expired (`access_expires_at` + [`KEEP_AFTER_ACCESS_EXPIRY`]
/// passed). Returns how many.
pub async fn run_once(db: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    batched(|| db::revocations::delete_ended(db, retention, KEEP_AFTER_ACCESS_EXPIRY, BATCH)).await
}

/// Deletes the tombstones of deleted sessions whose access tokens have all expired. Returns how
/// many.
pub async fn tombstones_once(db: &PgPool) -> Result<u64, sqlx::Error> {
    batched(|| db::revocations::delete_dead_tombstones(db, KEEP_AFTER_ACCESS_EXPIRY, BATCH)).await
}

/// Prunes used refresh tokens older than `keep` (see `db::sessions::prune_used_tokens`).
pub async fn tokens_once(db: &PgPool, keep: Duration) -> Result<u64, sqlx::Error> {
    batched(|| db::sessions::prune_used_tokens(db, keep, BATCH)).await
}

/// Deletes audit events older than `retention`. Returns how many.
pub async fn events_once(db: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    batched(|| db::events::delete_older_than(db, retention, BATCH)).await
}

async fn batched<F, Fut>(mut step: F) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let n = step().await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
        // Let other work in between batches.
        tokio::task::yield_now().await;
    }
}

/// Deletes mailed grants that expired or were used more than an hour ago (kept that long so
/// a late second click still finds a used grant rather than nothing; the answer is the same).
pub async fn email_grants_once(db: &PgPool) -> Result<u64, sqlx::Error> {
    batched(|| db::email_grants::delete_ended(db, Duration::from_secs(3600), BATCH)).await
}

pub async fn run_forever(
    db: PgPool,
    interval: Duration,
    retention: Duration,
    audit_retention: Duration,
    token_keep: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match run_once(&db, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "ended sessions cleaned up"),
            Err(e) => tracing::warn!(error = %e, "session cleanup failed"),
        }
        match tokens_once(&db, token_keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "superseded refresh tokens pruned"),
            Err(e) => tracing::warn!(error = %e, "refresh token pruning failed"),
        }
        match tombstones_once(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "dead session tombstones cleaned up"),
            Err(e) => tracing::warn!(error = %e, "tombstone cleanup failed"),
        }
        match email_grants_once(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "ended email grants cleaned up"),
            Err(e) => tracing::warn!(error = %e, "email grant cleanup failed"),
        }
        match events_once(&db, audit_retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old audit events cleaned up"),
            Err(e) => tracing::warn!(error = %e, "audit cleanup failed"),
        }
    }
}
