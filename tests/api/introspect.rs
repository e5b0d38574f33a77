//! RFC 7662 introspection for resource servers.

use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "introspection-secret-of-at-least-32-chars";

#[tokio::test]
async fn introspection_reports_active_tokens_to_authenticated_clients() {
    let app = spawn_app_with(|c| c.introspection_secret = Some(SECRET.into())).await;
    let t = app.signup_and_login("ann@example.test").await;
    let introspect = |auth: Option<String>, token: &str| {
        let mut req = app
            .client
            .post(app.url("/auth/introspect"))
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("api:{SECRET}")
        )
    );
    let res = introspect(Some(basic.clone()), &t.access).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], t.body["user"]["id"]);
    assert_eq!(body["sid"], t.session_id.to_string());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["exp"].is_i64());

    // JSON bodies and the Bearer form of the secret work too.
    let res = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(SECRET)
        .json(&json!({"token": t.access}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["active"], true);

    for junk in ["garbage", ""] {
        let body: Value = introspect(Some(basic.clone()), junk)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body, json!({"active": false}));
    }
    app.delete(&format!("/auth/sessions/{}", t.session_id), &t.access)
        .await;
    let body: Value = introspect(Some(basic.clone()), &t.access)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"active": false}), "revoked");

    for bad in [
        None,
        Some("Bearer wrong".to_string()),
        Some(format!("Bearer {SECRET}x")),
    ] {
        let res = introspect(bad, &t.access).await.unwrap();
        assert_eq!(res.headers()["www-authenticate"], r#"Basic realm="authd""#);
        assert_problem(res, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn introspection_is_off_without_a_secret() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth("anything")
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
}
