//! Sessions and their refresh-token chains. Every function takes `impl PgExecutor`, so the
//! session layer decides what runs in one transaction.

use std::time::Duration;

use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{db::users::User, domain::RevokeReason};

/// SHA-256 of a refresh token: the only form in which refresh tokens are stored.
pub type TokenHash = [u8; 32];

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

/// What a new session is created from.
pub struct NewSessionSpec<'a> {
    pub user_id: Uuid,
    /// The first refresh token's hash.
    pub token_hash: &'a TokenHash,
    pub idle_ttl: Duration,
    pub max_age: Duration,
    pub access_ttl: Duration,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    /// The password hash the login verified, if it was a password login: the session is only
    /// created if it is still the user's current hash.
    pub password_hash: Option<&'a str>,
    /// How the user proved who they are (`sessions.auth_method`).
    pub auth_method: crate::domain::AuthMethod,
}

#[derive(FromRow)]
pub struct NewSession {
    pub id: Uuid,
    pub max_age_secs: i64,
    /// Unix time (s) of the session's absolute expiry; access tokens are capped to it.
    pub absolute_expires_unix: i64,
}

/// Starts a session with its first refresh token, atomically with the checks that the user is
/// still enabled and (for a password login) that the password verified is still the current
/// one. The user row is locked `FOR SHARE`, so a concurrent disable or password change either
/// waits for this insert (and then revokes the new session with the others) or commits first
/// (and then this insert finds no row). `None`: the credential or the user changed meanwhile.
pub async fn create(
    db: impl PgExecutor<'_>,
    spec: &NewSessionSpec<'_>,
) -> Result<Option<NewSession>, sqlx::Error> {
    sqlx::query_as(
        "WITH u AS (
            SELECT id FROM users
            WHERE id = $2 AND NOT disabled AND ($9::text IS NULL OR password_hash = $9)
            FOR SHARE
         ), s AS (
            INSERT INTO sessions (id, user_id, expires_at, absolute_expires_at, user_agent, ip,
                                  access_expires_at, auth_method)
            SELECT $1, u.id,
                   now() + make_interval(secs => LEAST($4, $5)),
                   now() + make_interval(secs => $5),
                   $6, $7,
                   now() + make_interval(secs => LEAST($8, $5)),
                   $10
            FROM u
            RETURNING id, expires_at, absolute_expires_at
         ), t AS (
            INSERT INTO refresh_tokens (token_hash, session_id) SELECT $3, id FROM s
         )
         SELECT id, floor(extract(epoch FROM expires_at - now()))::int8 AS max_age_secs,
                floor(extract(epoch FROM absolute_expires_at))::int8 AS absolute_expires_unix
         FROM s",
    )
    .bind(Uuid::new_v4())
    .bind(spec.user_id)
    .bind(&spec.token_hash[..])
    .bind(secs(spec.idle_ttl))
    .bind(secs(spec.max_age))
    .bind(spec.user_agent)
    .bind(spec.ip)
    .bind(secs(spec.access_ttl))
    .bind(spec.password_hash)
    .bind(spec.auth_method.as_str())
    .fetch_optional(db)
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

/// The rotation statement, shared with the benchmark (bench/run.sh runs it under pgbench).
pub const ROTATE_SQL: &str = include_str!("sql/rotate.sql");

/// Rotation rule 1 in one statement (one round trip): consume the presented token if it is
/// unused and its session is live, push the idle expiry forward (never past the absolute one),
/// record how long the access token about to be issued lives, insert the successor. Concurrent
/// callers serialize on the token row; after the first commits, `used_at IS NULL` is false for
/// the others, so exactly one consumes it.
pub async fn rotate(
    db: impl PgExecutor<'_>,
    token_hash: &TokenHash,
    successor_hash: &TokenHash,
    idle_ttl: Duration,
    access_ttl: Duration,
) -> Result<Option<Rotated>, sqlx::Error> {
    sqlx::query_as(ROTATE_SQL)
        .bind(&token_hash[..])
        .bind(&successor_hash[..])
        .bind(secs(idle_ttl))
        .bind(secs(access_ttl))
        .fetch_optional(db)
        .await
}

/// Records that an access token living `access_ttl` (capped to the session's end) is being
/// issued for a session outside a rotation (the grace rule).
pub async fn extend_access(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    access_ttl: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sessions SET access_expires_at = GREATEST(access_expires_at,
             LEAST(now() + make_interval(secs => $2), absolute_expires_at))
         WHERE id = $1",
    )
    .bind(session_id)
    .bind(secs(access_ttl))
    .execute(db)
    .await?;
    Ok(())
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
                u.id, u.email, u.email_verified, u.roles, u.disabled, u.created_at
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

/// Every `CHECKPOINT_EVERY`th token of a chain is kept for the session's life (see
/// [`prune_used_tokens`]).
pub const CHECKPOINT_EVERY: i32 = 64;

/// Deletes up to `batch` used refresh tokens that are neither recent (used more than `keep`
/// ago: past the grace window, with a margin) nor a checkpoint. Returns how many. A pruned
/// token is still recognised as superseded: its successors are derived until a kept one.
pub async fn prune_used_tokens(
    db: impl PgExecutor<'_>,
    keep: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM refresh_tokens WHERE token_hash IN (
            SELECT token_hash FROM refresh_tokens
            WHERE used_at < now() - make_interval(secs => $1)
              AND generation % $2 <> 0
            LIMIT $3
            FOR UPDATE SKIP LOCKED
         )",
    )
    .bind(secs(keep))
    .bind(CHECKPOINT_EVERY)
    .bind(batch)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The session of the first of `hashes` (successors of a presented token, in chain order) that
/// is stored, with its state: how a pruned, superseded token is recognised.
pub async fn session_of_descendant(
    db: impl PgExecutor<'_>,
    hashes: &[Vec<u8>],
) -> Result<Option<(Uuid, bool, bool)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, s.revoked_at IS NOT NULL,
                (s.expires_at <= now() OR s.absolute_expires_at <= now())
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE t.token_hash = ANY($1)
         LIMIT 1",
    )
    .bind(hashes)
    .fetch_optional(db)
    .await
}

/// A presented refresh token that names a session, as several cookies of our name are sorted.
#[derive(Debug, FromRow)]
pub struct PresentedToken {
    pub token_hash: Vec<u8>,
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// The session is not revoked, not expired, and its user is enabled.
    pub session_live: bool,
    /// The token is the session's current one: unused, or used within the grace window while
    /// its successor is unused (a concurrent refresh). A stale token is not current.
    pub current: bool,
    pub last_used_at: OffsetDateTime,
}

/// Which of the presented tokens are known, with their sessions' state. `hashes[i]` is the
/// hash of a presented token and `successor_hashes[i]` that of its successor (index lookups
/// only).
pub async fn presented_tokens(
    db: impl PgExecutor<'_>,
    hashes: &[Vec<u8>],
    successor_hashes: &[Vec<u8>],
    grace: Duration,
) -> Result<Vec<PresentedToken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.token_hash, t.session_id, s.user_id,
                (s.revoked_at IS NULL AND s.expires_at > now() AND s.absolute_expires_at > now()
                 AND NOT u.disabled) AS session_live,
                (t.used_at IS NULL OR (now() - t.used_at <= make_interval(secs => $3)
                  AND n.used_at IS NULL)) AS current,
                s.last_used_at
         FROM unnest($1::bytea[], $2::bytea[]) AS p(hash, successor)
         JOIN refresh_tokens t ON t.token_hash = p.hash
         JOIN sessions s ON s.id = t.session_id
         JOIN users u ON u.id = s.user_id
         LEFT JOIN refresh_tokens n ON n.token_hash = p.successor AND n.session_id = t.session_id",
    )
    .bind(hashes)
    .bind(successor_hashes)
    .bind(secs(grace))
    .fetch_all(db)
    .await
}

/// A session a revoke statement ended, and until when (unix s) its access tokens could live.
#[derive(Debug, Clone, Copy, FromRow)]
pub struct RevokedSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tokens_until: i64,
}

/// Revokes one session, optionally only if `owner` owns it. Returns `None` when there is no such
/// session (or it is not the owner's); otherwise its owner, and the revocation this call made
/// (`None` when the session was already revoked: revoking again is a no-op).
pub async fn revoke_one(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    owner: Option<Uuid>,
    reason: RevokeReason,
) -> Result<Option<(Uuid, Option<RevokedSession>)>, sqlx::Error> {
    let row: Option<(Uuid, Option<Uuid>, i64)> = sqlx::query_as(
        "WITH target AS (
            SELECT id, user_id FROM sessions
            WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)
         ), changed AS (
            UPDATE sessions s SET revoked_at = now(), revoked_reason = $3
            FROM target
            WHERE s.id = target.id AND s.revoked_at IS NULL
            RETURNING s.id, s.access_expires_at
         )
         SELECT target.user_id, changed.id,
                COALESCE(ceil(extract(epoch FROM changed.access_expires_at))::int8, 0)
         FROM target LEFT JOIN changed ON changed.id = target.id",
    )
    .bind(session_id)
    .bind(owner)
    .bind(reason.as_str())
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(user_id, changed, until)| {
        (
            user_id,
            changed.map(|id| RevokedSession {
                id,
                user_id,
                tokens_until: until,
            }),
        )
    }))
}

/// Revokes every unrevoked session of a user, except `keep` if given.
pub async fn revoke_all(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<Vec<RevokedSession>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)
         RETURNING id, user_id, ceil(extract(epoch FROM access_expires_at))::int8 AS tokens_until",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason.as_str())
    .fetch_all(db)
    .await
}

/// Revokes the given sessions that are not revoked yet.
pub async fn revoke_ids(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
    reason: RevokeReason,
) -> Result<Vec<RevokedSession>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
         WHERE id = ANY($1) AND revoked_at IS NULL
         RETURNING id, user_id, ceil(extract(epoch FROM access_expires_at))::int8 AS tokens_until",
    )
    .bind(ids)
    .bind(reason.as_str())
    .fetch_all(db)
    .await
}

/// Whether `session_id` is a live session of `user_id` signed in by `method` less than
/// `within` ago (database time): the "recent sign-in" of `factors::reauth`.
pub async fn signed_in_recently(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    user_id: Uuid,
    method: crate::domain::AuthMethod,
    within: Duration,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (
            SELECT 1 FROM sessions
            WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now()
              AND auth_method = $3 AND created_at > now() - make_interval(secs => $4)
         )",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(method.as_str())
    .bind(secs(within))
    .fetch_one(db)
    .await
}

/// Revokes the least recently used live sessions of a user beyond the newest `keep` of them.
pub async fn revoke_beyond(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    keep: i64,
    reason: RevokeReason,
) -> Result<Vec<RevokedSession>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
         WHERE id IN (
            SELECT id FROM sessions
            WHERE user_id = $1 AND revoked_at IS NULL
              AND expires_at > now() AND absolute_expires_at > now()
            ORDER BY last_used_at DESC, created_at DESC, id
            OFFSET $2
         ) AND revoked_at IS NULL
         RETURNING id, user_id, ceil(extract(epoch FROM access_expires_at))::int8 AS tokens_until",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason.as_str())
    .fetch_all(db)
    .await
}

/// Where a page of sessions starts: after this (created_at, id) in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCursor {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

/// A page of the user's live sessions (not revoked, not expired), newest first: at most `limit`
/// sessions after `after`.
pub async fn list_live(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    after: Option<SessionCursor>,
    limit: i64,
) -> Result<Vec<Session>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, created_at, last_used_at, expires_at, absolute_expires_at, user_agent, ip
         FROM sessions
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() AND absolute_expires_at > now()
           AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC
         LIMIT $4",
    )
    .bind(user_id)
    .bind(after.map(|c| c.created_at))
    .bind(after.map(|c| c.id))
    .bind(limit)
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
