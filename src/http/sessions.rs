//! /auth/sessions: the caller's own devices.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    db::{
        self,
        events::{self, Event},
        sessions::{RevokeReason, Session},
    },
    error::ApiError,
    http::extractors::{AuthUser, ClientInfo},
    http::{
        extract::{Path, Query, parse_uuid},
        openapi::Problem,
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, revoke_many))
        .routes(routes!(revoke_one))
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<Session>,
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    /// How many sessions were revoked.
    pub revoked: usize,
}

/// Live sessions of `user_id`, newest first, with `current` marking `current_sid`.
pub async fn live_sessions(
    state: &AppState,
    user_id: uuid::Uuid,
    current_sid: uuid::Uuid,
) -> Result<SessionList, ApiError> {
    let mut sessions = db::sessions::list_live(&state.db, user_id).await?;
    for s in &mut sessions {
        s.current = s.id == current_sid;
    }
    Ok(SessionList { sessions })
}

/// The caller's live sessions, newest first.
#[utoipa::path(
    get, path = "/auth/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions; `current` marks the caller's", body = SessionList),
        (status = 401, description = "A Bearer failure", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<axum::Json<SessionList>, ApiError> {
    Ok(axum::Json(
        live_sessions(&state, auth.user_id, auth.session_id).await?,
    ))
}

/// "Sign out that device". Revoking the current session also clears this browser's cookie.
#[utoipa::path(
    delete, path = "/auth/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "A Bearer failure", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`session_not_found` (unknown, or someone else's)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_one(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_uuid(&id).ok_or(ApiError::SessionNotFound)?;
    let mut tx = state.db.begin().await?;
    if !db::sessions::revoke_owned(&mut *tx, id, auth.user_id, RevokeReason::UserRevoked).await? {
        return Err(ApiError::SessionNotFound);
    }
    let e = Event::new("session_revoked", Some(auth.user_id), &client)
        .session(id)
        .actor(auth.user_id)
        .detail(json!({"reason": RevokeReason::UserRevoked.as_str()}));
    events::record(&mut *tx, &e).await?;
    tx.commit().await?;
    state.record_revoked(RevokeReason::UserRevoked, &[id]);
    tracing::info!(user_id = %auth.user_id, session_id = %id, "session revoked by its user");
    let mut res = StatusCode::NO_CONTENT.into_response();
    if id == auth.session_id {
        clear_cookie(&state, res.headers_mut());
    }
    Ok(res)
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Scope {
    #[default]
    All,
    Others,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ScopeQuery {
    /// `all` (default) includes the caller's own session; `others` keeps it.
    #[serde(default)]
    #[param(inline)]
    scope: Scope,
}

/// Sign out every device (`scope=all`, the default) or every other device (`scope=others`).
#[utoipa::path(
    delete, path = "/auth/sessions", tag = "sessions", security(("bearer" = [])), params(ScopeQuery),
    responses(
        (status = 200, description = "How many sessions were revoked", body = Revoked),
        (status = 400, description = "`validation_failed` (unknown scope)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A Bearer failure", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_many(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Query(q): Query<ScopeQuery>,
) -> Result<Response, ApiError> {
    let keep = (q.scope == Scope::Others).then_some(auth.session_id);
    let mut tx = state.db.begin().await?;
    let revoked =
        db::sessions::revoke_all(&mut *tx, auth.user_id, keep, RevokeReason::UserRevoked).await?;
    let scope = if keep.is_some() { "others" } else { "all" };
    let e = Event::new("sessions_revoked", Some(auth.user_id), &client)
        .session(auth.session_id)
        .actor(auth.user_id)
        .detail(json!({"reason": RevokeReason::UserRevoked.as_str(), "scope": scope, "count": revoked.len()}));
    events::record(&mut *tx, &e).await?;
    tx.commit().await?;
    state.record_revoked(RevokeReason::UserRevoked, &revoked);
    tracing::info!(user_id = %auth.user_id, revoked = revoked.len(), "sessions revoked by their user");
    let mut res = axum::Json(Revoked {
        revoked: revoked.len(),
    })
    .into_response();
    if keep.is_none() {
        clear_cookie(&state, res.headers_mut());
    }
    Ok(res)
}

fn clear_cookie(state: &AppState, headers: &mut HeaderMap) {
    headers.append(header::SET_COOKIE, state.cookies.clear());
}
