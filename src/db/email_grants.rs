//! Mailed grants (`email_grants`): one row per message that carries a link token (and, for
//! sign-in, a code). Single use: consuming sets `used_at` in one conditional UPDATE, so two
//! concurrent uses cannot both succeed.

use std::time::Duration;

use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use crate::tokens::{email::MAX_CODE_ATTEMPTS, refresh::TokenHash};

/// What a grant allows; a token only works for the purpose it was sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    PasswordReset,
    SignIn,
    EmailChange,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
            Self::SignIn => "sign_in",
            Self::EmailChange => "email_change",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::VerifyEmail,
            Self::PasswordReset,
            Self::SignIn,
            Self::EmailChange,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// A grant about to be stored.
pub struct NewGrant<'a> {
    pub id: Uuid,
    pub purpose: Purpose,
    /// `None` only for a sign-in code that may create the account.
    pub user_id: Option<Uuid>,
    /// The normalized address the message goes to.
    pub email: &'a str,
    pub token_hash: &'a TokenHash,
    pub code_hmac: Option<&'a [u8; 32]>,
    pub ttl: Duration,
}

pub async fn insert(db: impl PgExecutor<'_>, g: &NewGrant<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO email_grants (id, purpose, user_id, email, token_hash, code_hmac, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
    )
    .bind(g.id)
    .bind(g.purpose.as_str())
    .bind(g.user_id)
    .bind(g.email)
    .bind(&g.token_hash[..])
    .bind(g.code_hmac.map(|c| &c[..]))
    .bind(g.ttl.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}

/// A live grant as read back.
#[derive(Debug, Clone, FromRow)]
pub struct Grant {
    pub id: Uuid,
    /// As stored; see [`Grant::purpose`].
    purpose: String,
    pub user_id: Option<Uuid>,
    pub email: String,
    pub code_hmac: Option<Vec<u8>>,
    pub attempts: i32,
}

impl Grant {
    /// `None` never happens: a CHECK constraint keeps the column to the four known values.
    pub fn purpose(&self) -> Option<Purpose> {
        Purpose::parse(&self.purpose)
    }
}

fn purposes(of: &[Purpose]) -> Vec<&'static str> {
    of.iter().map(|p| p.as_str()).collect()
}

/// The live grant (unused, unexpired, not locked out) a link token names, if its purpose is one
/// of `of`. Reads only; see [`consume`].
pub async fn by_token(
    db: impl PgExecutor<'_>,
    token_hash: &TokenHash,
    of: &[Purpose],
) -> Result<Option<Grant>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, purpose, user_id, email, code_hmac, attempts FROM email_grants
         WHERE token_hash = $1 AND purpose = ANY($2) AND used_at IS NULL
           AND expires_at > now() AND attempts < $3",
    )
    .bind(&token_hash[..])
    .bind(purposes(of))
    .bind(MAX_CODE_ATTEMPTS)
    .fetch_optional(db)
    .await
}

/// Consumes the live grant a link token names (if its purpose is one of `of`) and returns it.
/// `None`: unknown, used, expired, locked out, or for another purpose.
pub async fn consume_token(
    db: impl PgExecutor<'_>,
    token_hash: &TokenHash,
    of: &[Purpose],
) -> Result<Option<Grant>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE email_grants SET used_at = now()
         WHERE token_hash = $1 AND purpose = ANY($2) AND used_at IS NULL
           AND expires_at > now() AND attempts < $3
         RETURNING id, purpose, user_id, email, code_hmac, attempts",
    )
    .bind(&token_hash[..])
    .bind(purposes(of))
    .bind(MAX_CODE_ATTEMPTS)
    .fetch_optional(db)
    .await
}

/// Consumes a grant by id if it is still live. `None`: someone used it first, or it died.
pub async fn consume(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Grant>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE email_grants SET used_at = now()
         WHERE id = $1 AND used_at IS NULL AND expires_at > now() AND attempts < $2
         RETURNING id, purpose, user_id, email, code_hmac, attempts",
    )
    .bind(id)
    .bind(MAX_CODE_ATTEMPTS)
    .fetch_optional(db)
    .await
}

/// The live sign-in grant of an address, locked for the code check (there is at most one: a new
/// code supersedes the last, see [`supersede`]).
pub async fn live_sign_in(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<Grant>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, purpose, user_id, email, code_hmac, attempts FROM email_grants
         WHERE email = $1 AND purpose = 'sign_in' AND used_at IS NULL
           AND expires_at > now() AND attempts < $2
         ORDER BY created_at DESC LIMIT 1
         FOR UPDATE",
    )
    .bind(email)
    .bind(MAX_CODE_ATTEMPTS)
    .fetch_optional(db)
    .await
}

/// Counts a wrong code; returns the attempts so far (the grant is dead at
/// [`MAX_CODE_ATTEMPTS`]).
pub async fn wrong_code(db: impl PgExecutor<'_>, id: Uuid) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE email_grants SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
    )
    .bind(id)
    .fetch_one(db)
    .await
}

/// Ends the live grants of `purpose` sent to `email` (a new sign-in code replaces the last).
pub async fn supersede(
    db: impl PgExecutor<'_>,
    email: &str,
    purpose: Purpose,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE email_grants SET used_at = now()
         WHERE email = $1 AND purpose = $2 AND used_at IS NULL",
    )
    .bind(email)
    .bind(purpose.as_str())
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Ends every live grant of a user whose purpose is one of `of` (a reset ends the other reset
/// links; an address change ends whatever was mailed to the old address).
pub async fn end_for_user(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    of: &[Purpose],
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE email_grants SET used_at = now()
         WHERE user_id = $1 AND purpose = ANY($2) AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(purposes(of))
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Deletes up to `batch` grants that expired or were used more than `older_than` ago (cleanup).
pub async fn delete_ended(
    db: impl PgExecutor<'_>,
    older_than: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM email_grants WHERE id IN (
            SELECT id FROM email_grants
            WHERE expires_at < now() - make_interval(secs => $1)
               OR used_at < now() - make_interval(secs => $1)
            LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(older_than.as_secs_f64())
    .bind(batch)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}
