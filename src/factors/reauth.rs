//! Re-authentication: before a sensitive action on the signed-in account (deleting it; later,
//! changing its address), the caller proves again that they hold it. A valid access token is
//! not enough: it may come from a device left unlocked or a stolen token (OWASP ASVS 5.0 V7.5).
//!
//! The rule, in one place: **the current password, or a recent email-code sign-in.**
//! - `current_password` given: it is checked through [`password::verify_current`], with its rate
//!   limits, its single argon2 verification and a failure recorded in the audit trail as the
//!   caller's `failure` kind. A wrong one is 401 `invalid_credentials`, also when a recent
//!   email-code sign-in would have sufficed (what is given is checked).
//! - no password: accepted if the caller's own session was signed in by an emailed code or
//!   link (`sessions.auth_method = 'email_code'`) less than [`RECENT_EMAIL_SIGN_IN`] ago
//!   (`sessions.created_at`, database time; refreshes do not renew it). Mailbox control was
//!   proven minutes ago, which is as strong as the password, and it is the only way for
//!   accounts created by a code, which have no password. Otherwise 400 `validation_failed` on
//!   `current_password`: the client asks for the password, or signs in again with a code.

use std::time::Duration;

use uuid::Uuid;

use super::password;
use crate::{
    db,
    domain::{AuthMethod, ClientInfo, EventKind, Password},
    error::ApiError,
    state::AppState,
};

/// How recent an email-code sign-in must be to stand in for the password.
pub const RECENT_EMAIL_SIGN_IN: Duration = Duration::from_secs(5 * 60);

/// Proof that the signed-in user re-authenticated, and how.
#[derive(Debug, Clone, Copy)]
pub struct Reauthenticated {
    pub user_id: Uuid,
    /// The password, or the recent email-code sign-in of the caller's session.
    pub method: AuthMethod,
}

/// Checks the re-authentication of the user of `session_id` (see the module doc). Errors:
/// `invalid_credentials` (wrong password, audited as `failure`), `validation_failed` (no
/// password and no recent email-code sign-in), `rate_limited`, `user_not_found`,
/// `user_disabled`, `unavailable`.
pub async fn verify(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    current_password: Option<&Password>,
    client: &ClientInfo,
    failure: EventKind,
) -> Result<Reauthenticated, ApiError> {
    let method = match current_password {
        Some(p) => {
            password::verify_current(state, user_id, session_id, p, client, failure).await?;
            AuthMethod::Password
        }
        None => {
            let recent = db::sessions::signed_in_recently(
                &state.db,
                session_id,
                user_id,
                AuthMethod::EmailCode,
                RECENT_EMAIL_SIGN_IN,
            )
            .await?;
            if !recent {
                return Err(ApiError::validation(
                    "current_password",
                    "is required, unless this session signed in with an emailed code less \
                     than 5 minutes ago",
                ));
            }
            AuthMethod::EmailCode
        }
    };
    Ok(Reauthenticated { user_id, method })
}
