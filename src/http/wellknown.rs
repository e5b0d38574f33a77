//! Public keys for verifying access tokens (RFC 7517 JWK Set).

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
    OpenApiRouter::new().routes(routes!(jwks))
}

/// `tokens::keys::JWKS_MAX_AGE`: short enough that a resource server sees a new key within
/// minutes even without refetching on an unknown `kid`; a rotated key signs only after it.
const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// An Ed25519 public key (RFC 8037).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Jwk {
    #[schema(example = "OKP")]
    kty: String,
    #[schema(example = "Ed25519")]
    crv: String,
    /// The public key, base64url.
    x: String,
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
