//! Authorization reads the account as it is now, not as a token remembers it (ASVS 5.0 8.3.2).

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn patch_user(app: &TestApp, token: &str, id: uuid::Uuid, body: Value) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/admin/users/{id}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_rights_at_once_on_every_instance() {
    let app = spawn_app().await;
    let other = spawn_on_same_db(&app, |_| {}).await;
    wait_live(&other).await;
    let a = app.admin().await;
    app.signup_and_login("bob@example.test").await;
    let bob_id = app.user_id("bob@example.test").await;
    let admin_id = app.user_id("admin@example.test").await;
    assert_eq!(
        patch_user(&app, &a.access, bob_id, json!({"roles": ["admin"]}))
            .await
            .status(),
        200
    );
    let bob = app.login("bob@example.test").await;
    assert_eq!(
        other.get("/admin/users", &bob.access).await.status(),
        200,
        "bob is an admin"
    );

    // A takes the role away. Bob's token, minted while he was admin, can neither re-grant
    // itself nor touch A, here or on the other instance.
    assert_eq!(
        patch_user(&app, &a.access, bob_id, json!({"roles": []}))
            .await
            .status(),
        200
    );
    // At once, on both instances: refused (403 where the revocation has not arrived yet: admin
    // rights are read from the database, never from the token) ...
    for instance in [&app, &other] {
        let regrant = patch_user(instance, &bob.access, bob_id, json!({"roles": ["admin"]})).await;
        assert!(
            matches!(regrant.status().as_u16(), 401 | 403),
            "the demoted token cannot re-grant: {}",
            regrant.status()
        );
        let disable_a =
            patch_user(instance, &bob.access, admin_id, json!({"disabled": true})).await;
        assert!(matches!(disable_a.status().as_u16(), 401 | 403));
    }
    // ... and within a second the token is dead everywhere (its session was revoked).
    for instance in [&app, &other] {
        let dead = eventually(Duration::from_secs(1), || async {
            patch_user(instance, &bob.access, bob_id, json!({"roles": ["admin"]}))
                .await
                .status()
                == 401
        })
        .await;
        assert!(dead, "the demoted token is dead within 1 s");
    }
    // Taking a role away revoked the sessions whose tokens carry it.
    assert_eq!(
        app.revoked_reason(bob.session_id).await.as_deref(),
        Some("roles_changed")
    );
    let roles: Vec<String> = sqlx::query_scalar("SELECT roles FROM users WHERE id = $1")
        .bind(bob_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(roles.is_empty());
    let disabled: bool = sqlx::query_scalar("SELECT disabled FROM users WHERE id = $1")
        .bind(admin_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!disabled);
}

#[tokio::test]
async fn admin_checks_read_the_current_roles_not_the_tokens() {
    let app = spawn_app().await;
    let a = app.admin().await;
    assert_eq!(app.get("/admin/users", &a.access).await.status(), 200);
    // A change made behind authd's back (SQL), with no session revoked: the token still says
    // admin, the account does not.
    sqlx::query("UPDATE users SET roles = '{}' WHERE email = 'admin@example.test'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_problem(app.get("/admin/users", &a.access).await, 403, "forbidden").await;
    assert_eq!(app.me_status(&a.access).await, 200, "still signed in");
}

#[tokio::test]
async fn adding_a_role_keeps_sessions_and_own_role_changes_are_audited_apart() {
    let app = spawn_app().await;
    let a = app.admin().await;
    let admin_id = app.user_id("admin@example.test").await;
    let bob = app.signup_and_login("bob@example.test").await;
    let bob_id = app.user_id("bob@example.test").await;
    let res = patch_user(&app, &a.access, bob_id, json!({"roles": ["support"]})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.me_status(&bob.access).await,
        200,
        "a new role ends nothing"
    );

    let res = patch_user(
        &app,
        &a.access,
        admin_id,
        json!({"roles": ["admin", "support"]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM auth_events WHERE user_id = $1 AND kind LIKE '%roles_changed' ORDER BY id",
    )
    .bind(admin_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(kinds, ["own_roles_changed"]);
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM auth_events WHERE user_id = $1 AND kind LIKE '%roles_changed'",
    )
    .bind(bob_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(kinds, ["roles_changed"]);
    // Bob's tokens keep working; the demoted-role rule is covered above.
    assert!(
        eventually(Duration::from_secs(1), || async {
            app.me_status(&bob.access).await == 200
        })
        .await
    );
}
