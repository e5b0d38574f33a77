//! Background tasks that keep every instance in step with the database:
//! - the NOTIFY listener (revocations, key changes, user changes, our heartbeat), which reloads
//!   recent revocations after every (re)connect before the deny-list is trusted again;
//! - the heartbeat, which proves the listener still receives (a silently dead connection
//!   makes the list untrusted within seconds, so checks fall back to the database);
//! - the key reloader (on NOTIFY, when a retired key's tokens have all expired, and hourly);
//! - purging expired deny-list entries.

use std::{sync::Arc, time::Duration};

use sqlx::{
    PgPool,
    postgres::{PgListener, PgPoolOptions},
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{db, live::denylist::Revocations, state::AppState};

pub const CH_REVOKED: &str = "authd_revoked";
pub const CH_KEYS: &str = "authd_keys";
pub const CH_USERS: &str = "authd_users";
pub const CH_HEARTBEAT: &str = "authd_heartbeat";

const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// With no heartbeat back for this long, the listener connection is presumed dead and rebuilt.
const LISTENER_STALE: Duration = Duration::from_secs(3);
const KEY_RELOAD_MAX: Duration = Duration::from_secs(3600);

/// A small pool of its own: one connection held by the listener, one for heartbeats, so neither
/// waits behind request traffic on the main pool.
pub async fn listener_pool(config: &crate::config::Config) -> Result<PgPool, sqlx::Error> {
    let options = db::connect_options(&config.database_url)?.application_name("authd-listener");
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options))
}

/// Starts every background task. They run until the runtime stops.
pub fn spawn(state: AppState, lpool: PgPool) {
    let instance = Uuid::new_v4().to_string();
    let restart = Arc::new(Notify::new());
    tokio::spawn(listen_forever(
        state.clone(),
        lpool.clone(),
        instance.clone(),
        restart.clone(),
    ));
    tokio::spawn(heartbeat(
        lpool,
        instance,
        state.revocations.clone(),
        restart,
    ));
    tokio::spawn(reload_keys_forever(state.clone()));
    let revocations = state.revocations.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            revocations.purge_expired();
        }
    });
}

async fn listen_forever(state: AppState, lpool: PgPool, instance: String, restart: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = tokio::time::Instant::now();
        let outcome = listen_once(&state, &lpool, &instance, &restart).await;
        state.revocations.set_connected(false);
        match outcome {
            Ok(()) => tracing::warn!("notification listener lost its connection; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "notification listener failed; retrying"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One listener connection's life. LISTEN first, then reload, then trust: nothing revoked in
/// between can be missed.
async fn listen_once(
    state: &AppState,
    lpool: &PgPool,
    instance: &str,
    restart: &Notify,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(lpool).await?;
    listener.ignore_pool_close_event(true);
    listener.eager_reconnect(false);
    listener
        .listen_all([CH_REVOKED, CH_KEYS, CH_USERS, CH_HEARTBEAT])
        .await?;
    let reloaded = state.revocations.reload(&state.db).await?;
    state.users.clear();
    state.keys_changed.notify_one();
    state.revocations.set_connected(true);
    tracing::info!(revocations = reloaded, "listening for revocations");
    loop {
        let notification = tokio::select! {
            n = listener.try_recv() => n?,
            () = restart.notified() => return Err(sqlx::Error::Protocol("heartbeat lost".into())),
        };
        let Some(n) = notification else { return Ok(()) };
        match n.channel() {
            CH_REVOKED => {
                if let Ok(sid) = n.payload().parse::<Uuid>() {
                    state.revocations.insert([sid]);
                }
            }
            CH_USERS => {
                if let Ok(id) = n.payload().parse::<Uuid>() {
                    state.users.invalidate(id);
                }
            }
            CH_KEYS => state.keys_changed.notify_one(),
            CH_HEARTBEAT if n.payload() == instance => state.revocations.heartbeat(),
            _ => {}
        }
    }
}

/// Sends our heartbeat; asks the listener to rebuild its connection when heartbeats stop
/// coming back although it believes it is connected.
async fn heartbeat(
    lpool: PgPool,
    instance: String,
    revocations: Arc<Revocations>,
    restart: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stale_since: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CH_HEARTBEAT)
            .bind(&instance)
            .execute(&lpool);
        if let Err(e) = tokio::time::timeout(Duration::from_secs(1), sent)
            .await
            .unwrap_or(Ok(Default::default()))
        {
            tracing::debug!(error = %e, "heartbeat not sent");
        }
        if !revocations.is_connected() || revocations.is_live() {
            stale_since = None;
        } else if stale_since
            .get_or_insert_with(tokio::time::Instant::now)
            .elapsed()
            > LISTENER_STALE
        {
            // Wakes the listener only if it is waiting right now (no stored permit that would
            // kill its next, healthy connection).
            restart.notify_waiters();
            stale_since = None;
        }
    }
}

/// Reloads signing keys on NOTIFY, when the next retired key stops being valid, and hourly.
async fn reload_keys_forever(state: AppState) {
    loop {
        let wait = match crate::tokens::keys::reload_keys(&state).await {
            Ok(next_change) => next_change.map_or(KEY_RELOAD_MAX, |d| d.min(KEY_RELOAD_MAX)),
            Err(e) => {
                tracing::warn!(error = %e, "reloading signing keys failed");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait + Duration::from_millis(50)) => {}
            () = state.keys_changed.notified() => {}
        }
    }
}
