//! The session layer: every business event on sessions, in one place.
//!
//! - [`login`]: a verified factor becomes a session (refresh cookie + access token);
//! - [`refresh`]: the rotation rules of API.md (rotation, concurrent-refresh grace, reuse);
//! - [`revoke`]: ending sessions, for every reason ([`RevokeReason`]);
//! - [`account`]: changes of a user that end sessions (password change, disable, role changes,
//!   account deletion).
//!
//! Each function writes its change and its audit row in one transaction, then, once committed,
//! puts the revoked sessions on this instance's deny-list (other instances learn through NOTIFY)
//! and counts them in the metrics. Handlers and the CLI only extract input, call one function
//! and map the outcome; nothing else writes sessions or audit rows.
//!
//! [`RevokeReason`]: crate::domain::RevokeReason

pub mod account;
pub mod email;
pub mod login;
pub mod refresh;
pub mod revoke;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db::{sessions::RevokedSession, users::User},
    domain::RevokeReason,
    error::ApiError,
    state::AppState,
    tokens::refresh::RefreshToken,
};

/// Who caused a change, as the audit trail records it (`actor_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The user the change is about, acting on their own account.
    Subject,
    /// A signed-in admin.
    Admin(Uuid),
    /// The operator, through the `authd` command line (recorded without an actor id).
    Operator,
}

impl Actor {
    /// The `actor_id` of the audit row for a change to `subject`'s account.
    fn id(self, subject: Uuid) -> Option<Uuid> {
        match self {
            Self::Subject => Some(subject),
            Self::Admin(id) => Some(id),
            Self::Operator => None,
        }
    }
}

/// What a login or a refresh hands to the client: an access token, and the refresh token for
/// the cookie.
#[derive(Debug)]
pub struct Issued {
    pub session_id: Uuid,
    pub user: User,
    /// The access token (RFC 9068 JWT).
    pub access_token: String,
    /// Seconds until the access token expires (never past the session's absolute expiry).
    pub expires_in: u64,
    /// The refresh token for the cookie.
    pub refresh: RefreshToken,
    /// The cookie's `Max-Age`: seconds until the session's idle expiry.
    pub cookie_max_age: i64,
}

/// The presented tokens as `db::sessions::presented_tokens` takes them: their hashes and their
/// successors' hashes.
fn presented_hashes(state: &AppState, presented: &[RefreshToken]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    presented
        .iter()
        .map(|t| {
            (
                t.hash().to_vec(),
                state.successor_key.successor(t).hash().to_vec(),
            )
        })
        .unzip()
}

/// Signs the access token for a session; it never outlives the session's absolute expiry.
fn issue(
    state: &AppState,
    session_id: Uuid,
    user: User,
    absolute_expires_unix: i64,
    refresh: RefreshToken,
    cookie_max_age: i64,
) -> Result<Issued, ApiError> {
    let (access_token, expires_in) =
        state
            .jwt
            .sign(user.id, session_id, &user.roles, absolute_expires_unix)?;
    Ok(Issued {
        session_id,
        user,
        access_token,
        expires_in,
        refresh,
        cookie_max_age,
    })
}

/// Where a business event runs: in the server (with the in-memory deny-list and metrics to
/// update) or offline in the `authd` command line (other instances learn through NOTIFY).
pub trait Context {
    fn db(&self) -> &PgPool;
    /// Called after a transaction that revoked sessions committed.
    fn revoked(&self, reason: RevokeReason, sessions: &[RevokedSession]);
}

impl Context for AppState {
    fn db(&self) -> &PgPool {
        &self.db
    }

    fn revoked(&self, reason: RevokeReason, sessions: &[RevokedSession]) {
        self.record_revoked(reason, sessions);
    }
}

/// The command line's context: only the database.
pub struct Offline<'a>(pub &'a PgPool);

impl Context for Offline<'_> {
    fn db(&self) -> &PgPool {
        self.0
    }

    fn revoked(&self, _: RevokeReason, _: &[RevokedSession]) {}
}

/// After a transaction that revoked sessions committed: deny their tokens on this instance at
/// once (the others learn through NOTIFY), count them, log them.
fn publish(ctx: &impl Context, reason: RevokeReason, revoked: &[RevokedSession]) {
    if revoked.is_empty() {
        return;
    }
    ctx.revoked(reason, revoked);
    for r in revoked {
        tracing::info!(session_id = %r.id, user_id = %r.user_id, reason = reason.as_str(), "session revoked");
    }
}
