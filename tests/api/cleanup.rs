//! The cleanup task: ended sessions and old audit events, in batches.

use std::time::Duration;

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
    // Two ended long ago (revoked / idle-expired), one expired long ago without a revocation.
    for (i, t) in ended.iter().enumerate() {
        let sql = if i == 0 {
            "UPDATE sessions SET revoked_at = now() - interval '2 days' WHERE id = $1"
        } else {
            "UPDATE sessions SET created_at = now() - interval '40 days', expires_at = now() - interval '2 days', absolute_expires_at = now() - interval '1 day' WHERE id = $1"
        };
        sqlx::query(sql)
            .bind(t.session_id)
            .execute(&app.db)
            .await
            .unwrap();
    }
    let deleted = authd::app::cleanup::run_once(&app.db, Duration::from_secs(86_400))
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
        "UPDATE auth_events SET at = now() - interval '100 days' WHERE kind = 'user_registered'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let n = authd::app::cleanup::events_once(&app.db, Duration::from_secs(90 * 86_400))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        kinds(&app, "/auth/events", &t.access).await,
        ["login_succeeded"]
    );
}
