//! Changes of a user that end sessions: a password change, disabling, taking roles away, and
//! deleting the account. Each is one transaction with its audit rows; revoked sessions are
//! published afterwards.

use serde_json::json;
use uuid::Uuid;

use super::{Actor, Context, publish, revoke};
use crate::{
    db::{
        self,
        events::{self, Event},
        users::User,
    },
    domain::{AuthMethod, ClientInfo, EventKind, RevokeReason},
    error::ApiError,
    factors::password::VerifiedPassword,
    state::AppState,
};

/// Sets a new password hash for the user whose current password was just verified, and revokes
/// every other session of the user. Only if the verified hash is still current and the user is
/// still enabled (decided atomically with the write): a change racing another change or a
/// disable fails with `invalid_credentials` / `user_disabled`.
pub async fn change_password(
    state: &AppState,
    verified: &VerifiedPassword,
    keep_session: Uuid,
    new_hash: &str,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    let user_id = verified.user.id;
    let mut tx = state.db.begin().await?;
    if !db::users::replace_password(&mut *tx, user_id, &verified.password_hash, new_hash).await? {
        drop(tx);
        return Err(match db::users::access_of(&state.db, user_id).await? {
            Some(a) if a.disabled => ApiError::UserDisabled,
            Some(_) => ApiError::InvalidCredentials,
            None => ApiError::UserNotFound,
        });
    }
    let (_, revoked) = revoke::revoke_in(
        &mut tx,
        revoke::Target::User {
            user: user_id,
            keep: Some(keep_session),
        },
        RevokeReason::PasswordChanged,
    )
    .await?;
    let changed = Event::new(EventKind::PasswordChanged, Some(user_id), client)
        .session(keep_session)
        .actor(user_id)
        .detail(json!({ "revoked_sessions": revoked.len() }));
    events::record(&mut *tx, &changed).await?;
    tx.commit().await?;
    publish(state, RevokeReason::PasswordChanged, &revoked);
    tracing::info!(user_id = %user_id, revoked = revoked.len(), "password changed");
    Ok(())
}

/// An admin's (or the operator's) change to a user: `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub disabled: Option<bool>,
    /// Sorted and deduplicated.
    pub roles: Option<Vec<String>>,
}

/// Applies `change` to `user_id`. Disabling revokes every session of the user (reason
/// `user_disabled`); taking a role away revokes them too (reason `roles_changed`), so no access
/// token still carrying the role is accepted anywhere (ASVS 5.0 8.3.2; authd's own admin checks
/// read the current roles in any case). An admin changing their own roles is recorded as
/// `own_roles_changed`. Errors: `user_not_found`, database errors.
pub async fn update_user(
    ctx: &impl Context,
    user_id: Uuid,
    change: &UserChange,
    actor: Actor,
    client: &ClientInfo,
) -> Result<User, ApiError> {
    let mut tx = ctx.db().begin().await?;
    let (user, old_roles) =
        db::users::update(&mut *tx, user_id, change.disabled, change.roles.as_deref())
            .await?
            .ok_or(ApiError::UserNotFound)?;
    let lost_role = old_roles.iter().any(|r| !user.roles.contains(r));
    let reason = if user.disabled {
        Some(RevokeReason::UserDisabled)
    } else if lost_role {
        Some(RevokeReason::RolesChanged)
    } else {
        None
    };
    let revoked = match reason {
        Some(reason) => {
            let target = revoke::Target::User {
                user: user_id,
                keep: None,
            };
            revoke::revoke_in(&mut tx, target, reason).await?.1
        }
        None => Vec::new(),
    };
    let event = |kind| {
        let e = Event::new(kind, Some(user_id), client).actor_opt(actor.id(user_id));
        match actor {
            Actor::Operator => e.detail(json!({ "via": "cli" })),
            _ => e,
        }
    };
    let mut audit = Vec::new();
    match change.disabled {
        Some(true) => {
            let mut e = event(EventKind::UserDisabled);
            e.detail["revoked_sessions"] = json!(revoked.len());
            audit.push(e);
        }
        Some(false) => audit.push(event(EventKind::UserEnabled)),
        None => {}
    }
    if let Some(roles) = &change.roles {
        let own = matches!(actor, Actor::Admin(admin) if admin == user_id);
        let kind = if own {
            EventKind::OwnRolesChanged
        } else {
            EventKind::RolesChanged
        };
        let mut e = event(kind);
        e.detail["roles"] = json!(roles);
        e.detail["previous_roles"] = json!(old_roles);
        if reason == Some(RevokeReason::RolesChanged) {
            e.detail["revoked_sessions"] = json!(revoked.len());
        }
        audit.push(e);
    }
    for e in &audit {
        events::record(&mut *tx, e).await?;
    }
    tx.commit().await?;
    if let Some(reason) = reason {
        publish(ctx, reason, &revoked);
    }
    tracing::info!(user_id = %user_id, disabled = user.disabled, revoked = revoked.len(), "user updated");
    Ok(user)
}

/// Creates a user with the given password hash and roles, with its audit row. Errors:
/// `email_taken`, database errors.
pub async fn create_user(
    state_db: &sqlx::PgPool,
    email: &crate::domain::Email,
    password_hash: &str,
    roles: &[String],
    actor: Actor,
    client: &ClientInfo,
) -> Result<User, ApiError> {
    let mut tx = state_db.begin().await?;
    let user = db::users::insert(&mut *tx, email, Some(password_hash), roles, false).await?;
    let mut e =
        Event::new(EventKind::UserRegistered, Some(user.id), client).actor_opt(actor.id(user.id));
    if actor == Actor::Operator {
        e = e.detail(json!({ "via": "cli", "admin": crate::domain::has_admin_role(roles) }));
    }
    events::record(&mut *tx, &e).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok(user)
}

/// Deletes a user's account (GDPR erasure), by the user themselves (`Actor::Subject`, after
/// `factors::reauth`; `reauth` says how, for the audit trail), an admin or the operator.
///
/// In one transaction: the user row is locked (no new session can start), every session of the
/// user is revoked through the revocation path (reason `user_deleted`: the NOTIFY tells every
/// instance, each denies the tokens until they expire), the user's own history is erased
/// ([`db::events::erase_history_of`]: what admins or the operator did to the account stays),
/// the user row is deleted (sessions, tombstoned by their trigger, refresh tokens and email
/// grants cascade; the user cache drops it on NOTIFY), and a `user_deleted` tombstone is
/// recorded: user id, actor, detail `{by: "self"|"admin"|"cli", revoked_sessions}`, never the
/// address, and for a self-deletion no IP or user agent (they are the deleted person's). After
/// the commit the revocations are published here at once. Returns how many sessions were
/// revoked. Errors: `user_not_found`, database errors.
///
/// Whether an admin may delete their own account this way is the caller's decision (the HTTP
/// admin endpoint refuses it; `DELETE /auth/me` is the way).
pub async fn delete_user(
    ctx: &impl Context,
    user_id: Uuid,
    actor: Actor,
    client: &ClientInfo,
    reauth: Option<AuthMethod>,
) -> Result<usize, ApiError> {
    let mut tx = ctx.db().begin().await?;
    if !db::users::lock(&mut *tx, user_id).await? {
        return Err(ApiError::UserNotFound);
    }
    let target = revoke::Target::User {
        user: user_id,
        keep: None,
    };
    let (_, revoked) = revoke::revoke_in(&mut tx, target, RevokeReason::UserDeleted).await?;
    let erased = db::events::erase_history_of(&mut *tx, user_id).await?;
    db::users::delete(&mut *tx, user_id).await?;
    let by = match actor {
        Actor::Subject => "self",
        Actor::Admin(_) => "admin",
        Actor::Operator => "cli",
    };
    let mut detail = json!({ "by": by, "revoked_sessions": revoked.len() });
    match (actor, reauth) {
        (Actor::Subject, Some(method)) => detail["reauth"] = json!(method.as_str()),
        (Actor::Operator, _) => detail["via"] = json!("cli"),
        _ => {}
    }
    let from = match actor {
        Actor::Subject => ClientInfo::default(),
        _ => client.clone(),
    };
    let tombstone = Event::new(EventKind::UserDeleted, Some(user_id), &from)
        .actor_opt(actor.id(user_id))
        .detail(detail);
    events::record(&mut *tx, &tombstone).await?;
    tx.commit().await?;
    publish(ctx, RevokeReason::UserDeleted, &revoked);
    tracing::info!(user_id = %user_id, by, revoked = revoked.len(), erased_events = erased, "user deleted");
    Ok(revoked.len())
}
