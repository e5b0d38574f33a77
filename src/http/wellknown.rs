//! What other software needs to trust authd: the public keys that verify its access tokens
//! (RFC 7517 JWK Set) and the authorization server metadata that points at them (RFC 8414,
//! served at both the RFC 8414 and the OpenID Connect Discovery paths).

use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(openid_configuration))
        .routes(routes!(oauth_authorization_server))
}

/// `tokens::keys::JWKS_MAX_AGE`: short enough that a resource server sees a new key within
/// minutes even without refetching on an unknown `kid`; a rotated key signs only after it.
const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// A public signing key (RFC 7517): `OKP`/`Ed25519` (RFC 8037) with `x`, `EC`/`P-256` with `x`
/// and `y`, or `RSA` with `n` and `e` (RFC 7518 §6); `alg` is `EdDSA`, `ES256` or `RS256`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Jwk {
    #[schema(example = "OKP")]
    kty: String,
    /// OKP and EC keys.
    #[schema(example = "Ed25519")]
    crv: Option<String>,
    /// OKP: the public key; EC: the x coordinate (base64url).
    x: Option<String>,
    /// EC: the y coordinate (base64url).
    y: Option<String>,
    /// RSA: the modulus (base64url).
    n: Option<String>,
    /// RSA: the public exponent (base64url).
    e: Option<String>,
    /// Matches the `kid` header of the tokens it signed.
    kid: String,
    #[schema(example = "EdDSA")]
    alg: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    use_: String,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct JwkSet {
    /// The signing key first, then a rotated key that will sign soon (published ahead), then
    /// keys whose tokens may still be valid. A revoked key is never listed.
    keys: Vec<Jwk>,
}

/// The keys that verify authd's access tokens.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "resource servers",
    responses((status = 200, description = "JWK Set", body = JwkSet))
)]
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
        HeaderValue::from_static(JWKS_CACHE_CONTROL),
    );
    res
}

/// Authorization server metadata (RFC 8414). authd is no OAuth authorization server or OpenID
/// provider (no authorize or token endpoint, no ID tokens): the document says where its keys and
/// its resource-server endpoints are, for JWT libraries and gateways that discover them from the
/// issuer.
#[derive(Serialize, ToSchema)]
struct Metadata {
    /// `iss` of every access token (AUTHD_ISSUER).
    issuer: String,
    jwks_uri: String,
    /// authd issues no OAuth authorization responses: empty.
    response_types_supported: Vec<String>,
    /// `alg` of access tokens (RFC 9068) and security event tokens (RFC 8417): those of the
    /// keys in the JWKS (EdDSA, ES256 or RS256), the signing key's first.
    access_token_signing_alg_values_supported: Vec<String>,
    /// RFC 7662 introspection, when AUTHD_INTROSPECTION_SECRET is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// The revocation feed (`GET /auth/revocations`, SSE of RFC 8417 SETs with CAEP
    /// `session-revoked` events), when AUTHD_RESOURCE_SECRET is set. authd-specific.
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_feed_endpoint: Option<String>,
}

fn metadata(state: &AppState) -> Response {
    let config = &state.config;
    let base = config.issuer.url.trim_end_matches('/');
    let alg = state
        .jwt
        .keys()
        .algs()
        .iter()
        .map(|a| a.as_str().to_string())
        .collect();
    let doc = Metadata {
        issuer: config.issuer.url.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        response_types_supported: Vec::new(),
        access_token_signing_alg_values_supported: alg,
        introspection_endpoint: config
            .introspection_secret
            .as_ref()
            .map(|_| format!("{base}/auth/introspect")),
        introspection_endpoint_auth_methods_supported: config
            .introspection_secret
            .as_ref()
            .map(|_| vec!["client_secret_basic".into(), "bearer".into()]),
        revocation_feed_endpoint: config
            .resource_secret
            .as_ref()
            .map(|_| format!("{base}/auth/revocations")),
    };
    let mut res = axum::Json(doc).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(JWKS_CACHE_CONTROL),
    );
    res
}

/// Authorization server metadata at the OpenID Connect Discovery path.
#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "resource servers",
    responses((status = 200, description = "RFC 8414 metadata", body = Metadata))
)]
async fn openid_configuration(State(state): State<AppState>) -> Response {
    metadata(&state)
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "resource servers",
    responses((status = 200, description = "RFC 8414 metadata", body = Metadata))
)]
async fn oauth_authorization_server(State(state): State<AppState>) -> Response {
    metadata(&state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cache_lifetime_is_the_one_rotation_waits_for() {
        assert_eq!(
            super::JWKS_CACHE_CONTROL,
            format!(
                "public, max-age={}",
                crate::tokens::keys::JWKS_MAX_AGE.as_secs()
            )
        );
    }
}
