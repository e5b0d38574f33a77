//! Rate limits (GCRA, `governor`), keyed by client IP (IPv6 by /64), by (IP, account) and by
//! account: password checks (login, password change, and every later factor that verifies a
//! password) 5/min per (IP, account), 20/min per IP and 30/min per account from all IPs together
//! (a botnet cannot guess faster at one account); register 10/min per IP; refresh 120/min per IP;
//! mail 3 per 15 min per address and 20/hour per IP; code and link checks 30/min per IP;
//! each with a burst of that size. An account is its normalized email, whether or not it exists. Keys are fixed-size (the email is hashed with a per-process
//! random key), stale keys are dropped every few seconds, and each store is capped, so a flood
//! of distinct keys cannot grow memory without bound.

use std::{
    hash::{BuildHasher, Hash},
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, RwLock},
    time::Duration,
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use crate::error::ApiError;

/// Most keys one limiter holds; beyond it (after dropping stale keys) the limiter is reset.
pub const MAX_KEYS: usize = 100_000;
/// How often stale keys are dropped.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// A client address as rate limits see it: IPv4, or the /64 network of an IPv6 address (one
/// host usually owns a whole /64).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ClientKey(u128);

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(u32::from(v4))),
                None => Self(u128::from(v6) & !((1u128 << 64) - 1)),
            },
        }
    }
}

/// One keyed limiter that can be replaced wholesale when its key store is full.
struct Limiter<K: Hash + Eq + Clone> {
    quota: Quota,
    inner: RwLock<Arc<DefaultKeyedRateLimiter<K>>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn per_minute(n: u32) -> Self {
        Self::new(Quota::per_minute(
            NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN),
        ))
    }

    /// `n` per `window`, with a burst of `n`.
    fn per(n: u32, window: Duration) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(window / n.get())
            .map(|q| q.allow_burst(n))
            .unwrap_or_else(|| Quota::per_minute(n));
        Self::new(quota)
    }

    fn new(quota: Quota) -> Self {
        Self {
            quota,
            inner: RwLock::new(Arc::new(RateLimiter::keyed(quota))),
        }
    }

    fn current(&self) -> Arc<DefaultKeyedRateLimiter<K>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        let mut limiter = self.current();
        if limiter.len() >= MAX_KEYS {
            limiter.retain_recent();
            if limiter.len() >= MAX_KEYS {
                // Only a flood of distinct keys gets here. Bounded memory wins over the limits
                // of the keys forgotten; the per-IP limits keep working for new requests.
                tracing::warn!(
                    keys = limiter.len(),
                    "rate-limit key store full; starting a fresh one"
                );
                let fresh = Arc::new(RateLimiter::keyed(self.quota));
                *self.inner.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                limiter = fresh;
            }
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    fn housekeeping(&self) {
        let limiter = self.current();
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.current().len()
    }
}

pub struct RateLimits {
    login_ip: Limiter<ClientKey>,
    login_ip_email: Limiter<(ClientKey, u64)>,
    password_account: Limiter<u64>,
    register_ip: Limiter<ClientKey>,
    refresh_ip: Limiter<ClientKey>,
    email_send_address: Limiter<u64>,
    email_send_ip: Limiter<ClientKey>,
    email_check_ip: Limiter<ClientKey>,
    email_hasher: std::collections::hash_map::RandomState,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimits {
    pub fn new() -> Self {
        Self {
            login_ip: Limiter::per_minute(20),
            login_ip_email: Limiter::per_minute(5),
            password_account: Limiter::per_minute(30),
            register_ip: Limiter::per_minute(10),
            refresh_ip: Limiter::per_minute(120),
            email_send_address: Limiter::per(3, Duration::from_secs(15 * 60)),
            email_send_ip: Limiter::per(20, Duration::from_secs(60 * 60)),
            email_check_ip: Limiter::per_minute(30),
            email_hasher: Default::default(),
        }
    }

    /// One password check against `account` from `ip` (unknown without a peer address).
    /// Checked before the password is, so a correct password during a limit still gets 429.
    pub fn password(&self, ip: Option<IpAddr>, account: &str) -> Result<(), ApiError> {
        let account = self.email_hasher.hash_one(account);
        if let Some(ip) = ip {
            let ip = ClientKey::from(ip);
            self.login_ip.check(&ip)?;
            self.login_ip_email.check(&(ip, account))?;
        }
        self.password_account.check(&account)
    }

    pub fn register(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.register_ip.check(&ClientKey::from(ip))
    }

    pub fn refresh(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.refresh_ip.check(&ClientKey::from(ip))
    }

    /// One message mailed to `address` (normalized, whether or not it has an account) at the
    /// request of `ip`: 3 per 15 minutes per address, 20 per hour per IP (API.md "Email").
    pub fn email_send(&self, ip: Option<IpAddr>, address: &str) -> Result<(), ApiError> {
        if let Some(ip) = ip {
            self.email_send_ip.check(&ClientKey::from(ip))?;
        }
        self.email_send_address
            .check(&self.email_hasher.hash_one(address))
    }

    /// One check of a mailed code or link from `ip` (30/min; each code also dies after 5
    /// wrong tries).
    pub fn email_check(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.email_check_ip.check(&ClientKey::from(ip))
    }

    /// Drops keys whose limits have fully replenished.
    pub fn housekeeping(&self) {
        self.login_ip.housekeeping();
        self.login_ip_email.housekeeping();
        self.password_account.housekeeping();
        self.register_ip.housekeeping();
        self.refresh_ip.housekeeping();
        self.email_send_address.housekeeping();
        self.email_send_ip.housekeeping();
        self.email_check_ip.housekeeping();
    }

    /// Keys held right now (for metrics and tests).
    pub fn keys(&self) -> usize {
        self.login_ip.len()
            + self.login_ip_email.len()
            + self.password_account.len()
            + self.register_ip.len()
            + self.refresh_ip.len()
            + self.email_send_address.len()
            + self.email_send_ip.len()
            + self.email_check_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::domain::Email;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn login_limits_per_ip_and_email() {
        let rl = RateLimits::new();
        let ann = Email::parse("e", "ann@example.test").unwrap();
        for _ in 0..5 {
            rl.password(Some(ip(1)), ann.as_str()).unwrap();
        }
        let Err(ApiError::RateLimited { retry_after_secs }) =
            rl.password(Some(ip(1)), ann.as_str())
        else {
            panic!("6th is limited")
        };
        assert!((1..=12).contains(&retry_after_secs), "{retry_after_secs}");
        // Another email from the same IP still works, until the per-IP limit.
        let mut ok = 0;
        for i in 0..40 {
            let e = Email::parse("e", &format!("u{i}@example.test")).unwrap();
            if rl.password(Some(ip(1)), e.as_str()).is_ok() {
                ok += 1;
            }
        }
        assert_eq!(
            ok,
            20 - 6,
            "per-IP burst of 20 (6 already used, the limited one included)"
        );
        assert!(
            rl.password(Some(ip(2)), ann.as_str()).is_ok(),
            "other IPs are separate"
        );
    }

    #[test]
    fn one_account_is_bounded_across_ips() {
        let rl = RateLimits::new();
        let ann = Email::parse("e", "ann@example.test").unwrap();
        let ok = (0..100)
            .filter(|n| rl.password(Some(ip(1000 + n)), ann.as_str()).is_ok())
            .count();
        assert_eq!(
            ok, 30,
            "30 guesses per account per minute, whatever the IPs"
        );
        let bob = Email::parse("e", "bob@example.test").unwrap();
        assert!(
            rl.password(Some(ip(5000)), bob.as_str()).is_ok(),
            "other accounts unaffected"
        );
    }

    #[test]
    fn ipv6_is_keyed_by_64_and_mapped_v4_by_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::from(a), ClientKey::from(b));
        assert_ne!(ClientKey::from(a), ClientKey::from(c));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(
            ClientKey::from(mapped),
            ClientKey::from(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        let _ = Ipv6Addr::LOCALHOST;
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let rl = RateLimits::new();
        for n in 0..(MAX_KEYS as u32 * 2) {
            let _ = rl.refresh(ip(n));
        }
        assert!(rl.keys() <= MAX_KEYS, "{} keys held", rl.keys());
    }
}
