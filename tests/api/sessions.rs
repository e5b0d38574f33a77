use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

async fn list(app: &TestApp, access: &str) -> Vec<Value> {
    let res = app.get("/auth/sessions", access).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["sessions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn lists_live_sessions_newest_first_with_current() {
    let app = spawn_app().await;
    let first = app.signup_and_login("ann@example.test").await;
    let second = app.login("ann@example.test").await;
    let third = app.login("ann@example.test").await;
    app.signup_and_login("bob@example.test").await;
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1")
        .bind(third.session_id)
        .execute(&app.db)
        .await
        .unwrap();

    let sessions = list(&app, &first.access).await;
    let ids: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [second.session_id.to_string(), first.session_id.to_string()],
        "live, newest first, only Ann's"
    );
    assert_eq!(sessions[0]["current"], false);
    assert_eq!(sessions[1]["current"], true);
    for key in [
        "created_at",
        "last_used_at",
        "expires_at",
        "absolute_expires_at",
        "user_agent",
        "ip",
    ] {
        assert!(sessions[0].get(key).is_some(), "{key}");
    }
}

#[tokio::test]
async fn deleting_a_session_signs_out_that_device() {
    let app = spawn_app().await;
    let laptop = app.signup_and_login("ann@example.test").await;
    let phone = app.login("ann@example.test").await;
    let res = app
        .delete(
            &format!("/auth/sessions/{}", phone.session_id),
            &laptop.access,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.revoked_reason(phone.session_id).await.as_deref(),
        Some("user_revoked")
    );
    assert_problem(
        app.refresh_with(&phone.refresh).await,
        401,
        "session_revoked",
    )
    .await;
    assert_problem(
        app.get("/auth/me", &phone.access).await,
        401,
        "session_revoked",
    )
    .await;
    assert_eq!(list(&app, &laptop.access).await.len(), 1);
    assert_eq!(app.me_status(&laptop.access).await, 200);
}

#[tokio::test]
async fn someone_elses_or_unknown_sessions_are_404() {
    let app = spawn_app().await;
    let ann = app.signup_and_login("ann@example.test").await;
    let bob = app.signup_and_login("bob@example.test").await;
    let path = format!("/auth/sessions/{}", bob.session_id);
    assert_problem(
        app.delete(&path, &ann.access).await,
        404,
        "session_not_found",
    )
    .await;
    assert!(
        app.revoked_reason(bob.session_id).await.is_none(),
        "Bob's session untouched"
    );
    let unknown = format!("/auth/sessions/{}", Uuid::new_v4());
    assert_problem(
        app.delete(&unknown, &ann.access).await,
        404,
        "session_not_found",
    )
    .await;
    assert_problem(
        app.delete("/auth/sessions/not-a-uuid", &ann.access).await,
        404,
        "session_not_found",
    )
    .await;
}

#[tokio::test]
async fn revoke_others_keeps_the_current_session() {
    let app = spawn_app().await;
    let current = app.signup_and_login("ann@example.test").await;
    let a = app.login("ann@example.test").await;
    let b = app.login("ann@example.test").await;
    let res = app
        .delete("/auth/sessions?scope=others", &current.access)
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["revoked"], 2);
    for t in [&a, &b] {
        assert_problem(app.refresh_with(&t.refresh).await, 401, "session_revoked").await;
        assert_eq!(app.me_status(&t.access).await, 401);
    }
    assert_eq!(app.me_status(&current.access).await, 200);
    app.refresh(&current.refresh).await;
}

#[tokio::test]
async fn revoke_all_includes_the_current_session() {
    let app = spawn_app().await;
    let current = app.signup_and_login("ann@example.test").await;
    let other = app.login("ann@example.test").await;
    for path in ["/auth/sessions?scope=all", "/auth/sessions"] {
        let res = app.delete(path, &current.access).await;
        if path.ends_with("all") {
            assert_eq!(res.status(), 200);
            assert!(set_cookies(&res).iter().any(|c| is_clearing(c)));
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["revoked"], 2);
        } else {
            // The caller's own token is now revoked too.
            assert_problem(res, 401, "session_revoked").await;
        }
    }
    for t in [&current, &other] {
        assert_problem(app.refresh_with(&t.refresh).await, 401, "session_revoked").await;
    }
}

#[tokio::test]
async fn default_scope_is_all_and_bad_scopes_are_400() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    assert_problem(
        app.delete("/auth/sessions?scope=everything", &t.access)
            .await,
        400,
        "validation_failed",
    )
    .await;
    let body: Value = app
        .delete("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["revoked"], 1);
}

#[tokio::test]
async fn session_lists_are_paged_with_a_cursor() {
    let app = spawn_app_with(|c| c.rate_limit = false).await;
    let first = app.signup_and_login("ann@example.test").await;
    for _ in 0..4 {
        app.login("ann@example.test").await;
    }
    let page = |cursor: Option<String>| {
        let app = &app;
        let access = first.access.clone();
        async move {
            let mut url = "/auth/sessions?limit=2".to_string();
            if let Some(c) = cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let body: Value = app.get(&url, &access).await.json().await.unwrap();
            body
        }
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let body = page(cursor).await;
        let sessions = body["sessions"].as_array().unwrap().clone();
        sizes.push(sessions.len());
        seen.extend(
            sessions
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string()),
        );
        match body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "every session once: {seen:?}");
    assert_eq!(
        seen.last().unwrap(),
        &first.session_id.to_string(),
        "newest first"
    );
    for bad in [
        "/auth/sessions?limit=0",
        "/auth/sessions?limit=1001",
        "/auth/sessions?cursor=nope",
    ] {
        assert_problem(app.get(bad, &first.access).await, 400, "validation_failed").await;
    }
}

#[tokio::test]
async fn sessions_per_user_are_capped_least_recently_used_first() {
    let app = spawn_app_with(|c| {
        c.max_sessions = 3;
        c.rate_limit = false;
    })
    .await;
    let oldest = app.signup_and_login("ann@example.test").await;
    let second = app.login("ann@example.test").await;
    let third = app.login("ann@example.test").await;
    // The oldest is used again, so the second is now the least recently used.
    let oldest = app.refresh(&oldest.refresh).await;
    let fourth = app.login("ann@example.test").await;
    assert_eq!(
        app.revoked_reason(second.session_id).await.as_deref(),
        Some("session_limit")
    );
    for live in [&oldest, &third, &fourth] {
        assert_eq!(app.revoked_reason(live.session_id).await, None);
    }
    assert_eq!(list(&app, &fourth.access).await.len(), 3);
}

#[tokio::test]
async fn a_new_login_in_the_same_browser_supersedes_its_session() {
    let app = spawn_app().await;
    let before = app.signup_and_login("ann@example.test").await;
    let elsewhere = app.login("ann@example.test").await;
    // The browser still holds the refresh cookie of `before` when it logs in again.
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("cookie", format!("authd_refresh={}", before.refresh))
        .json(&serde_json::json!({"email": "ann@example.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let after = tokens_from(res).await;
    assert_ne!(after.session_id, before.session_id);
    assert_eq!(
        app.revoked_reason(before.session_id).await.as_deref(),
        Some("superseded")
    );
    assert_problem(
        app.get("/auth/me", &before.access).await,
        401,
        "session_revoked",
    )
    .await;
    assert_eq!(
        app.me_status(&elsewhere.access).await,
        200,
        "other devices stay"
    );
    assert_eq!(app.me_status(&after.access).await, 200);
}

#[tokio::test]
async fn a_cross_site_login_supersedes_nothing() {
    let app = spawn_app().await;
    let before = app.signup_and_login("ann@example.test").await;
    // A foreign page posting a login form (login CSRF) while the victim's cookie rides along
    // (possible with AUTHD_COOKIE_SAMESITE=None): the victim's session is not ended.
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .header("cookie", format!("authd_refresh={}", before.refresh))
        .json(&serde_json::json!({"email": "ann@example.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.revoked_reason(before.session_id).await, None);
    assert_eq!(app.me_status(&before.access).await, 200);
}
