use crate::helpers::*;

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookie() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let other = app.login("ann@example.test").await;
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", format!("authd_refresh={}", t.refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let cleared = set_cookies(&res);
    assert!(
        cleared
            .iter()
            .any(|c| is_clearing(c) && c.contains("Path=/auth")),
        "{cleared:?}"
    );
    assert_eq!(
        app.revoked_reason(t.session_id).await.as_deref(),
        Some("logout")
    );
    assert_problem(app.refresh_with(&t.refresh).await, 401, "session_revoked").await;
    assert_problem(app.get("/auth/me", &t.access).await, 401, "session_revoked").await;
    // Other devices stay logged in.
    assert_eq!(app.me_status(&other.access).await, 200);
}

#[tokio::test]
async fn logout_is_idempotent() {
    let app = spawn_app().await;
    let post = |cookie: Option<String>| {
        let mut req = app.client.post(app.url("/auth/logout"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 204);
    assert_eq!(
        post(Some(format!("authd_refresh={}", "B".repeat(43))))
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        post(Some("authd_refresh=junk".into()))
            .await
            .unwrap()
            .status(),
        204
    );
    let t = app.signup_and_login("ann@example.test").await;
    let cookie = format!("authd_refresh={}", t.refresh);
    assert_eq!(post(Some(cookie.clone())).await.unwrap().status(), 204);
    assert_eq!(post(Some(cookie)).await.unwrap().status(), 204);
}

#[tokio::test]
async fn a_bearer_alone_also_logs_out() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.revoked_reason(t.session_id).await.as_deref(),
        Some("logout")
    );
    assert_problem(app.refresh_with(&t.refresh).await, 401, "session_revoked").await;
}

#[tokio::test]
async fn logout_with_an_expired_bearer_still_ends_its_session() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    // The same claims, expired a minute ago, signed with the server's key.
    let (kid, der): (String, Vec<u8>) =
        sqlx::query_as("SELECT kid, private_der FROM signing_keys WHERE private_der IS NOT NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(t.access.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    claims["iat"] = (now - 120).into();
    claims["exp"] = (now - 60).into();
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid);
    let expired = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der)).unwrap();
    assert_problem(app.get("/auth/me", &expired).await, 401, "token_expired").await;

    let res = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.revoked_reason(t.session_id).await.as_deref(),
        Some("logout")
    );
    assert_problem(app.refresh_with(&t.refresh).await, 401, "session_revoked").await;
}
