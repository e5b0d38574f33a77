//! All SQL lives here. Functions take `impl PgExecutor` so callers choose pool or transaction.

pub mod email_grants;
pub mod events;
pub mod keys;
pub mod revocations;
pub mod sessions;
pub mod users;

use std::{str::FromStr, time::Duration};

use sqlx::{
    PgPool,
    migrate::MigrateDatabase,
    postgres::{PgConnectOptions, PgPoolOptions},
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a request waits for a pooled connection before it gets 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Creates the database named in `url` if it does not exist. Safe to race with another
/// instance doing the same.
pub async fn create_database_if_missing(url: &str) -> Result<(), sqlx::Error> {
    if sqlx::Postgres::database_exists(url).await? {
        return Ok(());
    }
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        // 42P04 duplicate_database: another instance created it first.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs pending migrations. sqlx holds an advisory lock meanwhile, so concurrent runs from
/// several instances are serialized.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?.application_name("authd"))
}

/// Idle connections older than this are pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);

/// A pool with bounded waits: a request that cannot get a connection in time fails fast.
///
/// sqlx pings every connection it hands out by default, an extra round trip per request (on
/// the refresh path it turned one round trip into two). Only connections that sat idle long
/// enough to have gone stale are pinged; a connection that died under load fails its query,
/// which is a 503 and is then discarded.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(connect_options(url)?)
        .await
}
