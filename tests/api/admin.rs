use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

impl TestApp {
    async fn patch_user(&self, access: &str, id: &str, body: Value) -> reqwest::Response {
        self.client
            .patch(self.url(&format!("/admin/users/{id}")))
            .bearer_auth(access)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn non_admins_get_403_on_every_admin_route() {
    let app = spawn_app().await;
    let ann = app.signup_and_login("ann@example.test").await;
    let id = app.user_id("ann@example.test").await;
    let sid = ann.session_id;
    let reqs = [
        app.client
            .get(app.url("/admin/users?email=ann@example.test")),
        app.client
            .patch(app.url(&format!("/admin/users/{id}")))
            .json(&json!({"disabled": true})),
        app.client
            .get(app.url(&format!("/admin/users/{id}/sessions"))),
        app.client
            .delete(app.url(&format!("/admin/users/{id}/sessions"))),
        app.client.delete(app.url(&format!("/admin/users/{id}"))),
        app.client
            .delete(app.url(&format!("/admin/sessions/{sid}"))),
    ];
    for req in reqs {
        let res = req.bearer_auth(&ann.access).send().await.unwrap();
        assert_problem(res, 403, "forbidden").await;
    }
    // And 401 without a token at all.
    assert_problem(
        app.client
            .get(app.url("/admin/users"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert!(app.revoked_reason(sid).await.is_none());
}

#[tokio::test]
async fn find_users_by_email() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.register("ann@example.test", PASSWORD).await;
    let body: Value = app
        .get("/admin/users?email=ANN@example.test", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    assert_eq!(body["users"][0]["email"], "ann@example.test");
    assert!(body["users"][0].get("password_hash").is_none());
    let body: Value = app
        .get("/admin/users?email=nobody@example.test", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["users"], json!([]));
    let body: Value = app
        .get("/admin/users", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["users"].as_array().unwrap().len(), 2);
    assert_problem(
        app.get("/admin/users?limit=0", &admin.access).await,
        400,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn disabling_a_user_revokes_all_their_sessions() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let a = app.signup_and_login("ann@example.test").await;
    let b = app.login("ann@example.test").await;
    let bob = app.signup_and_login("bob@example.test").await;
    let id = app.user_id("ann@example.test").await.to_string();

    let res = app
        .patch_user(&admin.access, &id, json!({"disabled": true}))
        .await;
    assert_eq!(res.status(), 200);
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["disabled"], true);
    for t in [&a, &b] {
        assert_eq!(
            app.revoked_reason(t.session_id).await.as_deref(),
            Some("user_disabled")
        );
        assert_problem(app.refresh_with(&t.refresh).await, 401, "session_revoked").await;
        assert_problem(app.get("/auth/me", &t.access).await, 401, "session_revoked").await;
    }
    assert_problem(
        app.login_response("ann@example.test", PASSWORD).await,
        401,
        "user_disabled",
    )
    .await;
    assert_eq!(
        app.me_status(&bob.access).await,
        200,
        "other users untouched"
    );

    // Re-enabling lets them log in again.
    let res = app
        .patch_user(&admin.access, &id, json!({"disabled": false}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.login_response("ann@example.test", PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn roles_can_be_set_and_are_validated() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.register("ann@example.test", PASSWORD).await;
    let id = app.user_id("ann@example.test").await.to_string();
    let res = app
        .patch_user(
            &admin.access,
            &id,
            json!({"disabled": false, "roles": ["support", "admin", "admin"]}),
        )
        .await;
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["roles"], json!(["admin", "support"]));
    // New tokens carry the roles.
    let t = app.login("ann@example.test").await;
    assert_eq!(t.body["user"]["roles"], json!(["admin", "support"]));
    assert_eq!(app.get("/admin/users", &t.access).await.status(), 200);

    assert_problem(
        app.patch_user(&admin.access, &id, json!({"roles": ["Bad Role!"]}))
            .await,
        400,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.patch_user(&admin.access, &id, json!({"disabled": "yes"}))
            .await,
        400,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.patch_user(&admin.access, &id, json!({})).await,
        400,
        "validation_failed",
    )
    .await;
    let unknown = Uuid::new_v4().to_string();
    assert_problem(
        app.patch_user(&admin.access, &unknown, json!({"disabled": true}))
            .await,
        404,
        "user_not_found",
    )
    .await;
    assert_problem(
        app.patch_user(&admin.access, "nope", json!({"disabled": true}))
            .await,
        404,
        "user_not_found",
    )
    .await;
}

#[tokio::test]
async fn admin_lists_a_users_sessions() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let a = app.signup_and_login("ann@example.test").await;
    let b = app.login("ann@example.test").await;
    let id = app.user_id("ann@example.test").await;
    let body: Value = app
        .get(&format!("/admin/users/{id}/sessions"), &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.session_id.to_string(), a.session_id.to_string()]);
    let unknown = format!("/admin/users/{}/sessions", Uuid::new_v4());
    assert_problem(
        app.get(&unknown, &admin.access).await,
        404,
        "user_not_found",
    )
    .await;
}

#[tokio::test]
async fn admin_revoke_all_kills_every_refresh_and_access_token_of_the_user() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let sessions = [
        app.signup_and_login("ann@example.test").await,
        app.login("ann@example.test").await,
        app.login("ann@example.test").await,
    ];
    // One of them has rotated a few times: every generation must die.
    let rotated = app.refresh(&sessions[0].refresh).await;
    let bob = app.signup_and_login("bob@example.test").await;
    let id = app.user_id("ann@example.test").await;

    let res = app
        .delete(&format!("/admin/users/{id}/sessions"), &admin.access)
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["revoked"], 3);

    for t in sessions.iter().chain([&rotated]) {
        assert_problem(app.get("/auth/me", &t.access).await, 401, "session_revoked").await;
        assert_eq!(
            app.revoked_reason(t.session_id).await.as_deref(),
            Some("admin_revoked")
        );
    }
    for refresh in [&sessions[1].refresh, &sessions[2].refresh, &rotated.refresh] {
        assert_problem(app.refresh_with(refresh).await, 401, "session_revoked").await;
    }
    assert_eq!(app.me_status(&bob.access).await, 200);
    app.refresh(&bob.refresh).await;
    // The user can log in again afterwards (revoke-all is not disable).
    assert_eq!(
        app.login_response("ann@example.test", PASSWORD)
            .await
            .status(),
        200
    );
    let unknown = format!("/admin/users/{}/sessions", Uuid::new_v4());
    assert_problem(
        app.delete(&unknown, &admin.access).await,
        404,
        "user_not_found",
    )
    .await;
}

#[tokio::test]
async fn admin_revokes_one_device() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let phone = app.signup_and_login("ann@example.test").await;
    let laptop = app.login("ann@example.test").await;
    let res = app
        .delete(
            &format!("/admin/sessions/{}", phone.session_id),
            &admin.access,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(
        app.refresh_with(&phone.refresh).await,
        401,
        "session_revoked",
    )
    .await;
    assert_eq!(app.me_status(&phone.access).await, 401);
    assert_eq!(app.me_status(&laptop.access).await, 200);
    let unknown = format!("/admin/sessions/{}", Uuid::new_v4());
    assert_problem(
        app.delete(&unknown, &admin.access).await,
        404,
        "session_not_found",
    )
    .await;
    assert_problem(
        app.delete("/admin/sessions/123", &admin.access).await,
        404,
        "session_not_found",
    )
    .await;
}

#[tokio::test]
async fn an_admin_cannot_lock_themselves_out() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let me = app.user_id("admin@example.test").await.to_string();
    for body in [
        json!({"disabled": true}),
        json!({"roles": []}),
        json!({"roles": ["support"]}),
        json!({"disabled": false, "roles": ["support"]}),
    ] {
        let res = app.patch_user(&admin.access, &me, body.clone()).await;
        let problem = assert_problem(res, 400, "validation_failed").await;
        assert!(problem["errors"].is_array(), "{body}: {problem}");
    }
    // Nothing changed: still an enabled admin with a live session.
    assert!(app.revoked_reason(admin.session_id).await.is_none());
    assert_eq!(app.get("/admin/users", &admin.access).await.status(), 200);
    // Harmless changes to oneself still work, and another admin may do the rest.
    let res = app
        .patch_user(&admin.access, &me, json!({"roles": ["admin", "support"]}))
        .await;
    assert_eq!(res.status(), 200);
    app.register("bob@example.test", PASSWORD).await;
    let bob = app.user_id("bob@example.test").await.to_string();
    app.patch_user(&admin.access, &bob, json!({"roles": ["admin"]}))
        .await;
    let bob_tokens = app.login("bob@example.test").await;
    let res = app
        .patch_user(&bob_tokens.access, &me, json!({"disabled": true}))
        .await;
    assert_eq!(res.status(), 200);
    assert!(app.revoked_reason(admin.session_id).await.is_some());
}
