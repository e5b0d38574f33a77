//! Background tasks that keep every instance in step with the database. Their part in the
//! revocation invariant (see [`crate::live`]: a revoked or deleted session's tokens are rejected
//! everywhere within 1 s): deliver every revocation to the deny-list, with the time its tokens
//! die, and tell the list how recently it was known to be complete.
//! - the NOTIFY listener (revocations, key changes, user changes, our heartbeat). After every
//!   (re)connect it LISTENs first, then reloads the deny-list, and only then trusts it, so
//!   nothing revoked in between is missed;
//! - the heartbeat, a NOTIFY carrying its send time (every [`HEARTBEAT_EVERY`]). When it comes
//!   back through the listener, every notification committed before that time has been
//!   applied (Postgres delivers in commit order), and the deny-list is trusted for
//!   [`TRUST_FOR`](super::denylist::TRUST_FOR) after the send time. A silently stalled
//!   connection therefore makes checks fall back to the database within that bound, and the
//!   listener is rebuilt after `LISTENER_STALE` (3 s);
//! - the key reloader (on NOTIFY, when a retired key's tokens have all expired, and hourly);
//! - deny-list housekeeping: dropping entries whose tokens are all dead, and reading the expiry
//!   of entries that arrived without one.
//!
//! The listener and the heartbeat use connections of their own (never the request pool), and a
//! connection that stalls is abandoned rather than waited for, so it never blocks its successor.

use std::{sync::Arc, time::Duration};

use sqlx::{
    Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{db, live::denylist::Revocations, state::AppState, tokens::jwt::unix_now};

/// Revocations and deletions: `<session id> <unix seconds of access_expires_at>`.
pub const CH_REVOKED_UNTIL: &str = "authd_revoked_until";
/// The same as a bare `<session id>` (older instances, manual `pg_notify`): kept conservatively
/// until its expiry is read from the database.
pub const CH_REVOKED: &str = "authd_revoked";
pub const CH_KEYS: &str = "authd_keys";
pub const CH_USERS: &str = "authd_users";
/// `<instance id> <send time in ms on the deny-list's clock>`.
pub const CH_HEARTBEAT: &str = "authd_heartbeat";

pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(150);
/// A heartbeat not sent by then is abandoned with its connection.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// With no heartbeat back for this long, the listener connection is presumed dead and rebuilt.
const LISTENER_STALE: Duration = Duration::from_secs(3);
/// Connecting and LISTENing must not take longer (a stalled network would hang them).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEY_RELOAD_MAX: Duration = Duration::from_secs(3600);
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(30);

/// The listener's connection settings (`application_name=authd-listener`), as a lazy pool that
/// opens nothing by itself: [`spawn`] takes its options and gives each connection attempt a
/// pool of its own, so neither waits behind request traffic or a stalled predecessor.
pub async fn listener_pool(config: &crate::config::Config) -> Result<PgPool, sqlx::Error> {
    let options = db::connect_options(&config.database_url)?.application_name("authd-listener");
    Ok(PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options))
}

/// Starts every background task: the LISTEN connection, its heartbeat, key reloads and the
/// deny-list's housekeeping. They run until the returned set is dropped (the server drops it
/// once it has drained, before its database goes away, so none of them retries against a
/// database that is shutting down).
#[must_use = "dropping the set stops the tasks"]
pub fn spawn(state: AppState, lpool: PgPool) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let options = (*lpool.connect_options()).clone();
    let instance = Uuid::new_v4().simple().to_string();
    let restart = Arc::new(Notify::new());
    tasks.spawn(listen_forever(
        state.clone(),
        options.clone(),
        instance.clone(),
        restart.clone(),
    ));
    tasks.spawn(heartbeat(
        options,
        instance,
        state.revocations.clone(),
        restart,
    ));
    tasks.spawn(reload_keys_forever(state.clone()));
    let (revocations, db) = (state.revocations.clone(), state.db.clone());
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
        loop {
            tick.tick().await;
            revocations.purge_expired(unix_now());
            if let Err(e) = revocations.resolve_pending(&db).await {
                tracing::debug!(error = %e, "reading pending revocation times failed");
            }
        }
    });
    tasks
}

async fn listen_forever(
    state: AppState,
    options: PgConnectOptions,
    instance: String,
    restart: Arc<Notify>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = tokio::time::Instant::now();
        let outcome = listen_once(&state, &options, &instance, &restart).await;
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
    options: &PgConnectOptions,
    instance: &str,
    restart: &Notify,
) -> Result<(), sqlx::Error> {
    // A pool of one, for this connection only: if it stalls, dropping the listener leaves its
    // UNLISTEN hanging in there, not in the way of the next attempt.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(CONNECT_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options.clone());
    let mut listener = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        listener.eager_reconnect(false);
        listener
            .listen_all([
                CH_REVOKED_UNTIL,
                CH_REVOKED,
                CH_KEYS,
                CH_USERS,
                CH_HEARTBEAT,
            ])
            .await?;
        Ok::<_, sqlx::Error>(listener)
    })
    .await
    .map_err(|_| sqlx::Error::Protocol("LISTEN timed out".into()))??;
    let reloaded = state.revocations.reload(&state.db).await?;
    state.users.clear();
    state.keys_changed.notify_one();
    state.revocations.set_connected(true);
    state.feed.resync();
    tracing::info!(revocations = reloaded, "listening for revocations");
    loop {
        let notification = tokio::select! {
            n = listener.try_recv() => n?,
            () = restart.notified() => return Err(sqlx::Error::Protocol("heartbeat lost".into())),
        };
        let Some(n) = notification else { return Ok(()) };
        match n.channel() {
            CH_REVOKED_UNTIL | CH_REVOKED => match parse_revocation(n.payload()) {
                Some((sid, Some(access_expires))) => {
                    state.revocations.insert([(sid, access_expires)]);
                    state.feed.revoked(sid);
                }
                Some((sid, None)) => {
                    state.revocations.insert_pending([sid]);
                    state.feed.revoked(sid);
                }
                None => tracing::warn!(channel = n.channel(), "unreadable revocation notice"),
            },
            CH_USERS => {
                if let Ok(id) = n.payload().parse::<Uuid>() {
                    state.users.invalidate(id);
                }
            }
            CH_KEYS => {
                state.keys_changed.notify_one();
                state.feed.keys_changed();
            }
            CH_HEARTBEAT => {
                if let Some(sent_ms) = parse_heartbeat(n.payload(), instance) {
                    state.revocations.mark_complete(sent_ms);
                }
            }
            _ => {}
        }
    }
}

/// `<session id> <unix seconds>` → `(id, Some(seconds))`; a bare `<session id>` (or an
/// unreadable time) → `(id, None)`, for the caller to treat conservatively.
pub fn parse_revocation(payload: &str) -> Option<(Uuid, Option<i64>)> {
    let payload = payload.trim();
    match payload.split_once(' ') {
        Some((sid, until)) => Some((sid.parse().ok()?, until.trim().parse().ok())),
        None => Some((payload.parse().ok()?, None)),
    }
}

/// The send time of one of OUR heartbeats (`<instance> <ms>`); `None` for anyone else's.
fn parse_heartbeat(payload: &str, instance: &str) -> Option<i64> {
    let (from, sent_ms) = payload.split_once(' ')?;
    if from != instance {
        return None;
    }
    sent_ms.parse().ok()
}

/// Sends our heartbeat (with its send time) on a connection of its own; a connection that
/// errors or stalls is dropped and a new one opened on the next beat. Asks the listener to
/// rebuild its connection when heartbeats stop coming back although it believes it is
/// connected.
async fn heartbeat(
    options: PgConnectOptions,
    instance: String,
    revocations: Arc<Revocations>,
    restart: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<PgConnection> = None;
    let mut stale_since: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let payload = format!("{instance} {}", revocations.now_ms());
        let sent = tokio::time::timeout(
            HEARTBEAT_TIMEOUT,
            send_heartbeat(&mut conn, &options, &payload),
        )
        .await
        .unwrap_or_else(|_| Err(sqlx::Error::Protocol("heartbeat timed out".into())));
        if let Err(e) = sent {
            tracing::debug!(error = %e, "heartbeat not sent");
            conn = None; // abandoned, never waited for
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

async fn send_heartbeat(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    payload: &str,
) -> Result<(), sqlx::Error> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(PgConnection::connect_with(options).await?),
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CH_HEARTBEAT)
        .bind(payload)
        .execute(c)
        .await?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_payloads_with_and_without_a_time() {
        let sid = Uuid::new_v4();
        assert_eq!(
            parse_revocation(&format!("{sid} 1767225600")),
            Some((sid, Some(1_767_225_600)))
        );
        assert_eq!(parse_revocation(&sid.to_string()), Some((sid, None)));
        assert_eq!(
            parse_revocation(&format!("{sid} soon")),
            Some((sid, None)),
            "an unreadable time is treated as unknown, not dropped"
        );
        assert_eq!(parse_revocation("nonsense 12"), None);
        assert_eq!(parse_revocation(""), None);
    }

    #[test]
    fn only_our_own_heartbeats_count() {
        assert_eq!(parse_heartbeat("abc 1500", "abc"), Some(1500));
        assert_eq!(parse_heartbeat("xyz 1500", "abc"), None);
        assert_eq!(parse_heartbeat("abc", "abc"), None);
    }
}
