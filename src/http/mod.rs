//! The HTTP API: one module per resource, each exposing `router()`.

pub mod admin;
pub mod auth;
pub mod extract;
pub mod introspect;
pub mod middleware;
pub mod ops;
pub mod sessions;
pub mod wellknown;

use axum::{Router, extract::DefaultBodyLimit, middleware::from_fn};
use tower_http::trace::TraceLayer;

use crate::{error::ApiError, state::AppState};

/// Every route, with the layers that apply to all of them.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(auth::router())
        .merge(introspect::router())
        .merge(sessions::router())
        .merge(admin::router())
        .merge(wellknown::router())
        .merge(ops::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(from_fn(middleware::deadline))
        .layer(middleware::cors(&state.config))
        .layer(from_fn(middleware::security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
