//! Account lifecycle by email (API.md "Email"): mailing verification links, reset links and
//! sign-in codes, and what a confirmed link does (verify the address, switch to a new address,
//! set a new password). Sign-in by code ends in [`login`](super::login) like every sign-in.
//!
//! Every grant is written (with its audit row) and committed before its message is queued, so
//! a link always works by the time it arrives. Messages are queued, never sent inline
//! ([`crate::mail`]); the requests that must not reveal whether an address has an account
//! (forgot password, sign-in code) run entirely in the background ([`in_background`]), so their
//! response is the same in status, body and timing either way (OWASP ASVS 5.0 6.3.8).

use std::{future::Future, time::Duration};

use serde_json::json;
use uuid::Uuid;

use super::{publish, revoke};
use crate::{
    db::{
        self,
        email_grants::{NewGrant, Purpose},
        events::{self, Event},
        users::User,
    },
    domain::{ClientInfo, Email, EventKind, NewPassword, RevokeReason},
    error::ApiError,
    factors,
    mail::{MessageKind, Vars},
    state::AppState,
    tokens::email::{Code, EmailToken},
};

/// Whether a message may go to `address` now: 3 per 15 min per address, 20 per hour per client
/// IP. Errors: `rate_limited`.
pub fn may_send(state: &AppState, client: &ClientInfo, address: &str) -> Result<(), ApiError> {
    state.limit(|rl| rl.email_send(client.ip, address))
}

/// Runs `job` off the request path, at most `EMAIL_WORK` at once; beyond that the job is
/// dropped (logged and counted), and the caller answers exactly as if it ran.
pub fn in_background<F>(state: &AppState, kind: MessageKind, job: F)
where
    F: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let Ok(permit) = state.email_work.clone().try_acquire_owned() else {
        tracing::warn!(
            kind = kind.template(),
            "too many mail requests in progress; dropped"
        );
        state.metrics.email(kind, "dropped");
        return;
    };
    tokio::spawn(async move {
        if let Err(e) = job.await {
            tracing::warn!(kind = kind.template(), error = %e, "mail request failed");
        }
        drop(permit);
    });
}

/// `{AUTHD_APP_URL}/{page}#token=…`: in the fragment, so it never reaches a server log or a
/// Referer header.
fn link(state: &AppState, page: &str, token: &EmailToken) -> String {
    format!("{}/{page}#token={}", state.config.app_url(), token.as_str())
}

fn vars(state: &AppState, to: &str, link: String, ttl: Duration) -> Vars {
    Vars {
        app_name: state.mailer.app_name().to_owned(),
        email: to.to_owned(),
        link,
        expires_minutes: ttl.as_secs().div_ceil(60),
        ..Vars::default()
    }
}

/// Stores a grant with its audit row; returns its link token.
async fn grant(
    state: &AppState,
    purpose: Purpose,
    user_id: Option<Uuid>,
    email: &str,
    ttl: Duration,
    event: Event,
) -> Result<EmailToken, ApiError> {
    let token = EmailToken::generate();
    let mut tx = state.db.begin().await?;
    let g = NewGrant {
        id: Uuid::new_v4(),
        purpose,
        user_id,
        email,
        token_hash: &token.hash(),
        code_hmac: None,
        ttl,
    };
    db::email_grants::insert(&mut *tx, &g).await?;
    events::record(&mut *tx, &event).await?;
    tx.commit().await?;
    Ok(token)
}

/// Mails a verification link to the user's address (nothing if it is verified already). The
/// caller applies [`may_send`].
pub async fn send_verification(
    state: &AppState,
    user: &User,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    if user.email_verified {
        return Ok(());
    }
    let ttl = state.config.email_verify_ttl;
    let event = Event::new(EventKind::EmailVerificationSent, Some(user.id), client);
    let token = grant(
        state,
        Purpose::VerifyEmail,
        Some(user.id),
        &user.email,
        ttl,
        event,
    )
    .await?;
    let v = vars(state, &user.email, link(state, "verify-email", &token), ttl);
    state
        .mailer
        .enqueue(MessageKind::VerifyEmail, Some(user.id), &user.email, &v);
    Ok(())
}

/// Forgot password (run [`in_background`]): mails a reset link if `email` is an enabled
/// account; otherwise does nothing.
pub async fn mail_password_reset(
    state: AppState,
    email: Email,
    client: ClientInfo,
) -> Result<(), ApiError> {
    let Some(user) = db::users::by_email(&state.db, &email).await? else {
        return Ok(());
    };
    if user.disabled {
        return Ok(());
    }
    let ttl = state.config.password_reset_ttl;
    let event = Event::new(EventKind::PasswordResetRequested, Some(user.id), &client);
    let token = grant(
        &state,
        Purpose::PasswordReset,
        Some(user.id),
        &user.email,
        ttl,
        event,
    )
    .await?;
    let v = vars(
        &state,
        &user.email,
        link(&state, "reset-password", &token),
        ttl,
    );
    state
        .mailer
        .enqueue(MessageKind::PasswordReset, Some(user.id), &user.email, &v);
    Ok(())
}

/// Sign-in code (run [`in_background`]): mails a code and a link (one grant, replacing any
/// earlier live code of the address) if `email` is an enabled account, or if it is no account
/// and AUTHD_EMAIL_SIGNUP lets a code create it; otherwise does nothing.
pub async fn mail_sign_in_code(
    state: AppState,
    email: Email,
    client: ClientInfo,
) -> Result<(), ApiError> {
    let user = db::users::by_email(&state.db, &email).await?;
    match &user {
        Some(u) if u.disabled => return Ok(()),
        None if !state.config.email_signup() => return Ok(()),
        _ => {}
    }
    let user_id = user.as_ref().map(|u| u.id);
    let ttl = state.config.email_code_ttl;
    let (id, token, code) = (Uuid::new_v4(), EmailToken::generate(), Code::generate());
    let mut tx = state.db.begin().await?;
    db::email_grants::supersede(&mut *tx, email.as_str(), Purpose::SignIn).await?;
    let g = NewGrant {
        id,
        purpose: Purpose::SignIn,
        user_id,
        email: email.as_str(),
        token_hash: &token.hash(),
        code_hmac: Some(&state.code_key.tag(id, &code)),
        ttl,
    };
    db::email_grants::insert(&mut *tx, &g).await?;
    let e = Event::new(EventKind::EmailCodeSent, user_id, &client)
        .detail(json!({ "signup": user_id.is_none() }));
    events::record(&mut *tx, &e).await?;
    tx.commit().await?;
    let mut v = vars(
        &state,
        email.as_str(),
        link(&state, "email-sign-in", &token),
        ttl,
    );
    v.code = code.as_str().to_owned();
    state
        .mailer
        .enqueue(MessageKind::SignInCode, user_id, email.as_str(), &v);
    Ok(())
}

/// Confirms a verification link (the address is verified) or an email-change link (the account
/// switches to the new, now verified address, and whatever was mailed to the old one dies).
/// Errors: `email_token_invalid` (unknown, used, expired, another purpose, or the account's
/// address changed since), `email_taken` (another account took the new address meanwhile).
pub async fn confirm_address(
    state: &AppState,
    token: &EmailToken,
    client: &ClientInfo,
) -> Result<User, ApiError> {
    let of = [Purpose::VerifyEmail, Purpose::EmailChange];
    let mut tx = state.db.begin().await?;
    let found = db::email_grants::consume_token(&mut *tx, &token.hash(), &of).await?;
    let Some((grant, user_id)) = found.and_then(|g| g.user_id.map(|u| (g, u))) else {
        drop(tx);
        factors::email::reject_token(state, Purpose::VerifyEmail, client).await?;
        return Err(ApiError::EmailTokenInvalid);
    };
    let (user, kind) = if grant.purpose() == Some(Purpose::EmailChange) {
        let user = db::users::change_email(&mut *tx, user_id, &grant.email)
            .await?
            .ok_or(ApiError::EmailTokenInvalid)?;
        let all = [
            Purpose::VerifyEmail,
            Purpose::PasswordReset,
            Purpose::SignIn,
            Purpose::EmailChange,
        ];
        db::email_grants::end_for_user(&mut *tx, user_id, &all).await?;
        (user, EventKind::EmailChanged)
    } else {
        let user = db::users::mark_verified(&mut *tx, user_id, &grant.email)
            .await?
            .ok_or(ApiError::EmailTokenInvalid)?;
        db::email_grants::end_for_user(&mut *tx, user_id, &[Purpose::VerifyEmail]).await?;
        (user, EventKind::EmailVerified)
    };
    events::record(&mut *tx, &Event::new(kind, Some(user_id), client)).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user_id, event = kind.as_str(), "address confirmed");
    Ok(user)
}

/// Sets a new password through a reset link: the address is marked verified (the link proved
/// it), every other reset link and sign-in code of the user dies, and every session of the
/// user is revoked (reason `password_reset`; access tokens denied everywhere within a second).
/// Errors: `email_token_invalid`, `rate_limited`, `unavailable`.
pub async fn reset_password(
    state: &AppState,
    token: &EmailToken,
    new_password: &NewPassword,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    // Only a live link makes us hash.
    factors::email::check_link(state, token, Purpose::PasswordReset, client).await?;
    let new_hash = state.hasher.hash(new_password.expose()).await?;
    let mut tx = state.db.begin().await?;
    let found =
        db::email_grants::consume_token(&mut *tx, &token.hash(), &[Purpose::PasswordReset]).await?;
    let Some((grant, user_id)) = found.and_then(|g| g.user_id.map(|u| (g, u))) else {
        return Err(ApiError::EmailTokenInvalid);
    };
    if !db::users::reset_password(&mut *tx, user_id, &grant.email, &new_hash).await? {
        return Err(ApiError::EmailTokenInvalid);
    }
    db::email_grants::end_for_user(
        &mut *tx,
        user_id,
        &[Purpose::PasswordReset, Purpose::SignIn],
    )
    .await?;
    let target = revoke::Target::User {
        user: user_id,
        keep: None,
    };
    let (_, revoked) = revoke::revoke_in(&mut tx, target, RevokeReason::PasswordReset).await?;
    let e = Event::new(EventKind::PasswordReset, Some(user_id), client)
        .actor(user_id)
        .detail(json!({ "revoked_sessions": revoked.len() }));
    events::record(&mut *tx, &e).await?;
    tx.commit().await?;
    publish(state, RevokeReason::PasswordReset, &revoked);
    tracing::info!(user_id = %user_id, revoked = revoked.len(), "password reset");
    Ok(())
}

/// Asks to move the account to `new_email`, once the current password was verified: a
/// confirmation link to the new address, a notice to the old one. Nothing changes until the
/// link is confirmed ([`confirm_address`]). Errors: `validation_failed` (the same address),
/// `email_taken`, `rate_limited`.
pub async fn request_email_change(
    state: &AppState,
    user: &User,
    session_id: Uuid,
    new_email: &Email,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    if new_email.as_str() == user.email {
        return Err(ApiError::validation(
            "new_email",
            "is already the account's address",
        ));
    }
    if db::users::by_email(&state.db, new_email).await?.is_some() {
        return Err(ApiError::EmailTaken);
    }
    may_send(state, client, new_email.as_str())?;
    let ttl = state.config.email_verify_ttl;
    let event = Event::new(EventKind::EmailChangeRequested, Some(user.id), client)
        .session(session_id)
        .actor(user.id);
    let token = grant(
        state,
        Purpose::EmailChange,
        Some(user.id),
        new_email.as_str(),
        ttl,
        event,
    )
    .await?;
    let v = vars(
        state,
        new_email.as_str(),
        link(state, "verify-email", &token),
        ttl,
    );
    state.mailer.enqueue(
        MessageKind::EmailChange,
        Some(user.id),
        new_email.as_str(),
        &v,
    );
    let mut notice = vars(state, &user.email, String::new(), ttl);
    notice.new_email = new_email.as_str().to_owned();
    state.mailer.enqueue(
        MessageKind::EmailChangeNotice,
        Some(user.id),
        &user.email,
        &notice,
    );
    Ok(())
}
