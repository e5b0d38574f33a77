//! A separate API that trusts authd's access tokens without calling authd per request: it
//! verifies them offline against authd's JWKS.
//!
//! ```sh
//! AUTHD_URL=http://localhost:8080 cargo run --example resource_server   # listens on 127.0.0.1:3000
//! curl -s localhost:3000/hello -H "Authorization: Bearer $TOKEN"
//! ```
//!
//! - The JWKS is fetched once and cached; a token with an unknown `kid` (authd rotated its key)
//!   triggers a refetch, at most one per second, so random kids cannot make us hammer authd.
//! - The algorithm is pinned to EdDSA (never taken from the token), `typ` must be `at+jwt`,
//!   `iss`/`aud`/`exp` are checked, `crit` is refused, and keys come only from the JWKS URL we
//!   were configured with (`jku`/`jwk`/`x5u` headers are ignored).
//! - Offline verification cannot see revocation before the token expires (at most
//!   AUTHD_ACCESS_TTL). An API that needs that should call authd's `POST /auth/introspect`.
//!
//! Environment: AUTHD_URL (default http://localhost:8080), AUTHD_ISSUER (default AUTHD_URL),
//! AUTHD_AUDIENCE (default authd), BIND (default 127.0.0.1:3000).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::FromRequestParts,
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    alg: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    roles: Vec<String>,
}

struct Verifier {
    jwks_url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    validation: Validation,
}

impl Verifier {
    fn new(authd_url: &str, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            jwks_url: format!("{}/.well-known/jwks.json", authd_url.trim_end_matches('/')),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
            keys: RwLock::default(),
            last_fetch: tokio::sync::Mutex::new(None),
            validation,
        }
    }

    /// Refetches the JWKS unless that happened less than a second ago.
    async fn refresh_keys(&self) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < REFETCH_AT_MOST_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let fetched = async {
            self.http
                .get(&self.jwks_url)
                .send()
                .await?
                .error_for_status()?
                .json::<Jwks>()
                .await
        };
        match fetched.await {
            Ok(jwks) => {
                let keys = jwks
                    .keys
                    .into_iter()
                    .filter(|k| {
                        k.kty == "OKP"
                            && k.crv.as_deref() == Some("Ed25519")
                            && k.alg.as_deref() == Some("EdDSA")
                    })
                    .filter_map(|k| {
                        Some((
                            k.kid,
                            DecodingKey::from_ed_components(k.x.as_deref()?).ok()?,
                        ))
                    })
                    .collect();
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
            }
            Err(e) => eprintln!("resource_server: fetching {} failed: {e}", self.jwks_url),
        }
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }

    async fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"));
        if header.alg != Algorithm::EdDSA || !typ_ok || header.crit.is_some() {
            return None;
        }
        let kid = header.kid?;
        let key = match self.key(&kid) {
            Some(k) => k,
            None => {
                self.refresh_keys().await;
                self.key(&kid)?
            }
        };
        jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// The verified caller.
struct Caller(Claims);

impl FromRequestParts<Arc<Verifier>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        verifier: &Arc<Verifier>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)],
                Json(json!({"code": "invalid_token"})),
            )
                .into_response()
        };
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_string())
            .ok_or_else(unauthorized)?;
        verifier
            .verify(&token)
            .await
            .map(Caller)
            .ok_or_else(unauthorized)
    }
}

async fn hello(Caller(claims): Caller) -> Json<Value> {
    Json(json!({ "hello": claims.sub, "session": claims.sid, "roles": claims.roles }))
}

async fn admin_only(Caller(claims): Caller) -> Response {
    if claims.roles.iter().any(|r| r == "admin") {
        Json(json!({ "secret": "for admins" })).into_response()
    } else {
        (StatusCode::FORBIDDEN, Json(json!({"code": "forbidden"}))).into_response()
    }
}

#[tokio::main]
async fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let authd = env("AUTHD_URL", "http://localhost:8080");
    let issuer = env("AUTHD_ISSUER", &authd);
    let verifier = Arc::new(Verifier::new(
        &authd,
        &issuer,
        &env("AUTHD_AUDIENCE", "authd"),
    ));
    verifier.refresh_keys().await;
    let app = Router::new()
        .route("/hello", get(hello))
        .route("/admin", get(admin_only))
        .with_state(verifier);
    let bind = env("BIND", "127.0.0.1:3000");
    let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
    // One line on stdout with the bound address, so scripts and tests can find a port-0 server.
    println!(
        "listening on {}",
        listener.local_addr().expect("local addr")
    );
    axum::serve(listener, app).await.expect("serve");
}
