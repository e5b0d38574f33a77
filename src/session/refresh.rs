//! The rotation rules of API.md ("Rotation rules"), RFC 9700 §4.14.2 refresh-token rotation:
//!
//! 1. unused token of a live session → consumed atomically (one `UPDATE … WHERE used_at IS
//!    NULL`), successor issued;
//! 2. used token, first use within the grace window, successor not yet used → the same
//!    successor again (byte-identical cookie) and a fresh access token;
//! 3. any other used token → reuse: that one session is revoked (with its audit row, in one
//!    transaction);
//! 4. unknown → `refresh_token_invalid`; dead session / disabled user → its own code.
//!
//! Several cookies of our name in one request (a sibling subdomain's cookie, a stale cookie left
//! by a change of AUTHD_COOKIE_PATH or AUTHD_COOKIE_DOMAIN) never end, clear or switch a live
//! session: junk and unknown tokens are ignored; if exactly one presented token is known, the
//! rules above apply to it; if several are, the current token of a live session is used, and if
//! those belong to different users the request is refused without touching anything (which
//! account the browser meant cannot be known; the `__Host-` cookie prefix prevents this).

use uuid::Uuid;

use super::{Issued, issue, revoke};
use crate::{
    db::{
        self,
        events::{self, Event},
    },
    domain::{ClientInfo, EventKind, RevokeReason},
    error::ApiError,
    state::AppState,
    tokens::refresh::RefreshToken,
};

/// Which rule a successful refresh took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    /// Rule 1: the token was consumed now.
    Rotated,
    /// Rule 2: a concurrent or retried presentation within the grace window.
    Grace,
}

impl RefreshKind {
    /// The `outcome` label of `authd_refreshes_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "ok",
            Self::Grace => "grace",
        }
    }
}

/// A failed refresh, and whether the response should clear the cookie.
#[derive(Debug)]
pub struct RefreshError {
    pub error: ApiError,
    /// False when a live session may still be behind one of the presented cookies.
    pub clear_cookie: bool,
}

impl From<ApiError> for RefreshError {
    /// Every 401 clears the cookie; a 503 leaves it (the token may still be good).
    fn from(error: ApiError) -> Self {
        let clear_cookie = error.status() == axum::http::StatusCode::UNAUTHORIZED;
        Self {
            error,
            clear_cookie,
        }
    }
}

impl From<sqlx::Error> for RefreshError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

/// Applies the rotation rules to the refresh tokens a request presented (at least one).
pub async fn refresh(
    state: &AppState,
    presented: &[RefreshToken],
    client: &ClientInfo,
) -> Result<(Issued, RefreshKind), RefreshError> {
    match presented {
        [] => Err(ApiError::RefreshTokenMissing.into()),
        [only] => one(state, only, client).await,
        several => {
            let token = choose(state, several).await?;
            one(state, &token, client).await
        }
    }
}

/// Of several presented tokens, the one the rules apply to (see the module docs).
async fn choose(
    state: &AppState,
    presented: &[RefreshToken],
) -> Result<RefreshToken, RefreshError> {
    let (hashes, successors) = super::presented_hashes(state, presented);
    let known =
        db::sessions::presented_tokens(&state.db, &hashes, &successors, state.config.refresh_grace)
            .await?;
    let mut live: Vec<_> = known
        .iter()
        .filter(|t| t.session_live && t.current)
        .collect();
    let users = {
        let mut u: Vec<Uuid> = live.iter().map(|t| t.user_id).collect();
        u.sort();
        u.dedup();
        u.len()
    };
    let refuse = |clear_cookie| RefreshError {
        error: ApiError::RefreshTokenInvalid,
        clear_cookie,
    };
    if users > 1 {
        tracing::warn!(
            cookies = presented.len(),
            "refresh cookies of several accounts in one request; refused (a planted cookie?)"
        );
        return Err(refuse(false));
    }
    live.sort_by_key(|t| std::cmp::Reverse(t.last_used_at));
    let pick = match (live.first(), known.as_slice()) {
        (Some(t), _) => &t.token_hash,
        // Only one token is known: the rules (reuse detection included) apply to it.
        (None, [only]) => &only.token_hash,
        // None is known, or several stale ones: nothing live is behind them.
        (None, _) => return Err(refuse(true)),
    };
    presented
        .iter()
        .find(|t| t.hash().as_slice() == pick.as_slice())
        .cloned()
        .ok_or_else(|| refuse(false))
}

/// The rules for one presented token.
async fn one(
    state: &AppState,
    presented: &RefreshToken,
    client: &ClientInfo,
) -> Result<(Issued, RefreshKind), RefreshError> {
    let config = &state.config;
    let hash = presented.hash();
    let successor = state.successor_key.successor(presented);
    let successor_hash = successor.hash();

    // Rule 1, the hot path: one statement consumes, extends the session and inserts the successor.
    if let Some(row) = db::sessions::rotate(
        &state.db,
        &hash,
        &successor_hash,
        config.refresh_idle_ttl,
        config.access_ttl,
    )
    .await?
    {
        let issued = issue(
            state,
            row.session_id,
            row.user,
            row.absolute_expires_unix,
            successor,
            row.max_age_secs,
        )?;
        return Ok((issued, RefreshKind::Rotated));
    }

    // Not consumable: find out why (a second, rarer query).
    let Some(s) =
        db::sessions::inspect_token(&state.db, &hash, &successor_hash, config.refresh_grace)
            .await?
    else {
        return Err(pruned_or_unknown(state, presented, client).await);
    };
    if s.session_revoked {
        return Err(ApiError::SessionRevoked.into());
    }
    if s.session_expired {
        return Err(ApiError::SessionExpired.into());
    }
    if s.user.disabled {
        return Err(ApiError::UserDisabled.into());
    }
    if s.used && s.within_grace && s.successor_exists && !s.successor_used {
        db::sessions::extend_access(&state.db, s.session_id, config.access_ttl).await?;
        let issued = issue(
            state,
            s.session_id,
            s.user,
            s.absolute_expires_unix,
            successor,
            s.max_age_secs,
        )?;
        return Ok((issued, RefreshKind::Grace));
    }
    if !s.used {
        // Live, unused, yet not consumable: the session changed between the two statements
        // (revoked or expired concurrently). Ask the client to try again from scratch.
        return Err(ApiError::RefreshTokenInvalid.into());
    }
    // Rule 3: reuse.
    Err(reused(state, s.session_id, client).await)
}

/// Rule 3: a superseded token came back. Revoke this one session (with its audit row, in one
/// transaction); the user's other sessions are untouched.
async fn reused(state: &AppState, session_id: Uuid, client: &ClientInfo) -> RefreshError {
    let result = async {
        let mut tx = state.db.begin().await?;
        let (user, revoked) = revoke::revoke_in(
            &mut tx,
            revoke::Target::Session(session_id),
            RevokeReason::RefreshTokenReused,
        )
        .await?;
        let e = Event::new(EventKind::RefreshTokenReused, Some(user), client).session(session_id);
        events::record(&mut *tx, &e).await?;
        tx.commit().await?;
        super::publish(state, RevokeReason::RefreshTokenReused, &revoked);
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => {
            tracing::warn!(session_id = %session_id, "refresh token reuse detected; session revoked");
            ApiError::RefreshTokenReused.into()
        }
        Err(e) => e.into(),
    }
}

/// A well-formed token that is not stored: either never issued, or a superseded token whose
/// row was pruned (`db::sessions::prune_used_tokens`). Its successors are derived, up to the
/// next kept checkpoint; if one is stored, the token was superseded in that session: reuse.
async fn pruned_or_unknown(
    state: &AppState,
    presented: &RefreshToken,
    client: &ClientInfo,
) -> RefreshError {
    let mut hashes = Vec::with_capacity(db::sessions::CHECKPOINT_EVERY as usize);
    let mut token = presented.clone();
    for _ in 0..db::sessions::CHECKPOINT_EVERY {
        token = state.successor_key.successor(&token);
        hashes.push(token.hash().to_vec());
    }
    match db::sessions::session_of_descendant(&state.db, &hashes).await {
        Ok(None) => ApiError::RefreshTokenInvalid.into(),
        Ok(Some((_, true, _))) => ApiError::SessionRevoked.into(),
        Ok(Some((_, _, true))) => ApiError::SessionExpired.into(),
        Ok(Some((session_id, false, false))) => reused(state, session_id, client).await,
        Err(e) => e.into(),
    }
}
