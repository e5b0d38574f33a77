//! Layers that apply to every response: security headers, CORS, a request deadline.

use std::time::{Duration, Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::{
    config::Config,
    error::{ApiError, DatabaseDown},
    state::AppState,
    telemetry::logs::{self as telemetry, REQUEST_ID_HEADER},
};

/// A request (body included) that takes longer than this gets 408, so a slow client cannot
/// hold a connection slot and a handler forever.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(15);

/// What every request goes through, as one layer (each layer costs an allocation and a state
/// clone per request): the request id and log span (with one "request finished" line), the
/// deadline, HTTP metrics by route template, and the
/// security headers (`X-Content-Type-Options`, `Referrer-Policy`, `X-Frame-Options`, a deny-all
/// CSP: authd serves no documents).
pub async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = telemetry::request_id_of(req.headers());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let span = telemetry::request_span(&id, &method, route);
    let started = Instant::now();
    let mut res = if state.db_health.is_down() && method != Method::OPTIONS && needs_database(route)
    {
        ApiError::DatabaseUnavailable.into_response()
    } else {
        let run = tokio::time::timeout(REQUEST_DEADLINE, next.run(req)).instrument(span.clone());
        match run.await {
            Ok(res) => res,
            Err(_) => ApiError::RequestTimeout.into_response(),
        }
    };
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    tracing::info!(parent: &span, status, latency_us = elapsed.as_micros() as u64, "request finished");
    if res.extensions().get::<DatabaseDown>().is_some() {
        state.db_health.suspect();
    }
    state.metrics.observe_http(route, &method, status, elapsed);
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(REQUEST_ID_HEADER, v);
    }
    res
}

/// Routes that can answer without the database (everything else fails fast while it is down).
fn needs_database(route: &str) -> bool {
    !matches!(
        route,
        "/healthz"
            | "/.well-known/jwks.json"
            | "/.well-known/openid-configuration"
            | "/.well-known/oauth-authorization-server"
            | "/openapi.json"
            | "/metrics"
            | "unmatched"
    )
}

/// CORS with credentials for exactly the configured origins (never `*`); others get no
/// `Access-Control-Allow-Origin`.
pub fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .allowed_origins
        .0
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600))
}
