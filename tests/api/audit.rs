//! The audit trail: what is recorded, who can read it, pagination.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

pub async fn kinds(app: &TestApp, path: &str, access: &str) -> Vec<String> {
    let body: Value = app.get(path, access).await.json().await.unwrap();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_account_history_is_recorded_and_readable_by_its_owner() {
    let app = spawn_app().await;
    app.register("ann@example.test", PASSWORD).await;
    app.login_response("ann@example.test", "wrong password!")
        .await;
    app.login_response("nobody@example.test", "wrong password!")
        .await;
    let phone = app.login("ann@example.test").await;
    let laptop = app.login("ann@example.test").await;
    let t1 = app.refresh(&phone.refresh).await;
    app.refresh(&t1.refresh).await;
    app.refresh_with(&phone.refresh).await; // reuse
    app.delete(
        &format!("/auth/sessions/{}", laptop.session_id),
        &laptop.access,
    )
    .await;
    let current = app.login("ann@example.test").await;
    app.client
        .post(app.url("/auth/password"))
        .bearer_auth(&current.access)
        .header("user-agent", "AuditTest/1.0")
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();

    let got = kinds(&app, "/auth/events", &current.access).await;
    assert_eq!(
        got,
        [
            "password_changed",
            "login_succeeded",
            "session_revoked",
            "refresh_token_reused",
            "login_succeeded",
            "login_succeeded",
            "login_failed",
            "email_verification_sent",
            "user_registered"
        ]
    );
    let body: Value = app
        .get("/auth/events?limit=1", &current.access)
        .await
        .json()
        .await
        .unwrap();
    let e = &body["events"][0];
    assert_eq!(e["user_agent"], "AuditTest/1.0");
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["session_id"], current.session_id.to_string());
    assert_eq!(e["actor_id"], current.body["user"]["id"]);
    assert!(e["at"].is_string() && e["id"].is_i64());
    assert_eq!(
        e["detail"]["revoked_sessions"], 0,
        "phone was already revoked for reuse, laptop by hand"
    );

    // The unknown-email failure belongs to no account; nobody else sees Ann's history.
    let unowned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auth_events WHERE user_id IS NULL AND kind = 'login_failed'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(unowned, 1);
    let bob = app.signup_and_login("bob@example.test").await;
    assert_eq!(
        kinds(&app, "/auth/events", &bob.access).await,
        [
            "login_succeeded",
            "email_verification_sent",
            "user_registered"
        ]
    );
}

#[tokio::test]
async fn admins_read_any_users_history_page_by_page_and_their_actions_are_attributed() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let ann = app.signup_and_login("ann@example.test").await;
    let id = app.user_id("ann@example.test").await;
    app.delete(
        &format!("/admin/sessions/{}", ann.session_id),
        &admin.access,
    )
    .await;
    app.client
        .patch(app.url(&format!("/admin/users/{id}")))
        .bearer_auth(&admin.access)
        .json(&json!({"disabled": true, "roles": ["support"]}))
        .send()
        .await
        .unwrap();
    app.delete(&format!("/admin/users/{id}/sessions"), &admin.access)
        .await;

    let path = format!("/admin/users/{id}/events");
    let all = kinds(&app, &path, &admin.access).await;
    assert_eq!(
        all,
        [
            "sessions_revoked",
            "roles_changed",
            "user_disabled",
            "session_revoked",
            "login_succeeded",
            "email_verification_sent",
            "user_registered"
        ]
    );
    let body: Value = app.get(&path, &admin.access).await.json().await.unwrap();
    let admin_id = admin.body["user"]["id"].clone();
    for e in &body["events"].as_array().unwrap()[..4] {
        assert_eq!(e["actor_id"], admin_id, "{e}");
    }
    assert_eq!(body["events"][1]["detail"]["roles"], json!(["support"]));

    // Pagination: pages of 4 then 2, then nothing.
    let page1: Value = app
        .get(&format!("{path}?limit=4"), &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page1["events"].as_array().unwrap().len(), 4);
    let cursor = page1["next_before"].as_i64().unwrap();
    let page2: Value = app
        .get(&format!("{path}?limit=4&before={cursor}"), &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let kinds2: Vec<&str> = page2["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds2,
        [
            "login_succeeded",
            "email_verification_sent",
            "user_registered"
        ]
    );
    assert!(page2["next_before"].is_null());

    assert_problem(
        app.get(&format!("{path}?limit=0"), &admin.access).await,
        400,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}?before=x"), &admin.access).await,
        400,
        "validation_failed",
    )
    .await;
    let unknown = format!("/admin/users/{}/events", Uuid::new_v4());
    assert_problem(
        app.get(&unknown, &admin.access).await,
        404,
        "user_not_found",
    )
    .await;
    let bob = app.signup_and_login("bob@example.test").await;
    assert_problem(app.get(&path, &bob.access).await, 403, "forbidden").await;
}

#[tokio::test]
async fn users_see_what_an_admin_did_to_them_but_not_who_or_from_where() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_id = admin.body["user"]["id"].clone();
    app.signup_and_login("ann@example.test").await;
    let ann_id = app.user_id("ann@example.test").await;
    let res = app
        .client
        .delete(app.url(&format!("/admin/users/{ann_id}/sessions")))
        .bearer_auth(&admin.access)
        .header("user-agent", "AdminConsole/7.7 (ops-workstation-42)")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ann = app.login("ann@example.test").await;

    // Ann's own view: what happened, and that an admin did it; not which admin, nor where from.
    let own: Value = app
        .get("/auth/events", &ann.access)
        .await
        .json()
        .await
        .unwrap();
    let events = own["events"].as_array().unwrap();
    let revoked = events
        .iter()
        .find(|e| e["kind"] == "sessions_revoked")
        .unwrap();
    assert_eq!(revoked["actor"], "admin");
    assert!(revoked["actor_id"].is_null(), "{revoked}");
    assert!(revoked["ip"].is_null(), "{revoked}");
    assert!(revoked["user_agent"].is_null(), "{revoked}");
    assert_eq!(revoked["detail"]["reason"], "admin_revoked");
    assert_eq!(revoked["detail"]["count"], 1);
    let text = own.to_string();
    assert!(!text.contains("AdminConsole"), "{text}");
    assert!(!text.contains(admin_id.as_str().unwrap()), "{text}");
    // Her own actions keep their details.
    let login = &events[0];
    assert_eq!(login["kind"], "login_succeeded");
    assert_eq!(login["actor"], "user");
    assert_eq!(login["actor_id"], ann_id.to_string());
    assert_eq!(login["ip"], "127.0.0.1");
    // A failed login has no acting account: its client stays visible (it may be an attacker).
    app.login_response("ann@example.test", "wrong password!")
        .await;
    let own: Value = app
        .get("/auth/events?limit=1", &ann.access)
        .await
        .json()
        .await
        .unwrap();
    let failed = &own["events"][0];
    assert_eq!(failed["kind"], "login_failed");
    assert!(
        failed["actor"].is_null() && failed["actor_id"].is_null(),
        "{failed}"
    );
    assert_eq!(failed["ip"], "127.0.0.1");

    // The admin's view shows everything.
    let all: Value = app
        .get(&format!("/admin/users/{ann_id}/events"), &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let revoked = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "sessions_revoked")
        .unwrap();
    assert_eq!(revoked["actor"], "admin");
    assert_eq!(revoked["actor_id"], admin_id);
    assert_eq!(revoked["ip"], "127.0.0.1");
    assert_eq!(
        revoked["user_agent"],
        "AdminConsole/7.7 (ops-workstation-42)"
    );
}
