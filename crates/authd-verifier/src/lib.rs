//! Verifies authd's access tokens in a resource server (an API an SPA calls), offline, and
//! still stops accepting a revoked session's tokens within a second.
//!
//! - **Offline verification** with authd's own rules for access tokens (RFC 9068 JWTs): the
//!   algorithm is the one of the JWKS key the `kid` names (EdDSA for `OKP`/`Ed25519`, ES256 for
//!   `EC`/`P-256`, RS256 for `RSA`), never taken from the token: a header naming another one is
//!   refused (no `none`, no HS*, no confusion between key types); `typ` must be `at+jwt`, `crit`
//!   is refused, `iss` and `aud` must match, `exp` and `nbf` hold within a leeway of at most
//!   30 s, and keys come only from authd's JWKS at `{authd_url}/.well-known/jwks.json`
//!   (`jku`/`jwk`/`x5u` headers are ignored); an unknown `kid` refetches it, at most once a
//!   second.
//! - **Revocation**: a background task reads authd's revocation feed
//!   (`GET {authd_url}/auth/revocations`, authenticated with AUTHD_RESOURCE_SECRET), whose events
//!   are Security Event Tokens (RFC 8417) carrying CAEP `session-revoked` events. Tokens whose
//!   `sid` is on that deny-list are rejected. Forged SETs are ignored; `keys` events refetch
//!   the JWKS; a dropped stream is reconnected with backoff.
//! - **Failure policy**: when the feed has not proven itself current (no event or heartbeat
//!   while complete, or no `ready` yet) for longer than [`Config::stale_after`], every token is
//!   either rejected ([`FailurePolicy::Reject`], fail closed) or checked with authd's RFC 7662
//!   introspection, `POST {authd_url}/auth/introspect` ([`FailurePolicy::Introspect`]).
//! - **HTTPS**: an `https` `authd_url` is reached with rustls (aws-lc-rs), trusting the
//!   platform's roots; an authd behind a private CA needs [`Config::extra_ca_pem`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), authd_verifier::ConfigError> {
//! use authd_verifier::{AuthdClaims, Config, Verifier};
//! use axum::{Router, routing::get};
//!
//! let verifier = Verifier::start(Config::new("http://localhost:8080", "resource-secret-of-32-chars-or-more"))?;
//! let app: Router = Router::new()
//!     .route("/hello", get(|AuthdClaims(claims): AuthdClaims| async move { claims.sub }))
//!     .with_state(verifier);
//! # Ok(()) }
//! ```

mod feed;
mod keys;
mod web;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;

pub use web::{AuthdClaims, AuthdLayer, AuthdService};

use keys::{Keys, Refetch};

/// The largest leeway authd allows for `exp`/`nbf`.
const MAX_LEEWAY: Duration = Duration::from_secs(30);
/// Longer tokens are rejected unparsed (authd's are well under 1 KiB).
const MAX_TOKEN_LEN: usize = 4096;

/// What to do with a token while the revocation feed is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Fail closed: every token is rejected with [`Error::FeedStale`].
    #[default]
    Reject,
    /// Ask authd per request (RFC 7662 introspection, needs
    /// [`Config::introspection_secret`]); a token it calls inactive gets [`Error::Inactive`],
    /// an unreachable authd [`Error::Unavailable`].
    Introspect,
}

/// How to reach and trust authd. Build with [`Config::new`] and adjust the public fields.
#[derive(Clone)]
pub struct Config {
    /// authd's base URL, e.g. `http://localhost:8080` (a trailing `/` is ignored). The JWKS,
    /// the feed and introspection are fetched from it.
    pub authd_url: String,
    /// The expected `iss` of tokens and SETs (authd's AUTHD_ISSUER). Default: `authd_url`.
    pub issuer: String,
    /// The expected `aud` of tokens and SETs (authd's AUTHD_AUDIENCE). Default: `authd`.
    pub audience: String,
    /// authd's AUTHD_RESOURCE_SECRET: the Bearer credential of the feed.
    pub resource_secret: String,
    /// authd's AUTHD_INTROSPECTION_SECRET; required by [`FailurePolicy::Introspect`].
    pub introspection_secret: Option<String>,
    /// What to do while the feed is stale. Default: [`FailurePolicy::Reject`].
    pub policy: FailurePolicy,
    /// How long the feed may go without proving itself current before it counts as stale.
    /// authd sends a heartbeat every 2 s. Default: 5 s.
    pub stale_after: Duration,
    /// Clock skew allowed on `exp`, `nbf` and `iat`; at most 30 s. Default: 5 s (authd's).
    pub leeway: Duration,
    /// CA certificates (PEM, one or more) trusted for an `https` `authd_url` in addition to the
    /// platform's roots, for an authd behind a private CA. The platform's roots are the system
    /// store (rustls-platform-verifier; on Linux the system bundle, or what `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR` name instead). Default: none.
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl Config {
    /// The defaults for an authd at `authd_url` whose AUTHD_RESOURCE_SECRET is
    /// `resource_secret`: issuer `authd_url`, audience `authd`, fail closed after 5 s.
    pub fn new(authd_url: impl Into<String>, resource_secret: impl Into<String>) -> Self {
        let authd_url = authd_url.into().trim_end_matches('/').to_owned();
        Self {
            issuer: authd_url.clone(),
            authd_url,
            audience: "authd".into(),
            resource_secret: resource_secret.into(),
            introspection_secret: None,
            policy: FailurePolicy::Reject,
            stale_after: Duration::from_secs(5),
            leeway: Duration::from_secs(5),
            extra_ca_pem: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("authd_url", &self.authd_url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("resource_secret", &"[redacted]")
            .field(
                "introspection_secret",
                &self.introspection_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("policy", &self.policy)
            .field("stale_after", &self.stale_after)
            .field("leeway", &self.leeway)
            .field("extra_ca_pem", &self.extra_ca_pem.as_ref().map(|_| "[PEM]"))
            .finish()
    }
}

/// A [`Config`] that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `authd_url` is not an absolute http(s) URL.
    #[error("authd_url is not an http(s) URL: {0}")]
    Url(String),
    /// `resource_secret` is empty.
    #[error("resource_secret is empty")]
    NoResourceSecret,
    /// [`FailurePolicy::Introspect`] without an `introspection_secret`.
    #[error("the introspect policy needs introspection_secret")]
    NoIntrospectionSecret,
    /// `leeway` above 30 s.
    #[error("leeway is at most 30 s")]
    Leeway,
    /// [`Verifier::start`] was called outside a Tokio runtime.
    #[error("Verifier::start needs a Tokio runtime")]
    NoRuntime,
    /// `extra_ca_pem` holds no certificate, or one that cannot be parsed.
    #[error("extra_ca_pem: {0}")]
    ExtraCa(String),
    /// The HTTP client could not be built (TLS setup).
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Why a token was refused. Every variant means HTTP 401 (see the `IntoResponse` impl).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No `Authorization: Bearer` credential (only from the extractor and the layer).
    #[error("no bearer token")]
    Missing,
    /// Malformed, wrong algorithm or `typ`, `crit`, unknown `kid`, bad signature, or a wrong
    /// `iss`/`aud`/`nbf`/`iat` or a claim of the wrong type.
    #[error("invalid token")]
    Invalid,
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// The token's session is on the deny-list from the feed.
    #[error("session revoked")]
    Revoked,
    /// The feed is stale and the policy is [`FailurePolicy::Reject`].
    #[error("revocation feed stale")]
    FeedStale,
    /// The feed is stale and introspection answered `"active": false`.
    #[error("token inactive")]
    Inactive,
    /// The feed is stale and introspection failed (authd unreachable or refusing us).
    #[error("introspection unavailable")]
    Unavailable,
}

/// The claims of a verified access token (RFC 9068 §2.2 plus authd's `sid` and `roles`).
/// Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// Issuer: authd's AUTHD_ISSUER.
    pub iss: String,
    /// Audience: authd's AUTHD_AUDIENCE.
    pub aud: String,
    /// The user id (a UUID).
    pub sub: String,
    /// The session id (a UUID): what revocation names.
    pub sid: String,
    /// This token's id (a UUID).
    pub jti: String,
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
    /// Not before, when present.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// The user's roles when the token was issued (e.g. `admin`).
    pub roles: Vec<String>,
}

/// Verifies access tokens; cheap to clone (one shared deny-list and key cache). The feed task
/// runs until the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    feed_task: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.feed_task.abort();
    }
}

pub(crate) struct Shared {
    config: Config,
    http: reqwest::Client,
    keys: Arc<Keys>,
    feed: feed::Feed,
    /// Access-token checks for EdDSA, ES256 and RS256 keys (see [`Shared::validation`]).
    validations: [Validation; 3],
}

impl Shared {
    fn leeway_secs(&self) -> u64 {
        self.config.leeway.as_secs()
    }

    /// The checks for a token of a key of `alg` (one of [`keys::is_supported`]).
    fn validation(&self, alg: Algorithm) -> &Validation {
        &self.validations[match alg {
            Algorithm::ES256 => 1,
            Algorithm::RS256 => 2,
            _ => 0,
        }]
    }
}

#[derive(Deserialize)]
struct Introspection {
    active: bool,
}

impl Verifier {
    /// Checks `config`, then starts the feed task (and the first JWKS fetch) on the current
    /// Tokio runtime. Until the feed's first `ready` arrives it counts as stale.
    pub fn start(mut config: Config) -> Result<Self, ConfigError> {
        config.authd_url = config.authd_url.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&config.authd_url)
            .map_err(|_| ConfigError::Url(config.authd_url.clone()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Url(config.authd_url));
        }
        if config.resource_secret.is_empty() {
            return Err(ConfigError::NoResourceSecret);
        }
        if config.policy == FailurePolicy::Introspect && config.introspection_secret.is_none() {
            return Err(ConfigError::NoIntrospectionSecret);
        }
        if config.leeway > MAX_LEEWAY {
            return Err(ConfigError::Leeway);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let mut http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(pem) = &config.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ConfigError::ExtraCa(e.to_string()))?;
            if certs.is_empty() {
                return Err(ConfigError::ExtraCa("no certificate in it".into()));
            }
            http = http.tls_certs_merge(certs);
        }
        let http = http.build()?;
        let validations = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256].map(|alg| {
            let mut validation = Validation::new(alg);
            validation.leeway = config.leeway.as_secs();
            validation.validate_nbf = true;
            validation.set_issuer(&[&config.issuer]);
            validation.set_audience(&[&config.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation
        });
        let keys = Arc::new(Keys::new(
            format!("{}/.well-known/jwks.json", config.authd_url),
            http.clone(),
        ));
        let shared = Arc::new(Shared {
            config,
            http,
            keys,
            feed: feed::Feed::default(),
            validations,
        });
        let keys = shared.keys.clone();
        runtime.spawn(async move { keys.refresh(Refetch::IfDue).await });
        let feed_task = runtime.spawn(feed::run(shared.clone())).abort_handle();
        Ok(Self {
            inner: Arc::new(Inner { shared, feed_task }),
        })
    }

    /// Verifies an access token (the part after `Bearer `) and returns its claims: offline
    /// checks, then the deny-list, then the failure policy if the feed is stale.
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        let shared = &self.inner.shared;
        let claims = self.verify_offline(token).await?;
        if shared.feed.is_revoked(&claims.sid) {
            return Err(Error::Revoked);
        }
        if shared.feed.is_fresh(shared.config.stale_after) {
            return Ok(claims);
        }
        match shared.config.policy {
            FailurePolicy::Reject => Err(Error::FeedStale),
            FailurePolicy::Introspect => match self.introspect(token).await {
                Ok(true) => Ok(claims),
                Ok(false) => Err(Error::Inactive),
                Err(error) => {
                    tracing::warn!(?error, "authd introspection failed");
                    Err(Error::Unavailable)
                }
            },
        }
    }

    /// Whether the feed has proven itself current within [`Config::stale_after`] (if not,
    /// [`Config::policy`] applies). For readiness checks and metrics.
    pub fn feed_is_fresh(&self) -> bool {
        let shared = &self.inner.shared;
        shared.feed.is_fresh(shared.config.stale_after)
    }

    /// Waits (at most `within`) until the feed is fresh, e.g. before a server starts taking
    /// requests; returns whether it is.
    pub async fn wait_fresh(&self, within: Duration) -> bool {
        let feed = &self.inner.shared.feed;
        let fresh = async {
            loop {
                // Created before the check, so a `ready` in between is not missed.
                let ready = feed.ready.notified();
                if self.feed_is_fresh() {
                    return;
                }
                ready.await;
            }
        };
        tokio::time::timeout(within, fresh).await.is_ok()
    }

    async fn verify_offline(&self, token: &str) -> Result<Claims, Error> {
        let shared = &self.inner.shared;
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Invalid)?;
        let at_jwt = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !keys::is_supported(header.alg) || header.crit.is_some() || !at_jwt {
            return Err(Error::Invalid);
        }
        let kid = header.kid.ok_or(Error::Invalid)?;
        let (alg, key) = shared
            .keys
            .get(&kid, Refetch::IfDue)
            .await
            .ok_or(Error::Invalid)?;
        // The key's algorithm, not the token's choice.
        if header.alg != alg {
            return Err(Error::Invalid);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &key, shared.validation(alg))
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => Error::Expired,
                _ => Error::Invalid,
            })?
            .claims;
        if claims.iat > unix_now().saturating_add(shared.leeway_secs() as i64) {
            return Err(Error::Invalid);
        }
        Ok(claims)
    }

    /// RFC 7662: whether authd calls the token active.
    async fn introspect(&self, token: &str) -> Result<bool, reqwest::Error> {
        let shared = &self.inner.shared;
        let secret = shared.config.introspection_secret.as_deref().unwrap_or("");
        let answer: Introspection = shared
            .http
            .post(format!("{}/auth/introspect", shared.config.authd_url))
            .bearer_auth(secret)
            .json(&serde_json::json!({ "token": token }))
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer.active)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.inner.shared.config)
            .field("feed_is_fresh", &self.feed_is_fresh())
            .finish()
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
