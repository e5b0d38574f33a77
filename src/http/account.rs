//! /auth/me and /auth/password: the caller's own account (reading it, changing its password,
//! deleting it).

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    db::{self, users::User},
    domain::{ClientInfo, EventKind, NewPassword, Password},
    error::{ApiError, both},
    factors::{password, reauth},
    http::{extract::Json, extractors::AuthUser},
    session::{self, Actor},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, delete_me))
        .routes(routes!(change_password))
}

crate::problems!(MeErrors: ApiError::UserNotFound);

/// The caller. Served from the user cache while the NOTIFY listener is live (no query).
#[utoipa::path(
    get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        MeErrors,
        (status = 200, description = "The caller", body = User),
    )
)]
async fn me(State(state): State<AppState>, auth: AuthUser) -> Result<Response, ApiError> {
    let live = state.revocations.is_live();
    if live && let Some(json) = state.users.get(auth.user_id) {
        return Ok(json_response(json));
    }
    let epoch = state.users.epoch();
    let user = db::users::by_id(&state.db, auth.user_id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    let json = Bytes::from(serde_json::to_vec(&user).map_err(ApiError::internal)?);
    if live {
        state.users.insert(epoch, user.id, json.clone());
    }
    Ok(json_response(json))
}

fn json_response(json: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response()
}

#[derive(Deserialize, ToSchema)]
struct PasswordChange {
    #[schema(min_length = 8, max_length = 128)]
    current_password: String,
    /// 8 to 128 characters, not a common password.
    #[schema(min_length = 8, max_length = 128)]
    new_password: String,
}

crate::problems!(PasswordChangeErrors: ApiError::InvalidCredentials, ApiError::UserDisabled, ApiError::UserNotFound, ApiError::RateLimited { retry_after_secs: 1 });

/// Changes the password and revokes every other session of the user.
#[utoipa::path(
    post, path = "/auth/password", tag = "auth", security(("bearer" = [])), request_body = PasswordChange,
    responses(
        PasswordChangeErrors,
        (status = 204, description = "Changed; the caller's other sessions are revoked"),
    )
)]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let current = Password::parse("current_password", body.current_password);
    let new = NewPassword::parse("new_password", body.new_password);
    let (current, new) = both(current, new)?;
    let verified = password::verify_current(
        &state,
        auth.user_id,
        auth.session_id,
        &current,
        &client,
        EventKind::PasswordChangeFailed,
    )
    .await?;
    let hash = state.hasher.hash(new.expose()).await?;
    session::account::change_password(&state, &verified, auth.session_id, &hash, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
struct AccountDeletion {
    /// The current password. May be left out (send `{}`) when this session signed in with an
    /// emailed code less than 5 minutes ago: accounts created by a code have no password.
    #[schema(min_length = 8, max_length = 128)]
    current_password: Option<String>,
}

crate::problems!(DeleteMeErrors: ApiError::Validation(vec![]), ApiError::InvalidCredentials, ApiError::UserDisabled, ApiError::UserNotFound, ApiError::RateLimited { retry_after_secs: 1 });

/// Deletes the caller's account.
///
/// Every session of the account is revoked first (access tokens rejected everywhere within
/// 1 s), then the account and its credentials are deleted; the refresh cookie is cleared.
/// Re-authentication: the current
/// password (wrong: 401 `invalid_credentials`, rate-limited and audited like a login), or none
/// if this session signed in with an emailed code less than 5 minutes ago (otherwise 400
/// `validation_failed` on `current_password`). The audit trail keeps a `user_deleted`
/// tombstone without the address.
#[utoipa::path(
    delete, path = "/auth/me", tag = "auth", security(("bearer" = [])), request_body = AccountDeletion,
    responses(
        DeleteMeErrors,
        (status = 204, description = "Deleted; the cookie is cleared"),
    )
)]
async fn delete_me(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Json(body): Json<AccountDeletion>,
) -> Result<Response, ApiError> {
    let current = body
        .current_password
        .map(|p| Password::parse("current_password", p))
        .transpose()?;
    let proof = reauth::verify(
        &state,
        auth.user_id,
        auth.session_id,
        current.as_ref(),
        &client,
        EventKind::AccountDeletionFailed,
    )
    .await?;
    session::account::delete_user(
        &state,
        proof.user_id,
        Actor::Subject,
        &client,
        Some(proof.method),
    )
    .await?;
    Ok((
        [(header::SET_COOKIE, state.cookies.clear())],
        StatusCode::NO_CONTENT,
    )
        .into_response())
}
