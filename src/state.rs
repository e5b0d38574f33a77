//! Shared application state, handed to handlers through `State<AppState>`. Cloning it (axum
//! does, several times per request) is one reference-count increment.

use std::{ops::Deref, sync::Arc};

use axum::body::Bytes;
use sqlx::PgPool;

use crate::{
    app::{dbhealth::DbHealth, ratelimit::RateLimits},
    config::Config,
    db::sessions::RevokedSession,
    domain::RevokeReason,
    error::ApiError,
    factors::argon2::PasswordHasher,
    live::{denylist::Revocations, users::UserCache},
    telemetry::metrics::Metrics,
    tokens::{cookies::CookieSettings, jwt::Jwt, refresh::SuccessorKey},
};

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub jwt: Arc<Jwt>,
    pub hasher: Arc<PasswordHasher>,
    pub successor_key: Arc<SuccessorKey>,
    pub cookies: Arc<CookieSettings>,
    /// `None` when AUTHD_RATE_LIMIT=off.
    pub rate_limits: Option<Arc<RateLimits>>,
    /// The revoked-session deny-list (fed by NOTIFY).
    pub revocations: Arc<Revocations>,
    /// Users by id for /auth/me (invalidated by NOTIFY).
    pub users: Arc<UserCache>,
    /// Signalled when the signing keys changed in the database.
    pub keys_changed: Arc<tokio::sync::Notify>,
    pub last_key_reload: Arc<tokio::sync::Mutex<Option<std::time::Instant>>>,
    pub metrics: Arc<Metrics>,
    /// Fast failure while the database is down.
    pub db_health: Arc<DbHealth>,
    /// The revocation feed for resource servers (`GET /auth/revocations`).
    pub feed: Arc<crate::live::feed::Feed>,
    /// Renders and queues outgoing mail (delivered off the request path).
    pub mailer: Arc<crate::mail::Mailer>,
    /// Keys the HMAC that stores sign-in codes.
    pub code_key: Arc<crate::tokens::email::CodeKey>,
    /// Bounds the mail requests handled in the background (forgot password, sign-in codes).
    pub email_work: Arc<tokio::sync::Semaphore>,
    /// The serialized OpenAPI document, built on first request.
    pub openapi: std::sync::OnceLock<Bytes>,
}

impl AppState {
    /// After sessions were revoked (committed): deny their tokens here at once (other instances
    /// learn through NOTIFY) and count them: each is denied until its last access token expires.
    pub fn record_revoked(&self, reason: RevokeReason, sessions: &[RevokedSession]) {
        self.revocations
            .insert(sessions.iter().map(|s| (s.id, s.tokens_until)));
        self.metrics.revoked(reason, sessions.len());
    }

    /// Applies a rate limit if limits are on and the client address is known.
    pub fn limit(
        &self,
        check: impl FnOnce(&RateLimits) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        match &self.rate_limits {
            Some(rl) => check(rl),
            None => Ok(()),
        }
    }
}
