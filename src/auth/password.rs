//! Password hashing: argon2id with the OWASP parameters (m=19456 KiB, t=2, p=1), always on the
//! blocking pool, never more at once than there are cores, and with a bounded queue so a login
//! storm is shed with 503 instead of piling up memory and starving the async workers.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::error::ApiError;

fn argon2() -> Argon2<'static> {
    // The constants are valid argon2 parameters; `Params::new` only rejects out-of-range values.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Requests waiting for a permit or hashing right now.
    in_queue: AtomicUsize,
    max_queue: usize,
    /// Argon2 computations finished (hashes and verifications), for metrics and tests.
    completed: Arc<AtomicUsize>,
    /// Verified against when the email is unknown, so that case costs the same as a wrong password.
    dummy_hash: String,
}

impl PasswordHasher {
    /// `concurrency` hashes run at once (the core count); at most `max_queue` requests wait or
    /// run (more get 503 `unavailable`).
    pub fn new(concurrency: usize, max_queue: usize) -> Result<Self, String> {
        let dummy_hash = argon2()
            .hash_password(b"authd dummy password for unknown emails")
            .map_err(|e| e.to_string())?
            .to_string();
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            in_queue: AtomicUsize::new(0),
            max_queue: max_queue.max(1),
            completed: Arc::new(AtomicUsize::new(0)),
            dummy_hash,
        })
    }

    /// How many hash/verify requests are waiting or running.
    pub fn queue_depth(&self) -> usize {
        self.in_queue.load(Ordering::Relaxed)
    }

    /// How many argon2 hashes/verifications have completed.
    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::Relaxed)
    }

    /// A PHC string for a new password.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let password = password.to_owned();
        self.run(move || {
            argon2()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
        })
        .await?
        .map_err(ApiError::internal)
    }

    /// Checks `password` against `hash`; with `None` (unknown email) it verifies against a dummy
    /// hash and returns false, taking the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, ApiError> {
        let password = password.to_owned();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let ok = self
            .run(move || {
                argon2()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(ok && real)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _queued =
            QueueSlot::enter(&self.in_queue, self.max_queue).ok_or(ApiError::Unavailable)?;
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        let completed = self.completed.clone();
        // The permit moves into the blocking task: if the client goes away, the hash still
        // finishes before another one may start, so the bound holds.
        tokio::task::spawn_blocking(move || {
            let out = work();
            completed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            out
        })
        .await
        .map_err(ApiError::internal)
    }
}

/// Counts a request in the queue for as long as it lives.
struct QueueSlot<'a>(&'a AtomicUsize);

impl<'a> QueueSlot<'a> {
    fn enter(counter: &'a AtomicUsize, max: usize) -> Option<Self> {
        let prev = counter.fetch_add(1, Ordering::AcqRel);
        if prev >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(counter))
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = PasswordHasher::new(2, 8).unwrap();
        let phc = h.hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify("correct horse battery", Some(&phc)).await.unwrap());
        assert!(!h.verify("wrong horse battery", Some(&phc)).await.unwrap());
        assert!(!h.verify("correct horse battery", None).await.unwrap());
        assert!(!h.verify("x", Some("not a phc string")).await.unwrap());
        assert_eq!(h.queue_depth(), 0);
        assert_eq!(
            h.completed(),
            5,
            "an unknown email (None) costs a verification too"
        );
    }

    #[tokio::test]
    async fn a_full_queue_sheds() {
        let h = Arc::new(PasswordHasher::new(1, 2).unwrap());
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.verify("some password", None).await })
            })
            .collect();
        let mut shed = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Err(ApiError::Unavailable)) {
                shed += 1;
            }
        }
        assert!(
            shed >= 1,
            "with 6 concurrent verifies and a queue of 2, some must be shed"
        );
        assert_eq!(h.queue_depth(), 0);
    }
}
