//! RFC 7662 token introspection for resource servers that want an authoritative revocation
//! check: `POST /auth/introspect` with `token=<access token>` (form or JSON), authenticated with
//! AUTHD_INTROSPECTION_SECRET as `Authorization: Bearer <secret>` or as the Basic password.
//! Disabled (404) when no secret is configured.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    db,
    error::ApiError,
    http::{auth::no_store, extract::parse_json},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(introspect))
}

#[derive(Deserialize, ToSchema)]
struct IntrospectRequest {
    /// The access token to check.
    token: String,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// RFC 7662 §2.2. Only `active` is present for an inactive token.
#[derive(Serialize, Default, ToSchema)]
struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    token_type: Option<&'static str>,
}

/// The presented client secret, from `Bearer <secret>` or Basic `<anything>:<secret>`.
fn presented_secret(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest.trim()).ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

fn unauthorized() -> Response {
    let mut res = ApiError::Unauthorized.into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="authd""#),
    );
    res
}

crate::problems!(IntrospectErrors: ApiError::Unauthorized, ApiError::NotFound);

/// RFC 7662 token introspection for resource servers (authoritative revocation check).
#[utoipa::path(
    post, path = "/auth/introspect", tag = "resource servers",
    security(("introspection_basic" = []), ("introspection_bearer" = [])),
    request_body(content(
        (IntrospectRequest = "application/x-www-form-urlencoded"),
        (IntrospectRequest = "application/json"),
    )),
    responses(
        IntrospectErrors,
        (status = 200, description = "Whether the token is active, and its claims if so", body = Introspection),
    )
)]
async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(secret) = state.config.introspection_secret.as_deref() else {
        return Err(ApiError::NotFound);
    };
    match presented_secret(&headers) {
        Some(given) if verify_slices_are_equal(&given, secret.as_bytes()).is_ok() => {}
        _ => return Ok(unauthorized()),
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let request: IntrospectRequest = match mime.as_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(&body)
            .map_err(|_| ApiError::validation("token", "is required"))?,
        "application/json" => parse_json(&body)?,
        _ => return Err(ApiError::UnsupportedMediaType),
    };
    let mut answer = Introspection::default();
    if let Ok(claims) = state.jwt.verify(&request.token) {
        // Authoritative: straight from the database, not the in-memory list. Revoked, deleted
        // (tombstoned) and unknown sessions are inactive.
        if !db::revocations::is_revoked(&state.db, claims.sid).await? {
            answer = Introspection {
                active: true,
                scope: Some(claims.roles.join(" ")),
                roles: Some(claims.roles),
                sub: Some(claims.sub),
                sid: Some(claims.sid),
                exp: Some(claims.exp),
                iat: Some(claims.iat),
                iss: Some(claims.iss),
                aud: Some(claims.aud),
                jti: Some(claims.jti),
                token_type: Some("Bearer"),
            };
        }
    }
    let mut res = axum::Json(answer).into_response();
    no_store(res.headers_mut());
    Ok(res)
}
