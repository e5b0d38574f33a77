//! Periodic deletion of ended sessions, in small batches so no statement holds locks for long.

use std::time::Duration;

use sqlx::PgPool;

use crate::db;

/// Sessions deleted per statement (each cascades to its refresh tokens).
pub const BATCH: i64 = 200;

/// Deletes every session that ended more than `retention` ago. Returns how many.
pub async fn run_once(db: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let n = db::sessions::delete_ended(db, retention, BATCH).await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
        // Let other work in between batches.
        tokio::task::yield_now().await;
    }
}

pub async fn run_forever(db: PgPool, interval: Duration, retention: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match run_once(&db, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "ended sessions cleaned up"),
            Err(e) => tracing::warn!(error = %e, "session cleanup failed"),
        }
    }
}
