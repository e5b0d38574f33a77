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
