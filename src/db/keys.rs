//! Signing keys and server secrets, shared by every instance through the database.

use std::time::Duration;

use rand::RngExt;
use sqlx::{PgExecutor, PgPool};

use crate::tokens::jwt::KeyMaterial;

/// The keys an instance needs: the one to sign with (newest unretired) and every key whose
/// tokens may still be valid (retired less than `token_lifetime` ago), to verify and publish.
pub struct ActiveKeys {
    pub signing: KeyMaterial,
    pub published: Vec<KeyMaterial>,
    /// When the next retired key stops being published, if any.
    pub next_change: Option<Duration>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    private_der: Vec<u8>,
    public_key: Vec<u8>,
    /// Seconds until a retired key stops being published; NULL for the active key.
    remaining_secs: Option<f64>,
}

pub async fn load_active(
    db: &PgPool,
    token_lifetime: Duration,
) -> Result<Option<ActiveKeys>, sqlx::Error> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT kid, private_der, public_key,
                extract(epoch FROM retired_at + make_interval(secs => $1) - now())::float8 AS remaining_secs
         FROM signing_keys
         WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
         ORDER BY created_at DESC, kid",
    )
    .bind(token_lifetime.as_secs_f64())
    .fetch_all(db)
    .await?;
    let mut signing = None;
    let mut next_change: Option<Duration> = None;
    let mut published = Vec::with_capacity(rows.len());
    for row in rows {
        let key = KeyMaterial {
            kid: row.kid,
            private_der: row.private_der,
            public_key: row.public_key,
        };
        match row.remaining_secs {
            None if signing.is_none() => signing = Some(key.clone()),
            None => {}
            Some(secs) => {
                let d = Duration::from_secs_f64(secs.max(0.0));
                next_change = Some(next_change.map_or(d, |n| n.min(d)));
            }
        }
        published.push(key);
    }
    Ok(signing.map(|signing| ActiveKeys {
        signing,
        published,
        next_change,
    }))
}

/// Makes `key` the signing key: inserts it (if new) and retires every other active key, which
/// stay published until their tokens have expired. Serialized across instances.
pub async fn install(db: &PgPool, key: &KeyMaterial) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    lock_keys(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_der, public_key) VALUES ($1, $2, $3)
         ON CONFLICT (kid) DO UPDATE SET retired_at = NULL",
    )
    .bind(&key.kid)
    .bind(&key.private_der)
    .bind(&key.public_key)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE signing_keys SET retired_at = now() WHERE kid <> $1 AND retired_at IS NULL",
    )
    .bind(&key.kid)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Generates and installs a key unless an active one exists (first start). Safe when several
/// instances start at once: only one generates.
pub async fn ensure_signing_key(db: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    lock_keys(&mut *tx).await?;
    let active: i64 =
        sqlx::query_scalar("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
    if active == 0 {
        let key = KeyMaterial::generate().map_err(sqlx::Error::Protocol)?;
        sqlx::query("INSERT INTO signing_keys (kid, private_der, public_key) VALUES ($1, $2, $3)")
            .bind(&key.kid)
            .bind(&key.private_der)
            .bind(&key.public_key)
            .execute(&mut *tx)
            .await?;
        tracing::info!(kid = %key.kid, "generated a new Ed25519 signing key");
    }
    tx.commit().await
}

async fn lock_keys(db: impl PgExecutor<'_>) -> Result<(), sqlx::Error> {
    // An arbitrary constant key for "signing key changes".
    sqlx::query("SELECT pg_advisory_xact_lock(7307157031)")
        .execute(db)
        .await?;
    Ok(())
}

/// The named 32-byte secret, created on first use. Every instance gets the same bytes.
pub async fn server_secret(db: &PgPool, name: &str) -> Result<Vec<u8>, sqlx::Error> {
    let mut fresh = [0u8; 32];
    rand::rng().fill(&mut fresh);
    sqlx::query(
        "INSERT INTO server_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(&fresh[..])
    .execute(db)
    .await?;
    // A separate statement, so a row another instance inserted concurrently is visible.
    sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(db)
        .await
}
