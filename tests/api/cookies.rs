//! Several refresh cookies of our name in one request (a sibling subdomain's, one left behind by a
//! change of AUTHD_COOKIE_PATH or AUTHD_COOKIE_DOMAIN): none may end, clear or switch a live
//! session.

use reqwest::Response;

use crate::helpers::*;

async fn refresh_with_header(app: &TestApp, cookie_header: &str) -> Response {
    app.client
        .post(app.url("/auth/refresh"))
        .header("cookie", cookie_header)
        .send()
        .await
        .unwrap()
}

async fn session_is_live(app: &TestApp, t: &Tokens) -> bool {
    app.revoked_reason(t.session_id).await.is_none() && app.me_status(&t.access).await == 200
}

#[tokio::test]
async fn a_junk_cookie_before_ours_is_ignored() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let res = refresh_with_header(
        &app,
        &format!("authd_refresh=planted-junk; authd_refresh={}", t.refresh),
    )
    .await;
    assert_eq!(res.status(), 200);
    let next = tokens_from(res).await;
    assert_eq!(next.session_id, t.session_id);
}

#[tokio::test]
async fn a_stale_cookie_of_the_same_session_is_not_reuse() {
    // What a browser holds after AUTHD_COOKIE_PATH changed: the old path's cookie (a used token)
    // is sent first, beside the current one.
    let app = spawn_app_with(|c| c.refresh_grace = std::time::Duration::ZERO).await;
    let t0 = app.signup_and_login("ann@example.test").await;
    let t1 = app.refresh(&t0.refresh).await;
    let res = refresh_with_header(
        &app,
        &format!("authd_refresh={}; authd_refresh={}", t0.refresh, t1.refresh),
    )
    .await;
    assert_eq!(res.status(), 200, "the current token is used");
    let t2 = tokens_from(res).await;
    assert_eq!(t2.session_id, t0.session_id);
    assert!(session_is_live(&app, &t2).await, "no reuse was detected");

    // Alone, the stale token is still reuse (the rules apply to the one token presented).
    assert_problem(
        app.refresh_with(&t0.refresh).await,
        401,
        "refresh_token_reused",
    )
    .await;
}

#[tokio::test]
async fn a_planted_cookie_of_another_account_switches_nothing() {
    let app = spawn_app().await;
    let victim = app.signup_and_login("victim@example.test").await;
    let attacker = app.signup_and_login("attacker@example.test").await;
    // The attacker's cookie (a sibling subdomain's, more specific path) comes first.
    let res = refresh_with_header(
        &app,
        &format!(
            "authd_refresh={}; authd_refresh={}",
            attacker.refresh, victim.refresh
        ),
    )
    .await;
    let cleared = set_cookies(&res);
    assert_problem(res, 401, "refresh_token_invalid").await;
    assert!(cleared.is_empty(), "nothing is cleared: {cleared:?}");
    // Both sessions are untouched: each token alone still refreshes to its own account.
    let v = app.refresh(&victim.refresh).await;
    assert_eq!(v.body["user"]["email"], "victim@example.test");
    let a = app.refresh(&attacker.refresh).await;
    assert_eq!(a.body["user"]["email"], "attacker@example.test");
}

#[tokio::test]
async fn a_large_cookie_header_is_still_read() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let filler: String = (0..40)
        .map(|i| format!("other{i}={}; ", "x".repeat(250)))
        .collect();
    let header = format!("{filler}authd_refresh={}", t.refresh);
    assert!(header.len() > 8 * 1024);
    let res = refresh_with_header(&app, &header).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn logout_with_a_stale_or_foreign_cookie_ends_nothing_live() {
    let app = spawn_app_with(|c| c.refresh_grace = std::time::Duration::ZERO).await;
    let t0 = app.signup_and_login("ann@example.test").await;
    let t1 = app.refresh(&t0.refresh).await;
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .header(
            "cookie",
            format!("authd_refresh={}; authd_refresh=junk", t0.refresh),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(
        session_is_live(&app, &t1).await,
        "a stale token logs nothing out"
    );
    // The current token does.
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .header(
            "cookie",
            format!("authd_refresh=junk; authd_refresh={}", t1.refresh),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.revoked_reason(t1.session_id).await.as_deref(),
        Some("logout")
    );
}
