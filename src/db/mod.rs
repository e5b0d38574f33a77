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

/// Creates the database named in `url` if it does not exist; returns whether this call created
/// it. Safe to race with another instance doing the same.
pub async fn create_database_if_missing(url: &str) -> Result<bool, sqlx::Error> {
    if sqlx::Postgres::database_exists(url).await? {
        return Ok(false);
    }
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => Ok(true),
        // Another instance created it first: 42P04 duplicate_database, or, when both
        // CREATE DATABASE statements ran at once, 23505 on pg_database's name index.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Whether a connection error may go away by itself (the server is starting, restarting or not
/// reachable yet), as opposed to one that will not (authentication failed, unknown role, bad
/// URL, TLS refused): only the first kind is worth retrying at start.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // 57P03 cannot_connect_now (starting up), 08xxx connection exceptions, 53300 too many
        // connections.
        sqlx::Error::Database(e) => matches!(e.code().as_deref(),
            Some(c) if c == "57P03" || c == "53300" || c.starts_with("08")),
        _ => false,
    }
}

/// `url` with its password and query removed, for messages (`postgres://user@host:port/db`);
/// a Unix-socket directory (`host=/path`) is kept, as it says where the server is.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let socket_dir = u
                .query_pairs()
                .find(|(k, v)| k == "host" && v.starts_with('/'))
                .map(|(_, v)| v.into_owned());
            u.set_query(None);
            if let Some(dir) = socket_dir {
                u.query_pairs_mut().append_pair("host", &dir);
            }
            u.to_string()
        }
        Err(_) => "DATABASE_URL".into(),
    }
}

/// Tables in the `public` schema that authd's migrations did not make, when authd has never
/// migrated this database (no `_sqlx_migrations`): a sign that DATABASE_URL names someone
/// else's database. Returns up to 5 of their names.
pub async fn foreign_tables(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public'
           AND NOT EXISTS (SELECT 1 FROM information_schema.tables
                           WHERE table_schema = 'public' AND table_name = '_sqlx_migrations')
         ORDER BY table_name LIMIT 5",
    )
    .fetch_all(pool)
    .await
}

/// How many migrations have been applied (0 on a fresh database).
pub async fn applied_migrations(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
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

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn redacted_drops_the_password_and_query_but_keeps_a_socket_directory() {
        assert_eq!(
            redacted("postgres://app:hunter2@db.test:5432/authd?sslmode=require"),
            "postgres://app@db.test:5432/authd"
        );
        assert_eq!(
            redacted("postgres://postgres@localhost/authd?host=%2Fsrv%2Frun&password=x"),
            "postgres://postgres@localhost/authd?host=%2Fsrv%2Frun"
        );
    }
}
