//! The HTTP API: one module per resource, each exposing `router()`.

pub mod account;
pub mod admin;
pub mod auth;
pub mod csrf;
pub mod email;
pub mod events;
pub mod extract;
pub mod extractors;
pub mod introspect;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod revocations;
pub mod sessions;
pub mod wellknown;

use axum::{Router, extract::DefaultBodyLimit, middleware::from_fn_with_state, routing::get};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{error::ApiError, state::AppState};

/// Every route with its OpenAPI description, before layers and state.
pub fn routes(metrics_on_main_listener: bool) -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(auth::router())
        .merge(account::router())
        .merge(email::router())
        .merge(introspect::router())
        .merge(revocations::router())
        .merge(sessions::router())
        .merge(events::router())
        .merge(admin::router())
        .merge(wellknown::router())
        .merge(ops::router());
    if metrics_on_main_listener {
        api = api.routes(routes!(ops::metrics));
    }
    api
}

/// The OpenAPI document of everything served (what `/openapi.json` returns).
pub fn openapi_document(config: &crate::config::Config) -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes(config.metrics_bind.is_none()).split_for_parts();
    openapi::add_common_responses(&mut doc);
    openapi::describe_refresh_cookie(&mut doc, config);
    doc
}

/// Every route, with the layers that apply to all of them.
pub fn router(state: AppState) -> Router {
    let metrics_here = state.config.metrics_bind.is_none();
    let (api, _) = routes(metrics_here).split_for_parts();
    let mut router = api
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES));
    // Without allowed origins no browser may call cross-origin: no CORS layer (and no Vary
    // headers on every response).
    if !state.config.allowed_origins.0.is_empty() {
        router = router.layer(middleware::cors(&state.config));
    }
    router
        .layer(from_fn_with_state(state.clone(), middleware::edge))
        .with_state(state)
}

/// The router of the separate metrics listener (AUTHD_METRICS_BIND).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}
