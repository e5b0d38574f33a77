//! The deny-list every instance keeps in memory, so Bearer verification needs no database query:
//! revoked sessions and sessions deleted while their tokens could be alive, fed by Postgres
//! NOTIFY (see `listener.rs`).
//!
//! How it keeps the invariant ("a revoked session's access tokens are rejected everywhere within
//! 1 s"):
//! - **Entries live as long as the tokens, not as long as this instance's TTL.** Each entry is
//!   kept until the session's `access_expires_at` (from the database: when the last access token
//!   issued for it, by any instance, expires) plus [`KEEP_AFTER_ACCESS_EXPIRY`]. An entry whose
//!   time is not known yet (a bare-id NOTIFY, this instance's own revoke before it learnt the
//!   time) is kept until the database says (see [`Revocations::resolve_pending`]).
//! - **The list is trusted only while it is known to be complete as of less than [`TRUST_FOR`]
//!   ago**: the listener is connected, the list was reloaded after LISTEN began, and a heartbeat
//!   this instance SENT less than `TRUST_FOR` ago came back through the listener. Postgres
//!   delivers notifications in commit order, so once that heartbeat is back every revocation
//!   committed before it was sent is in memory. A revocation committed at `t` is therefore in
//!   memory, or the list untrusted, by `t + TRUST_FOR` (500 ms) on every instance.
//! - **Untrusted means the database**: every check then goes to [`db::revocations::is_revoked`]
//!   (fail closed, never open).

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{
        RwLock,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::PgPool;
use uuid::Uuid;

use crate::{db, error::ApiError, tokens::jwt::LEEWAY_SECS};

/// How long after the newest heartbeat that came back was sent the list is still trusted. Half
/// of the 1 s promise; heartbeats go out about every 150 ms.
pub const TRUST_FOR: Duration = Duration::from_millis(500);

/// Slack for a token's `exp` being computed from the issuing instance's clock a moment after
/// the database set `access_expires_at` (covers up to ~2 s between the two).
const ISSUE_SLACK_SECS: u64 = 2;

/// How long past a session's `access_expires_at` its tokens may still be accepted elsewhere
/// (verification leeway + issuing slack): entries, revoked rows and tombstones are kept at least
/// this long after it. Must stay under the minute the deletion trigger allows for (migration
/// `20261130000002_revocation_invariants.sql`).
pub const KEEP_AFTER_ACCESS_EXPIRY: Duration = Duration::from_secs(LEEWAY_SECS + ISSUE_SLACK_SECS);
const _: () = assert!(LEEWAY_SECS + ISSUE_SLACK_SECS < 60);

/// Marks an entry whose `access_expires_at` is not known yet: kept until it is.
const PENDING: i64 = i64::MAX;

pub struct Revocations {
    /// session id → unix time (s) until which its tokens are denied, or [`PENDING`].
    denied: RwLock<HashMap<Uuid, i64>>,
    /// The clock of [`now_ms`](Self::now_ms) (monotonic: wall-clock jumps do not matter).
    origin: Instant,
    connected: AtomicBool,
    /// [`now_ms`](Self::now_ms) reading as of which every committed revocation is in memory.
    complete_as_of_ms: AtomicI64,
    /// Checks answered from the database because the list was not trusted.
    fallbacks: AtomicU64,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

impl Revocations {
    /// An empty, untrusted list.
    pub fn new() -> Self {
        Self {
            denied: RwLock::new(HashMap::new()),
            origin: Instant::now(),
            connected: AtomicBool::new(false),
            complete_as_of_ms: AtomicI64::new(i64::MIN / 2),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Milliseconds on this list's monotonic clock: what heartbeats carry as their send time.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether the in-memory list can be trusted right now.
    pub fn is_live(&self) -> bool {
        self.is_live_at(self.now_ms())
    }

    /// Whether the list can be trusted at `now_ms` (this list's clock): connected, and complete
    /// as of less than [`TRUST_FOR`] before.
    pub fn is_live_at(&self, now_ms: i64) -> bool {
        self.connected.load(Ordering::Acquire)
            && now_ms - self.complete_as_of_ms.load(Ordering::Acquire)
                < TRUST_FOR.as_millis() as i64
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// The listener's state. `true` only after LISTEN and a [`reload`](Self::reload).
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
    }

    /// Every revocation committed before `as_of_ms` (this list's clock) is in memory: called
    /// when our heartbeat sent at that time came back through the listener, and by
    /// [`reload`](Self::reload). Times in the future are ignored; time never goes back.
    pub fn mark_complete(&self, as_of_ms: i64) {
        if as_of_ms <= self.now_ms() {
            self.complete_as_of_ms.fetch_max(as_of_ms, Ordering::AcqRel);
        }
    }

    /// Denies sessions: `(session id, its access_expires_at in unix seconds)`, as NOTIFY
    /// payloads and [`db::revocations::access_expiry`] give them. Each entry is kept until
    /// that time plus [`KEEP_AFTER_ACCESS_EXPIRY`]; an existing entry is only ever extended.
    pub fn insert(&self, sessions: impl IntoIterator<Item = (Uuid, i64)>) {
        let keep = KEEP_AFTER_ACCESS_EXPIRY.as_secs() as i64;
        let mut map = self.denied.write().unwrap_or_else(|p| p.into_inner());
        for (sid, access_expires) in sessions {
            let until = access_expires.saturating_add(keep).min(PENDING - 1);
            match map.entry(sid) {
                Entry::Occupied(mut e) => {
                    let old = e.get_mut();
                    if *old == PENDING || *old < until {
                        *old = until;
                    }
                }
                Entry::Vacant(e) => {
                    e.insert(until);
                }
            }
        }
    }

    /// Denies sessions whose `access_expires_at` is not known here (a bare-id NOTIFY; a revoke
    /// by this instance whose caller did not fetch it). Conservative: kept until the time
    /// arrives (NOTIFY, reload) or [`resolve_pending`](Self::resolve_pending) reads it.
    pub fn insert_pending(&self, sessions: impl IntoIterator<Item = Uuid>) {
        let mut map = self.denied.write().unwrap_or_else(|p| p.into_inner());
        for sid in sessions {
            map.entry(sid).or_insert(PENDING);
        }
    }

    /// Replaces the whole list (after a (re)connect): `(session id, access_expires_at in unix
    /// seconds)`.
    pub fn replace(&self, sessions: impl IntoIterator<Item = (Uuid, i64)>) {
        let keep = KEEP_AFTER_ACCESS_EXPIRY.as_secs() as i64;
        let mut fresh = HashMap::new();
        for (sid, access_expires) in sessions {
            let until = access_expires.saturating_add(keep).min(PENDING - 1);
            let e = fresh.entry(sid).or_insert(until);
            *e = (*e).max(until);
        }
        *self.denied.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    pub fn contains(&self, sid: Uuid) -> bool {
        self.denied
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&sid)
    }

    /// Until when (unix s) the session's tokens are denied; `Some(i64::MAX)` while not known.
    pub fn denied_until(&self, sid: Uuid) -> Option<i64> {
        self.denied
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sid)
            .copied()
    }

    /// Drops the entries no token can need at `now` (unix s) any more.
    pub fn purge_expired(&self, now: i64) {
        self.denied
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until >= now);
    }

    fn pending(&self) -> Vec<Uuid> {
        self.denied
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, until)| **until == PENDING)
            .map(|(sid, _)| *sid)
            .collect()
    }

    /// Reads from the database how long the entries of unknown time must be kept. A session
    /// with neither row nor tombstone has no token left alive: its entry is dropped.
    pub async fn resolve_pending(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let pending = self.pending();
        if pending.is_empty() {
            return Ok(());
        }
        let known: HashMap<Uuid, i64> = db::revocations::access_expiry(db, &pending)
            .await?
            .into_iter()
            .collect();
        let keep = KEEP_AFTER_ACCESS_EXPIRY.as_secs() as i64;
        let mut map = self.denied.write().unwrap_or_else(|p| p.into_inner());
        for sid in pending {
            if let Entry::Occupied(mut e) = map.entry(sid)
                && *e.get() == PENDING
            {
                match known.get(&sid) {
                    Some(t) => *e.get_mut() = t.saturating_add(keep).min(PENDING - 1),
                    None => {
                        e.remove();
                    }
                }
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.denied.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Is this session revoked? From memory while the list is trusted (no query), else from the
    /// database, where unknown and deleted sessions count as revoked.
    pub async fn is_revoked(&self, db: &PgPool, sid: Uuid) -> Result<bool, ApiError> {
        if self.is_live() {
            return Ok(self.contains(sid));
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        Ok(db::revocations::is_revoked(db, sid).await?)
    }

    /// Loads every revoked or deleted session whose tokens may still be alive, and marks the
    /// list complete as of just before the query. Call only once LISTEN is active on the
    /// connection that feeds this list: what commits after the query's snapshot then arrives
    /// by NOTIFY. Returns the number of entries.
    pub async fn reload(&self, db: &PgPool) -> Result<usize, sqlx::Error> {
        let as_of = self.now_ms();
        let denied = db::revocations::denied_sessions(db, KEEP_AFTER_ACCESS_EXPIRY).await?;
        let n = denied.len();
        self.replace(denied);
        self.mark_complete(as_of);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::jwt::unix_now;

    const TRUST: i64 = TRUST_FOR.as_millis() as i64;

    #[test]
    fn trusted_only_while_connected_and_complete_as_of_less_than_the_bound_ago() {
        let r = Revocations::new();
        let now = r.now_ms();
        assert!(!r.is_live_at(now));
        r.set_connected(true);
        assert!(!r.is_live_at(now), "nothing known to be complete yet");
        r.mark_complete(now);
        assert!(r.is_live_at(now));
        assert!(r.is_live_at(now + TRUST - 1));
        assert!(
            !r.is_live_at(now + TRUST),
            "the newest heartbeat back was sent too long ago: a stall"
        );
        r.set_connected(false);
        assert!(!r.is_live_at(now));
    }

    #[test]
    fn the_send_time_counts_not_the_arrival_and_never_goes_back() {
        let r = Revocations::new();
        r.set_connected(true);
        let now = r.now_ms();
        // A heartbeat sent 400 ms ago arrives now: trusted for 100 ms more, not 500.
        r.mark_complete(now - 400);
        assert!(r.is_live_at(now + TRUST - 401));
        assert!(!r.is_live_at(now + TRUST - 400));
        // An older one arriving late changes nothing; a send time from the future is ignored.
        r.mark_complete(now - 450);
        assert!(r.is_live_at(now + TRUST - 401));
        r.mark_complete(now + 10_000);
        assert!(!r.is_live_at(now + TRUST));
    }

    #[test]
    fn entries_last_until_the_sessions_tokens_expire_whatever_the_local_ttl() {
        let r = Revocations::new();
        let now = unix_now();
        let keep = KEEP_AFTER_ACCESS_EXPIRY.as_secs() as i64;
        let (day, gone) = (Uuid::new_v4(), Uuid::new_v4());
        r.insert([(day, now + 86_400), (gone, now - 3600)]);
        r.purge_expired(now);
        assert!(r.contains(day) && !r.contains(gone));
        r.purge_expired(now + 86_400 + keep);
        assert!(r.contains(day), "still within the leeway");
        r.purge_expired(now + 86_400 + keep + 1);
        assert!(r.is_empty());
    }

    #[test]
    fn entries_are_only_extended_and_pending_ones_wait_for_their_time() {
        let r = Revocations::new();
        let now = unix_now();
        let keep = KEEP_AFTER_ACCESS_EXPIRY.as_secs() as i64;
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        r.insert([(a, now + 100)]);
        r.insert([(a, now + 50)]);
        r.insert_pending([a, b]);
        assert_eq!(r.denied_until(a), Some(now + 100 + keep));
        assert_eq!(r.denied_until(b), Some(PENDING));
        r.purge_expired(now + 1_000_000);
        assert!(!r.contains(a) && r.contains(b), "pending is never purged");
        r.insert([(b, now + 5)]);
        assert_eq!(r.denied_until(b), Some(now + 5 + keep));
    }

    #[test]
    fn a_reload_replaces_everything() {
        let r = Revocations::new();
        let (a, b, now) = (Uuid::new_v4(), Uuid::new_v4(), unix_now());
        r.insert_pending([a]);
        r.replace([(b, now), (b, now + 10)]);
        assert!(!r.contains(a));
        assert_eq!(
            r.denied_until(b),
            Some(now + 10 + KEEP_AFTER_ACCESS_EXPIRY.as_secs() as i64)
        );
    }
}
