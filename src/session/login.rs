//! A verified factor becomes a session.
//!
//! In one transaction: the session is inserted only if the user is still enabled and the
//! credential that was verified is still the current one (decided atomically with the insert,
//! see `db::sessions::create`); the session the browser's refresh cookie named is superseded
//! (ASVS 5.0 7.2.4: a new login replaces the old session of that browser); sessions beyond
//! AUTHD_MAX_SESSIONS are revoked, least recently used first; the audit rows are written.

use serde_json::json;
use uuid::Uuid;

use super::{Issued, issue, publish};
use crate::{
    db::{
        self,
        events::{self, Event},
        sessions::{NewSessionSpec, RevokedSession},
        users::User,
    },
    domain::{AuthMethod, ClientInfo, EventKind, RevokeReason},
    error::ApiError,
    factors::{email::VerifiedGrant, password::VerifiedPassword},
    state::AppState,
    tokens::refresh::RefreshToken,
};

/// What proved who the user is.
#[derive(Debug)]
pub enum Proof {
    /// A password matched; the session requires that hash to still be current.
    Password(VerifiedPassword),
    /// A mailed code or link matched a live sign-in grant; the grant is consumed in the
    /// transaction that creates the session (so one of two concurrent uses wins), the address is
    /// marked verified, and a grant for an address without an account creates it.
    EmailCode(VerifiedGrant),
}

/// Consumes the sign-in grant and returns the user it signs in (created for a sign-up grant).
/// Errors: `email_code_invalid` (used meanwhile, or the account's address changed).
async fn redeem(
    tx: &mut sqlx::PgConnection,
    grant: &VerifiedGrant,
    client: &ClientInfo,
) -> Result<User, ApiError> {
    let grant = db::email_grants::consume(&mut *tx, grant.id)
        .await?
        .ok_or(ApiError::EmailCodeInvalid)?;
    match grant.user_id {
        Some(id) => db::users::mark_verified(&mut *tx, id, &grant.email)
            .await?
            .ok_or(ApiError::EmailCodeInvalid),
        None => {
            let (user, created) = db::users::upsert_verified(&mut *tx, &grant.email).await?;
            if created {
                let e = Event::new(EventKind::UserRegistered, Some(user.id), client)
                    .actor(user.id)
                    .detail(json!({ "method": AuthMethod::EmailCode.as_str() }));
                events::record(&mut *tx, &e).await?;
            }
            Ok(user)
        }
    }
}

/// Creates a session for the proven user. `presented` are the refresh tokens the browser sent
/// (its cookies of our name): the sessions they are current for are superseded. Errors:
/// `invalid_credentials` (the password changed since it was verified), `user_disabled`,
/// database errors.
pub async fn login(
    state: &AppState,
    proof: Proof,
    client: &ClientInfo,
    presented: &[RefreshToken],
) -> Result<Issued, ApiError> {
    let config = &state.config;
    let token = RefreshToken::generate();
    let ip = client.ip_string();
    let mut tx = state.db.begin().await?;
    let (user, password_hash, method) = match proof {
        Proof::Password(v) => (v.user, Some(v.password_hash), AuthMethod::Password),
        Proof::EmailCode(g) => (
            redeem(&mut tx, &g, client).await?,
            None,
            AuthMethod::EmailCode,
        ),
    };
    let spec = NewSessionSpec {
        user_id: user.id,
        token_hash: &token.hash(),
        idle_ttl: config.refresh_idle_ttl,
        max_age: config.session_max_age,
        access_ttl: config.access_ttl,
        user_agent: client.user_agent.as_deref(),
        ip: ip.as_deref(),
        password_hash: password_hash.as_deref(),
        auth_method: method,
    };
    let Some(session) = db::sessions::create(&mut *tx, &spec).await? else {
        drop(tx);
        // The user was disabled, deleted or changed their password after the check.
        return Err(match db::users::access_of(&state.db, user.id).await? {
            Some(a) if a.disabled => ApiError::UserDisabled,
            _ if method == AuthMethod::EmailCode => ApiError::EmailCodeInvalid,
            _ => ApiError::InvalidCredentials,
        });
    };
    let superseded = supersede(&mut tx, state, presented, session.id).await?;
    let evicted = db::sessions::revoke_beyond(
        &mut *tx,
        user.id,
        i64::from(config.max_sessions),
        RevokeReason::SessionLimit,
    )
    .await?;
    let ok = Event::new(EventKind::LoginSucceeded, Some(user.id), client)
        .session(session.id)
        .actor(user.id)
        .detail(json!({ "method": method.as_str() }));
    events::record(&mut *tx, &ok).await?;
    for (reason, ended) in [
        (RevokeReason::Superseded, &superseded),
        (RevokeReason::SessionLimit, &evicted),
    ] {
        for r in ended {
            let e = Event::new(EventKind::SessionRevoked, Some(r.user_id), client)
                .session(r.id)
                .detail(json!({ "reason": reason.as_str(), "by_session": session.id }));
            events::record(&mut *tx, &e).await?;
        }
    }
    tx.commit().await?;
    publish(state, RevokeReason::Superseded, &superseded);
    publish(state, RevokeReason::SessionLimit, &evicted);
    tracing::info!(user_id = %user.id, session_id = %session.id, method = method.as_str(), "login");
    issue(
        state,
        session.id,
        user,
        session.absolute_expires_unix,
        token,
        session.max_age_secs,
    )
}

/// Revokes the sessions for which the browser presented its current refresh token.
async fn supersede(
    tx: &mut sqlx::PgConnection,
    state: &AppState,
    presented: &[RefreshToken],
    new_session: Uuid,
) -> Result<Vec<RevokedSession>, ApiError> {
    if presented.is_empty() {
        return Ok(Vec::new());
    }
    let (hashes, successors) = super::presented_hashes(state, presented);
    let ids: Vec<Uuid> =
        db::sessions::presented_tokens(&mut *tx, &hashes, &successors, state.config.refresh_grace)
            .await?
            .into_iter()
            .filter(|t| t.current && t.session_id != new_session)
            .map(|t| t.session_id)
            .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(db::sessions::revoke_ids(&mut *tx, &ids, RevokeReason::Superseded).await?)
}
