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

/// Consumes the sign-in grant and returns the user it signs in (created for a sign-up grant),
/// with the sessions that ended because the code proved an address nobody had verified (see
/// `db::users::prove_address`). Errors: `email_code_invalid` (used meanwhile, or the account's
/// address changed).
async fn redeem(
    tx: &mut sqlx::PgConnection,
    grant: &VerifiedGrant,
    client: &ClientInfo,
) -> Result<(User, Vec<RevokedSession>), ApiError> {
    let grant = db::email_grants::consume(&mut *tx, grant.id)
        .await?
        .ok_or(ApiError::EmailCodeInvalid)?;
    let id = match grant.user_id {
        Some(id) => id,
        None => {
            if let Some(user) = db::users::insert_verified(&mut *tx, &grant.email).await? {
                let e = Event::new(EventKind::UserRegistered, Some(user.id), client)
                    .actor(user.id)
                    .detail(json!({ "method": AuthMethod::EmailCode.as_str() }));
                events::record(&mut *tx, &e).await?;
                return Ok((user, Vec::new()));
            }
            // Someone registered the address since the code was sent: the code proves it.
            db::users::id_by_email(&mut *tx, &grant.email)
                .await?
                .ok_or(ApiError::EmailCodeInvalid)?
        }
    };
    let (user, dropped_password) = db::users::prove_address(&mut *tx, id, &grant.email)
        .await?
        .ok_or(ApiError::EmailCodeInvalid)?;
    if !dropped_password {
        return Ok((user, Vec::new()));
    }
    let ended = db::sessions::revoke_all(&mut *tx, id, None, RevokeReason::EmailProven).await?;
    let e = Event::new(EventKind::SessionsRevoked, Some(id), client).detail(json!({
        "reason": RevokeReason::EmailProven.as_str(),
        "count": ended.len(),
        "password_dropped": true,
    }));
    events::record(&mut *tx, &e).await?;
    tracing::info!(user_id = %id, revoked = ended.len(), "unverified password dropped by a code sign-in");
    Ok((user, ended))
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
    let (user, password_hash, method, proven) = match proof {
        Proof::Password(v) => (
            v.user,
            Some(v.password_hash),
            AuthMethod::Password,
            Vec::new(),
        ),
        Proof::EmailCode(g) => {
            let (user, ended) = redeem(&mut tx, &g, client).await?;
            (user, None, AuthMethod::EmailCode, ended)
        }
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
    publish(state, RevokeReason::EmailProven, &proven);
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
