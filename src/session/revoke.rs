//! Ending sessions: "sign out that device", "sign out everywhere" (the user's or an admin's),
//! logout, reuse detection. Each is one transaction with its audit row; afterwards the
//! sessions' access tokens are denied on this instance at once and on every other instance
//! through NOTIFY (see `live`).

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Actor, Context, publish};
use crate::{
    db::{
        self,
        events::{self, Event},
        sessions::RevokedSession,
    },
    domain::{ClientInfo, EventKind, RevokeReason},
    error::ApiError,
    state::AppState,
};

/// Which sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// One session, whoever owns it (an admin's forced logout of one device).
    Session(Uuid),
    /// One session if `owner` owns it (the user's own "sign out that device").
    OwnSession { session: Uuid, owner: Uuid },
    /// Every session of a user, except `keep` (the caller's own, for "sign out the others").
    User { user: Uuid, keep: Option<Uuid> },
}

/// Revokes `target` for `reason`. Returns the sessions this call ended (an already revoked
/// session is found but not ended again). Errors: `session_not_found` for a single session that
/// does not exist (or is not the owner's), database errors.
pub async fn revoke(
    ctx: &impl Context,
    target: Target,
    reason: RevokeReason,
    actor: Actor,
    client: &ClientInfo,
    acting_session: Option<Uuid>,
) -> Result<Vec<RevokedSession>, ApiError> {
    let mut tx = ctx.db().begin().await?;
    let (subject, revoked) = revoke_in(&mut tx, target, reason).await?;
    let event = match target {
        Target::Session(sid) | Target::OwnSession { session: sid, .. } => {
            let kind = match reason {
                RevokeReason::Logout => EventKind::Logout,
                RevokeReason::RefreshTokenReused => EventKind::RefreshTokenReused,
                _ => EventKind::SessionRevoked,
            };
            let e = Event::new(kind, Some(subject), client).session(sid);
            if matches!(kind, EventKind::SessionRevoked) {
                e.detail(json!({ "reason": reason.as_str() }))
            } else {
                e
            }
        }
        Target::User { keep, .. } => {
            let mut detail = json!({ "reason": reason.as_str(), "count": revoked.len() });
            if actor == Actor::Subject {
                detail["scope"] = json!(if keep.is_some() { "others" } else { "all" });
            }
            if actor == Actor::Operator {
                detail["via"] = json!("cli");
            }
            let e = Event::new(EventKind::SessionsRevoked, Some(subject), client).detail(detail);
            match acting_session {
                Some(sid) => e.session(sid),
                None => e,
            }
        }
    };
    events::record(&mut *tx, &event.actor_opt(actor.id(subject))).await?;
    tx.commit().await?;
    publish(ctx, reason, &revoked);
    Ok(revoked)
}

/// The revocation itself, inside the caller's transaction. Returns the owner and the sessions
/// ended. The caller records the audit row, commits, then calls [`publish`].
pub(super) async fn revoke_in(
    tx: &mut PgConnection,
    target: Target,
    reason: RevokeReason,
) -> Result<(Uuid, Vec<RevokedSession>), ApiError> {
    match target {
        Target::Session(session) => one(tx, session, None, reason).await,
        Target::OwnSession { session, owner } => one(tx, session, Some(owner), reason).await,
        Target::User { user, keep } => Ok((
            user,
            db::sessions::revoke_all(&mut *tx, user, keep, reason).await?,
        )),
    }
}

async fn one(
    tx: &mut PgConnection,
    session: Uuid,
    owner: Option<Uuid>,
    reason: RevokeReason,
) -> Result<(Uuid, Vec<RevokedSession>), ApiError> {
    let (user, revoked) = db::sessions::revoke_one(&mut *tx, session, owner, reason)
        .await?
        .ok_or(ApiError::SessionNotFound)?;
    Ok((user, revoked.into_iter().collect()))
}

/// The live sessions for which `presented` holds the current refresh token (unused, or within
/// the grace window). Stale or foreign tokens name nothing.
pub async fn current_sessions(
    state: &AppState,
    presented: &[crate::tokens::refresh::RefreshToken],
) -> Result<Vec<Uuid>, ApiError> {
    if presented.is_empty() {
        return Ok(Vec::new());
    }
    let (hashes, successors) = super::presented_hashes(state, presented);
    let mut ids: Vec<Uuid> =
        db::sessions::presented_tokens(&state.db, &hashes, &successors, state.config.refresh_grace)
            .await?
            .into_iter()
            .filter(|t| t.current && t.session_live)
            .map(|t| t.session_id)
            .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}
