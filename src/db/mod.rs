//! All SQL lives here. Functions take `impl PgExecutor` so callers choose pool or transaction.

pub mod email_grants;
pub mod events;
pub mod keys;
pub mod revocations;
pub mod sessions;
pub mod users;

use std::{str::FromStr, time::Duration};

use sqlx::{
    Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions, PgSslMode},
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a request waits for a pooled connection before it gets 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Creates the database named in `url` if it does not exist; returns whether this call created
/// it. Safe to race with another instance doing the same. It connects to the maintenance
/// database (`postgres`, or `template1` when the target is `postgres`) with the same
/// [`connect_options`] as every other connection, TLS settings included.
pub async fn create_database_if_missing(url: &str) -> Result<bool, sqlx::Error> {
    let options = connect_options(url)?;
    let name = options
        .get_database()
        .unwrap_or(options.get_username())
        .to_owned();
    let maintenance = if name == "postgres" {
        "template1"
    } else {
        "postgres"
    };
    let mut conn = PgConnection::connect_with(&options.database(maintenance)).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if exists {
        return Ok(false);
    }
    let create = format!(r#"CREATE DATABASE "{}""#, name.replace('"', r#""""#));
    let created = match sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut conn)
        .await
    {
        Ok(_) => Ok(true),
        // Another instance created it first: 42P04 duplicate_database, or, when both
        // CREATE DATABASE statements ran at once, 23505 on pg_database's name index.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {
            Ok(false)
        }
        Err(e) => Err(e),
    };
    let _ = conn.close().await;
    created
}

/// Whether a connection error may go away by itself (the server is starting, restarting or not
/// reachable yet), as opposed to one that will not (authentication failed, unknown role, bad
/// URL, TLS refused or the server's certificate not trusted): only the first kind is worth
/// retrying at start.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) if tls_failure(err).is_some() => false,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // 57P03 cannot_connect_now (starting up), 08xxx connection exceptions, 53300 too many
        // connections.
        sqlx::Error::Database(e) => matches!(e.code().as_deref(),
            Some(c) if c == "57P03" || c == "53300" || c.starts_with("08")),
        _ => false,
    }
}

/// The TLS failure behind a connection error, if it is one: sqlx reports a failed handshake
/// (an untrusted or misnamed server certificate, a fatal alert) as an I/O error wrapping
/// rustls's error.
pub fn tls_failure(err: &sqlx::Error) -> Option<&rustls::Error> {
    match err {
        sqlx::Error::Io(e) => e.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// A connection error as one line for an operator: a TLS failure says what was wrong with the
/// certificate and which DATABASE_URL setting governs it; anything else is sqlx's message.
pub fn describe(err: &sqlx::Error) -> String {
    use rustls::CertificateError as C;
    let Some(tls) = tls_failure(err) else {
        return err.to_string();
    };
    let hint = match tls {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "; the server's certificate is not issued by a CA authd trusts (sslrootcert names \
             the CA file to trust)"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            "; the host in DATABASE_URL must be one of the names in the server's certificate \
             (sslmode=verify-ca checks the CA but not the name)"
        }
        _ => "",
    };
    format!("TLS with the database server failed: {tls}{hint}")
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

/// The settings of every connection authd opens (the pool, the notification listener, the
/// health probe, creating the database), from DATABASE_URL: `application_name=authd` and
/// sqlx's reading of the URL (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, and the libpq
/// `PG*` environment variables for what the URL leaves out), with two corrections:
///
/// - `sslmode=require` with a root certificate (`sslrootcert` or `PGSSLROOTCERT`) verifies the
///   server's certificate against it, as libpq does (`verify-ca`); sqlx alone would not check
///   the certificate at all.
/// - A certificate or key file named in the URL (or a `PGSSL*` variable) that cannot be read is
///   a configuration error naming the file, reported before connecting (sqlx would report a bare I/O error, which
///   looks transient).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("authd");
    let files = tls_files(url);
    for (key, path) in &files {
        if let Err(e) = std::fs::metadata(path) {
            return Err(sqlx::Error::Configuration(
                format!("{key} file {path}: {e}").into(),
            ));
        }
    }
    let root_cert = files.iter().any(|(key, _)| *key == "sslrootcert");
    Ok(
        if matches!(options.get_ssl_mode(), PgSslMode::Require) && root_cert {
            options.ssl_mode(PgSslMode::VerifyCa)
        } else {
            options
        },
    )
}

/// The certificate and key files sqlx will read, as (libpq parameter, path): those named in
/// `url`'s query (`sslrootcert`, `sslcert`, `sslkey`, under sqlx's spellings too), else in
/// `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY` (unless those hold the PEM text itself).
fn tls_files(url: &str) -> Vec<(&'static str, String)> {
    let in_url: Vec<(&'static str, String)> = url::Url::parse(url)
        .map(|url| {
            url.query_pairs()
                .filter_map(|(key, value)| {
                    let key = match &*key {
                        "sslrootcert" | "ssl-root-cert" | "ssl-ca" => "sslrootcert",
                        "sslcert" | "ssl-cert" => "sslcert",
                        "sslkey" | "ssl-key" => "sslkey",
                        _ => return None,
                    };
                    Some((key, value.into_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let from_env: Vec<(&'static str, String)> = [
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
    ]
    .into_iter()
    .filter(|(key, _)| !in_url.iter().any(|(k, _)| k == key))
    .filter_map(|(key, var)| {
        let value = std::env::var(var).ok()?;
        (!value.contains("-----BEGIN")).then_some((key, value))
    })
    .collect();
    let mut files = in_url;
    files.extend(from_env);
    files
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
