//! Signing keys and server secrets, shared by every instance through the database.
//!
//! A signing key's life: *pending* (published in the JWKS, not signing yet: `activates_at` is in
//! the future), *signing* (the key activated last), *retired* (a newer key activated; still
//! published until every token it signed has expired), and, from any of these, *revoked* (gone
//! from the JWKS and from verification at once). A key from AUTHD_SIGNING_KEY_FILE is stored
//! without its private part (`private_der` NULL): only the processes given the file can sign.

use std::time::Duration;

use rand::RngExt;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;

use crate::tokens::keypair::{KeyMaterial, PublicKey, SigningAlg};

/// Every key that signed, signs or will sign, in activation order, with the moment the next one
/// took (or takes) over (`retires_at`, NULL for the last). A key revoked before it activated
/// never signed, so it does not retire the key before it.
macro_rules! timeline {
    () => {
        "(SELECT kid, alg, created_at, activates_at, revoked_at, public_key, private_der,
                 lead(activates_at) OVER (ORDER BY activates_at, created_at, kid) AS retires_at
          FROM signing_keys
          WHERE revoked_at IS NULL OR revoked_at >= activates_at)"
    };
}

/// A published key as stored.
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: SigningAlg,
    /// The public key, encoded as [`PublicKey::public_key`] says.
    pub public_key: Vec<u8>,
    /// PKCS#8 document; `None` for a key whose private part lives only in AUTHD_SIGNING_KEY_FILE.
    pub private_der: Option<Vec<u8>>,
    /// False while the key is pending (published ahead of signing).
    pub activated: bool,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("activated", &self.activated)
            .finish_non_exhaustive()
    }
}

impl StoredKey {
    /// The key pair, when its private part is in the database.
    pub fn material(&self) -> Option<KeyMaterial> {
        self.private_der.as_ref().map(|der| KeyMaterial {
            kid: self.kid.clone(),
            alg: self.alg,
            private_der: der.clone(),
            public_key: self.public_key.clone(),
        })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            alg: self.alg,
            public_key: self.public_key.clone(),
        }
    }
}

/// The keys an instance needs right now.
pub struct ActiveKeys {
    /// The key that signs now (activated last, not revoked); `None` only if there is none
    /// (no key activated yet, or the last one was revoked by hand without a replacement).
    pub signing: Option<StoredKey>,
    /// Every unrevoked key whose tokens may be valid now or soon: pending, signing, and retired
    /// less than `token_lifetime` ago; latest activation first.
    pub published: Vec<StoredKey>,
    /// When the next change happens by itself: a pending key activating, or a retired key's
    /// last token expiring.
    pub next_change: Option<Duration>,
}

#[derive(sqlx::FromRow)]
struct ActiveRow {
    kid: String,
    alg: String,
    public_key: Vec<u8>,
    private_der: Option<Vec<u8>>,
    activated: bool,
    signing: bool,
    /// Seconds until this key activates, or (retired) until it stops being published.
    change_in_secs: Option<f64>,
}

/// The signing key and every published key, as of the database's clock.
pub async fn load_active(
    db: impl PgExecutor<'_>,
    token_lifetime: Duration,
) -> Result<ActiveKeys, sqlx::Error> {
    let rows: Vec<ActiveRow> = sqlx::query_as(concat!(
        "SELECT kid, alg, public_key, private_der,
                activates_at <= now() AS activated,
                activates_at <= now() AND (retires_at IS NULL OR retires_at > now()) AS signing,
                extract(epoch FROM CASE
                    WHEN activates_at > now() THEN activates_at - now()
                    ELSE retires_at + make_interval(secs => $1) - now()
                END)::float8 AS change_in_secs
         FROM ",
        timeline!(),
        " timeline
         WHERE revoked_at IS NULL
           AND (retires_at IS NULL OR retires_at > now() - make_interval(secs => $1))
         ORDER BY activates_at DESC, created_at DESC, kid DESC"
    ))
    .bind(token_lifetime.as_secs_f64())
    .fetch_all(db)
    .await?;
    let mut signing = None;
    let mut next_change: Option<Duration> = None;
    let mut published = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(secs) = row.change_in_secs.filter(|s| s.is_finite()) {
            let d = Duration::from_secs_f64(secs.max(0.0));
            next_change = Some(next_change.map_or(d, |n| n.min(d)));
        }
        let key = StoredKey {
            alg: stored_alg(&row.alg)?,
            kid: row.kid,
            public_key: row.public_key,
            private_der: row.private_der,
            activated: row.activated,
        };
        if row.signing {
            signing = Some(key.clone());
        }
        published.push(key);
    }
    Ok(ActiveKeys {
        signing,
        published,
        next_change,
    })
}

/// A stored `alg` column. Errors: a value this version does not know (written by a newer one).
fn stored_alg(alg: &str) -> Result<SigningAlg, sqlx::Error> {
    SigningAlg::from_jose(alg).ok_or_else(|| {
        sqlx::Error::Decode(format!("signing_keys.alg: unknown algorithm {alg:?}").into())
    })
}

/// The kid and algorithm of the key signing now.
pub async fn signing_key_alg(
    db: impl PgExecutor<'_>,
) -> Result<Option<(String, SigningAlg)>, sqlx::Error> {
    let row: Option<(String, String)> = sqlx::query_as(concat!(
        "SELECT kid, alg FROM ",
        timeline!(),
        " timeline
         WHERE revoked_at IS NULL AND activates_at <= now()
           AND (retires_at IS NULL OR retires_at > now())"
    ))
    .fetch_optional(db)
    .await?;
    row.map(|(kid, alg)| Ok((kid, stored_alg(&alg)?)))
        .transpose()
}

async fn signing_kid(db: impl PgExecutor<'_>) -> Result<Option<String>, sqlx::Error> {
    Ok(signing_key_alg(db).await?.map(|(kid, _)| kid))
}

/// What [`install_file_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKeyInstall {
    /// The key was already the signing key (a private part stored by an older authd is erased).
    AlreadySigning,
    /// The key is now the signing key; the previous one retired.
    Installed,
    /// The key was revoked: it must never sign again. Nothing changed.
    Revoked,
}

/// Makes the AUTHD_SIGNING_KEY_FILE key the signing key at once, storing only its public part
/// (the previous key retires and stays published until its tokens have expired). Serialized
/// across instances.
pub async fn install_file_key(db: &PgPool, key: &PublicKey) -> Result<FileKeyInstall, sqlx::Error> {
    let mut tx = db.begin().await?;
    lock_keys(&mut *tx).await?;
    let revoked: Option<bool> =
        sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM signing_keys WHERE kid = $1")
            .bind(&key.kid)
            .fetch_optional(&mut *tx)
            .await?;
    if revoked == Some(true) {
        return Ok(FileKeyInstall::Revoked);
    }
    let outcome = if signing_kid(&mut *tx).await?.as_deref() == Some(key.kid.as_str()) {
        sqlx::query(
            "UPDATE signing_keys SET private_der = NULL WHERE kid = $1 AND private_der IS NOT NULL",
        )
        .bind(&key.kid)
        .execute(&mut *tx)
        .await?;
        FileKeyInstall::AlreadySigning
    } else {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, public_key, activates_at)
             VALUES ($1, $2, NULL, $3, now())
             ON CONFLICT (kid) DO UPDATE SET private_der = NULL, activates_at = now()",
        )
        .bind(&key.kid)
        .bind(key.alg.as_str())
        .bind(&key.public_key)
        .execute(&mut *tx)
        .await?;
        FileKeyInstall::Installed
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Generates and installs a key of `alg` unless one signs already (first start). Safe when
/// several instances start at once: only one generates.
pub async fn ensure_signing_key(db: &PgPool, alg: SigningAlg) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    lock_keys(&mut *tx).await?;
    if signing_kid(&mut *tx).await?.is_none() {
        let key = KeyMaterial::generate(alg).map_err(sqlx::Error::Protocol)?;
        insert(&mut *tx, &key, Duration::ZERO).await?;
        tracing::info!(kid = %key.kid, %alg, "generated a new signing key");
    }
    tx.commit().await
}

/// Adds `key`, published at once and signing `delay` from now (database time); returns when it
/// activates.
pub async fn rotate(
    db: &PgPool,
    key: &KeyMaterial,
    delay: Duration,
) -> Result<OffsetDateTime, sqlx::Error> {
    let mut tx = db.begin().await?;
    lock_keys(&mut *tx).await?;
    let activates_at = insert(&mut *tx, key, delay).await?;
    tx.commit().await?;
    Ok(activates_at)
}

async fn insert(
    db: impl PgExecutor<'_>,
    key: &KeyMaterial,
    delay: Duration,
) -> Result<OffsetDateTime, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO signing_keys (kid, alg, private_der, public_key, activates_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         RETURNING activates_at",
    )
    .bind(&key.kid)
    .bind(key.alg.as_str())
    .bind(&key.private_der)
    .bind(&key.public_key)
    .bind(delay.as_secs_f64())
    .fetch_one(db)
    .await
}

/// What [`revoke`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRevocation {
    NotFound,
    AlreadyRevoked,
    /// Revoked; `replaced_by` is the new signing key when the revoked key was signing.
    Revoked {
        replaced_by: Option<String>,
    },
}

/// Revokes a key: it leaves the JWKS and verification on every instance (NOTIFY `authd_keys`).
/// If it was the signing key, `replacement` is installed first and signs at once; otherwise
/// `replacement` is unused. One transaction, serialized across instances.
pub async fn revoke(
    db: &PgPool,
    kid: &str,
    replacement: &KeyMaterial,
) -> Result<KeyRevocation, sqlx::Error> {
    let mut tx = db.begin().await?;
    lock_keys(&mut *tx).await?;
    let revoked: Option<bool> =
        sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .fetch_optional(&mut *tx)
            .await?;
    match revoked {
        None => return Ok(KeyRevocation::NotFound),
        Some(true) => return Ok(KeyRevocation::AlreadyRevoked),
        Some(false) => {}
    }
    let replaced_by = if signing_kid(&mut *tx).await?.as_deref() == Some(kid) {
        insert(&mut *tx, replacement, Duration::ZERO).await?;
        Some(replacement.kid.clone())
    } else {
        None
    };
    sqlx::query("UPDATE signing_keys SET revoked_at = now() WHERE kid = $1")
        .bind(kid)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(KeyRevocation::Revoked { replaced_by })
}

/// Where a key is in its life (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Pending,
    Signing,
    Retired,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Signing => "signing",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }
}

/// One key as `authd keys list` shows it.
#[derive(Debug)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub created_at: OffsetDateTime,
    pub activates_at: OffsetDateTime,
    pub state: KeyState,
    /// The private part is not in the database (AUTHD_SIGNING_KEY_FILE).
    pub file_only: bool,
}

#[derive(sqlx::FromRow)]
struct InfoRow {
    kid: String,
    alg: String,
    created_at: OffsetDateTime,
    activates_at: OffsetDateTime,
    file_only: bool,
    revoked: bool,
    pending: bool,
    signing: bool,
}

/// Every key ever stored, latest activation first.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<KeyInfo>, sqlx::Error> {
    let rows: Vec<InfoRow> = sqlx::query_as(concat!(
        "SELECT k.kid, k.alg, k.created_at, k.activates_at,
                k.private_der IS NULL AS file_only,
                k.revoked_at IS NOT NULL AS revoked,
                k.activates_at > now() AS pending,
                coalesce(t.retires_at IS NULL OR t.retires_at > now(), false) AS signing
         FROM signing_keys k LEFT JOIN ",
        timeline!(),
        " t USING (kid)
         ORDER BY k.activates_at DESC, k.created_at DESC, k.kid DESC"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| KeyInfo {
            state: match (r.revoked, r.pending, r.signing) {
                (true, _, _) => KeyState::Revoked,
                (_, true, _) => KeyState::Pending,
                (_, _, true) => KeyState::Signing,
                _ => KeyState::Retired,
            },
            kid: r.kid,
            alg: r.alg,
            created_at: r.created_at,
            activates_at: r.activates_at,
            file_only: r.file_only,
        })
        .collect())
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
