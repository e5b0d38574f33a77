//! /admin: user lookup, changes and deletion, and forced logout. Every route needs the `admin`
//! role.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    db::{self, users::User},
    domain::{ClientInfo, Email, RevokeReason},
    error::{ApiError, FieldError},
    http::{
        extract::{Json, Path, Query, parse_uuid},
        extractors::AdminUser,
        sessions::{PageQuery, Revoked, SessionList, live_sessions},
    },
    session::{self, Actor, account::UserChange, revoke::Target},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(user_sessions, revoke_user_sessions))
        .routes(routes!(revoke_session))
}

const MAX_ROLES: usize = 32;
const MAX_ROLE_LEN: usize = 64;
const MAX_PAGE: i64 = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UserQuery {
    /// Find the user with this email (exact, case-insensitive).
    #[param(max_length = 254)]
    email: Option<String>,
    /// Page size without `email`: 1..=100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Users to skip without `email` (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct UserList {
    users: Vec<User>,
}

crate::problems!(ListUsersErrors: ApiError::Validation(vec![]));

/// `?email=` finds one user (exact, case-insensitive); without it, the newest users, paginated.
#[utoipa::path(
    get, path = "/admin/users", tag = "admin", security(("bearer" = [])), params(UserQuery),
    responses(
        ListUsersErrors,
        (status = 200, description = "Matching users", body = UserList),
    )
)]
async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<UserQuery>,
) -> Result<axum::Json<UserList>, ApiError> {
    let users = match q.email {
        Some(raw) => {
            let email = Email::parse("email", &raw)?;
            db::users::by_email(&state.db, &email)
                .await?
                .into_iter()
                .collect()
        }
        None => {
            let limit = q.limit.unwrap_or(50);
            let offset = q.offset.unwrap_or(0);
            if !(1..=MAX_PAGE).contains(&limit) {
                return Err(ApiError::validation("limit", "must be between 1 and 100"));
            }
            if offset < 0 {
                return Err(ApiError::validation("offset", "must not be negative"));
            }
            db::users::list(&state.db, db::users::ListOrder::NewestFirst, limit, offset).await?
        }
    };
    Ok(axum::Json(UserList { users }))
}

fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_uuid(raw).ok_or(ApiError::UserNotFound)
}

crate::problems!(GetUserErrors: ApiError::UserNotFound);

/// One user.
#[utoipa::path(
    get, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses(
        GetUserErrors,
        (status = 200, description = "The user", body = User),
    )
)]
async fn get_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Result<axum::Json<User>, ApiError> {
    let user = db::users::by_id(&state.db, user_id(&id)?)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    Ok(axum::Json(user))
}

#[derive(Deserialize, ToSchema)]
struct UserPatch {
    /// `true` disables the user and revokes all their sessions; `false` enables them again.
    disabled: Option<bool>,
    /// Replaces the roles (each 1-64 of `a-z 0-9 _ - : .`, at most 32), e.g. `["admin"]`.
    roles: Option<Vec<String>>,
}

fn validate_roles(roles: &[String]) -> Result<(), ApiError> {
    if roles.len() > MAX_ROLES {
        return Err(ApiError::validation("roles", "at most 32 roles"));
    }
    let valid = |r: &String| {
        !r.is_empty()
            && r.len() <= MAX_ROLE_LEN
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-:.".contains(c))
    };
    let bad: Vec<FieldError> = roles
        .iter()
        .enumerate()
        .filter(|(_, r)| !valid(r))
        .map(|(i, _)| FieldError::new(format!("roles[{i}]"), "must be 1-64 of a-z 0-9 _ - : ."))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(bad))
    }
}

crate::problems!(UpdateUserErrors: ApiError::Validation(vec![]), ApiError::UserNotFound);

/// Disables/enables a user or sets their roles. Disabling revokes all their sessions. An admin
/// cannot disable themselves or drop their own `admin` role (400).
#[utoipa::path(
    patch, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])), request_body = UserPatch,
    params(("id" = String, Path, description = "User id (UUID)")),
    responses(
        UpdateUserErrors,
        (status = 200, description = "The updated user", body = User),
    )
)]
async fn update_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    client: ClientInfo,
    Path(id): Path<String>,
    Json(patch): Json<UserPatch>,
) -> Result<axum::Json<User>, ApiError> {
    let id = user_id(&id)?;
    if patch.disabled.is_none() && patch.roles.is_none() {
        return Err(ApiError::validation(
            "body",
            "give `disabled` and/or `roles`",
        ));
    }
    let mut roles = patch.roles;
    if let Some(r) = roles.as_mut() {
        validate_roles(r)?;
        r.sort();
        r.dedup();
    }
    // No self-lockout: the last admin could otherwise leave nobody able to administer authd.
    if id == admin.user_id {
        if patch.disabled == Some(true) {
            return Err(ApiError::validation(
                "disabled",
                "you cannot disable your own account",
            ));
        }
        if roles
            .as_ref()
            .is_some_and(|r| !crate::domain::has_admin_role(r))
        {
            return Err(ApiError::validation(
                "roles",
                "you cannot remove your own admin role",
            ));
        }
    }
    let change = UserChange {
        disabled: patch.disabled,
        roles,
    };
    let user =
        session::account::update_user(&state, id, &change, Actor::Admin(admin.user_id), &client)
            .await?;
    Ok(axum::Json(user))
}

crate::problems!(DeleteUserErrors: ApiError::Validation(vec![]), ApiError::UserNotFound);

/// Deletes a user's account.
///
/// Every session of the user is revoked first (access tokens rejected everywhere within 1 s),
/// then the account and its credentials are deleted. The audit trail keeps a `user_deleted` tombstone (without the
/// address) and what admins did to the account. An admin cannot delete their own account here
/// (400: that is `DELETE /auth/me`, which asks for the password), so no admin session can end
/// itself by mistake, the last admin included.
#[utoipa::path(
    delete, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses(
        DeleteUserErrors,
        (status = 204, description = "Deleted"),
    )
)]
async fn delete_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(&id)?;
    if id == admin.user_id {
        return Err(ApiError::validation(
            "id",
            "you cannot delete your own account here; use DELETE /auth/me",
        ));
    }
    session::account::delete_user(&state, id, Actor::Admin(admin.user_id), &client, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

crate::problems!(UserSessionsErrors: ApiError::Validation(vec![]), ApiError::UserNotFound);

/// A user's live sessions.
#[utoipa::path(
    get, path = "/admin/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)"), PageQuery),
    responses(
        UserSessionsErrors,
        (status = 200, description = "Live sessions, newest first", body = SessionList),
    )
)]
async fn user_sessions(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<SessionList>, ApiError> {
    let id = user_id(&id)?;
    db::users::by_id(&state.db, id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    Ok(axum::Json(
        live_sessions(&state, id, admin.session_id, page).await?,
    ))
}

crate::problems!(RevokeUserSessionsErrors: ApiError::UserNotFound);

/// Forced logout everywhere: revokes every session of the user.
#[utoipa::path(
    delete, path = "/admin/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses(
        RevokeUserSessionsErrors,
        (status = 200, description = "How many sessions were revoked", body = Revoked),
    )
)]
async fn revoke_user_sessions(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<axum::Json<Revoked>, ApiError> {
    let id = user_id(&id)?;
    db::users::by_id(&state.db, id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    let revoked = session::revoke::revoke(
        &state,
        Target::User {
            user: id,
            keep: None,
        },
        RevokeReason::AdminRevoked,
        Actor::Admin(admin.user_id),
        &client,
        None,
    )
    .await?;
    Ok(axum::Json(Revoked {
        revoked: revoked.len(),
    }))
}

crate::problems!(RevokeSessionErrors: ApiError::SessionNotFound);

/// Forced logout of one device.
#[utoipa::path(
    delete, path = "/admin/sessions/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses(
        RevokeSessionErrors,
        (status = 204, description = "Revoked"),
    )
)]
async fn revoke_session(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_uuid(&id).ok_or(ApiError::SessionNotFound)?;
    session::revoke::revoke(
        &state,
        Target::Session(id),
        RevokeReason::AdminRevoked,
        Actor::Admin(admin.user_id),
        &client,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
