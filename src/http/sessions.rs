//! /auth/sessions: the caller's own devices.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    db::{
        self,
        sessions::{Session, SessionCursor},
    },
    domain::{ClientInfo, RevokeReason},
    error::ApiError,
    http::{
        extract::{Path, Query, parse_uuid},
        extractors::AuthUser,
    },
    session::{self, Actor, revoke::Target},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, revoke_many))
        .routes(routes!(revoke_one))
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<Session>,
    /// Cursor of the next page (pass it as `cursor`), null on the last one.
    pub next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    /// How many sessions were revoked.
    pub revoked: usize,
}

/// Paging of session lists.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The previous page's `next`.
    #[param(max_length = 128)]
    cursor: Option<String>,
}

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

fn encode_cursor(c: SessionCursor) -> String {
    let micros = c.created_at.unix_timestamp_nanos() / 1000;
    B64.encode(format!("{micros}.{}", c.id.simple()))
}

fn decode_cursor(raw: &str) -> Option<SessionCursor> {
    let text = String::from_utf8(B64.decode(raw).ok()?).ok()?;
    let (micros, id) = text.split_once('.')?;
    let created_at =
        OffsetDateTime::from_unix_timestamp_nanos(micros.parse::<i128>().ok()?.checked_mul(1000)?)
            .ok()?;
    Some(SessionCursor {
        created_at,
        id: uuid::Uuid::parse_str(id).ok()?,
    })
}

/// A page of the live sessions of `user_id`, newest first, with `current` marking `current_sid`.
pub async fn live_sessions(
    state: &AppState,
    user_id: uuid::Uuid,
    current_sid: uuid::Uuid,
    page: PageQuery,
) -> Result<SessionList, ApiError> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 1000"));
    }
    let after = match page.cursor.as_deref() {
        None => None,
        Some(raw) => Some(
            decode_cursor(raw)
                .ok_or_else(|| ApiError::validation("cursor", "is not a cursor of this list"))?,
        ),
    };
    let mut sessions = db::sessions::list_live(&state.db, user_id, after, limit + 1).await?;
    let next = if sessions.len() as i64 > limit {
        sessions.truncate(limit as usize);
        sessions.last().map(|s| {
            encode_cursor(SessionCursor {
                created_at: s.created_at,
                id: s.id,
            })
        })
    } else {
        None
    };
    for s in &mut sessions {
        s.current = s.id == current_sid;
    }
    Ok(SessionList { sessions, next })
}

crate::problems!(ListSessionsErrors: ApiError::Validation(vec![]));

/// The caller's live sessions, newest first.
#[utoipa::path(
    get, path = "/auth/sessions", tag = "sessions", security(("bearer" = [])), params(PageQuery),
    responses(
        ListSessionsErrors,
        (status = 200, description = "Live sessions; `current` marks the caller's", body = SessionList),
    )
)]
async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<SessionList>, ApiError> {
    Ok(axum::Json(
        live_sessions(&state, auth.user_id, auth.session_id, page).await?,
    ))
}

crate::problems!(RevokeOneErrors: ApiError::SessionNotFound);

/// "Sign out that device". Revoking the current session also clears this browser's cookie.
#[utoipa::path(
    delete, path = "/auth/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses(
        RevokeOneErrors,
        (status = 204, description = "Revoked"),
    )
)]
async fn revoke_one(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_uuid(&id).ok_or(ApiError::SessionNotFound)?;
    let target = Target::OwnSession {
        session: id,
        owner: auth.user_id,
    };
    session::revoke::revoke(
        &state,
        target,
        RevokeReason::UserRevoked,
        Actor::Subject,
        &client,
        Some(auth.session_id),
    )
    .await?;
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

crate::problems!(RevokeManyErrors: ApiError::Validation(vec![]));

/// Sign out every device (`scope=all`, the default) or every other device (`scope=others`).
#[utoipa::path(
    delete, path = "/auth/sessions", tag = "sessions", security(("bearer" = [])), params(ScopeQuery),
    responses(
        RevokeManyErrors,
        (status = 200, description = "How many sessions were revoked", body = Revoked),
    )
)]
async fn revoke_many(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    Query(q): Query<ScopeQuery>,
) -> Result<Response, ApiError> {
    let keep = (q.scope == Scope::Others).then_some(auth.session_id);
    let target = Target::User {
        user: auth.user_id,
        keep,
    };
    let revoked = session::revoke::revoke(
        &state,
        target,
        RevokeReason::UserRevoked,
        Actor::Subject,
        &client,
        Some(auth.session_id),
    )
    .await?;
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
