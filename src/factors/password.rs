//! The password factor: every place that verifies a password goes through [`verify_login`] or
//! [`verify_current`], so each gets the same protections (OWASP ASVS 5.0 V6.3):
//!
//! - rate limits per (client IP, account), per client IP and per account across all IPs
//!   (`app::ratelimit`), checked before any hashing, for unknown accounts too;
//! - at most [`MAX_PER_ACCOUNT`](crate::factors::argon2::MAX_PER_ACCOUNT) checks of one account
//!   waiting for argon2 at once, so one account cannot fill the queue every login shares;
//! - one argon2id verification whether or not the account exists (no enumeration by timing);
//! - every failure recorded in the audit trail.
//!
//! A successful check returns a [`VerifiedPassword`]: the user and the exact hash that matched.
//! The session layer creates a session (or changes the password) only if that hash is still the
//! user's current one, atomically with its write, so a login racing a password change or a
//! disable cannot produce a session that outlives the change.

use serde_json::json;
use uuid::Uuid;

use crate::{
    db::{
        self,
        events::{self, Event},
        users::{User, UserCredentials},
    },
    domain::{ClientInfo, Email, EventKind, Password},
    error::ApiError,
    state::AppState,
};

/// Proof that a password matched: the user as read, and the hash it matched.
pub struct VerifiedPassword {
    pub user: User,
    /// The PHC string that matched; writes are conditional on it still being current.
    pub password_hash: String,
}

impl std::fmt::Debug for VerifiedPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedPassword")
            .field("user_id", &self.user.id)
            .finish_non_exhaustive()
    }
}

/// Checks an email and password (login). Errors: `rate_limited`, `invalid_credentials` (unknown
/// email and wrong password alike), `user_disabled` and, with AUTHD_REQUIRE_EMAIL_VERIFIED,
/// `email_not_verified` (both only after a correct password),
/// `unavailable` (argon2 queue full or database down).
pub async fn verify_login(
    state: &AppState,
    email: &Email,
    password: &Password,
    client: &ClientInfo,
) -> Result<VerifiedPassword, ApiError> {
    state.limit(|rl| rl.password(client.ip, email.as_str()))?;
    let found = db::users::credentials_by_email(&state.db, email).await?;
    let user_id = found.as_ref().map(|c| c.user.id);
    let verified = check(state, email.as_str(), found, password).await?;
    let failure = |reason: &str| {
        Event::new(EventKind::LoginFailed, user_id, client).detail(json!({ "reason": reason }))
    };
    match verified {
        Some(v) if v.user.disabled => {
            events::record(&state.db, &failure("user_disabled")).await?;
            Err(ApiError::UserDisabled)
        }
        // Only after a correct password, so it reveals nothing to someone without it.
        Some(v) if state.config.require_email_verified && !v.user.email_verified => {
            events::record(&state.db, &failure("email_not_verified")).await?;
            Err(ApiError::EmailNotVerified)
        }
        Some(v) => Ok(v),
        None => {
            tracing::info!("login failed");
            events::record(&state.db, &failure("invalid_credentials")).await?;
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// Checks the signed-in user's current password (password change, and every later action that
/// asks for it again). A wrong password is recorded as `failure` in the audit trail. Errors:
/// `rate_limited`, `invalid_credentials`, `user_not_found`, `user_disabled`, `unavailable`.
pub async fn verify_current(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    password: &Password,
    client: &ClientInfo,
    failure: EventKind,
) -> Result<VerifiedPassword, ApiError> {
    let found = db::users::credentials_by_id(&state.db, user_id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    let account = found.user.email.clone();
    state.limit(|rl| rl.password(client.ip, &account))?;
    match check(state, &account, Some(found), password).await? {
        Some(v) if v.user.disabled => Err(ApiError::UserDisabled),
        Some(v) => Ok(v),
        None => {
            let e = Event::new(failure, Some(user_id), client)
                .session(session_id)
                .actor(user_id)
                .detail(json!({ "reason": "invalid_credentials" }));
            events::record(&state.db, &e).await?;
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// One argon2 verification on behalf of `account` (against a dummy hash when unknown).
async fn check(
    state: &AppState,
    account: &str,
    found: Option<UserCredentials>,
    password: &Password,
) -> Result<Option<VerifiedPassword>, ApiError> {
    let ok = state
        .hasher
        .verify_for(
            account,
            password.expose(),
            found.as_ref().and_then(|c| c.password_hash.as_deref()),
        )
        .await?;
    // An account without a password (created by an emailed code) matches no password.
    Ok(found.filter(|_| ok).and_then(|c| {
        Some(VerifiedPassword {
            user: c.user,
            password_hash: c.password_hash?,
        })
    }))
}
