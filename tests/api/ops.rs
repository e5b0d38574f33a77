use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn healthz_and_readyz() {
    let app = spawn_app().await;
    assert_eq!(app.status_of("/healthz").await, 200);
    assert_eq!(app.status_of("/readyz").await, 200);
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone_and_healthz_still_200() {
    let app = spawn_app().await;
    let admin_url = format!("{}/postgres", server_url());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r#"DROP DATABASE "{}" WITH (FORCE)"#,
        app.db_name
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let unready = eventually(std::time::Duration::from_secs(10), || async {
        app.readyz_status().await == 503
    })
    .await;
    assert!(unready);
    assert_problem(
        app.client.get(app.url("/readyz")).send().await.unwrap(),
        503,
        "unavailable",
    )
    .await;
    assert_eq!(app.status_of("/healthz").await, 200);
    // A login now is a 503, not a 500 or a hang.
    let res = app.login_response("ann@example.test", PASSWORD).await;
    assert_problem(res, 503, "unavailable").await;
}

#[tokio::test]
async fn jwks_publishes_the_signing_key() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cc = res.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(cc.starts_with("public, max-age="), "{cc}");
    let body: Value = res.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(
        (
            k["kty"].as_str(),
            k["crv"].as_str(),
            k["alg"].as_str(),
            k["use"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"), Some("sig"))
    );
    let kid: String = sqlx::query_scalar("SELECT kid FROM signing_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(k["kid"], kid);
    assert!(k.get("d").is_none(), "never the private part");

    // A token verifies with nothing but the published key.
    let t = app.signup_and_login("ann@example.test").await;
    let key = jsonwebtoken::DecodingKey::from_ed_components(k["x"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["authd"]);
    jsonwebtoken::decode::<Value>(&t.access, &key, &v).expect("verifies with the JWKS key");
}

#[tokio::test]
async fn a_second_instance_shares_keys_and_secrets() {
    let a = spawn_app().await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    let t = a.signup_and_login("ann@example.test").await;
    assert_eq!(b.me_status(&t.access).await, 200, "B verifies A's tokens");
    let t1 = b.refresh(&t.refresh).await;
    // A replay on A within grace gets the byte-identical successor B issued.
    let again = a.refresh(&t.refresh).await;
    assert_eq!(again.set_cookie, t1.set_cookie);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_keys")
        .fetch_one(&a.db)
        .await
        .unwrap();
    assert_eq!(n, 1, "one key generated, not one per instance");
}

#[tokio::test]
async fn openapi_describes_every_endpoint() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let expected = [
        ("post", "/auth/register"),
        ("post", "/auth/login"),
        ("post", "/auth/refresh"),
        ("post", "/auth/logout"),
        ("get", "/auth/me"),
        ("delete", "/auth/me"),
        ("get", "/auth/sessions"),
        ("delete", "/auth/sessions/{id}"),
        ("delete", "/auth/sessions"),
        ("post", "/auth/password"),
        ("post", "/auth/email/verify/request"),
        ("post", "/auth/email/verify"),
        ("post", "/auth/password/forgot"),
        ("post", "/auth/password/reset"),
        ("post", "/auth/email/code"),
        ("post", "/auth/email/code/verify"),
        ("post", "/auth/email/change"),
        ("get", "/auth/events"),
        ("post", "/auth/introspect"),
        ("get", "/auth/revocations"),
        ("get", "/admin/users"),
        ("get", "/admin/users/{id}"),
        ("patch", "/admin/users/{id}"),
        ("delete", "/admin/users/{id}"),
        ("get", "/admin/users/{id}/sessions"),
        ("delete", "/admin/users/{id}/sessions"),
        ("get", "/admin/users/{id}/events"),
        ("delete", "/admin/sessions/{id}"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/.well-known/openid-configuration"),
        ("get", "/.well-known/oauth-authorization-server"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    for (method, path) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} documented");
        assert!(
            op["responses"].as_object().unwrap().len() >= 2,
            "{method} {path} has its error responses"
        );
    }
    let n: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(n, expected.len(), "nothing undocumented, nothing extra");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("bearer") && schemes.contains_key("refresh_cookie"));
    assert_eq!(
        doc["paths"]["/auth/me"]["get"]["security"][0]["bearer"],
        serde_json::json!([])
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn the_openapi_document_follows_the_configuration_and_lists_generated_errors() {
    let app = spawn_app_with(|c| c.cookie_name = "my_refresh".into()).await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scheme = &doc["components"]["securitySchemes"]["refresh_cookie"];
    assert_eq!(scheme["in"], "cookie");
    assert_eq!(scheme["name"], "my_refresh");
    // Errors come from ApiError itself: each operation's own codes plus the shared ones.
    let refresh_401 = doc["paths"]["/auth/refresh"]["post"]["responses"]["401"]["description"]
        .as_str()
        .unwrap();
    for code in [
        "refresh_token_reused",
        "session_revoked",
        "refresh_token_missing",
    ] {
        assert!(refresh_401.contains(code), "{refresh_401}");
    }
    let me_401 = doc["paths"]["/auth/me"]["get"]["responses"]["401"]["description"]
        .as_str()
        .unwrap();
    assert!(
        me_401.contains("token_expired") && me_401.contains("unauthorized"),
        "{me_401}"
    );
    let admin_403 = &doc["paths"]["/admin/users"]["get"]["responses"]["403"]["description"];
    assert_eq!(admin_403, "`forbidden`");
    let password_401 = doc["paths"]["/auth/password"]["post"]["responses"]["401"]["description"]
        .as_str()
        .unwrap();
    assert!(
        password_401.starts_with("`invalid_credentials`"),
        "{password_401}"
    );
    assert!(password_401.contains("session_revoked"), "{password_401}");
}

#[tokio::test]
async fn authorization_server_metadata_points_at_the_keys_and_the_enabled_endpoints() {
    let plain = spawn_app().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc = plain.get_json(path).await;
        assert_eq!(doc["issuer"], "http://localhost:8080");
        assert_eq!(
            doc["jwks_uri"],
            "http://localhost:8080/.well-known/jwks.json"
        );
        assert_eq!(
            doc["access_token_signing_alg_values_supported"],
            serde_json::json!(["EdDSA"])
        );
        assert!(
            doc.get("introspection_endpoint").is_none(),
            "off: not advertised"
        );
        assert!(doc.get("revocation_feed_endpoint").is_none());
    }
    let on = spawn_app_with(|c| {
        c.issuer = authd::config::Issuer {
            url: "https://auth.example.test/".into(),
            origin: "https://auth.example.test".into(),
        };
        c.introspection_secret = Some("i".repeat(32));
        c.resource_secret = Some("r".repeat(32));
    })
    .await;
    let doc = on.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(doc["issuer"], "https://auth.example.test/");
    assert_eq!(
        doc["introspection_endpoint"],
        "https://auth.example.test/auth/introspect"
    );
    assert_eq!(
        doc["revocation_feed_endpoint"],
        "https://auth.example.test/auth/revocations"
    );
    assert_eq!(
        doc["jwks_uri"],
        "https://auth.example.test/.well-known/jwks.json"
    );
}
