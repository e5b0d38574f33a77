//! Building the application from a [`Config`]: database, keys, secrets, router, listener.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Instant};

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::{
    auth::{
        cookies::CookieSettings,
        jwt::{Jwt, KeyMaterial, KeySet, LEEWAY_SECS},
        password::PasswordHasher,
        refresh::SuccessorKey,
    },
    config::Config,
    db, domain, http, notify,
    ratelimit::{self, RateLimits},
    revocation::Revocations,
    state::{AppState, Shared},
    usercache::UserCache,
};

/// Most password hashes waiting or running at once; beyond it logins get 503.
const HASH_QUEUE: usize = 256;

/// Connects (creating the database if needed) with bounded retries, then migrates.
pub async fn prepare_database(config: &Config) -> anyhow::Result<PgPool> {
    let deadline = Instant::now() + config.db_connect_timeout;
    let mut attempt = 0u32;
    let pool = loop {
        attempt += 1;
        let result = async {
            db::create_database_if_missing(&config.database_url).await?;
            db::connect(&config.database_url, config.db_max_connections).await
        }
        .await;
        match result {
            Ok(pool) => break pool,
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(attempt, error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(
                    500 * u64::from(attempt.min(4)),
                ))
                .await;
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot reach the database named by DATABASE_URL after {attempt} attempts: {e}"
                ));
            }
        }
    };
    db::migrate(&pool)
        .await
        .context("running database migrations")?;
    Ok(pool)
}

/// Loads (or on first start generates) the signing keys. With AUTHD_SIGNING_KEY_FILE, that key
/// becomes the signing key if it is not already.
pub async fn load_keys(pool: &PgPool, config: &Config) -> anyhow::Result<KeySet> {
    if let Some(path) = &config.signing_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("AUTHD_SIGNING_KEY_FILE: cannot read {}", path.display()))?;
        let key = KeyMaterial::from_pem(&text)
            .map_err(|e| anyhow::anyhow!("AUTHD_SIGNING_KEY_FILE: {}: {e}", path.display()))?;
        let current = db::keys::load_active(pool, token_lifetime(config)).await?;
        if current.as_ref().map(|k| k.signing.kid.as_str()) != Some(key.kid.as_str()) {
            db::keys::install(pool, &key).await?;
            tracing::info!(kid = %key.kid, "signing key from AUTHD_SIGNING_KEY_FILE installed");
        }
    } else {
        db::keys::ensure_signing_key(pool).await?;
    }
    let active = db::keys::load_active(pool, token_lifetime(config))
        .await?
        .context("no active signing key in the database")?;
    Ok(KeySet::new(&active.signing, &active.published))
}

/// Swaps in the current key set from the database. Returns when the next retired key expires.
pub async fn reload_keys(state: &AppState) -> anyhow::Result<Option<std::time::Duration>> {
    let active = db::keys::load_active(&state.db, token_lifetime(&state.config))
        .await?
        .context("no active signing key in the database")?;
    let set = KeySet::new(&active.signing, &active.published);
    let changed = {
        let current = state.jwt.keys();
        current.signing_kid() != set.signing_kid() || current.kids().count() != set.kids().count()
    };
    if changed {
        tracing::info!(signing_kid = %set.signing_kid(), published = set.kids().count(), "signing keys reloaded");
    }
    state.jwt.replace_keys(set);
    *state.last_key_reload.lock().await = Some(Instant::now());
    Ok(active.next_change)
}

/// Reloads keys now unless that happened in the last second (a token with an unknown `kid` may
/// come from an instance that rotated a moment ago; an attacker's random kids cost at most one
/// query per second).
pub async fn reload_keys_throttled(state: &AppState) -> bool {
    {
        let last = state.last_key_reload.lock().await;
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return false;
        }
    }
    reload_keys(state).await.is_ok()
}

/// How long after a key stops signing its tokens may still verify.
pub fn token_lifetime(config: &Config) -> std::time::Duration {
    config.access_ttl + std::time::Duration::from_secs(LEEWAY_SECS)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    listener_pool: PgPool,
    metrics_listener: Option<TcpListener>,
}

impl Application {
    /// Everything a server needs, bound to its port, not yet serving.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = prepare_database(&config).await?;
        let keys = load_keys(&pool, &config).await?;
        let secret = db::keys::server_secret(&pool, "refresh_successor").await?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(cores, HASH_QUEUE))
            .await?
            .map_err(|e| anyhow::anyhow!("argon2 self-test failed: {e}"))?;
        domain::preload_common_passwords();
        let listener_pool = notify::listener_pool(&config).await?;
        let metrics_listener = match config.metrics_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("AUTHD_METRICS_BIND: cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("AUTHD_BIND: cannot listen on {}", config.bind))?;
        let state = AppState::new(Shared {
            db: pool,
            jwt: Arc::new(Jwt::new(
                keys,
                &config.issuer.url,
                &config.audience,
                config.access_ttl,
            )),
            hasher: Arc::new(hasher),
            successor_key: Arc::new(SuccessorKey::new(&secret)),
            cookies: Arc::new(CookieSettings::from_config(&config)),
            rate_limits: config.rate_limit.then(|| Arc::new(RateLimits::new())),
            revocations: Arc::new(Revocations::new(token_lifetime(&config))),
            users: Arc::new(UserCache::default()),
            keys_changed: Arc::new(tokio::sync::Notify::new()),
            last_key_reload: Arc::new(tokio::sync::Mutex::new(None)),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            db_health: crate::dbhealth::DbHealth::new(db::connect_options(&config.database_url)?),
            openapi: std::sync::OnceLock::new(),
            config: Arc::new(config),
        });
        Ok(Self {
            listener,
            state,
            listener_pool,
            metrics_listener,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where the separate metrics listener is bound (AUTHD_METRICS_BIND), if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = http::router(self.state.clone());
        notify::spawn(self.state.clone(), self.listener_pool.clone());
        if let Some(listener) = self.metrics_listener {
            let router = http::metrics_router(self.state.clone());
            tokio::spawn(crate::server::serve(
                listener,
                router,
                std::future::pending(),
            ));
        }
        let config = &self.state.config;
        tokio::spawn(crate::cleanup::run_forever(
            self.state.db.clone(),
            config.cleanup_interval,
            config.cleanup_retention,
            config.audit_retention,
        ));
        if let Some(rl) = self.state.rate_limits.clone() {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(ratelimit::HOUSEKEEPING_EVERY);
                loop {
                    tick.tick().await;
                    rl.housekeeping();
                }
            });
        }
        tracing::info!(addr = %self.listener.local_addr()?, "listening");
        crate::server::serve(self.listener, app, shutdown).await;
        self.state.db.close().await;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
