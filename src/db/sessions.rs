//! Sessions and their refresh-token chains.

use std::time::Duration;

use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{db::users::User, tokens::refresh::TokenHash};

/// Why a session ended early (stored in `sessions.revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    UserRevoked,
    AdminRevoked,
    RefreshTokenReused,
    PasswordChanged,
    UserDisabled,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::UserRevoked => "user_revoked",
            Self::AdminRevoked => "admin_revoked",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::PasswordChanged => "password_changed",
            Self::UserDisabled => "user_disabled",
        }
    }
}

/// A session (one login on one device) as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Session {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub absolute_expires_at: OffsetDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether this is the session of the token making the request.
    #[sqlx(skip)]
    pub current: bool,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[derive(FromRow)]
pub struct NewSession {
    pub id: Uuid,
    pub max_age_secs: i64,
    /// Unix time (s) after which no access token of this session may be valid: the session's
    /// absolute expiry (tokens are capped to it).
    pub absolute_expires_unix: i64,
}

/// Starts a session with its first refresh token.
pub async fn create(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    token_hash: &TokenHash,
    idle_ttl: Duration,
    max_age: Duration,
    user_agent: Option<&str>,
    ip: Option<&str>,
    access_ttl: Duration,
) -> Result<NewSession, sqlx::Error> {
    sqlx::query_as(
        "WITH s AS (
            INSERT INTO sessions (id, user_id, expires_at, absolute_expires_at, user_agent, ip,
                                  access_expires_at)
            VALUES ($1, $2,
                    now() + make_interval(secs => LEAST($4, $5)),
                    now() + make_interval(secs => $5),
                    $6, $7,
                    now() + make_interval(secs => LEAST($8, $5)))
            RETURNING id, expires_at, absolute_expires_at
         ), t AS (
            INSERT INTO refresh_tokens (token_hash, session_id) SELECT $3, id FROM s
         )
         SELECT id, floor(extract(epoch FROM expires_at - now()))::int8 AS max_age_secs,
                floor(extract(epoch FROM absolute_expires_at))::int8 AS absolute_expires_unix
         FROM s",
    )
    .bind(Uuid::new_v4())
    .bind(user_id)
    .bind(&token_hash[..])
    .bind(secs(idle_ttl))
    .bind(secs(max_age))
    .bind(user_agent)
    .bind(ip)
    .bind(secs(access_ttl))
    .fetch_one(db)
    .await
}

#[derive(FromRow)]
pub struct Rotated {
    pub session_id: Uuid,
    pub max_age_secs: i64,
    /// Unix time (s) of the session's absolute expiry (access tokens are capped to it).
    pub absolute_expires_unix: i64,
    #[sqlx(flatten)]
    pub user: User,
}

/// Rotation rule 1 in one statement (one round trip): consume the presented token if it is
/// unused and its session is live, push the idle expiry forward (never past the absolute one),
/// insert the successor. Concurrent callers serialize on the token row; after the first commits,
/// `used_at IS NULL` is false for the others, so exactly one consumes it.
pub async fn rotate(
    db: impl PgExecutor<'_>,
    token_hash: &TokenHash,
    successor_hash: &TokenHash,
    idle_ttl: Duration,
    access_ttl: Duration,
) -> Result<Option<Rotated>, sqlx::Error> {
    sqlx::query_as(
        "WITH consumed AS (
            UPDATE refresh_tokens t SET used_at = now()
            FROM sessions s, users u
            WHERE t.token_hash = $1 AND t.used_at IS NULL
              AND s.id = t.session_id AND s.revoked_at IS NULL
              AND s.expires_at > now() AND s.absolute_expires_at > now()
              AND u.id = s.user_id AND NOT u.disabled
            RETURNING t.session_id
         ), touched AS (
            UPDATE sessions s
            SET last_used_at = now(),
                expires_at = LEAST(now() + make_interval(secs => $3), s.absolute_expires_at),
                access_expires_at = GREATEST(s.access_expires_at,
                    LEAST(now() + make_interval(secs => $4), s.absolute_expires_at))
            FROM consumed c
            WHERE s.id = c.session_id AND s.revoked_at IS NULL
            RETURNING s.id, s.user_id, s.expires_at, s.absolute_expires_at
         ), successor AS (
            INSERT INTO refresh_tokens (token_hash, session_id, parent_hash)
            SELECT $2, id, $1 FROM touched
         )
         SELECT t.id AS session_id,
                floor(extract(epoch FROM t.expires_at - now()))::int8 AS max_age_secs,
                floor(extract(epoch FROM t.absolute_expires_at))::int8 AS absolute_expires_unix,
                u.id, u.email, u.roles, u.disabled, u.created_at
         FROM touched t JOIN users u ON u.id = t.user_id",
    )
    .bind(&token_hash[..])
    .bind(&successor_hash[..])
    .bind(secs(idle_ttl))
    .bind(secs(access_ttl))
    .fetch_optional(db)
    .await
}

/// Everything needed to decide why a token could not be consumed.
#[derive(FromRow)]
pub struct TokenState {
    pub session_id: Uuid,
    pub used: bool,
    pub within_grace: bool,
    pub session_revoked: bool,
    pub session_expired: bool,
    pub successor_exists: bool,
    pub successor_used: bool,
    pub max_age_secs: i64,
    pub absolute_expires_unix: i64,
    #[sqlx(flatten)]
    pub user: User,
}

pub async fn inspect_token(
    db: impl PgExecutor<'_>,
    token_hash: &TokenHash,
    successor_hash: &TokenHash,
    grace: Duration,
) -> Result<Option<TokenState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.session_id,
                t.used_at IS NOT NULL AS used,
                COALESCE(now() - t.used_at <= make_interval(secs => $3), false) AS within_grace,
                s.revoked_at IS NOT NULL AS session_revoked,
                (s.expires_at <= now() OR s.absolute_expires_at <= now()) AS session_expired,
                n.token_hash IS NOT NULL AS successor_exists,
                n.used_at IS NOT NULL AS successor_used,
                -- Measured from the rotation instant (used_at = that statement's now()), so a
                -- replay gets the byte-identical cookie the rotation sent.
                GREATEST(0, floor(extract(epoch FROM s.expires_at - COALESCE(t.used_at, now()))))::int8
                    AS max_age_secs,
                floor(extract(epoch FROM s.absolute_expires_at))::int8 AS absolute_expires_unix,
                u.id, u.email, u.roles, u.disabled, u.created_at
         FROM refresh_tokens t
         JOIN sessions s ON s.id = t.session_id
         JOIN users u ON u.id = s.user_id
         LEFT JOIN refresh_tokens n ON n.token_hash = $2 AND n.session_id = t.session_id
         WHERE t.token_hash = $1",
    )
    .bind(&token_hash[..])
    .bind(&successor_hash[..])
    .bind(secs(grace))
    .fetch_optional(db)
    .await
}

/// The session a refresh token (used or not) belongs to, with its owner.
pub async fn by_token(
    db: impl PgExecutor<'_>,
    token_hash: &TokenHash,
) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE t.token_hash = $1",
    )
    .bind(&token_hash[..])
    .fetch_optional(db)
    .await
}

/// Revokes one session (no-op if already revoked). Returns its owner if it exists.
pub async fn revoke(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    reason: RevokeReason,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, now()),
                             revoked_reason = COALESCE(revoked_reason, $2)
         WHERE id = $1 RETURNING user_id",
    )
    .bind(session_id)
    .bind(reason.as_str())
    .fetch_optional(db)
    .await
}

/// Revokes one session only if it belongs to `user_id`. Returns whether it exists and is theirs.
pub async fn revoke_owned(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    user_id: Uuid,
    reason: RevokeReason,
) -> Result<bool, sqlx::Error> {
    let found: Option<Uuid> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, now()),
                             revoked_reason = COALESCE(revoked_reason, $3)
         WHERE id = $1 AND user_id = $2 RETURNING id",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(reason.as_str())
    .fetch_optional(db)
    .await?;
    Ok(found.is_some())
}

/// Revokes every unrevoked session of a user, except `keep` if given. Returns the ids revoked.
pub async fn revoke_all(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)
         RETURNING id",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason.as_str())
    .fetch_all(db)
    .await
}

/// The user's live sessions (not revoked, not expired), newest first.
pub async fn list_live(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<Vec<Session>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, created_at, last_used_at, expires_at, absolute_expires_at, user_agent, ip
         FROM sessions
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() AND absolute_expires_at > now()
         ORDER BY created_at DESC, id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// How many sessions are live (not revoked, not expired): the `authd_active_sessions` gauge.
pub async fn count_live(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM sessions
         WHERE revoked_at IS NULL AND expires_at > now() AND absolute_expires_at > now()",
    )
    .fetch_one(db)
    .await
}
