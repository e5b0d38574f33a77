//! Password hashing: argon2id with the OWASP parameters (m=19456 KiB, t=2, p=1), always on the
//! blocking pool, never more at once than there are cores, and with a bounded queue so a login
//! storm is shed with 503 instead of piling up memory and starving the async workers.
//!
//! Each running hash needs 19 MiB of argon2 memory. Allocating it per hash costs page faults
//! and leaves glibc holding freed blocks (hundreds of MiB after a login storm), so the blocks
//! are kept in a small pool, one per permit, and reused: resident memory stays at
//! `concurrency × 19 MiB` at most, and hashing is faster.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use rand::RngExt;
use tokio::sync::Semaphore;

use crate::error::ApiError;

const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

fn our_params() -> Params {
    // Valid argon2 parameters; `Params::new` only rejects out-of-range values.
    Params::new(19_456, 2, 1, Some(OUTPUT_BYTES)).unwrap_or_default()
}

/// Grows `blocks` to at least `n` (allocating only the first time, for our parameters).
fn blocks_for(blocks: &mut Vec<Block>, n: usize) -> &mut [Block] {
    if blocks.len() < n {
        blocks.resize(n, Block::default());
    }
    &mut blocks[..n]
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) for `password`, computed in
/// `blocks`; byte-for-byte what `argon2::PasswordHasher` produces.
fn hash_in(blocks: &mut Vec<Block>, password: &[u8]) -> Result<String, String> {
    let params = our_params();
    let mut salt = [0u8; SALT_BYTES];
    rand::rng().fill(&mut salt);
    let mut out = [0u8; OUTPUT_BYTES];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password,
            &salt,
            &mut out,
            blocks_for(blocks, params.block_count()),
        )
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, computed in `blocks`. The comparison of
/// outputs is constant-time (`phc::Output`'s `PartialEq`). Unparsable hashes never match.
fn verify_in(blocks: &mut Vec<Block>, password: &[u8], stored: &str) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(phc.algorithm.as_str()),
        Params::try_from(&phc),
    ) else {
        return false;
    };
    let Ok(version) = phc.version.map(Version::try_from).transpose() else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let n = params.block_count();
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    argon2
        .hash_password_into_with_memory(password, salt, &mut out, blocks_for(blocks, n))
        .is_ok()
        && Output::new(&out).is_ok_and(|computed| &computed == expected)
}

/// Most password checks one account may have waiting or running at once: a person types one
/// password at a time, and one account must not fill the queue every login shares.
pub const MAX_PER_ACCOUNT: usize = 2;

pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Checks waiting or running per account (keyed by a keyed hash of the account name).
    per_account: Mutex<HashMap<u64, usize>>,
    account_hasher: RandomState,
    /// Requests waiting for a permit or hashing right now.
    in_queue: AtomicUsize,
    max_queue: usize,
    /// Argon2 computations finished (hashes and verifications), for metrics and tests.
    completed: Arc<AtomicUsize>,
    /// Verified against when the email is unknown, so that case costs the same as a wrong password.
    dummy_hash: String,
    /// Reusable argon2 memory, at most one per permit.
    blocks: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl PasswordHasher {
    /// `concurrency` hashes run at once (the core count); at most `max_queue` requests wait or
    /// run (more get 503 `unavailable`).
    pub fn new(concurrency: usize, max_queue: usize) -> Result<Self, String> {
        // The dummy's memory is dropped right after: a process that never logs anyone in stays small.
        let dummy_hash = hash_in(&mut Vec::new(), b"authd dummy password for unknown emails")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            per_account: Mutex::default(),
            account_hasher: RandomState::new(),
            in_queue: AtomicUsize::new(0),
            max_queue: max_queue.max(1),
            completed: Arc::new(AtomicUsize::new(0)),
            dummy_hash,
            blocks: Arc::default(),
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
        self.run(move |blocks| hash_in(blocks, password.as_bytes()))
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
            .run(move |blocks| verify_in(blocks, password.as_bytes(), &hash))
            .await?;
        Ok(ok && real)
    }

    /// [`verify`](Self::verify) on behalf of `account` (a normalized email): at most
    /// [`MAX_PER_ACCOUNT`] of them wait or run at once; more get 429 `rate_limited`.
    pub async fn verify_for(
        &self,
        account: &str,
        password: &str,
        hash: Option<&str>,
    ) -> Result<bool, ApiError> {
        let key = self.account_hasher.hash_one(account);
        let _slot = AccountSlot::enter(&self.per_account, key).ok_or(ApiError::RateLimited {
            retry_after_secs: 1,
        })?;
        self.verify(password, hash).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
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
        let pool = self.blocks.clone();
        // The permit moves into the blocking task: if the client goes away, the hash still
        // finishes before another one may start, so the bound (and the block pool) holds.
        tokio::task::spawn_blocking(move || {
            let mut blocks = pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_default();
            let out = work(&mut blocks);
            pool.lock().unwrap_or_else(|p| p.into_inner()).push(blocks);
            completed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            out
        })
        .await
        .map_err(ApiError::internal)
    }
}

/// Counts a check against one account for as long as it lives.
struct AccountSlot<'a> {
    map: &'a Mutex<HashMap<u64, usize>>,
    key: u64,
}

impl<'a> AccountSlot<'a> {
    fn enter(map: &'a Mutex<HashMap<u64, usize>>, key: u64) -> Option<Self> {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key).or_insert(0);
        if *n >= MAX_PER_ACCOUNT {
            return None;
        }
        *n += 1;
        Some(Self { map, key })
    }
}

impl Drop for AccountSlot<'_> {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
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

    #[test]
    fn compatible_with_the_argon2_crate_both_ways() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let ours = hash_in(&mut Vec::new(), b"pa55word!").unwrap();
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, our_params());
        assert!(
            reference
                .verify_password(b"pa55word!", ours.as_str())
                .is_ok()
        );
        assert!(
            reference
                .verify_password(b"pa55word?", ours.as_str())
                .is_err()
        );
        let theirs = reference.hash_password(b"pa55word!").unwrap().to_string();
        let mut blocks = Vec::new();
        assert!(verify_in(&mut blocks, b"pa55word!", &theirs));
        assert!(!verify_in(&mut blocks, b"pa55word?", &theirs));
        assert_eq!(blocks.len(), 19_456, "one reusable buffer of m blocks");
        // Other parameters (an older or stronger hash) still verify, in the same buffer.
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8_192, 3, 1, None).unwrap(),
        );
        let old = other.hash_password(b"pa55word!").unwrap().to_string();
        assert!(verify_in(&mut blocks, b"pa55word!", &old));
        for junk in [
            "",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$scrypt$x$y",
        ] {
            assert!(!verify_in(&mut blocks, b"pa55word!", junk));
        }
    }

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
    async fn one_account_cannot_hold_more_than_its_share() {
        let h = Arc::new(PasswordHasher::new(1, 64).unwrap());
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move {
                    h.verify_for("ann@example.test", "some password", None)
                        .await
                })
            })
            .collect();
        let other = h.verify_for("bob@example.test", "some password", None);
        assert!(other.await.is_ok(), "another account is not blocked");
        let mut limited = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Err(ApiError::RateLimited { .. })) {
                limited += 1;
            }
        }
        assert!(limited >= 6 - MAX_PER_ACCOUNT, "{limited} of 6 limited");
        assert!(h.per_account.lock().unwrap().is_empty(), "slots released");
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
