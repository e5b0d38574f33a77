//! Malformed and malicious requests: every one gets a 4xx problem+json (none a 5xx), and the
//! server still answers normally afterwards.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, header::HeaderValue};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

fn raw_json(
    app: &TestApp,
    method: Method,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("content-type", "application/json")
        .body(body)
}

#[tokio::test]
async fn hostile_requests_get_4xx_problems_and_the_server_survives() {
    let app = spawn_app_with(|c| c.rate_limit = false).await;
    let admin = app.admin().await;
    let user = app.signup_and_login("ann@example.test").await;
    let uid = app.user_id("ann@example.test").await;
    let login = |body: &'static [u8]| raw_json(&app, Method::POST, "/auth/login", body);
    let bearer = |value: HeaderValue| {
        app.client
            .get(app.url("/auth/me"))
            .header("authorization", value)
    };
    let refresh_cookie = |value: HeaderValue| {
        app.client
            .post(app.url("/auth/refresh"))
            .header("cookie", value)
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let none_token = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{}.",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            json!({"sub": uid, "sid": user.session_id, "exp": 9999999999i64}).to_string()
        )
    );

    let cases: Vec<(&str, RequestBuilder)> = vec![
        ("truncated json", login(b"{\"email\":")),
        (
            "password as number",
            login(br#"{"email":"a@b.test","password":12345678}"#),
        ),
        ("nulls", login(br#"{"email":null,"password":null}"#)),
        ("array body", login(b"[1,2,3]")),
        ("string body", login(br#""just a string""#)),
        ("missing password", login(br#"{"email":"a@b.test"}"#)),
        ("empty object", login(b"{}")),
        (
            "deep nesting",
            raw_json(&app, Method::POST, "/auth/login", deep.clone()),
        ),
        (
            "invalid utf-8",
            login(b"{\"email\":\"\xc3\x28@b.test\",\"password\":\"12345678\"}"),
        ),
        ("utf-16 bom", login(b"\xff\xfe{\x00}\x00")),
        (
            "nul in email",
            login(br#"{"email":"a\u0000@b.test","password":"12345678"}"#),
        ),
        (
            "lone surrogate",
            login(br#"{"email":"\ud800@b.test","password":"12345678"}"#),
        ),
        (
            "huge number",
            login(br#"{"email":1e999,"password":"12345678"}"#),
        ),
        (
            "duplicate keys",
            login(br#"{"email":"a@b.test","email":"c@d.test","password":"12345678"}"#),
        ),
        (
            "sql in email",
            login(br#"{"email":"' OR 1=1 --","password":"12345678"}"#),
        ),
        (
            "sql in password",
            login(br#"{"email":"ann@example.test","password":"' OR '1'='1' --"}"#),
        ),
        (
            "email 10k chars",
            raw_json(
                &app,
                Method::POST,
                "/auth/login",
                format!(
                    r#"{{"email":"{}@b.test","password":"12345678"}}"#,
                    "a".repeat(10_000)
                ),
            ),
        ),
        (
            "password 129 chars",
            raw_json(
                &app,
                Method::POST,
                "/auth/register",
                format!(r#"{{"email":"x@b.test","password":"{}"}}"#, "p".repeat(129)),
            ),
        ),
        (
            "password 15k chars",
            raw_json(
                &app,
                Method::POST,
                "/auth/login",
                format!(
                    r#"{{"email":"ann@example.test","password":"{}"}}"#,
                    "p".repeat(15_000)
                ),
            ),
        ),
        (
            "body 1 MB",
            raw_json(&app, Method::POST, "/auth/login", vec![b' '; 1 << 20]),
        ),
        (
            "body 17 KiB",
            raw_json(&app, Method::POST, "/auth/register", vec![b' '; 17 * 1024]),
        ),
        (
            "text/plain",
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "text/plain")
                .body("{}"),
        ),
        (
            "form body",
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("email=a&password=b"),
        ),
        (
            "no content type",
            app.client
                .post(app.url("/auth/register"))
                .body(r#"{"email":"x@b.test","password":"12345678"}"#),
        ),
        (
            "bogus content type",
            app.client
                .post(app.url("/auth/login"))
                .header(
                    "content-type",
                    HeaderValue::from_bytes(b"application/json\xff").unwrap(),
                )
                .body("{}"),
        ),
        (
            "bearer 10k",
            bearer(HeaderValue::from_str(&format!("Bearer {}", "A".repeat(10_000))).unwrap()),
        ),
        (
            "bearer non-ascii",
            bearer(HeaderValue::from_bytes(b"Bearer \xff\xfe.\xfd.\xfc").unwrap()),
        ),
        (
            "bearer three dots",
            bearer(HeaderValue::from_static("Bearer a.b.c")),
        ),
        (
            "bearer alg none",
            bearer(HeaderValue::from_str(&format!("Bearer {none_token}")).unwrap()),
        ),
        (
            "basic auth",
            bearer(HeaderValue::from_static("Basic dXNlcjpwYXNz")),
        ),
        (
            "two bearers",
            app.client
                .get(app.url("/auth/me"))
                .header("authorization", format!("Bearer {}", user.access))
                .header("authorization", "Bearer x"),
        ),
        (
            "cookie 6k",
            refresh_cookie(
                HeaderValue::from_str(&format!("authd_refresh={}", "A".repeat(6000))).unwrap(),
            ),
        ),
        (
            "cookie non-ascii",
            refresh_cookie(HeaderValue::from_bytes(b"authd_refresh=\xff\xfe\xfd").unwrap()),
        ),
        (
            "cookie empty",
            refresh_cookie(HeaderValue::from_static("authd_refresh=")),
        ),
        (
            "cookie sql",
            refresh_cookie(HeaderValue::from_static("authd_refresh=' OR 1=1 --")),
        ),
        (
            "cookie path traversal",
            refresh_cookie(HeaderValue::from_static(
                "authd_refresh=../../../../etc/passwd",
            )),
        ),
        (
            "session id nul",
            app.client
                .delete(app.url("/auth/sessions/%00"))
                .bearer_auth(&user.access),
        ),
        (
            "session id traversal",
            app.client
                .delete(app.url("/auth/sessions/%2e%2e%2f%2e%2e"))
                .bearer_auth(&user.access),
        ),
        (
            "user id sql",
            app.client
                .get(app.url("/admin/users/'%20OR%201=1"))
                .bearer_auth(&admin.access),
        ),
        (
            "user id 8k",
            app.client
                .get(app.url(&format!("/admin/users/{}", "9".repeat(8000))))
                .bearer_auth(&admin.access),
        ),
        (
            "uuid with braces",
            app.client
                .delete(app.url(&format!("/admin/sessions/{{{}}}", user.session_id)))
                .bearer_auth(&admin.access),
        ),
        (
            "invalid percent encoding",
            app.client
                .delete(app.url("/auth/sessions/%ff%fe"))
                .bearer_auth(&user.access),
        ),
        (
            "scope nul",
            app.client
                .delete(app.url("/auth/sessions?scope=%00"))
                .bearer_auth(&user.access),
        ),
        (
            "scope repeated",
            app.client
                .delete(app.url("/auth/sessions?scope=all&scope=others"))
                .bearer_auth(&user.access),
        ),
        (
            "admin email 10k",
            app.client
                .get(app.url(&format!("/admin/users?email={}", "a".repeat(10_000))))
                .bearer_auth(&admin.access),
        ),
        (
            "admin limit overflow",
            app.client
                .get(app.url("/admin/users?limit=99999999999999999999"))
                .bearer_auth(&admin.access),
        ),
        (
            "admin negative offset",
            app.client
                .get(app.url("/admin/users?offset=-1"))
                .bearer_auth(&admin.access),
        ),
        (
            "roles too many",
            app.client
                .patch(app.url(&format!("/admin/users/{uid}")))
                .bearer_auth(&admin.access)
                .json(&json!({"roles": vec!["a"; 2000]})),
        ),
        (
            "roles wrong type",
            app.client
                .patch(app.url(&format!("/admin/users/{uid}")))
                .bearer_auth(&admin.access)
                .json(&json!({"roles": [1, 2]})),
        ),
        (
            "disabled as string",
            app.client
                .patch(app.url(&format!("/admin/users/{uid}")))
                .bearer_auth(&admin.access)
                .json(&json!({"disabled": "true"})),
        ),
        (
            "trace method",
            app.client.request(Method::TRACE, app.url("/auth/login")),
        ),
        (
            "unknown path",
            app.client.get(app.url("/auth/../../etc/passwd")),
        ),
        (
            "origin null refresh",
            app.client
                .post(app.url("/auth/refresh"))
                .header("origin", "null"),
        ),
        (
            "cross-site logout",
            app.client
                .post(app.url("/auth/logout"))
                .header("sec-fetch-site", "cross-site"),
        ),
        (
            "password change junk",
            app.client
                .post(app.url("/auth/password"))
                .bearer_auth(&user.access)
                .header("content-type", "application/json")
                .body(r#"{"current_password":[],"new_password":{}}"#),
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for (name, req) in cases {
        let res = req.send().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let status = res.status();
        assert!(status.is_client_error(), "{name}: {status}");
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{name}");
        let body: serde_json::Value = res.json().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(body["code"].is_string(), "{name}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains(&user.access)
                && !text.contains(&user.refresh)
                && !text.contains("12345678"),
            "{name} echoes input: {text}"
        );
    }

    // Nothing was damaged, and the server still works.
    assert_eq!(app.me_status(&user.access).await, 200);
    assert_eq!(app.me_status(&admin.access).await, 200);
    app.refresh(&user.refresh).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

/// Bytes that are not HTTP at all, or HTTP that hyper refuses before axum sees it.
#[tokio::test]
async fn garbage_on_the_wire_is_refused_and_the_server_survives() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let long_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let inputs: Vec<Vec<u8>> = vec![
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello to a plain port\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bin: \xff\x00\xfe\r\n\r\n".to_vec(),
        b"NOTAMETHOD!! / HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        long_header.into_bytes(),
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 500\r\n\r\n{}".to_vec(),
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\"".to_vec(),
    ];
    for (i, bytes) in inputs.into_iter().enumerate() {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
        let head = String::from_utf8_lossy(&out[..out.len().min(12)]).to_string();
        assert!(
            out.is_empty() || head.starts_with("HTTP/1.1 4"),
            "input {i}: {head:?}"
        );
    }
    assert_eq!(app.status_of("/healthz").await, 200);
    app.signup_and_login("ann@example.test").await;
}

/// A client that never finishes its headers is cut off, instead of holding a connection forever.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "the server closed the connection");
    assert!(started.elapsed() < Duration::from_secs(25));
    assert_eq!(app.status_of("/healthz").await, 200);
}
