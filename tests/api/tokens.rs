//! Bearer verification: a valid token passes; every forgery is 401 `invalid_token`.

use authd::tokens::jwt::{KeyMaterial, LEEWAY_SECS, unix_now};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::*;

struct Forge {
    kid: String,
    key: EncodingKey,
    public: Vec<u8>,
    claims: Value,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn forge(app: &TestApp, t: &Tokens) -> Forge {
    let (kid, der, public): (String, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT kid, private_der, public_key FROM signing_keys")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let claims: Value =
        serde_json::from_slice(&B64.decode(t.access.split('.').nth(1).unwrap()).unwrap()).unwrap();
    Forge {
        kid,
        key: EncodingKey::from_ed_der(&der),
        public,
        claims,
    }
}

impl Forge {
    fn header(&self) -> Header {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some("at+jwt".into());
        h.kid = Some(self.kid.clone());
        h
    }

    fn sign(&self, header: &Header, claims: &Value) -> String {
        encode(header, claims, &self.key).unwrap()
    }

    fn with_claim(&self, name: &str, value: Value) -> String {
        let mut c = self.claims.clone();
        c[name] = value;
        self.sign(&self.header(), &c)
    }
}

async fn assert_rejected(app: &TestApp, token: &str, code: &str, what: &str) {
    let res = app.get("/auth/me", token).await;
    assert_eq!(res.status(), 401, "{what}");
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="invalid_token""#),
        "{what}"
    );
    let (_, c, body) = problem(res).await;
    assert_eq!(c, code, "{what}: {body}");
}

#[tokio::test]
async fn a_server_signed_token_passes_and_the_forger_itself_is_sound() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let f = forge(&app, &t).await;
    let resigned = f.sign(&f.header(), &f.claims);
    assert_eq!(
        app.me_status(&resigned).await,
        200,
        "re-signing the real claims with the real key works"
    );
    let body: Value = app.get("/auth/me", &t.access).await.json().await.unwrap();
    assert_eq!(body["email"], "ann@example.test");
}

#[tokio::test]
async fn forged_tokens_are_rejected() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let f = forge(&app, &t).await;
    let header_b64 = |h: Value| B64.encode(h.to_string());
    let payload_b64 = B64.encode(f.claims.to_string());

    // alg: none
    let none = format!(
        "{}.{}.",
        header_b64(json!({"alg": "none", "typ": "at+jwt", "kid": f.kid})),
        payload_b64
    );
    assert_rejected(&app, &none, "invalid_token", "alg none").await;
    let none_upper = format!(
        "{}.{}.",
        header_b64(json!({"alg": "NONE", "typ": "at+jwt", "kid": f.kid})),
        payload_b64
    );
    assert_rejected(&app, &none_upper, "invalid_token", "alg NONE").await;

    // HS256 keyed with the public key (raw bytes, and its base64url as published in the JWKS).
    for secret in [f.public.clone(), B64.encode(&f.public).into_bytes()] {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(f.kid.clone());
        let hs = encode(&h, &f.claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_rejected(&app, &hs, "invalid_token", "HS256 with the public key").await;
    }

    assert_rejected(
        &app,
        &f.with_claim("iss", json!("https://evil.test")),
        "invalid_token",
        "wrong iss",
    )
    .await;
    assert_rejected(
        &app,
        &f.with_claim("aud", json!("other-api")),
        "invalid_token",
        "wrong aud",
    )
    .await;
    assert_rejected(
        &app,
        &f.with_claim("exp", json!(now() - 120)),
        "token_expired",
        "expired",
    )
    .await;
    assert_rejected(
        &app,
        &f.with_claim("exp", json!(format!("{}", now() + 600))),
        "invalid_token",
        "exp as a string",
    )
    .await;
    assert_rejected(
        &app,
        &f.with_claim("nbf", json!(now() + 600)),
        "invalid_token",
        "not yet valid",
    )
    .await;
    assert_rejected(
        &app,
        &f.with_claim("nbf", json!("soon")),
        "invalid_token",
        "nbf as a string",
    )
    .await;
    assert_rejected(
        &app,
        &f.with_claim("sub", json!("not-a-uuid")),
        "invalid_token",
        "sub not a uuid",
    )
    .await;
    assert_rejected(
        &app,
        &f.with_claim("roles", json!("admin")),
        "invalid_token",
        "roles not an array",
    )
    .await;
    let mut no_exp = f.claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_rejected(
        &app,
        &f.sign(&f.header(), &no_exp),
        "invalid_token",
        "no exp",
    )
    .await;

    // Header games.
    let mut h = f.header();
    h.typ = Some("JWT".into());
    assert_rejected(&app, &f.sign(&h, &f.claims), "invalid_token", "typ JWT").await;
    h.typ = None;
    assert_rejected(&app, &f.sign(&h, &f.claims), "invalid_token", "no typ").await;
    let mut h = f.header();
    h.kid = Some("unknown-kid".into());
    assert_rejected(&app, &f.sign(&h, &f.claims), "invalid_token", "unknown kid").await;
    h.kid = None;
    assert_rejected(&app, &f.sign(&h, &f.claims), "invalid_token", "no kid").await;
    let mut h = f.header();
    h.crit = Some(vec!["exp".into()]);
    assert_rejected(&app, &f.sign(&h, &f.claims), "invalid_token", "crit").await;

    // Signed by an attacker's key, which the header offers via jwk/jku, under the real kid.
    let attacker = KeyMaterial::generate(authd::config::SigningAlg::EdDSA).unwrap();
    let attacker_key = EncodingKey::from_ed_der(&attacker.private_der);
    let mut h = f.header();
    h.jku = Some("https://evil.test/jwks.json".into());
    h.x5u = Some("https://evil.test/cert.pem".into());
    let token = encode(&h, &f.claims, &attacker_key).unwrap();
    assert_rejected(&app, &token, "invalid_token", "attacker key via jku").await;
    let jwk_header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": f.kid,
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": B64.encode(&attacker.public_key)}});
    let signing_input = format!("{}.{}", header_b64(jwk_header), payload_b64);
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&attacker.private_der).unwrap();
    let sig = B64.encode(pair.sign(signing_input.as_bytes()).as_ref());
    assert_rejected(
        &app,
        &format!("{signing_input}.{sig}"),
        "invalid_token",
        "attacker key via jwk",
    )
    .await;

    // Tampering with a real token.
    let mut parts: Vec<String> = t.access.split('.').map(String::from).collect();
    let mut claims = f.claims.clone();
    claims["roles"] = json!(["admin"]);
    parts[1] = B64.encode(claims.to_string());
    assert_rejected(&app, &parts.join("."), "invalid_token", "tampered payload").await;
    let truncated = &t.access[..t.access.len() - 4];
    assert_rejected(&app, truncated, "invalid_token", "truncated signature").await;
    for junk in ["garbage", "a.b", "a.b.c", "....", &"A".repeat(5000)] {
        assert_rejected(&app, junk, "invalid_token", junk).await;
    }
}

#[tokio::test]
async fn authorization_header_shapes() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let get = |value: String| {
        app.client
            .get(app.url("/auth/me"))
            .header("authorization", value)
            .send()
    };

    assert_eq!(
        get(format!("bearer {}", t.access)).await.unwrap().status(),
        200,
        "scheme is case-insensitive"
    );
    for bad in [
        format!("Basic {}", t.access),
        "Bearer".into(),
        "Bearer ".into(),
        t.access.clone(),
    ] {
        let res = get(bad.clone()).await.unwrap();
        assert_eq!(res.status(), 401, "{bad}");
        problem(res).await;
    }
    let res = app.client.get(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_problem(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_revoked_sessions_access_token_is_rejected() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_reason = 'admin_revoked'")
        .execute(&app.db)
        .await
        .unwrap();
    let ok = eventually(std::time::Duration::from_secs(2), || async {
        app.me_status(&t.access).await == 401
    })
    .await;
    assert!(ok);
    assert_rejected(&app, &t.access, "session_revoked", "revoked session").await;
}

#[tokio::test]
async fn access_tokens_expire_with_the_configured_ttl() {
    let app = spawn_app_with(|c| c.access_ttl = std::time::Duration::from_secs(1)).await;
    let t = app.signup_and_login("ann@example.test").await;
    assert_eq!(t.body["expires_in"], 1);
    assert_eq!(app.me_status(&t.access).await, 200);
    // exp + leeway (5 s) must pass on the wall clock, which the server reads and a test cannot
    // move: poll, and give up only a minute after the token's own exp + leeway (a busy machine
    // answers late, never early).
    let payload = B64.decode(t.access.split('.').nth(1).unwrap()).unwrap();
    let exp = serde_json::from_slice::<Value>(&payload).unwrap()["exp"]
        .as_i64()
        .unwrap();
    let give_up = exp + LEEWAY_SECS as i64 + 60 - unix_now();
    let expired = eventually(
        std::time::Duration::from_secs(give_up.max(1) as u64),
        || async {
            let res = app.get("/auth/me", &t.access).await;
            res.status() == 401 && problem(res).await.1 == "token_expired"
        },
    )
    .await;
    assert!(expired);
}

#[tokio::test]
async fn tokens_living_longer_than_the_ttl_or_without_iat_are_rejected() {
    let app = spawn_app_with(|c| c.access_ttl = std::time::Duration::from_secs(600)).await;
    let t = app.signup_and_login("ann@example.test").await;
    let f = forge(&app, &t).await;
    let lifetime = |iat: i64, exp: i64| {
        let mut c = f.claims.clone();
        c["iat"] = json!(iat);
        c["exp"] = json!(exp);
        f.sign(&f.header(), &c)
    };
    let now = now();
    assert_eq!(
        app.me_status(&lifetime(now, now + 600)).await,
        200,
        "exactly the TTL"
    );
    assert_rejected(
        &app,
        &lifetime(now, now + 601),
        "invalid_token",
        "a second longer than the TTL",
    )
    .await;
    assert_rejected(
        &app,
        &lifetime(now - 60, now + 365 * 86400),
        "invalid_token",
        "a year",
    )
    .await;
    assert_rejected(
        &app,
        &lifetime(now + 3600, now + 3600 + 60),
        "invalid_token",
        "issued in the future (which would stretch the bound)",
    )
    .await;
    let mut no_iat = f.claims.clone();
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_rejected(
        &app,
        &f.sign(&f.header(), &no_iat),
        "invalid_token",
        "no iat",
    )
    .await;
}

#[tokio::test]
async fn an_old_token_of_an_unknown_key_is_expired_not_forged() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let f = forge(&app, &t).await;
    // A key this instance does not know (e.g. dropped after a rotation long ago).
    let gone = KeyMaterial::generate(authd::config::SigningAlg::EdDSA).unwrap();
    let mut h = f.header();
    h.kid = Some(gone.kid.clone());
    let key = EncodingKey::from_ed_der(&gone.private_der);
    let mut old = f.claims.clone();
    old["iat"] = json!(now() - 1000);
    old["exp"] = json!(now() - 100);
    assert_rejected(
        &app,
        &encode(&h, &old, &key).unwrap(),
        "token_expired",
        "expired, unknown kid: the client refreshes",
    )
    .await;
    assert_rejected(
        &app,
        &encode(&h, &f.claims, &key).unwrap(),
        "invalid_token",
        "unexpired, unknown kid",
    )
    .await;
    // A known key's bad signature stays invalid_token, expired or not.
    let known = {
        let mut c = old.clone();
        c["roles"] = json!(["admin"]);
        let mut h = f.header();
        h.kid = Some(f.kid.clone());
        encode(&h, &c, &key).unwrap()
    };
    assert_rejected(&app, &known, "invalid_token", "expired, bad signature").await;
}
