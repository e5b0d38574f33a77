//! Liveness, readiness, and this API's own description.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::ApiError,
    http::openapi::{self, json_response},
    state::AppState,
    telemetry::metrics::Gauges,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json))
}

#[derive(Serialize, ToSchema)]
struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// The process is up. Touches nothing else.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

crate::problems!(ReadyzErrors: ApiError::Unavailable);

/// Ready to serve: the database answers within a second.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        ReadyzErrors,
        (status = 200, body = Status),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db);
    match tokio::time::timeout(Duration::from_secs(1), ping).await {
        Ok(Ok(_)) => Ok(Json(Status { status: "ready" })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::DatabaseUnavailable)
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            Err(ApiError::DatabaseUnavailable)
        }
    }
}

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
async fn openapi_json(State(state): State<AppState>) -> Response {
    let doc = state.openapi.get_or_init(|| {
        let doc = crate::http::openapi_document(&state.config);
        openapi::document(&doc).into()
    });
    json_response(doc)
}

/// Prometheus metrics (OpenMetrics text). Only on AUTHD_METRICS_BIND when that is set. Reads
/// in-memory values, plus the live-session count at most once per 10 s (a scrape flood cannot
/// load the database).
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text exposition", content_type = "application/openmetrics-text", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // The one database read, at most once per ACTIVE_SESSIONS_EVERY whatever the scrape rate.
    if state.metrics.claim_active_sessions_recount() {
        let count = crate::db::sessions::count_live(&state.db);
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), count).await {
            state.metrics.set_active_sessions(n);
        }
    }
    let gauges = Gauges {
        argon2_queue: state.hasher.queue_depth() as i64,
        argon2_completed: state.hasher.completed() as i64,
        pool_size: i64::from(state.db.size()),
        pool_idle: state.db.num_idle() as i64,
        pool_max: i64::from(state.config.db_max_connections),
        listener_up: state.revocations.is_live(),
        denylist_size: state.revocations.len() as i64,
        revocation_db_fallbacks: state.revocations.fallbacks() as i64,
        rate_limit_keys: state.rate_limits.as_ref().map_or(0, |r| r.keys() as i64),
        feed_subscribers: state.feed.subscribers() as i64,
    };
    match state.metrics.encode(gauges) {
        Ok(body) => {
            let mut res = body.into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            res
        }
        Err(_) => ApiError::internal("metrics encoding failed").into_response(),
    }
}
