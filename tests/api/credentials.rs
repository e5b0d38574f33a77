//! Every password check is limited and recorded; a session or a password change only happens if
//! the credential it was decided on is still the current one (no race with a change or a
//! disable).

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::*;

async fn change_password(
    app: &TestApp,
    access: &str,
    current: &str,
    ip: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(access)
        .json(&json!({"current_password": current, "new_password": "a brand new passphrase"}));
    if let Some(ip) = ip {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn password_change_checks_are_limited_and_audited() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let uid = app.user_id("ann@example.test").await;
    // The login used one of the 5 checks per (IP, account) and minute.
    for _ in 0..4 {
        let res = change_password(&app, &t.access, "not the password at all", None).await;
        assert_problem(res, 401, "invalid_credentials").await;
    }
    let res = change_password(&app, &t.access, PASSWORD, None).await;
    let body = assert_problem(res, 429, "rate_limited").await;
    assert!(body["detail"].is_string());
    let failures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auth_events WHERE user_id = $1 AND kind = 'password_change_failed'",
    )
    .bind(uid)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        failures, 4,
        "every wrong current password is in the audit trail"
    );
}

#[tokio::test]
async fn guesses_at_one_account_are_bounded_across_many_ips() {
    let app = spawn_app_with(|c| c.trust_forwarded_for = true).await;
    app.register("ann@example.test", PASSWORD).await;
    let started = std::time::Instant::now();
    let mut limited_at = None;
    for i in 0..40u32 {
        let res = app
            .client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", format!("203.0.113.{}", i + 1))
            .json(&json!({"email": "ann@example.test", "password": "wrong password here"}))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            limited_at = Some(i);
            break;
        }
        assert_eq!(res.status(), 401);
    }
    // A burst of 30, then one more every 2 s (30/min), which a slow machine may have earned.
    let earned = (started.elapsed().as_secs() / 2) as u32;
    assert!(
        limited_at.is_some_and(|i| (30..=30 + earned).contains(&i)),
        "30 guesses per account per minute, from any IPs: limited at {limited_at:?}"
    );
    // Another account is not affected.
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({"email": "bob@example.test", "password": "wrong password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn one_account_cannot_fill_the_password_queue() {
    let app = spawn_app_with(|c| c.trust_forwarded_for = true).await;
    let t = app.signup_and_login("ann@example.test").await;
    // Many concurrent checks of one account, each from its own address (so no per-IP limit
    // applies): at most two reach argon2 at once, the rest are refused at once.
    let before = app.state.hasher.completed();
    let attempts = (0..12).map(|i| {
        let ip = format!("203.0.113.{}", i + 1);
        let access = t.access.clone();
        let app = &app;
        async move {
            change_password(app, &access, "not the password at all", Some(&ip))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(limited >= 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 429 || s == 401),
        "{statuses:?}"
    );
    assert_eq!(
        app.state.hasher.completed() - before,
        12 - limited,
        "refused checks cost no hashing"
    );
    // Meanwhile everybody else still logs in.
    app.register("bob@example.test", PASSWORD).await;
    assert_eq!(
        app.login_response("bob@example.test", PASSWORD)
            .await
            .status(),
        200
    );
}

/// Holds the user's row locked in a transaction of its own until `change` is applied: a request
/// started meanwhile reads the old credential, verifies it, and reaches its write while the row
/// is locked; the change then commits first.
async fn race_with<F>(app: &TestApp, email: &str, change: &str, request: F) -> reqwest::Response
where
    F: std::future::Future<Output = reqwest::Response>,
{
    let mut conn = sqlx::PgConnection::connect(&format!("{}/{}", server_url(), app.db_name))
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM users WHERE email = $1 FOR UPDATE")
        .bind(email)
        .execute(&mut *tx)
        .await
        .unwrap();
    let db = app.db.clone();
    let waiting = async move {
        // Wait until the request is blocked on the row lock, then change the user and commit.
        let blocked = eventually(Duration::from_secs(20), || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            n > 0
        })
        .await;
        assert!(blocked, "the request reached its write");
        sqlx::query(sqlx::AssertSqlSafe(change.to_string()))
            .bind(email)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    let (res, ()) = tokio::join!(request, waiting);
    res
}

#[tokio::test]
async fn a_login_racing_a_password_change_or_a_disable_creates_no_session() {
    for (change, code) in [
        (
            "UPDATE users SET password_hash = 'changed meanwhile' WHERE email = $1",
            "invalid_credentials",
        ),
        (
            "UPDATE users SET disabled = true WHERE email = $1",
            "user_disabled",
        ),
    ] {
        let app = spawn_app().await;
        app.register("ann@example.test", PASSWORD).await;
        let login = app.login_response("ann@example.test", PASSWORD);
        let res = race_with(&app, "ann@example.test", change, login).await;
        assert_problem(res, 401, code).await;
        let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(sessions, 0, "{change}");
    }
}

#[tokio::test]
async fn a_password_change_racing_another_change_or_a_disable_does_nothing() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let res = race_with(
        &app,
        "ann@example.test",
        "UPDATE users SET password_hash = 'changed meanwhile' WHERE email = $1",
        change_password(&app, &t.access, PASSWORD, None),
    )
    .await;
    assert_problem(res, 401, "invalid_credentials").await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(hash, "changed meanwhile", "the other change stands");

    // A disabled user's still-valid token cannot change the password.
    let app = spawn_app().await;
    let t = app.signup_and_login("bob@example.test").await;
    sqlx::query("UPDATE users SET disabled = true")
        .execute(&app.db)
        .await
        .unwrap();
    let res = change_password(&app, &t.access, PASSWORD, None).await;
    assert_problem(res, 401, "user_disabled").await;
    let body: Value = json!({"email": "bob@example.test", "password": "a brand new passphrase"});
    assert_eq!(app.post_json("/auth/login", &body).await.status(), 401);
}
