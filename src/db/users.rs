//! Users and their credentials.

use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Email;

/// Why a user could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("a user with this email exists")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A write that may collide with another account's address: the unique index's violation
/// becomes [`InsertError::EmailTaken`].
fn email_taken<T>(res: Result<T, sqlx::Error>) -> Result<T, InsertError> {
    match res {
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_email_key") => {
            Err(InsertError::EmailTaken)
        }
        other => Ok(other?),
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// Whether the user proved they receive mail at `email`.
    pub email_verified: bool,
    pub roles: Vec<String>,
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl User {
    pub fn is_admin(&self) -> bool {
        crate::domain::has_admin_role(&self.roles)
    }
}

/// A user with the password hash, for login and password change only.
#[derive(FromRow)]
pub struct UserCredentials {
    #[sqlx(flatten)]
    pub user: User,
    /// `None`: the account was created by an emailed code and has no password yet.
    pub password_hash: Option<String>,
}

/// Inserts a user. `password_hash: None` creates an account without a password (sign-up by an
/// emailed code, which also proves the address: `email_verified`). Errors: `EmailTaken`.
pub async fn insert(
    db: impl PgExecutor<'_>,
    email: &Email,
    password_hash: Option<&str>,
    roles: &[String],
    email_verified: bool,
) -> Result<User, InsertError> {
    let res = sqlx::query_as::<_, User>(
        "INSERT INTO users (id, email, password_hash, roles, email_verified)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, email, email_verified, roles, disabled, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(email.as_str())
    .bind(password_hash)
    .bind(roles)
    .bind(email_verified)
    .fetch_one(db)
    .await;
    email_taken(res)
}

pub async fn credentials_by_email(
    db: impl PgExecutor<'_>,
    email: &Email,
) -> Result<Option<UserCredentials>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, email_verified, roles, disabled, created_at, password_hash FROM users WHERE email = $1",
    )
    .bind(email.as_str())
    .fetch_optional(db)
    .await
}

pub async fn credentials_by_id(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<UserCredentials>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, email_verified, roles, disabled, created_at, password_hash FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, email_verified, roles, disabled, created_at FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn by_email(db: impl PgExecutor<'_>, email: &Email) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, email_verified, roles, disabled, created_at FROM users WHERE email = $1",
    )
    .bind(email.as_str())
    .fetch_optional(db)
    .await
}

/// The order of [`list`]: by `(created_at, id)`, so pages never overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListOrder {
    /// Newest first (the admin listing).
    NewestFirst,
    /// Oldest first (the command line's `user list`).
    OldestFirst,
}

/// One page of users: at most `limit`, after skipping `offset`, in `order`.
pub async fn list(
    db: impl PgExecutor<'_>,
    order: ListOrder,
    limit: i64,
    offset: i64,
) -> Result<Vec<User>, sqlx::Error> {
    let sql = match order {
        ListOrder::NewestFirst => {
            "SELECT id, email, email_verified, roles, disabled, created_at FROM users
             ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"
        }
        ListOrder::OldestFirst => {
            "SELECT id, email, email_verified, roles, disabled, created_at FROM users
             ORDER BY created_at, id LIMIT $1 OFFSET $2"
        }
    };
    sqlx::query_as(sql)
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await
}

/// Replaces the password hash only if `current_hash` is still the user's hash and the user is
/// enabled (a password change that raced another change or a disable does nothing). Returns
/// whether it was replaced.
pub async fn replace_password(
    db: impl PgExecutor<'_>,
    id: Uuid,
    current_hash: &str,
    new_hash: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE users SET password_hash = $3, updated_at = now()
         WHERE id = $1 AND password_hash = $2 AND NOT disabled",
    )
    .bind(id)
    .bind(current_hash)
    .bind(new_hash)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// What authorization decisions read about a user, now (not as a token remembers it).
#[derive(Debug, FromRow)]
pub struct Access {
    pub roles: Vec<String>,
    pub disabled: bool,
}

pub async fn access_of(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Access>, sqlx::Error> {
    sqlx::query_as("SELECT roles, disabled FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Locks the user's row (`FOR UPDATE`) for the rest of the transaction: no session can be
/// created for the user meanwhile (`sessions::create` locks it `FOR SHARE`). Returns whether
/// the user exists.
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

/// Deletes the user; sessions (tombstoned by their trigger), refresh tokens and email grants go
/// with it by cascade, and the `authd_users` NOTIFY drops it from every instance's user cache.
/// Returns whether a row was deleted.
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Applies an admin change; `None` fields stay as they are. Returns the user as it was and as it
/// is now, if it exists (the row is locked, so "before" is exact).
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    disabled: Option<bool>,
    roles: Option<&[String]>,
) -> Result<Option<(User, Vec<String>)>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        old_roles: Vec<String>,
    }
    let row: Option<Row> = sqlx::query_as(
        "WITH old AS (SELECT id, roles FROM users WHERE id = $1 FOR UPDATE)
         UPDATE users u SET disabled = COALESCE($2, u.disabled), roles = COALESCE($3, u.roles),
                            updated_at = now()
         FROM old WHERE u.id = old.id
         RETURNING u.id, u.email, u.email_verified, u.roles, u.disabled, u.created_at, old.roles AS old_roles",
    )
    .bind(id)
    .bind(disabled)
    .bind(roles)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.user, r.old_roles)))
}

/// Marks `email` verified for user `id`, only if it is still the user's address (a link
/// mailed before an address change proves nothing about the new one). `None`: no such user
/// with that address.
pub async fn mark_verified(
    db: impl PgExecutor<'_>,
    id: Uuid,
    email: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE users SET email_verified = true, updated_at = now()
         WHERE id = $1 AND email = $2
         RETURNING id, email, email_verified, roles, disabled, created_at",
    )
    .bind(id)
    .bind(email)
    .fetch_optional(db)
    .await
}

/// Creates an account without a password for a confirmed address (the sign-up by an emailed
/// code). `None`: the address has an account already (registered meanwhile); never an error,
/// so the caller's transaction goes on.
pub async fn insert_verified(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO users (id, email, password_hash, email_verified) VALUES ($1, $2, NULL, true)
         ON CONFLICT (email) DO NOTHING
         RETURNING id, email, email_verified, roles, disabled, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(email)
    .fetch_optional(db)
    .await
}

pub async fn id_by_email(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(db)
        .await
}

/// Sets a new password (a reset) and marks the address verified, only if `email` is still the
/// user's address. Returns whether it was set.
pub async fn reset_password(
    db: impl PgExecutor<'_>,
    id: Uuid,
    email: &str,
    new_hash: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE users SET password_hash = $3, email_verified = true, updated_at = now()
         WHERE id = $1 AND email = $2",
    )
    .bind(id)
    .bind(email)
    .bind(new_hash)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Switches the user to a confirmed new address. Errors: `EmailTaken` (another account has it
/// now). `Ok(None)`: no such user.
pub async fn change_email(
    db: impl PgExecutor<'_>,
    id: Uuid,
    new_email: &str,
) -> Result<Option<User>, InsertError> {
    let res = sqlx::query_as(
        "UPDATE users SET email = $2, email_verified = true, updated_at = now() WHERE id = $1
         RETURNING id, email, email_verified, roles, disabled, created_at",
    )
    .bind(id)
    .bind(new_email)
    .fetch_optional(db)
    .await;
    email_taken(res)
}

/// A sign-in by an emailed code proved that the caller receives mail at `email`, still user
/// `id`'s address: the address becomes verified. If it was not verified before, a password set
/// on the account is dropped (account pre-hijacking: whoever registered the address with a
/// password never proved they own it; the owner sets a password through a reset). Returns the
/// user and whether a password was dropped; `None`: no such user with that address.
pub async fn prove_address(
    db: impl PgExecutor<'_>,
    id: Uuid,
    email: &str,
) -> Result<Option<(User, bool)>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        dropped_password: bool,
    }
    let row: Option<Row> = sqlx::query_as(
        "WITH old AS (
            SELECT id, email_verified, password_hash IS NOT NULL AS had_password
            FROM users WHERE id = $1 AND email = $2 FOR UPDATE
         )
         UPDATE users u SET email_verified = true,
                password_hash = CASE WHEN old.email_verified THEN u.password_hash END,
                updated_at = now()
         FROM old WHERE u.id = old.id
         RETURNING u.id, u.email, u.email_verified, u.roles, u.disabled, u.created_at,
                   (NOT old.email_verified AND old.had_password) AS dropped_password",
    )
    .bind(id)
    .bind(email)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.user, r.dropped_password)))
}
