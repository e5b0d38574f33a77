//! Metrics, request ids, and logs that never contain secrets.

use std::io::Read;

use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_logins_refreshes_revocations_and_requests() {
    let app = spawn_app().await;
    let t0 = app.signup_and_login("ann@example.test").await;
    app.login_response("ann@example.test", "wrong password!")
        .await;
    let t1 = app.refresh(&t0.refresh).await;
    app.refresh(&t0.refresh).await; // grace
    app.refresh(&t1.refresh).await;
    app.refresh_with(&t0.refresh).await; // reuse → revokes
    app.client
        .post(app.url("/auth/refresh"))
        .send()
        .await
        .unwrap(); // missing
    let other = app.login("ann@example.test").await;
    app.me_status(&other.access).await;

    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("text")
    );
    let text = res.text().await.unwrap();
    for (series, value) in [
        (r#"authd_logins_total{outcome="ok"}"#, 2.0),
        (r#"authd_logins_total{outcome="invalid_credentials"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="ok"}"#, 2.0),
        (r#"authd_refreshes_total{outcome="grace"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="reused"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="missing"}"#, 1.0),
        (
            r#"authd_revocations_total{reason="refresh_token_reused"}"#,
            1.0,
        ),
        (
            r#"authd_http_requests_total{route="/auth/me",method="GET",status="200"}"#,
            1.0,
        ),
        ("authd_active_sessions", 1.0),
        ("authd_argon2_queue_depth", 0.0),
    ] {
        assert_eq!(metric(&text, series), Some(value), "{series} in\n{text}");
    }
    for present in [
        "authd_http_request_duration_seconds_bucket",
        "authd_argon2_completed",
        r#"authd_db_pool_connections{state="max"}"#,
        "authd_revocation_listener_up",
        "authd_revocation_denylist_size",
        "authd_revocation_db_fallbacks",
    ] {
        assert!(text.contains(present), "{present}");
    }
    assert!(!text.contains(&t0.refresh) && !text.contains(&other.access));
}

#[tokio::test]
async fn metrics_can_live_on_their_own_listener() {
    let app = spawn_app_with(|c| c.metrics_bind = Some("127.0.0.1:0".parse().unwrap())).await;
    assert_problem(
        app.client.get(app.url("/metrics")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let base = app.metrics_base.clone().unwrap();
    let res = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("authd_http_requests"));
    assert_eq!(
        app.client
            .get(format!("{base}/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "only metrics there"
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc-123");
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id <script>")
        .send()
        .await
        .unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(generated.parse::<Uuid>().is_ok(), "{generated}");
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert!(
        res.headers().get("x-request-id").is_some(),
        "errors carry it too"
    );
}

/// Runs the real binary with debug logging through a full login/refresh/logout and greps its
/// output for every secret that passed through it.
#[tokio::test]
async fn logs_never_contain_tokens_cookies_or_passwords() {
    let database = TestDb::new(); // dropped at the end, also if the test fails
    let (mut child, base) = spawn_authd_process(&database.url(), &[("RUST_LOG", "debug")]).await;
    // Drain the pipes while the server runs: debug logs fill a pipe buffer within seconds.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = pipe.read_to_string(&mut out);
            out
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let client = reqwest::Client::new();
    let password = "my very secret passphrase 42";
    let creds = json!({"email": "ann@example.test", "password": password});
    client
        .post(format!("{base}/auth/register"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    let wrong = json!({"email": "ann@example.test", "password": "wrong secret passphrase 43"});
    client
        .post(format!("{base}/auth/login"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    let t0 = tokens_from(
        client
            .post(format!("{base}/auth/login"))
            .json(&creds)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let cookie = |v: &str| format!("authd_refresh={v}");
    let t1 = tokens_from(
        client
            .post(format!("{base}/auth/refresh"))
            .header("cookie", cookie(&t0.refresh))
            .send()
            .await
            .unwrap(),
    )
    .await;
    client
        .get(format!("{base}/auth/me"))
        .bearer_auth(&t1.access)
        .send()
        .await
        .unwrap();
    client
        .post(format!("{base}/auth/password"))
        .bearer_auth(&t1.access)
        .json(
            &json!({"current_password": password, "new_password": "another secret passphrase 44"}),
        )
        .send()
        .await
        .unwrap();
    let t2 = tokens_from(
        client
            .post(format!("{base}/auth/refresh"))
            .header("cookie", cookie(&t1.refresh))
            .send()
            .await
            .unwrap(),
    )
    .await;
    client
        .post(format!("{base}/auth/refresh"))
        .header("cookie", cookie(&t0.refresh))
        .send()
        .await
        .unwrap(); // reuse
    client
        .post(format!("{base}/auth/logout"))
        .header("cookie", cookie(&t2.refresh))
        .send()
        .await
        .unwrap();

    sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
    let logs = stdout.join().unwrap() + &stderr.join().unwrap();
    assert!(
        logs.contains("\"message\":\"login\""),
        "the run was logged at all"
    );
    assert!(logs.contains("refresh token reuse detected"));
    for secret in [
        password,
        "wrong secret passphrase 43",
        "another secret passphrase 44",
        &t0.refresh,
        &t1.refresh,
        &t0.access,
        &t1.access,
        &t2.refresh,
        &t2.access,
        t0.access.split('.').nth(2).unwrap(),
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
    assert!(
        !logs.to_lowercase().contains("authd_refresh="),
        "a cookie leaked into the logs"
    );
}

#[tokio::test]
async fn a_scrape_does_not_count_sessions_in_the_database_each_time() {
    let app = spawn_app().await;
    app.signup_and_login("ann@example.test").await;
    let scrape = || async {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric(&text, "authd_active_sessions")
    };
    assert_eq!(scrape().await, Some(1.0));
    // A second session, scraped at once: the count is the one from at most 10 s ago.
    app.login("ann@example.test").await;
    for _ in 0..20 {
        assert_eq!(scrape().await, Some(1.0), "no count(*) per scrape");
    }
}
