//! Public keys for verifying access tokens (RFC 7517 JWK Set).

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// Short enough that a resource server sees a rotated key within minutes even without
/// refetching on an unknown `kid`.
const JWKS_MAX_AGE: &str = "public, max-age=300";

async fn jwks(State(state): State<AppState>) -> Response {
    let body = state.jwt.jwks();
    let mut res = body.to_vec().into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(JWKS_MAX_AGE),
    );
    res
}
