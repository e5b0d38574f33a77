use serde_json::json;

use crate::helpers::*;

async fn change(app: &TestApp, access: &str, current: &str, new: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/password"))
        .bearer_auth(access)
        .json(&json!({ "current_password": current, "new_password": new }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn changing_the_password_revokes_the_other_sessions() {
    let app = spawn_app().await;
    let here = app.signup_and_login("ann@example.test").await;
    let elsewhere = app.login("ann@example.test").await;
    let res = change(&app, &here.access, PASSWORD, "a brand new passphrase").await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.revoked_reason(elsewhere.session_id).await.as_deref(),
        Some("password_changed")
    );
    assert_problem(
        app.refresh_with(&elsewhere.refresh).await,
        401,
        "session_revoked",
    )
    .await;
    assert_eq!(app.me_status(&elsewhere.access).await, 401);
    assert_eq!(app.me_status(&here.access).await, 200);
    app.refresh(&here.refresh).await;
    assert_eq!(
        app.login_response("ann@example.test", "a brand new passphrase")
            .await
            .status(),
        200
    );
    assert_problem(
        app.login_response("ann@example.test", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_current_password_changes_nothing() {
    let app = spawn_app().await;
    let here = app.signup_and_login("ann@example.test").await;
    let elsewhere = app.login("ann@example.test").await;
    assert_problem(
        change(
            &app,
            &here.access,
            "not my password",
            "a brand new passphrase",
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    assert!(app.revoked_reason(elsewhere.session_id).await.is_none());
    assert_eq!(
        app.login_response("ann@example.test", PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_new_password_is_validated() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let body = assert_problem(
        change(&app, &t.access, PASSWORD, "password1").await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert_problem(
        change(&app, &t.access, PASSWORD, "short").await,
        400,
        "validation_failed",
    )
    .await;
    let res = app
        .client
        .post(app.url("/auth/password"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
}
