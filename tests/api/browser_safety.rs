//! CSRF, CORS, security headers, rate limits, enumeration resistance.

use reqwest::{Method, RequestBuilder};
use serde_json::json;

use crate::helpers::*;

const APP: &str = "https://app.example.test";

async fn app_with_origin() -> TestApp {
    spawn_app_with(|c| {
        c.allowed_origins = authd::config::Origins(vec![APP.into()]);
    })
    .await
}

fn with_headers(mut req: RequestBuilder, headers: &[(&str, &str)]) -> RequestBuilder {
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req
}

#[tokio::test]
async fn csrf_rejects_foreign_origins_on_refresh_and_changes_nothing() {
    let app = app_with_origin().await;
    let t = app.signup_and_login("ann@example.test").await;
    let cookie = format!("authd_refresh={}", t.refresh);
    let rejected: &[&[(&str, &str)]] = &[
        &[("origin", "https://evil.test")],
        &[("origin", "https://app.example.test.evil.test")],
        &[("origin", "http://app.example.test")],
        &[("origin", "https://app.example.test:444")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[
            ("origin", "https://evil.test"),
            ("sec-fetch-site", "same-origin"),
        ],
    ];
    for headers in rejected {
        let req = app
            .client
            .post(app.url("/auth/refresh"))
            .header("cookie", &cookie);
        let res = with_headers(req, headers).send().await.unwrap();
        assert!(
            set_cookies(&res).is_empty(),
            "a rejected request touches no cookie: {headers:?}"
        );
        assert_problem(res, 403, "csrf_rejected").await;
    }
    // Nothing changed: the very same token still rotates normally...
    let ok: &[&[(&str, &str)]] = &[
        &[("origin", APP), ("sec-fetch-site", "same-site")],
        &[
            ("origin", "http://localhost:8080"),
            ("sec-fetch-site", "same-origin"),
        ],
        &[],
    ];
    let mut current = t.refresh.clone();
    for headers in ok {
        let req = app
            .client
            .post(app.url("/auth/refresh"))
            .header("cookie", format!("authd_refresh={current}"));
        let res = with_headers(req, headers).send().await.unwrap();
        assert_eq!(res.status(), 200, "{headers:?}");
        current = tokens_from(res).await.refresh;
    }
    assert!(app.revoked_reason(t.session_id).await.is_none());
}

#[tokio::test]
async fn csrf_check_comes_first_on_logout() {
    let app = app_with_origin().await;
    let t = app.signup_and_login("ann@example.test").await;
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", format!("authd_refresh={}", t.refresh))
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "csrf_rejected").await;
    assert!(
        app.revoked_reason(t.session_id).await.is_none(),
        "not logged out"
    );
    // Even without a cookie (otherwise a no-op 204) the check answers first.
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "csrf_rejected").await;
}

#[tokio::test]
async fn cors_allows_credentials_for_configured_origins_only() {
    let app = app_with_origin().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/auth/refresh"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let res = preflight(APP).await.unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()["access-control-allow-origin"], APP);
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );

    let res = preflight("https://evil.test").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    app.register("ann@example.test", PASSWORD).await;
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", APP)
        .json(&json!({"email": "ann@example.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], APP);
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let any = app
        .client
        .get(app.url("/healthz"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_ne!(any.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;
    let responses = [
        app.client.get(app.url("/healthz")).send().await.unwrap(),
        app.client.get(app.url("/nope")).send().await.unwrap(),
        app.client.get(app.url("/auth/me")).send().await.unwrap(),
        app.client
            .post(app.url("/auth/refresh"))
            .send()
            .await
            .unwrap(),
        app.client
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    ];
    for res in responses {
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{}", res.url());
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
    }
}

#[tokio::test]
async fn login_is_limited_per_ip_and_email_even_with_the_right_password() {
    let app = spawn_app().await;
    app.register("ann@example.test", PASSWORD).await;
    for _ in 0..5 {
        assert_eq!(
            app.login_response("ann@example.test", "wrong password!")
                .await
                .status(),
            401
        );
    }
    let res = app.login_response("ann@example.test", PASSWORD).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_problem(res, 429, "rate_limited").await;
    // Another account from the same IP is still fine.
    app.register("bob@example.test", PASSWORD).await;
    assert_eq!(
        app.login_response("bob@example.test", PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn login_is_limited_per_ip_across_emails() {
    let app = spawn_app().await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for i in 0..30 {
        let status = app
            .login_response(&format!("u{i}@example.test"), "wrong password!")
            .await
            .status()
            .as_u16();
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    // A burst of 20, then one more every 3 s (20/min): on a slow machine the loop itself may
    // have earned a few more.
    let earned = (started.elapsed().as_secs() / 3) as usize;
    let limited_at = statuses.iter().position(|s| *s == 429);
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(
        limited_at.is_some_and(|i| i <= 20 + earned),
        "{statuses:?} after {earned} replenished"
    );
}

#[tokio::test]
async fn register_and_refresh_are_limited_per_ip() {
    let app = spawn_app().await;
    for i in 0..10 {
        assert_eq!(
            app.register(&format!("u{i}@example.test"), PASSWORD)
                .await
                .status(),
            201
        );
    }
    assert_problem(
        app.register("u10@example.test", PASSWORD).await,
        429,
        "rate_limited",
    )
    .await;

    let mut last = 0;
    for _ in 0..121 {
        last = app
            .client
            .post(app.url("/auth/refresh"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429, "the 121st refresh in a minute is limited");
}

#[tokio::test]
async fn forwarded_for_decides_the_client_only_when_trusted() {
    let trusted = spawn_app_with(|c| c.trust_forwarded_for = true).await;
    let untrusted = spawn_app().await;
    for app in [&trusted, &untrusted] {
        for i in 0..11 {
            let res = app
                .client
                .post(app.url("/auth/register"))
                .header("x-forwarded-for", format!("198.51.100.7, 203.0.113.{i}"))
                .json(&json!({"email": format!("u{i}@example.test"), "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            let expect = if std::ptr::eq(app, &trusted) || i < 10 {
                201
            } else {
                429
            };
            assert_eq!(res.status().as_u16(), expect, "request {i}");
        }
    }
    let t = trusted.login("u0@example.test").await;
    let list: serde_json::Value = trusted
        .get("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["sessions"][0]["ip"], "127.0.0.1",
        "no X-Forwarded-For on that login: the peer address"
    );
}

#[tokio::test]
async fn limits_can_be_turned_off() {
    let app = spawn_app_with(|c| c.rate_limit = false).await;
    for _ in 0..130 {
        assert_eq!(
            app.client
                .post(app.url("/auth/refresh"))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
    }
}

#[tokio::test]
async fn an_unknown_email_costs_one_argon2_verification_like_a_wrong_password() {
    let app = spawn_app().await;
    app.register("ann@example.test", PASSWORD).await;
    let hasher = app.state.hasher.clone();
    let before = hasher.completed();
    app.login_response("nobody@example.test", "wrong password!")
        .await;
    assert_eq!(hasher.completed() - before, 1, "unknown email");
    app.login_response("ann@example.test", "wrong password!")
        .await;
    assert_eq!(hasher.completed() - before, 2, "wrong password");
    // Out-of-range passwords never reach argon2.
    app.login_response("ann@example.test", &"x".repeat(10_000))
        .await;
    app.login_response("ann@example.test", "short").await;
    assert_eq!(hasher.completed() - before, 2);
}
