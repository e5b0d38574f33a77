//! Prometheus metrics (text exposition at `/metrics`). Each application instance owns its
//! registry (no process globals), so several instances in one process stay separate.

use std::{collections::HashMap, sync::RwLock, time::Duration};

use axum::http::Method;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{domain::RevokeReason, error::ApiError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EmailLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolState {
    state: String,
}

/// (method label, status) → the request counter and the latency histogram of that series.
type HttpHandles = HashMap<(&'static str, u16), (Counter, Histogram)>;

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    /// The two series of each (route, method, status) seen so far, so a request updates them
    /// without building label strings (route → (method, status) → handles).
    http_handles: RwLock<HashMap<String, HttpHandles>>,
    logins: Family<Outcome, Counter>,
    refreshes: Family<Outcome, Counter>,
    revocations: Family<Reason, Counter>,
    active_sessions: Gauge,
    active_sessions_counted: std::sync::Mutex<Option<std::time::Instant>>,
    argon2_queue: Gauge,
    argon2_completed: Gauge,
    db_pool: Family<PoolState, Gauge>,
    listener_up: Gauge,
    denylist_size: Gauge,
    revocation_db_fallbacks: Gauge,
    rate_limit_keys: Gauge,
    emails: Family<EmailLabels, Counter>,
    email_queue: Gauge,
    feed_subscribers: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("authd");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 100 µs .. ~13 s
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let m = Self {
            http_requests,
            http_duration,
            logins: Family::default(),
            refreshes: Family::default(),
            revocations: Family::default(),
            active_sessions: Gauge::default(),
            active_sessions_counted: std::sync::Mutex::new(None),
            argon2_queue: Gauge::default(),
            argon2_completed: Gauge::default(),
            db_pool: Family::default(),
            listener_up: Gauge::default(),
            denylist_size: Gauge::default(),
            revocation_db_fallbacks: Gauge::default(),
            rate_limit_keys: Gauge::default(),
            emails: Family::default(),
            email_queue: Gauge::default(),
            feed_subscribers: Gauge::default(),
            registry: Registry::default(),
            http_handles: RwLock::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and method",
            m.http_duration.clone(),
        );
        registry.register("logins", "Login attempts by outcome", m.logins.clone());
        registry.register(
            "refreshes",
            "Refresh attempts by outcome (ok, grace, reused, expired, revoked, ...)",
            m.refreshes.clone(),
        );
        registry.register(
            "revocations",
            "Sessions revoked by this instance, by reason",
            m.revocations.clone(),
        );
        registry.register(
            "active_sessions",
            "Live sessions (not revoked, not expired)",
            m.active_sessions.clone(),
        );
        registry.register(
            "argon2_queue_depth",
            "Password hashes waiting or running",
            m.argon2_queue.clone(),
        );
        registry.register(
            "argon2_completed",
            "Password hashes and verifications completed",
            m.argon2_completed.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (idle, in_use, max)",
            m.db_pool.clone(),
        );
        registry.register(
            "revocation_listener_up",
            "1 while the NOTIFY listener is connected and trusted",
            m.listener_up.clone(),
        );
        registry.register(
            "revocation_denylist_size",
            "Revoked sessions held in memory",
            m.denylist_size.clone(),
        );
        registry.register(
            "revocation_db_fallbacks",
            "Bearer checks answered by the database because the listener was down",
            m.revocation_db_fallbacks.clone(),
        );
        registry.register(
            "rate_limit_keys",
            "Keys held by the rate limiters",
            m.rate_limit_keys.clone(),
        );
        registry.register(
            "emails",
            "Mail by kind and outcome: sent, retried (a temporary failure, tried again), failed \
             (undeliverable, given up), dropped (queue full or not composable)",
            m.emails.clone(),
        );
        registry.register(
            "email_queue_depth",
            "Messages waiting for a delivery slot",
            m.email_queue.clone(),
        );
        registry.register(
            "revocation_feed_subscribers",
            "Resource servers subscribed to GET /auth/revocations on this instance",
            m.feed_subscribers.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts one mail outcome (`sent`, `retried`, `failed`, `dropped`).
    pub fn email(&self, kind: crate::mail::MessageKind, outcome: &str) {
        self.emails
            .get_or_create(&EmailLabels {
                kind: kind.template().to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Moves the mail queue depth by `delta`.
    pub fn email_queued(&self, delta: i64) {
        self.email_queue.inc_by(delta);
    }

    pub fn login(&self, outcome: &str) {
        self.logins
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn refresh(&self, outcome: &str) {
        self.refreshes
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn revoked(&self, reason: RevokeReason, n: usize) {
        self.revocations
            .get_or_create(&Reason {
                reason: reason.as_str().to_owned(),
            })
            .inc_by(n as u64);
    }

    /// Counts a request by its route template (never the raw path: bounded label values).
    pub fn observe_http(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let key = (method, status);
        {
            let handles = self.http_handles.read().unwrap_or_else(|p| p.into_inner());
            if let Some((count, duration)) = handles.get(route).and_then(|m| m.get(&key)) {
                count.inc();
                duration.observe(elapsed.as_secs_f64());
                return;
            }
        }
        let labels = HttpLabels {
            route: route.to_owned(),
            method: method.to_owned(),
            status: status.to_string(),
        };
        let count = self.http_requests.get_or_create(&labels).clone();
        let route_labels = RouteLabels {
            route: route.to_owned(),
            method: method.to_owned(),
        };
        let duration = self.http_duration.get_or_create(&route_labels).clone();
        count.inc();
        duration.observe(elapsed.as_secs_f64());
        let mut handles = self.http_handles.write().unwrap_or_else(|p| p.into_inner());
        handles
            .entry(route.to_owned())
            .or_default()
            .insert(key, (count, duration));
    }
}

/// Standard methods by name, anything else as `other`: a client must not be able to mint label
/// values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The outcome label of a refresh or login error: its problem code, shortened where obvious.
pub fn outcome_of(err: &ApiError) -> &'static str {
    match err {
        ApiError::RefreshTokenReused => "reused",
        ApiError::SessionExpired => "expired",
        ApiError::SessionRevoked => "revoked",
        ApiError::RefreshTokenInvalid => "invalid",
        ApiError::RefreshTokenMissing => "missing",
        other => other.code(),
    }
}

/// Instantaneous values read from the rest of the process at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub argon2_queue: i64,
    pub argon2_completed: i64,
    pub pool_size: i64,
    pub pool_idle: i64,
    pub pool_max: i64,
    pub listener_up: bool,
    pub denylist_size: i64,
    pub revocation_db_fallbacks: i64,
    pub rate_limit_keys: i64,
    pub feed_subscribers: i64,
}

/// The live-session count is recounted at most this often, however often /metrics is scraped.
pub const ACTIVE_SESSIONS_EVERY: Duration = Duration::from_secs(10);

impl Metrics {
    /// Whether the live-session count is due (at most once per [`ACTIVE_SESSIONS_EVERY`]);
    /// claims the recount if so, so concurrent scrapes do not all count.
    pub fn claim_active_sessions_recount(&self) -> bool {
        let mut last = self
            .active_sessions_counted
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < ACTIVE_SESSIONS_EVERY) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }

    pub fn set_active_sessions(&self, n: i64) {
        self.active_sessions.set(n);
    }

    /// The OpenMetrics text exposition with `g` applied.
    pub fn encode(&self, g: Gauges) -> Result<String, std::fmt::Error> {
        self.argon2_queue.set(g.argon2_queue);
        self.argon2_completed.set(g.argon2_completed);
        for (state, v) in [
            ("idle", g.pool_idle),
            ("in_use", g.pool_size - g.pool_idle),
            ("max", g.pool_max),
        ] {
            self.db_pool
                .get_or_create(&PoolState {
                    state: state.into(),
                })
                .set(v);
        }
        self.listener_up.set(i64::from(g.listener_up));
        self.denylist_size.set(g.denylist_size);
        self.revocation_db_fallbacks.set(g.revocation_db_fallbacks);
        self.rate_limit_keys.set(g.rate_limit_keys);
        self.feed_subscribers.set(g.feed_subscribers);
        let mut body = String::new();
        encode(&mut body, &self.registry)?;
        Ok(body)
    }
}
