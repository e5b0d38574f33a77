use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn refresh_rotates_the_cookie_and_issues_a_new_access_token() {
    let app = spawn_app().await;
    let t0 = app.signup_and_login("ann@example.test").await;
    let res = app.refresh_with(&t0.refresh).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let t1 = tokens_from(res).await;
    assert_ne!(t1.refresh, t0.refresh);
    assert_ne!(t1.access, t0.access);
    assert_eq!(t1.session_id, t0.session_id);
    assert_eq!(t1.body["user"]["email"], "ann@example.test");
    for a in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth"] {
        assert!(t1.set_cookie.contains(a));
    }
    assert_eq!(app.me_status(&t1.access).await, 200);
    // The chain continues.
    let t2 = app.refresh(&t1.refresh).await;
    assert_eq!(app.me_status(&t2.access).await, 200);
}

#[tokio::test]
async fn missing_cookie_is_401_without_clearing() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&res).is_empty(), "nothing to clear");
    assert_problem(res, 401, "refresh_token_missing").await;
    // Other cookies are not ours.
    let res = app
        .client
        .post(app.url("/auth/refresh"))
        .header("cookie", "other=1; theme=dark")
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "refresh_token_missing").await;
}

#[tokio::test]
async fn malformed_and_unknown_tokens_are_invalid_and_cleared() {
    let app = spawn_app().await;
    let unknown = "A".repeat(43);
    for bad in ["garbage", "", "%00%ff", &unknown, "' OR 1=1 --"] {
        let res = app.refresh_with(bad).await;
        assert!(
            set_cookies(&res).iter().any(|c| is_clearing(c)),
            "{bad:?} clears the cookie"
        );
        assert_problem(res, 401, "refresh_token_invalid").await;
    }
}

#[tokio::test]
async fn concurrent_refreshes_all_get_the_same_successor() {
    let app = spawn_app().await;
    let t0 = app.signup_and_login("ann@example.test").await;
    let n = 16;
    let responses = join_all((0..n).map(|_| app.refresh_with(&t0.refresh))).await;
    let mut cookies = Vec::new();
    for res in responses {
        assert_eq!(
            res.status(),
            200,
            "no tab is ever logged out by a concurrent refresh"
        );
        cookies.push(refresh_set_cookie(&res));
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            app.me_status(body["access_token"].as_str().unwrap()).await,
            200
        );
    }
    assert!(
        cookies.iter().all(|c| c == &cookies[0]),
        "byte-identical successor cookies"
    );
    assert!(app.revoked_reason(t0.session_id).await.is_none());
    // Exactly one successor was stored, and it works.
    let n_tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n_tokens, 2);
    app.refresh(&cookie_value(&cookies[0])).await;
}

#[tokio::test]
async fn a_replay_within_grace_gets_the_same_successor() {
    let app = spawn_app().await;
    let t0 = app.signup_and_login("ann@example.test").await;
    let t1 = app.refresh(&t0.refresh).await;
    // The response was lost; the client retries with the old token.
    let again = app.refresh(&t0.refresh).await;
    assert_eq!(again.set_cookie, t1.set_cookie);
    assert_ne!(again.access, t1.access, "a fresh access token each time");
    assert!(app.revoked_reason(t0.session_id).await.is_none());
}

#[tokio::test]
async fn reuse_after_the_successor_was_used_revokes_that_session_only() {
    let app = spawn_app().await;
    let phone = app.signup_and_login("ann@example.test").await;
    let laptop = app.login("ann@example.test").await;
    let t1 = app.refresh(&phone.refresh).await;
    let _t2 = app.refresh(&t1.refresh).await;

    // An attacker (or a stale tab) replays the first token.
    let res = app.refresh_with(&phone.refresh).await;
    assert!(set_cookies(&res).iter().any(|c| is_clearing(c)));
    assert_problem(res, 401, "refresh_token_reused").await;
    assert_eq!(
        app.revoked_reason(phone.session_id).await.as_deref(),
        Some("refresh_token_reused")
    );

    // The whole phone session is dead: its newest token and its access tokens.
    assert_problem(app.refresh_with(&_t2.refresh).await, 401, "session_revoked").await;
    assert_eq!(app.me_status(&t1.access).await, 401);
    // The laptop is untouched.
    assert!(app.revoked_reason(laptop.session_id).await.is_none());
    app.refresh(&laptop.refresh).await;
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_session() {
    let app = spawn_app_with(|c| c.refresh_grace = Duration::from_secs(1)).await;
    let t0 = app.signup_and_login("ann@example.test").await;
    app.refresh(&t0.refresh).await;
    app.pass_time(Duration::from_millis(1300)).await;
    assert_problem(
        app.refresh_with(&t0.refresh).await,
        401,
        "refresh_token_reused",
    )
    .await;
    assert_eq!(
        app.revoked_reason(t0.session_id).await.as_deref(),
        Some("refresh_token_reused")
    );
}

#[tokio::test]
async fn zero_grace_treats_any_replay_as_reuse() {
    let app = spawn_app_with(|c| c.refresh_grace = Duration::ZERO).await;
    let t0 = app.signup_and_login("ann@example.test").await;
    app.refresh(&t0.refresh).await;
    app.pass_time(Duration::from_millis(20)).await;
    assert_problem(
        app.refresh_with(&t0.refresh).await,
        401,
        "refresh_token_reused",
    )
    .await;
}

#[tokio::test]
async fn idle_sessions_expire() {
    // Time moves in the database (pass_time), in steps that leave tens of seconds of margin for
    // the requests themselves, however slow the machine.
    let app = spawn_app_with(|c| {
        c.access_ttl = Duration::from_secs(1);
        c.refresh_idle_ttl = Duration::from_secs(60);
    })
    .await;
    let t0 = app.signup_and_login("ann@example.test").await;
    assert!(t0.set_cookie.contains("Max-Age=60") || t0.set_cookie.contains("Max-Age=59"));
    // Refreshing within the idle window keeps the session alive past its first idle deadline.
    app.pass_time(Duration::from_secs(40)).await;
    let t1 = app.refresh(&t0.refresh).await;
    app.pass_time(Duration::from_secs(40)).await; // 80 s since login: past the first deadline
    let t2 = app.refresh(&t1.refresh).await;
    // Then idle for longer than the TTL (a single attempt: a success would consume the token).
    app.pass_time(Duration::from_secs(61)).await;
    let res = app.refresh_with(&t2.refresh).await;
    assert!(set_cookies(&res).iter().any(|c| is_clearing(c)));
    assert_problem(res, 401, "session_expired").await;
}

#[tokio::test]
async fn absolute_expiry_is_never_extended() {
    // Database time (pass_time): refreshes 30 s apart against a 40 s idle TTL and a 100 s
    // maximum age, so each step has tens of seconds of margin for the requests themselves.
    let max_age = 100;
    let app = spawn_app_with(|c| {
        c.access_ttl = Duration::from_secs(1);
        c.refresh_idle_ttl = Duration::from_secs(40);
        c.session_max_age = Duration::from_secs(max_age);
    })
    .await;
    let t0 = app.signup_and_login("ann@example.test").await;
    let mut current = t0.refresh.clone();
    let mut passed = 0;
    // Keep refreshing every 30 s: the idle TTL is never reached, yet the session ends at 100 s.
    let code = loop {
        app.pass_time(Duration::from_secs(30)).await;
        passed += 30;
        let res = app.refresh_with(&current).await;
        if res.status() != 200 {
            break problem(res).await.1;
        }
        let t = tokens_from(res).await;
        let cookie_max_age: u64 = t
            .set_cookie
            .split("Max-Age=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(passed < max_age, "session outlived its max age");
        assert!(
            cookie_max_age <= max_age - passed,
            "the cookie never outlives the absolute expiry ({cookie_max_age} s at {passed} s)"
        );
        current = t.refresh;
    };
    assert_eq!(code, "session_expired");
    assert!(passed >= max_age, "ended at {passed} s, before its max age");
}

#[tokio::test]
async fn revoked_sessions_and_disabled_users_cannot_refresh() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    sqlx::query("UPDATE users SET disabled = true")
        .execute(&app.db)
        .await
        .unwrap();
    let res = app.refresh_with(&t.refresh).await;
    assert!(set_cookies(&res).iter().any(|c| is_clearing(c)));
    assert_problem(res, 401, "user_disabled").await;

    sqlx::query("UPDATE users SET disabled = false")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_problem(app.refresh_with(&t.refresh).await, 401, "session_revoked").await;
}
