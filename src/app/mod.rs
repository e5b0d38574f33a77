//! Building the application from a [`Config`]: database, keys, secrets, router, listener; and
//! the runtime machinery around it (accept loop, database health, cleanup, rate limits).

pub mod cleanup;
pub mod dbhealth;
pub mod ratelimit;
pub mod server;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Instant};

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::{
    config::Config,
    db, domain,
    factors::argon2::PasswordHasher,
    http,
    live::{self, denylist::Revocations, users::UserCache},
    state::{AppState, Shared},
    tokens::{cookies::CookieSettings, jwt::Jwt, keys::load_keys, refresh::SuccessorKey},
};
use ratelimit::RateLimits;

/// Most password hashes waiting or running at once; beyond it logins get 503.
const HASH_QUEUE: usize = 256;
/// Mail requests (forgot password, sign-in codes) handled in the background at once, at most;
/// beyond it a request is answered the same way and its message dropped (and counted).
const EMAIL_WORK: usize = 64;

/// Connects (creating the database if needed), then migrates. Only errors that may go away by
/// themselves (the server not reachable yet, starting up) are retried, until
/// AUTHD_DB_CONNECT_TIMEOUT; a permanent one (authentication, unknown role, TLS) fails at once.
/// Every error names the database with its password redacted. A database with tables that
/// authd did not make, and no record of authd's migrations, is refused.
pub async fn prepare_database(config: &Config) -> anyhow::Result<PgPool> {
    let deadline = Instant::now() + config.db_connect_timeout;
    let target = db::redacted(&config.database_url);
    let mut attempt = 0u32;
    let pool = loop {
        attempt += 1;
        let result = async {
            if db::create_database_if_missing(&config.database_url).await? {
                tracing::info!(database = %target, "created the database");
            }
            db::connect(&config.database_url, config.db_max_connections).await
        }
        .await;
        match result {
            Ok(pool) => break pool,
            Err(e) if db::is_transient(&e) && Instant::now() < deadline => {
                tracing::warn!(attempt, database = %target, error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(
                    500 * u64::from(attempt.min(4)),
                ))
                .await;
            }
            Err(e) if db::is_transient(&e) => {
                return Err(anyhow::anyhow!(
                    "cannot reach the database {target} (DATABASE_URL) after {attempt} attempts: {}",
                    db::describe(&e)
                ));
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot use the database {target} (DATABASE_URL): {}",
                    db::describe(&e)
                ));
            }
        }
    };
    let foreign = db::foreign_tables(&pool).await?;
    if !foreign.is_empty() {
        return Err(anyhow::anyhow!(
            "the database {target} already has tables authd did not make ({}); point \
             DATABASE_URL at a database of authd's own (it is created if missing)",
            foreign.join(", ")
        ));
    }
    let before = db::applied_migrations(&pool).await?;
    db::migrate(&pool)
        .await
        .context("running database migrations")?;
    let after = db::applied_migrations(&pool).await?;
    if after > before {
        tracing::info!(database = %target, applied = after - before, total = after, "applied migrations");
    }
    Ok(pool)
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
        // Mail first: a broken template or outbox stops the start before anything else.
        let metrics = Arc::new(crate::telemetry::metrics::Metrics::new());
        let mailer =
            crate::mail::Mailer::start(&config, metrics.clone()).map_err(|e| anyhow::anyhow!(e))?;
        let pool = prepare_database(&config).await?;
        let keys = load_keys(&pool, &config).await?;
        let secret = db::keys::server_secret(&pool, "refresh_successor").await?;
        let code_secret = db::keys::server_secret(&pool, "email_code").await?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(cores, HASH_QUEUE))
            .await?
            .map_err(|e| anyhow::anyhow!("argon2 self-test failed: {e}"))?;
        domain::preload_common_passwords();
        let listener_pool = live::listener::listener_pool(&config).await?;
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
        let jwt = Arc::new(Jwt::new(
            keys,
            &config.issuer.url,
            &config.audience,
            config.access_ttl,
        ));
        let state = AppState::new(Shared {
            feed: live::feed::Feed::start(pool.clone(), jwt.clone()),
            mailer,
            code_key: Arc::new(crate::tokens::email::CodeKey::new(&code_secret)),
            email_work: Arc::new(tokio::sync::Semaphore::new(EMAIL_WORK)),
            db: pool,
            jwt,
            hasher: Arc::new(hasher),
            successor_key: Arc::new(SuccessorKey::new(&secret)),
            cookies: Arc::new(CookieSettings::from_config(&config)),
            rate_limits: config.rate_limit.then(|| Arc::new(RateLimits::new())),
            revocations: Arc::new(Revocations::new()),
            users: Arc::new(UserCache::default()),
            keys_changed: Arc::new(tokio::sync::Notify::new()),
            last_key_reload: Arc::new(tokio::sync::Mutex::new(None)),
            metrics,
            db_health: dbhealth::DbHealth::new(db::connect_options(&config.database_url)?),
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
        let background = live::listener::spawn(self.state.clone(), self.listener_pool.clone());
        if let Some(listener) = self.metrics_listener {
            let router = http::metrics_router(self.state.clone());
            tokio::spawn(server::serve(listener, router, std::future::pending()));
        }
        let config = &self.state.config;
        tokio::spawn(cleanup::run_forever(
            self.state.db.clone(),
            config.cleanup_interval,
            config.cleanup_retention,
            config.audit_retention,
            // Used tokens stay while the grace rule may still need them, with a margin.
            config.refresh_grace + std::time::Duration::from_secs(60),
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
        // On shutdown, revocation-feed streams end at once (their clients reconnect elsewhere)
        // instead of holding the graceful shutdown open.
        let feed = self.state.feed.clone();
        let shutdown = async move {
            shutdown.await;
            feed.resync();
        };
        server::serve(self.listener, app, shutdown).await;
        // Drained: stop the LISTEN connection and the tasks around it before the pools close
        // (and, with the embedded database, before PostgreSQL stops), so nothing reconnects
        // to a database that is going away.
        drop(background);
        self.listener_pool.close().await;
        self.state.db.close().await;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, not when the
/// future is first polled: a signal that arrives while start-up is still under way (the
/// embedded database starting, migrations) is kept, and the server then stops as soon as it
/// has started, instead of the process dying on the spot. Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let mut signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (int, term) = &mut signals;
            tokio::select! { _ = next_signal(int) => {}, _ = next_signal(term) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}

/// The next delivery of `signal`; never, when its handler could not be installed.
#[cfg(unix)]
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
