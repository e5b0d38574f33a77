//! Instant revocation across instances: the NOTIFY-fed deny-list and its database fallback.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_session_revoked_on_b_is_rejected_by_a_within_a_second() {
    let a = spawn_app().await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let phone = a.signup_and_login("ann@example.test").await;
    let laptop = b.login("ann@example.test").await;
    assert_eq!(a.me_status(&phone.access).await, 200);
    let fallbacks = a.state.revocations.fallbacks();

    let res = b
        .delete(
            &format!("/auth/sessions/{}", phone.session_id),
            &laptop.access,
        )
        .await;
    assert_eq!(res.status(), 204);
    let rejected = eventually(Duration::from_secs(1), || async {
        a.me_status(&phone.access).await == 401
    })
    .await;
    assert!(rejected, "A rejects the revoked session's token within 1 s");
    assert_problem(
        a.get("/auth/me", &phone.access).await,
        401,
        "session_revoked",
    )
    .await;
    assert_eq!(
        a.state.revocations.fallbacks(),
        fallbacks,
        "answered from memory, not the database"
    );
    assert_eq!(a.me_status(&laptop.access).await, 200);
}

/// Committed transactions in the test's database so far (pg_stat flushes about once a second).
async fn commits(app: &TestApp) -> i64 {
    tokio::time::sleep(Duration::from_millis(1200)).await;
    sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn bearer_checks_make_no_database_query_while_the_listener_is_live() {
    let app = spawn_app().await;
    wait_live(&app).await;
    let t = app.signup_and_login("ann@example.test").await;
    app.me_status(&t.access).await; // warms the user cache
    let fallbacks = app.state.revocations.fallbacks();

    // Control: 20 requests that do read the database are counted.
    let before = commits(&app).await;
    for _ in 0..20 {
        assert_eq!(app.get("/auth/sessions", &t.access).await.status(), 200);
    }
    let control = commits(&app).await - before;
    assert!(
        control >= 20,
        "the counter sees request queries ({control})"
    );

    // 100 Bearer-authenticated /auth/me: one query each would be ≥ 100 commits; only the
    // listener's heartbeats (2/s) and our own counter reads commit meanwhile.
    let before = commits(&app).await;
    for _ in 0..100 {
        assert_eq!(app.me_status(&t.access).await, 200);
    }
    let during = commits(&app).await - before;
    assert!(during < 50, "{during} transactions for 100 requests");
    assert_eq!(
        app.state.revocations.fallbacks(),
        fallbacks,
        "no database fallback either"
    );
}

#[tokio::test]
async fn revocations_outside_the_api_reach_every_instance() {
    let a = spawn_app().await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let t = a.signup_and_login("ann@example.test").await;
    // A manual UPDATE (or the offline CLI) fires the trigger like the API does.
    sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'admin_revoked' WHERE id = $1",
    )
    .bind(t.session_id)
    .execute(&a.db)
    .await
    .unwrap();
    for app in [&a, &b] {
        let ok = eventually(Duration::from_secs(1), || async {
            app.me_status(&t.access).await == 401
        })
        .await;
        assert!(ok);
        assert!(app.state.revocations.contains(t.session_id));
    }
}

#[tokio::test]
async fn a_lost_listener_falls_back_to_the_database_and_reloads_on_reconnect() {
    let app = spawn_app().await;
    wait_live(&app).await;
    let t1 = app.signup_and_login("ann@example.test").await;
    let t2 = app.login("ann@example.test").await;
    // Kill the listener's connection, then revoke while it is (probably) down.
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'authd-listener' AND datname = current_database()")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'admin_revoked' WHERE id = $1",
    )
    .bind(t1.session_id)
    .execute(&app.db)
    .await
    .unwrap();
    let rejected = eventually(Duration::from_secs(1), || async {
        app.me_status(&t1.access).await == 401
    })
    .await;
    assert!(
        rejected,
        "never accepted for more than a second, connected or not"
    );
    // It comes back by itself, and the revocation it may have missed is in memory.
    wait_live(&app).await;
    assert!(app.state.revocations.contains(t1.session_id));
    assert_eq!(app.me_status(&t1.access).await, 401);
    assert_eq!(app.me_status(&t2.access).await, 200);
}

#[tokio::test]
async fn while_the_list_is_untrusted_checks_go_to_the_database() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    wait_live(&app).await;
    app.state.revocations.set_connected(false); // as if the listener had just died
    let before = app.state.revocations.fallbacks();
    assert_eq!(app.me_status(&t.access).await, 200);
    assert!(app.state.revocations.fallbacks() > before);
}
