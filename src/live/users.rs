//! Users by id, in memory, as their serialized JSON (what `GET /auth/me` returns), so that
//! endpoint needs no database query and no serialization. Entries are dropped on the
//! `authd_users` NOTIFY (any UPDATE of users) and the whole cache is cleared whenever the
//! listener reconnects; it is only used while the revocation list is live (same trust rule).
//!
//! A read that raced with an invalidation must not put a stale row back: inserts carry the
//! epoch observed before the database read and are dropped if any invalidation happened since.

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::body::Bytes;
use uuid::Uuid;

/// Beyond this many users the cache starts over (bounded memory).
pub const MAX_USERS: usize = 100_000;

#[derive(Default)]
pub struct UserCache {
    users: RwLock<HashMap<Uuid, Bytes>>,
    epoch: AtomicU64,
}

impl UserCache {
    pub fn get(&self, id: Uuid) -> Option<Bytes> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Call before reading a user from the database; pass the value to [`insert`](Self::insert).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn insert(&self, epoch: u64, id: Uuid, json: Bytes) {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if users.len() >= MAX_USERS {
            users.clear();
        }
        users.insert(id, json);
    }

    pub fn invalidate(&self, id: Uuid) {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        users.remove(&id);
    }

    pub fn clear(&self) {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        users.clear();
    }

    pub fn len(&self) -> usize {
        self.users.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_racing_an_invalidation_is_not_cached() {
        let c = UserCache::default();
        let id = Uuid::new_v4();
        let body = Bytes::from_static(b"{}");
        let epoch = c.epoch();
        c.invalidate(id); // an UPDATE committed while we were reading the old row
        c.insert(epoch, id, body.clone());
        assert!(c.get(id).is_none());
        c.insert(c.epoch(), id, body.clone());
        assert_eq!(c.get(id), Some(body));
        c.invalidate(id);
        assert!(c.get(id).is_none());
    }
}
