//! Account deletion (GDPR erasure): `DELETE /auth/me` (password, or a recent email-code
//! sign-in), `DELETE /admin/users/{id}` and the offline path the CLI uses. Every session is
//! revoked first (tokens rejected at once here, within 1 s on every instance), then the account
//! goes; the audit trail keeps a tombstone without the address.

use std::time::Duration;

use authd::{
    domain::ClientInfo,
    session::{self, Actor},
};
use reqwest::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

impl TestApp {
    async fn delete_me(&self, access: &str, body: Value) -> Response {
        self.client
            .delete(self.url("/auth/me"))
            .bearer_auth(access)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn user_exists(&self, id: Uuid) -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
            .bind(id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// `(kind, actor_id, ip, user_agent, detail)` of the events naming `user_id`, oldest first.
    async fn events_of(
        &self,
        user_id: Uuid,
    ) -> Vec<(String, Option<Uuid>, Option<String>, Option<String>, Value)> {
        sqlx::query_as(
            "SELECT kind, actor_id, ip, user_agent, detail FROM auth_events
             WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.db)
        .await
        .unwrap()
    }

    /// Audit rows whose text contains `needle` anywhere (any column, the detail included).
    async fn events_mentioning(&self, needle: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM auth_events e WHERE strpos(e::text, $1) > 0")
            .bind(needle)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Makes a session look signed in by an emailed code, `ago` in the past.
    async fn as_email_code_sign_in(&self, session: Uuid, ago: Duration) {
        sqlx::query(
            "UPDATE sessions SET auth_method = 'email_code',
                created_at = now() - make_interval(secs => $2)
             WHERE id = $1",
        )
        .bind(session)
        .bind(ago.as_secs_f64())
        .execute(&self.db)
        .await
        .unwrap();
    }
}

/// Every token is rejected by `here` at once and by `there` within 1 s; no refresh works.
async fn all_dead(here: &TestApp, there: &TestApp, tokens: &[&Tokens]) {
    for t in tokens {
        assert_problem(
            here.get("/auth/me", &t.access).await,
            401,
            "session_revoked",
        )
        .await;
    }
    for t in tokens {
        let rejected = eventually(Duration::from_secs(1), || async {
            there.me_status(&t.access).await == 401
        })
        .await;
        assert!(rejected, "the other instance rejects the token within 1 s");
        assert_eq!(here.refresh_with(&t.refresh).await.status(), 401);
    }
}

#[tokio::test]
async fn deleting_your_account_revokes_every_session_everywhere_and_frees_the_address() {
    let a = spawn_app().await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let phone = a.signup_and_login("ann@example.test").await;
    let laptop = b.login("ann@example.test").await;
    let tablet = a.login("ann@example.test").await;
    let ann = a.user_id("ann@example.test").await;
    for t in [&phone, &laptop, &tablet] {
        assert_eq!(a.me_status(&t.access).await, 200);
        assert_eq!(b.me_status(&t.access).await, 200); // and in b's user cache
    }
    assert!(b.state.users.get(ann).is_some());

    let res = a
        .delete_me(&phone.access, json!({ "current_password": PASSWORD }))
        .await;
    assert_eq!(res.status(), 204);
    assert!(is_clearing(&refresh_set_cookie(&res)), "cookie cleared");
    // Through the revocation path: on a's deny-list before the answer, counted by reason.
    for t in [&phone, &laptop, &tablet] {
        assert!(a.state.revocations.contains(t.session_id));
    }
    let metrics = a.client.get(a.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"authd_revocations_total{reason="user_deleted"} 3"#),
        "{metrics}"
    );

    all_dead(&a, &b, &[&phone, &laptop, &tablet]).await;
    assert!(!a.user_exists(ann).await);
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM sessions WHERE user_id = $1)
              + (SELECT count(*) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
                 WHERE s.user_id = $1)",
    )
    .bind(ann)
    .fetch_one(&a.db)
    .await
    .unwrap();
    assert_eq!(left, 0, "sessions and refresh tokens are gone");
    assert!(
        eventually(Duration::from_secs(1), || async {
            b.state.users.get(ann).is_none()
        })
        .await,
        "the user left b's cache"
    );

    // The address is free again: a new, unrelated account.
    assert_eq!(a.register("ann@example.test", PASSWORD).await.status(), 201);
    let again = a.login("ann@example.test").await;
    assert_ne!(a.user_id("ann@example.test").await, ann);
    assert_eq!(b.me_status(&again.access).await, 200);
    let events: Value = a
        .get("/auth/events", &again.access)
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "login_succeeded",
            "email_verification_sent",
            "user_registered"
        ],
        "none of the old account's history"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_password_deletes_nothing() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let ann = app.user_id("ann@example.test").await;

    let res = app
        .delete_me(
            &t.access,
            json!({ "current_password": "not the passphrase" }),
        )
        .await;
    assert_problem(res, 401, "invalid_credentials").await;
    // Without one, a session signed in by password cannot delete.
    let body = assert_problem(
        app.delete_me(&t.access, json!({})).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "current_password");
    // Malformed input is refused before any check.
    let res = app
        .delete_me(&t.access, json!({ "current_password": "short" }))
        .await;
    assert_problem(res, 400, "validation_failed").await;

    assert!(app.user_exists(ann).await);
    assert_eq!(app.me_status(&t.access).await, 200);
    assert!(app.revoked_reason(t.session_id).await.is_none());
    let failed = app
        .events_of(ann)
        .await
        .into_iter()
        .filter(|e| e.0 == "account_deletion_failed")
        .collect::<Vec<_>>();
    assert_eq!(failed.len(), 1, "the wrong password is audited");
    assert_eq!(failed[0].1, Some(ann));
    assert_eq!(failed[0].4["reason"], "invalid_credentials");
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited_like_logins() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let res = app
            .delete_me(
                &t.access,
                json!({ "current_password": "not the passphrase" }),
            )
            .await;
        statuses.push(res.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // A correct password during the limit still gets 429, and nothing is deleted.
    let res = app
        .delete_me(&t.access, json!({ "current_password": PASSWORD }))
        .await;
    assert_problem(res, 429, "rate_limited").await;
    assert_eq!(app.me_status(&t.access).await, 200);
}

#[tokio::test]
async fn a_recent_email_code_sign_in_deletes_without_a_password() {
    let app = spawn_app().await;
    let t = app.signup_and_login("ann@example.test").await;
    let other = app.login("ann@example.test").await;
    let ann = app.user_id("ann@example.test").await;
    // An account created by a code has no password.
    sqlx::query("UPDATE users SET password_hash = NULL WHERE id = $1")
        .bind(ann)
        .execute(&app.db)
        .await
        .unwrap();

    // Signed in by a code 6 minutes ago: too old.
    app.as_email_code_sign_in(t.session_id, Duration::from_secs(6 * 60))
        .await;
    let body = assert_problem(
        app.delete_me(&t.access, json!({})).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "current_password");
    // Another session's recent code sign-in does not count for this one.
    app.as_email_code_sign_in(other.session_id, Duration::from_secs(10))
        .await;
    assert_problem(
        app.delete_me(&t.access, json!({})).await,
        400,
        "validation_failed",
    )
    .await;
    // A password given is checked (and this account has none).
    let res = app
        .delete_me(&other.access, json!({ "current_password": PASSWORD }))
        .await;
    assert_problem(res, 401, "invalid_credentials").await;
    assert!(app.user_exists(ann).await);

    // Within 5 minutes: no password needed.
    assert_eq!(app.delete_me(&other.access, json!({})).await.status(), 204);
    assert!(!app.user_exists(ann).await);
    all_dead(&app, &app, &[&t, &other]).await;
    let tombstone = app.events_of(ann).await.pop().unwrap();
    assert_eq!(tombstone.0, "user_deleted");
    assert_eq!(tombstone.4["reauth"], "email_code");
}

#[tokio::test]
async fn an_admin_deletes_a_user_everywhere_but_not_themselves() {
    let a = spawn_app().await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let admin = a.admin().await;
    let admin_id = a.user_id("admin@example.test").await;
    let bob1 = a.signup_and_login("bob@example.test").await;
    let bob2 = b.login("bob@example.test").await;
    let bob = a.user_id("bob@example.test").await;

    // Bob cannot delete anyone.
    let res = a
        .delete(&format!("/admin/users/{admin_id}"), &bob1.access)
        .await;
    assert_problem(res, 403, "forbidden").await;

    let res = a
        .delete(&format!("/admin/users/{bob}"), &admin.access)
        .await;
    assert_eq!(res.status(), 204);
    all_dead(&a, &b, &[&bob1, &bob2]).await;
    assert!(!a.user_exists(bob).await);

    for id in [
        bob.to_string(),
        Uuid::new_v4().to_string(),
        "not-a-uuid".into(),
    ] {
        let res = a.delete(&format!("/admin/users/{id}"), &admin.access).await;
        assert_problem(res, 404, "user_not_found").await;
    }
    let res = a.get(&format!("/admin/users/{bob}"), &admin.access).await;
    assert_problem(res, 404, "user_not_found").await;

    // Deleting yourself here is refused (DELETE /auth/me asks for the password).
    let res = a
        .delete(&format!("/admin/users/{admin_id}"), &admin.access)
        .await;
    let body = assert_problem(res, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "id");
    assert!(a.user_exists(admin_id).await);
    assert_eq!(b.me_status(&admin.access).await, 200);
}

#[tokio::test]
async fn the_audit_trail_keeps_a_tombstone_without_the_address() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_id = app.user_id("admin@example.test").await;
    let bob_t = app.signup_and_login("bob@example.test").await;
    let bob = app.user_id("bob@example.test").await;
    app.login_response("bob@example.test", "a wrong passphrase here")
        .await;
    // What an admin did to Bob stays; Bob's own history goes.
    let res = app
        .client
        .patch(app.url(&format!("/admin/users/{bob}")))
        .bearer_auth(&admin.access)
        .json(&json!({ "roles": ["support"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .delete_me(&bob_t.access, json!({ "current_password": PASSWORD }))
        .await;
    assert_eq!(res.status(), 204);

    let events = app.events_of(bob).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(kinds, ["roles_changed", "user_deleted"], "{events:?}");
    assert_eq!(events[0].1, Some(admin_id), "the admin's action is kept");
    let (_, actor, ip, user_agent, detail) = &events[1];
    assert_eq!(*actor, Some(bob));
    assert_eq!(
        (ip, user_agent),
        (&None, &None),
        "no personal data of Bob's"
    );
    assert_eq!(
        *detail,
        json!({ "by": "self", "revoked_sessions": 1, "reauth": "password" })
    );
    assert_eq!(app.events_mentioning("bob@example.test").await, 0);

    // Admins still read it, though the user is gone.
    let res = app
        .get(&format!("/admin/users/{bob}/events"), &admin.access)
        .await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["events"][0]["kind"], "user_deleted");
    assert_eq!(page["events"][0]["actor"], "user");
    assert_eq!(page["events"][1]["actor"], "admin");
    let res = app
        .get(
            &format!("/admin/users/{}/events", Uuid::new_v4()),
            &admin.access,
        )
        .await;
    assert_problem(res, 404, "user_not_found").await;
}

#[tokio::test]
async fn events_by_a_deleted_admin_stay_readable() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let carol_t = app.signup_and_login("carol@example.test").await;
    let carol = app.user_id("carol@example.test").await;
    let dave_t = app.signup_and_login("dave@example.test").await;
    let dave = app.user_id("dave@example.test").await;
    sqlx::query("UPDATE users SET roles = '{admin}' WHERE id = $1")
        .bind(dave)
        .execute(&app.db)
        .await
        .unwrap();
    // Dave, an admin, forces Carol out of one device; then the first admin deletes Dave.
    let res = app
        .delete(&format!("/admin/users/{carol}/sessions"), &dave_t.access)
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .delete(&format!("/admin/users/{dave}"), &admin.access)
        .await;
    assert_eq!(res.status(), 204);

    let admin_view: Value = app
        .get(&format!("/admin/users/{carol}/events"), &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let revoked = &admin_view["events"][0];
    assert_eq!(revoked["kind"], "sessions_revoked");
    assert_eq!(revoked["actor_id"], dave.to_string(), "who did it is kept");
    assert_eq!(revoked["actor"], "admin");
    // Dave's tombstone: by an admin, with that admin's request data, without Dave's address.
    let tomb = app.events_of(dave).await;
    assert_eq!(tomb.len(), 1, "{tomb:?}");
    let admin_id = app.user_id("admin@example.test").await;
    assert_eq!(tomb[0].1, Some(admin_id));
    assert_eq!(tomb[0].2.as_deref(), Some("127.0.0.1"));
    assert_eq!(tomb[0].4, json!({ "by": "admin", "revoked_sessions": 1 }));
    assert_eq!(app.events_mentioning("dave@example.test").await, 0);
    // Carol signs in again and reads her history.
    let carol_t2 = app.login("carol@example.test").await;
    let own = app.get("/auth/events", &carol_t2.access).await;
    assert_eq!(own.status(), 200);
    assert_eq!(app.me_status(&carol_t.access).await, 401);
}

#[tokio::test]
async fn the_command_line_path_deletes_offline_and_every_instance_learns() {
    let app = spawn_app().await;
    wait_live(&app).await;
    let t = app.signup_and_login("ann@example.test").await;
    let ann = app.user_id("ann@example.test").await;
    let cli = ClientInfo {
        ip: None,
        user_agent: Some("authd-cli/test".into()),
    };
    // What `authd user delete` runs: no in-memory state, only the database.
    let revoked =
        session::account::delete_user(&session::Offline(&app.db), ann, Actor::Operator, &cli, None)
            .await
            .unwrap();
    assert_eq!(revoked, 1);
    let rejected = eventually(Duration::from_secs(1), || async {
        app.me_status(&t.access).await == 401
    })
    .await;
    assert!(rejected, "the server learns through NOTIFY within 1 s");
    let tomb = app.events_of(ann).await;
    let kinds: Vec<&str> = tomb.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(kinds, ["user_deleted"]);
    assert_eq!(tomb[0].1, None);
    assert_eq!(
        tomb[0].4,
        json!({ "by": "cli", "via": "cli", "revoked_sessions": 1 })
    );
    let again =
        session::account::delete_user(&session::Offline(&app.db), ann, Actor::Operator, &cli, None)
            .await;
    assert!(matches!(again, Err(authd::error::ApiError::UserNotFound)));
}
