//! The audit trail: `GET /auth/events` (the caller's own) and `GET /admin/users/{id}/events`.
//! Newest first, paginated with `?limit=` (1..=100, default 50) and `?before=<event id>`; the
//! response's `next_before` is the cursor for the next page (null on the last one).

use axum::{Router, extract::State, routing::get};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    auth::extractors::{AdminUser, AuthUser},
    db::{self, events::StoredEvent},
    error::ApiError,
    http::extract::{Path, Query, parse_uuid},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/events", get(own_events))
        .route("/admin/users/{id}/events", get(user_events))
}

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
    before: Option<i64>,
}

#[derive(Serialize)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
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

async fn own_events(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<Page>,
) -> Result<axum::Json<EventPage>, ApiError> {
    Ok(axum::Json(page(&state, auth.user_id, q).await?))
}

async fn user_events(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(q): Query<Page>,
) -> Result<axum::Json<EventPage>, ApiError> {
    let id = parse_uuid(&id).ok_or(ApiError::UserNotFound)?;
    db::users::by_id(&state.db, id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    Ok(axum::Json(page(&state, id, q).await?))
}
