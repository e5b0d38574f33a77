//! The HTTP API: one module per resource, each exposing `router()`.

pub mod admin;
pub mod auth;
pub mod events;
pub mod extract;
pub mod introspect;
pub mod middleware;
pub mod ops;
pub mod sessions;
pub mod wellknown;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware::{from_fn, from_fn_with_state},
    routing::get,
};
use tower_http::{
    LatencyUnit,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{error::ApiError, metrics, state::AppState, telemetry};

/// Every route, with the layers that apply to all of them.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    if state.config.metrics_bind.is_none() {
        api = api.route("/metrics", get(metrics::render));
    }
    api.merge(auth::router())
        .merge(introspect::router())
        .merge(sessions::router())
        .merge(admin::router())
        .merge(events::router())
        .merge(wellknown::router())
        .merge(ops::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(from_fn(middleware::deadline))
        .layer(middleware::cors(&state.config))
        .layer(from_fn(middleware::security_headers))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        .layer(from_fn(telemetry::request_id))
        .with_state(state)
}

/// The router of the separate metrics listener (AUTHD_METRICS_BIND).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}
