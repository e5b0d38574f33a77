//! The emailed sign-in factor: a code typed from the message, or the link in it (API.md
//! "Email"). Both name one grant; checking does not consume it (the session layer does, in the
//! transaction that creates the session, so exactly one of two concurrent uses wins).
//!
//! - checks are rate limited per client IP, before any lookup;
//! - a code is compared in constant time against its stored HMAC;
//! - every wrong code counts against its grant, which dies at
//!   [`MAX_CODE_ATTEMPTS`](crate::tokens::email::MAX_CODE_ATTEMPTS) (its link with it);
//! - wrong codes and dead links are recorded in the audit trail.

use serde_json::json;
use uuid::Uuid;

use crate::{
    db::{
        self,
        email_grants::Purpose,
        events::{self, Event},
    },
    domain::{ClientInfo, Email, EventKind},
    error::ApiError,
    state::AppState,
    tokens::email::{Code, EmailToken},
};

/// Proof that a code or link matched a live sign-in grant (not yet consumed).
#[derive(Debug)]
pub struct VerifiedGrant {
    pub id: Uuid,
}

fn limit(state: &AppState, client: &ClientInfo) -> Result<(), ApiError> {
    match client.ip {
        Some(ip) => state.limit(|rl| rl.email_check(ip)),
        None => Ok(()),
    }
}

/// Checks a sign-in code for `email`. Errors: `rate_limited`, `email_code_invalid` (no live
/// code for the address, a wrong code, or one past its tries), database errors.
pub async fn verify_code(
    state: &AppState,
    email: &Email,
    code: &Code,
    client: &ClientInfo,
) -> Result<VerifiedGrant, ApiError> {
    limit(state, client)?;
    let mut tx = state.db.begin().await?;
    let Some(grant) = db::email_grants::live_sign_in(&mut *tx, email.as_str()).await? else {
        // Recorded too, so a guess costs about the same whether or not a code is live.
        let e = Event::new(EventKind::EmailCodeFailed, None, client)
            .detail(json!({ "reason": "no_live_code" }));
        events::record(&mut *tx, &e).await?;
        tx.commit().await?;
        return Err(ApiError::EmailCodeInvalid);
    };
    let matches = grant
        .code_hmac
        .as_deref()
        .is_some_and(|tag| state.code_key.verify(grant.id, code, tag));
    if matches {
        tx.commit().await?;
        return Ok(VerifiedGrant { id: grant.id });
    }
    let attempts = db::email_grants::wrong_code(&mut *tx, grant.id).await?;
    let e = Event::new(EventKind::EmailCodeFailed, grant.user_id, client)
        .detail(json!({ "attempts": attempts }));
    events::record(&mut *tx, &e).await?;
    tx.commit().await?;
    tracing::info!(user_id = ?grant.user_id, attempts, "wrong sign-in code");
    Err(ApiError::EmailCodeInvalid)
}

/// Checks the link token of a sign-in message. Errors: `rate_limited`, `email_code_invalid`
/// (unknown, used, expired, locked out, or a token mailed for another purpose).
pub async fn verify_link(
    state: &AppState,
    token: &EmailToken,
    client: &ClientInfo,
) -> Result<VerifiedGrant, ApiError> {
    limit(state, client)?;
    match db::email_grants::by_token(&state.db, &token.hash(), &[Purpose::SignIn]).await? {
        Some(grant) => Ok(VerifiedGrant { id: grant.id }),
        None => {
            reject_token(state, Purpose::SignIn, client).await?;
            Err(ApiError::EmailCodeInvalid)
        }
    }
}

/// Checks that a link token names a live grant for `purpose` (before costly work such as
/// hashing a new password). Errors: `rate_limited`, `email_token_invalid`.
pub async fn check_link(
    state: &AppState,
    token: &EmailToken,
    purpose: Purpose,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    limit(state, client)?;
    match db::email_grants::by_token(&state.db, &token.hash(), &[purpose]).await? {
        Some(_) => Ok(()),
        None => {
            reject_token(state, purpose, client).await?;
            Err(ApiError::EmailTokenInvalid)
        }
    }
}

/// Records a link token that named no live grant for `purpose`.
pub async fn reject_token(
    state: &AppState,
    purpose: Purpose,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    let e = Event::new(EventKind::EmailTokenRejected, None, client)
        .detail(json!({ "purpose": purpose.as_str() }));
    events::record(&state.db, &e).await?;
    Ok(())
}
