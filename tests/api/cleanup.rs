//! The cleanup task: ended sessions, dead tombstones and old audit events, in batches — never a
//! row a live access token still needs, whatever the retention.

use std::time::Duration;

use authd::app::cleanup;
use uuid::Uuid;

use crate::{audit::kinds, helpers::*};

#[tokio::test]
async fn cleanup_deletes_ended_sessions_in_batches_and_nothing_else() {
    let app = spawn_app().await;
    let live = app.signup_and_login("ann@example.test").await;
    let mut ended = Vec::new();
    for _ in 0..3 {
        ended.push(app.login("ann@example.test").await);
    }
    app.refresh(&ended[0].refresh).await;
    let recently_revoked = app.login("ann@example.test").await;
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1")
        .bind(recently_revoked.session_id)
        .execute(&app.db)
        .await
        .unwrap();
    // Ended long ago (one revoked, two idle- and absolutely expired), their last access tokens
    // long dead.
    for (i, t) in ended.iter().enumerate() {
        let sql = if i == 0 {
            "UPDATE sessions SET revoked_at = now() - interval '2 days', access_expires_at = now() - interval '2 days' WHERE id = $1"
        } else {
            "UPDATE sessions SET created_at = now() - interval '40 days', expires_at = now() - interval '2 days', absolute_expires_at = now() - interval '1 day', access_expires_at = now() - interval '1 day' WHERE id = $1"
        };
        sqlx::query(sql)
            .bind(t.session_id)
            .execute(&app.db)
            .await
            .unwrap();
    }
    let deleted = cleanup::run_once(&app.db, Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM sessions ORDER BY created_at")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&live.session_id) && left.contains(&recently_revoked.session_id));
    let orphans: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE session_id <> ALL($1)")
            .bind(&left)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(orphans, 0, "their refresh tokens went with them");
    app.refresh(&live.refresh).await;
}

#[tokio::test]
async fn old_events_are_cleaned_up() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    sqlx::query(
        "UPDATE auth_events SET at = now() - interval '100 days'
         WHERE kind IN ('user_registered', 'email_verification_sent')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let n = cleanup::events_once(&app.db, Duration::from_secs(90 * 86_400))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        kinds(&app, "/auth/events", &t.access).await,
        ["login_succeeded"]
    );
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}

#[tokio::test]
async fn a_short_retention_never_deletes_a_session_whose_tokens_are_alive() {
    let app = spawn_app().await;
    wait_live(&app).await;
    let revoked = app.signup_and_login("ann@example.test").await;
    let idle = app.login("ann@example.test").await;
    let res = app
        .delete(
            &format!("/auth/sessions/{}", revoked.session_id),
            &idle.access,
        )
        .await;
    assert_eq!(res.status(), 204);
    // Revoked two days ago / idle-expired two days ago, but their 15 min access tokens were
    // issued just now: a retention of one second must not delete them.
    sqlx::query("UPDATE sessions SET revoked_at = now() - interval '2 days' WHERE id = $1")
        .bind(revoked.session_id)
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE sessions SET expires_at = now() - interval '2 days' WHERE id = $1")
        .bind(idle.session_id)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        cleanup::run_once(&app.db, Duration::from_secs(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(count(&app, "SELECT count(*) FROM sessions").await, 2);

    // So an instance that (re)loads its deny-list still rejects the revoked session's token.
    let fresh = spawn_on_same_db(&app, |_| {}).await;
    wait_live(&fresh).await;
    let fallbacks = fresh.state.revocations.fallbacks();
    assert_problem(
        fresh.get("/auth/me", &revoked.access).await,
        401,
        "session_revoked",
    )
    .await;
    assert_eq!(fresh.me_status(&idle.access).await, 200);
    assert_eq!(
        fresh.state.revocations.fallbacks(),
        fallbacks,
        "from memory"
    );

    // Once the tokens are dead, both go, without leaving tombstones.
    sqlx::query("UPDATE sessions SET access_expires_at = now() - interval '2 minutes'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        cleanup::run_once(&app.db, Duration::from_secs(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM session_tombstones").await,
        0
    );
}

#[tokio::test]
async fn tombstones_of_deleted_sessions_are_purged_once_their_tokens_are_dead() {
    let app = spawn_app().await;
    for email in ["ann@example.test", "bob@example.test"] {
        app.signup_and_login(email).await;
    }
    app.login("bob@example.test").await;
    sqlx::query("DELETE FROM users WHERE email = 'bob@example.test'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        count(&app, "SELECT count(*) FROM session_tombstones").await,
        2
    );
    assert_eq!(
        cleanup::tombstones_once(&app.db).await.unwrap(),
        0,
        "tokens alive"
    );
    sqlx::query("UPDATE session_tombstones SET access_expires_at = now() - interval '1 minute'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(cleanup::tombstones_once(&app.db).await.unwrap(), 2);
    assert_eq!(
        count(&app, "SELECT count(*) FROM sessions").await,
        1,
        "ann's"
    );
}

#[tokio::test]
async fn superseded_refresh_tokens_are_pruned_and_still_detected_as_reuse() {
    let app = spawn_app_with(|c| {
        c.refresh_grace = Duration::ZERO;
        c.rate_limit = false;
    })
    .await;
    let first = app.signup_and_login("ann@example.test").await;
    let mut chain = vec![first.refresh.clone()];
    for _ in 0..70 {
        let next = app.refresh(chain.last().unwrap()).await;
        chain.push(next.refresh);
    }
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM refresh_tokens")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    assert_eq!(rows().await, 71);
    let pruned = authd::app::cleanup::tokens_once(&app.db, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        pruned, 68,
        "all used tokens but the checkpoints (generations 0 and 64)"
    );
    assert_eq!(rows().await, 3);
    // The current token still works, and a pruned superseded one is still reuse.
    let current = app.refresh(chain.last().unwrap()).await;
    assert_problem(
        app.refresh_with(&chain[5]).await,
        401,
        "refresh_token_reused",
    )
    .await;
    assert_eq!(
        app.revoked_reason(first.session_id).await.as_deref(),
        Some("refresh_token_reused")
    );
    assert_problem(
        app.refresh_with(&current.refresh).await,
        401,
        "session_revoked",
    )
    .await;
    // A pruned token of a revoked session says so; a never-issued one is unknown.
    assert_problem(app.refresh_with(&chain[63]).await, 401, "session_revoked").await;
    let never = "A".repeat(43);
    assert_problem(app.refresh_with(&never).await, 401, "refresh_token_invalid").await;
}
