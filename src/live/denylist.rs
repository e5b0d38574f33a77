//! The revoked-session deny-list every instance keeps in memory, so Bearer verification needs no
//! database query. It is fed by Postgres NOTIFY (see `listener.rs`); entries live as long as an
//! access token of that session could still be valid, then are dropped (bounded memory).
//!
//! The list is trusted only while it is known to be complete: the listener is connected, the
//! recent revocations were reloaded after connecting, and our own heartbeat NOTIFY came back
//! recently. Otherwise every check goes to the database (fail closed, never fail open).

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::PgPool;
use uuid::Uuid;

use crate::{db, error::ApiError, tokens::jwt::unix_now};

/// How stale our own heartbeat may be before the list is distrusted.
pub const HEARTBEAT_TIMEOUT_MS: i64 = 1_500;

pub struct Revocations {
    /// session id → unix time after which no access token of it can be valid.
    revoked: RwLock<HashMap<Uuid, i64>>,
    /// How long after a revocation its tokens can still be alive (access TTL + leeway + margin).
    retention: Duration,
    connected: AtomicBool,
    last_heartbeat_ms: AtomicI64,
    /// Checks answered from the database because the list was not trusted.
    fallbacks: AtomicU64,
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Revocations {
    pub fn new(token_lifetime: Duration) -> Self {
        Self {
            revoked: RwLock::new(HashMap::new()),
            retention: token_lifetime + Duration::from_secs(60),
            connected: AtomicBool::new(false),
            last_heartbeat_ms: AtomicI64::new(0),
            fallbacks: AtomicU64::new(0),
        }
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Whether the in-memory list can be trusted right now.
    pub fn is_live(&self) -> bool {
        self.connected.load(Ordering::Acquire)
            && unix_millis() - self.last_heartbeat_ms.load(Ordering::Acquire) < HEARTBEAT_TIMEOUT_MS
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
    }

    pub fn heartbeat(&self) {
        self.last_heartbeat_ms
            .store(unix_millis(), Ordering::Release);
    }

    /// Records revocations (from a NOTIFY or from this instance's own revoke).
    pub fn insert(&self, sessions: impl IntoIterator<Item = Uuid>) {
        let until = unix_now() + self.retention.as_secs() as i64;
        let mut map = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        for sid in sessions {
            map.insert(sid, until);
        }
    }

    /// Replaces the whole list (after a (re)connect): `(session, unix time of revocation)`.
    pub fn replace(&self, recent: impl IntoIterator<Item = (Uuid, i64)>) {
        let retention = self.retention.as_secs() as i64;
        let fresh: HashMap<Uuid, i64> = recent
            .into_iter()
            .map(|(sid, at)| (sid, at + retention))
            .collect();
        *self.revoked.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    pub fn contains(&self, sid: Uuid) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&sid)
    }

    /// Drops entries no token can need any more.
    pub fn purge_expired(&self) {
        let now = unix_now();
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until > now);
    }

    pub fn len(&self) -> usize {
        self.revoked.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Is this session revoked? From memory when the list is trusted, else from the database.
    pub async fn is_revoked(&self, db: &PgPool, sid: Uuid) -> Result<bool, ApiError> {
        if self.is_live() {
            return Ok(self.contains(sid));
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        Ok(db::sessions::is_revoked(db, sid).await?)
    }

    /// Loads every revocation whose tokens may still be alive.
    pub async fn reload(&self, db: &PgPool) -> Result<usize, sqlx::Error> {
        let recent = db::sessions::revoked_since(db, self.retention).await?;
        let n = recent.len();
        self.replace(recent);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_only_when_connected_with_a_fresh_heartbeat() {
        let r = Revocations::new(Duration::from_secs(60));
        assert!(!r.is_live());
        r.set_connected(true);
        assert!(!r.is_live(), "no heartbeat yet");
        r.heartbeat();
        assert!(r.is_live());
        r.last_heartbeat_ms
            .store(unix_millis() - HEARTBEAT_TIMEOUT_MS - 1, Ordering::Release);
        assert!(!r.is_live(), "stale heartbeat");
        r.heartbeat();
        r.set_connected(false);
        assert!(!r.is_live());
    }

    #[test]
    fn entries_expire() {
        let r = Revocations::new(Duration::from_secs(1));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        r.replace([(a, unix_now() - 3600), (b, unix_now())]);
        r.purge_expired();
        assert!(!r.contains(a), "revoked an hour ago: no token can be alive");
        assert!(r.contains(b));
        assert_eq!(r.len(), 1);
    }
}
