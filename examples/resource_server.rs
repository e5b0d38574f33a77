//! A separate API that trusts authd's access tokens without calling authd per request, using
//! the `authd-verifier` crate (crates/authd-verifier): tokens are verified offline against
//! authd's JWKS, and authd's revocation feed (`GET /auth/revocations`) keeps a deny-list, so a
//! revoked session ("sign out this device", an admin's revoke-all) is refused here within a
//! second, long before its access token expires.
//!
//! ```sh
//! AUTHD_URL=http://localhost:8080 AUTHD_RESOURCE_SECRET=... cargo run --example resource_server
//! curl -s localhost:3000/hello -H "Authorization: Bearer $TOKEN"
//! ```
//!
//! - Verification follows authd's rules: EdDSA pinned, `typ: at+jwt`, `iss`/`aud`/`exp`/`nbf`
//!   checked, `crit` refused, keys only from the JWKS URL (refetched on an unknown `kid`, at most
//!   once a second, and when the feed announces a key change).
//! - When the feed has been stale for AUTHD_FEED_STALE_AFTER seconds (authd unreachable, or not
//!   sure it knows every revocation), AUTHD_FEED_POLICY decides: `reject` every token (fail
//!   closed) or `introspect` each one with authd (`POST /auth/introspect`, RFC 7662).
//! - `/hello` uses the `AuthdClaims` extractor; `/admin` sits behind the `AuthdLayer` tower layer
//!   and reads the verified claims from the request extensions.
//!
//! Environment: AUTHD_URL (default http://localhost:8080), AUTHD_ISSUER (default AUTHD_URL),
//! AUTHD_AUDIENCE (default authd), BIND (default 127.0.0.1:3000), AUTHD_RESOURCE_SECRET
//! (required: authd's secret of the feed), AUTHD_FEED_POLICY (`reject`, the default, or
//! `introspect`), AUTHD_INTROSPECTION_SECRET (required by `introspect`), AUTHD_FEED_STALE_AFTER
//! (seconds, default 5), AUTHD_CA_FILE (PEM file of CA certificates to trust for an `https`
//! AUTHD_URL besides the system's, e.g. an internal CA).

use std::time::Duration;

use authd_verifier::{AuthdClaims, Claims, Config, FailurePolicy, Verifier};
use axum::{
    Extension, Json, Router,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

async fn hello(AuthdClaims(claims): AuthdClaims) -> Json<Value> {
    Json(json!({ "hello": claims.sub, "session": claims.sid, "roles": claims.roles }))
}

async fn admin_only(Extension(claims): Extension<Claims>) -> Response {
    if claims.roles.iter().any(|r| r == "admin") {
        Json(json!({ "secret": "for admins" })).into_response()
    } else {
        (StatusCode::FORBIDDEN, Json(json!({"code": "forbidden"}))).into_response()
    }
}

fn config() -> Result<Config, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let authd = env("AUTHD_URL").unwrap_or_else(|| "http://localhost:8080".into());
    let secret = env("AUTHD_RESOURCE_SECRET").ok_or("AUTHD_RESOURCE_SECRET is required")?;
    let mut config = Config::new(authd, secret);
    if let Some(issuer) = env("AUTHD_ISSUER") {
        config.issuer = issuer;
    }
    if let Some(audience) = env("AUTHD_AUDIENCE") {
        config.audience = audience;
    }
    config.introspection_secret = env("AUTHD_INTROSPECTION_SECRET");
    config.policy = match env("AUTHD_FEED_POLICY").as_deref() {
        None | Some("reject") => FailurePolicy::Reject,
        Some("introspect") => FailurePolicy::Introspect,
        Some(other) => return Err(format!("AUTHD_FEED_POLICY={other}: reject or introspect")),
    };
    if let Some(secs) = env("AUTHD_FEED_STALE_AFTER") {
        let secs: f64 = secs
            .parse()
            .map_err(|_| format!("AUTHD_FEED_STALE_AFTER={secs}: seconds"))?;
        config.stale_after = Duration::from_secs_f64(secs);
    }
    if let Some(path) = env("AUTHD_CA_FILE") {
        config.extra_ca_pem =
            Some(std::fs::read(&path).map_err(|e| format!("AUTHD_CA_FILE={path}: {e}"))?);
    }
    Ok(config)
}

#[tokio::main]
async fn main() {
    let verifier = match config().map(|c| Verifier::start(c).map_err(|e| e.to_string())) {
        Ok(Ok(verifier)) => verifier,
        Ok(Err(e)) | Err(e) => {
            eprintln!("resource_server: {e}");
            std::process::exit(2);
        }
    };
    if !verifier.wait_fresh(Duration::from_secs(10)).await {
        eprintln!("resource_server: the revocation feed is not up yet; the failure policy applies");
    }
    let app = Router::new()
        .route("/admin", get(admin_only))
        .layer(verifier.layer())
        .route("/hello", get(hello))
        .with_state(verifier);
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
    // One line on stdout with the bound address, so scripts and tests can find a port-0 server.
    println!(
        "listening on {}",
        listener.local_addr().expect("local addr")
    );
    axum::serve(listener, app).await.expect("serve");
}
