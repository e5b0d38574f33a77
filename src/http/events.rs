//! The audit trail: `GET /auth/events` (the caller's own) and `GET /admin/users/{id}/events`.
//! Newest first, paginated with `?limit=` (1..=100, default 50) and `?before=<event id>`; the
//! response's `next_before` is the cursor for the next page (null on the last one).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    db::{self, events::StoredEvent},
    error::ApiError,
    http::extract::{Path, Query, parse_uuid},
    http::extractors::{AdminUser, AuthUser},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(own_events))
        .routes(routes!(user_events))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Page size, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Only events older than this event id (the previous page's `next_before`).
    #[param(minimum = 1)]
    before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<StoredEvent>,
    /// Cursor for the next page, null on the last one.
    pub next_before: Option<i64>,
}

async fn page(state: &AppState, user_id: Uuid, page: Page) -> Result<EventPage, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 100"));
    }
    if page.before.is_some_and(|b| b < 1) {
        return Err(ApiError::validation(
            "before",
            "must be a positive event id",
        ));
    }
    let events = db::events::list(&state.db, user_id, page.before, limit).await?;
    let next_before = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(EventPage {
        events,
        next_before,
    })
}

crate::problems!(OwnEventsErrors: ApiError::Validation(vec![]));

/// The caller's own account history. Events an admin caused (a forced logout, a disabled
/// account, changed roles) say `actor: "admin"` without the admin's id, IP or user agent.
#[utoipa::path(
    get, path = "/auth/events", tag = "sessions", security(("bearer" = [])), params(Page),
    responses(
        OwnEventsErrors,
        (status = 200, description = "Events, newest first", body = EventPage),
    )
)]
async fn own_events(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<Page>,
) -> Result<axum::Json<EventPage>, ApiError> {
    let mut page = page(&state, auth.user_id, q).await?;
    page.events
        .iter_mut()
        .for_each(StoredEvent::hide_other_actor);
    Ok(axum::Json(page))
}

crate::problems!(UserEventsErrors: ApiError::Validation(vec![]), ApiError::UserNotFound);

/// A user's account history, with every actor's id, IP and user agent. For a deleted user, what
/// the trail keeps: the `user_deleted` tombstone and what admins did to the account.
#[utoipa::path(
    get, path = "/admin/users/{id}/events", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)"), Page),
    responses(
        UserEventsErrors,
        (status = 200, description = "Events, newest first", body = EventPage),
    )
)]
async fn user_events(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(q): Query<Page>,
) -> Result<axum::Json<EventPage>, ApiError> {
    let id = parse_uuid(&id).ok_or(ApiError::UserNotFound)?;
    if db::users::by_id(&state.db, id).await?.is_none()
        && !db::events::any_for(&state.db, id).await?
    {
        return Err(ApiError::UserNotFound);
    }
    Ok(axum::Json(page(&state, id, q).await?))
}
