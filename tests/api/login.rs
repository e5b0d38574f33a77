use std::time::Duration;

use authd::config::SameSite;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};

use crate::helpers::*;

fn jwt_part(token: &str, i: usize) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn login_returns_token_body_cookie_and_no_store() {
    let app = spawn_app().await;
    app.register("ann@example.test", PASSWORD).await;
    let res = app.login_response("ANN@example.test ", PASSWORD).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let t = tokens_from(res).await;

    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["expires_in"], 900);
    assert_eq!(t.body["user"]["email"], "ann@example.test");
    assert!(t.body["user"].get("password_hash").is_none());

    // Cookie: HttpOnly; Secure; SameSite=Strict; Path=/auth; Max-Age = idle TTL; no Domain.
    let attrs: Vec<&str> = t.set_cookie.split(';').map(str::trim).collect();
    for a in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth"] {
        assert!(attrs.contains(&a), "{a} in {}", t.set_cookie);
    }
    let max_age: i64 = attrs
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((604_700..=604_800).contains(&max_age), "Max-Age {max_age}");
    assert!(!t.set_cookie.contains("Domain"));
    // ≥ 256 bits, base64url.
    assert!(t.refresh.len() >= 43 && B64.decode(&t.refresh).unwrap().len() >= 32);

    let header = jwt_part(&t.access, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let kid: String = sqlx::query_scalar("SELECT kid FROM signing_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(header["kid"], kid);
    let claims = jwt_part(&t.access, 1);
    assert_eq!(claims["iss"], "http://localhost:8080");
    assert_eq!(claims["aud"], "authd");
    assert_eq!(claims["sub"], t.body["user"]["id"]);
    assert_eq!(claims["sid"], t.session_id.to_string());
    assert!(
        claims["jti"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .is_ok()
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["roles"], json!([]));

    // Only a hash of the refresh token is stored.
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 1);
    assert_eq!(hashes[0].len(), 32);
    assert_ne!(hashes[0], t.refresh.as_bytes());
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    app.register("ann@example.test", PASSWORD).await;
    let wrong = assert_problem(
        app.login_response("ann@example.test", "not the password")
            .await,
        401,
        "invalid_credentials",
    )
    .await;
    let unknown = assert_problem(
        app.login_response("bob@example.test", "not the password")
            .await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown, "identical bodies");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in() {
    let app = spawn_app().await;
    app.register("ann@example.test", PASSWORD).await;
    sqlx::query("UPDATE users SET disabled = true")
        .execute(&app.db)
        .await
        .unwrap();
    assert_problem(
        app.login_response("ann@example.test", PASSWORD).await,
        401,
        "user_disabled",
    )
    .await;
    // ...but a wrong password does not reveal that the account is disabled.
    assert_problem(
        app.login_response("ann@example.test", "not the password")
            .await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn sessions_record_user_agent_and_ip() {
    let app = spawn_app().await;
    app.register("ann@example.test", PASSWORD).await;
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("user-agent", "Phone\tBrowser/1.0")
        .json(&json!({"email": "ann@example.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let t = tokens_from(res).await;
    let list: Value = app
        .get("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["sessions"][0]["user_agent"], "PhoneBrowser/1.0",
        "control characters dropped"
    );
    assert_eq!(list["sessions"][0]["ip"], "127.0.0.1");
}

#[tokio::test]
async fn cookie_attributes_follow_config() {
    let app = spawn_app_with(|c| {
        c.cookie_secure = false;
        c.cookie_samesite = SameSite::Lax;
        c.cookie_domain = Some("example.test".into());
        c.refresh_idle_ttl = Duration::from_secs(3600);
    })
    .await;
    let t = app.signup_and_login("ann@example.test").await;
    let attrs: Vec<&str> = t.set_cookie.split(';').map(str::trim).collect();
    assert!(!attrs.contains(&"Secure"));
    assert!(attrs.contains(&"SameSite=Lax"));
    assert!(attrs.contains(&"Domain=example.test"));
    assert!(
        attrs.contains(&"Max-Age=3600") || attrs.contains(&"Max-Age=3599"),
        "{attrs:?}"
    );
}
