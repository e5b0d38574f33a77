//! Instant revocation across instances (NOTIFY-fed deny-list), its fallback, key rotation,
//! introspection, the resource-server example, and cleanup.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

/// Waits until an instance trusts its in-memory deny-list (listener connected + reloaded).
async fn wait_live(app: &TestApp) {
    let live = eventually(Duration::from_secs(10), || async {
        app.state.revocations.is_live()
    })
    .await;
    assert!(live, "the notification listener came up");
}

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

fn authd(db_name: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authd"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("{}/{}", server_url(), db_name))
        .env("RUST_LOG", "warn");
    cmd
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let body: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn key_rotation_reaches_every_instance_without_a_restart() {
    let a = spawn_app_with(|c| c.access_ttl = Duration::from_secs(2)).await;
    let b = spawn_on_same_db(&a, |c| c.access_ttl = Duration::from_secs(2)).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let before = a.signup_and_login("ann@example.test").await;
    let old_kid = kid_of(&before.access);

    let out = authd(&a.db_name).args(["keys", "rotate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for app in [&a, &b] {
        let rotated = eventually(Duration::from_secs(2), || async {
            jwks_kids(app).await.len() == 2
        })
        .await;
        assert!(rotated, "both keys published");
        assert_eq!(
            app.me_status(&before.access).await,
            200,
            "a token signed before rotation still verifies"
        );
    }
    let after = b.login("ann@example.test").await;
    let new_kid = kid_of(&after.access);
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        jwks_kids(&a).await[0],
        new_kid,
        "the signing key is listed first"
    );
    assert_eq!(a.me_status(&after.access).await, 200);
    // Once every token of the old key has expired (TTL 2 s + 5 s leeway), it is dropped.
    let dropped = eventually(Duration::from_secs(15), || async {
        jwks_kids(&a).await == [new_kid.clone()]
    })
    .await;
    assert!(dropped, "old key dropped from the JWKS");
    // Each instance drops it on its own timer.
    let dropped_b = eventually(Duration::from_secs(5), || async {
        jwks_kids(&b).await == [new_kid.clone()]
    })
    .await;
    assert!(dropped_b, "and from the other instance's");
}

#[tokio::test]
async fn a_signing_key_file_becomes_the_signing_key() {
    let a = spawn_app().await;
    let old_kid: String = sqlx::query_scalar("SELECT kid FROM signing_keys")
        .fetch_one(&a.db)
        .await
        .unwrap();
    let key = authd::auth::jwt::KeyMaterial::generate().unwrap();
    let path = std::env::temp_dir().join(format!("authd-test-key-{}.pem", Uuid::new_v4()));
    std::fs::write(
        &path,
        pem::encode(&pem::Pem::new("PRIVATE KEY", key.private_der.clone())),
    )
    .unwrap();
    let b = spawn_on_same_db(&a, |c| c.signing_key_file = Some(path.clone())).await;
    std::fs::remove_file(&path).unwrap();
    let t = b.signup_and_login("ann@example.test").await;
    assert_eq!(kid_of(&t.access), key.kid);
    let kids = jwks_kids(&b).await;
    assert_eq!(kids, [key.kid.clone(), old_kid]);
    let synced = eventually(Duration::from_secs(2), || async {
        a.me_status(&t.access).await == 200
    })
    .await;
    assert!(synced, "the other instance accepts the new key's tokens");
}

const SECRET: &str = "introspection-secret-of-at-least-32-chars";

#[tokio::test]
async fn introspection_reports_active_tokens_to_authenticated_clients() {
    let app = spawn_app_with(|c| c.introspection_secret = Some(SECRET.into())).await;
    let t = app.signup_and_login("ann@example.test").await;
    let introspect = |auth: Option<String>, token: &str| {
        let mut req = app
            .client
            .post(app.url("/auth/introspect"))
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("api:{SECRET}")
        )
    );
    let res = introspect(Some(basic.clone()), &t.access).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], t.body["user"]["id"]);
    assert_eq!(body["sid"], t.session_id.to_string());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["exp"].is_i64());

    // JSON bodies and the Bearer form of the secret work too.
    let res = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(SECRET)
        .json(&json!({"token": t.access}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["active"], true);

    for junk in ["garbage", ""] {
        let body: Value = introspect(Some(basic.clone()), junk)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body, json!({"active": false}));
    }
    app.delete(&format!("/auth/sessions/{}", t.session_id), &t.access)
        .await;
    let body: Value = introspect(Some(basic.clone()), &t.access)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"active": false}), "revoked");

    for bad in [
        None,
        Some("Bearer wrong".to_string()),
        Some(format!("Bearer {SECRET}x")),
    ] {
        let res = introspect(bad, &t.access).await.unwrap();
        assert_eq!(res.headers()["www-authenticate"], r#"Basic realm="authd""#);
        assert_problem(res, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn introspection_is_off_without_a_secret() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth("anything")
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
}

struct Example(Child, String);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `examples/resource_server.rs` against `app`.
async fn start_example(app: &TestApp) -> Example {
    let base = app.base.clone();
    // Blocking work (build, read its stdout) off the test's single-threaded runtime, which
    // must keep serving authd meanwhile: the example fetches the JWKS at start.
    tokio::task::spawn_blocking(move || start_example_blocking(&base))
        .await
        .unwrap()
}

fn start_example_blocking(base: &str) -> Example {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("examples").join("resource_server");
    // Always ask cargo: a no-op when fresh, and never a stale binary.
    let status = Command::new(env!("CARGO"))
        .args(["build", "--example", "resource_server"])
        .status()
        .unwrap();
    assert!(status.success() && bin.exists());
    let mut child = Command::new(bin)
        .env("AUTHD_URL", base)
        .env("AUTHD_ISSUER", "http://localhost:8080")
        .env("BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("example prints its address")
        .to_string();
    Example(child, format!("http://{addr}"))
}

#[tokio::test]
async fn the_resource_server_example_verifies_tokens_offline_and_follows_rotation() {
    let app = spawn_app().await;
    wait_live(&app).await;
    let example = start_example(&app).await;
    let admin = app.admin().await;
    let hello = |token: String| {
        app.client
            .get(format!("{}/hello", example.1))
            .bearer_auth(token)
            .send()
    };

    let res = hello(admin.access.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["session"], admin.session_id.to_string());
    let admin_only = app
        .client
        .get(format!("{}/admin", example.1))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(admin_only.status(), 200);

    for bad in ["garbage".to_string(), format!("{}x", admin.access)] {
        assert_eq!(hello(bad).await.unwrap().status(), 401);
    }

    // After a rotation the example meets an unknown kid and refetches the JWKS once.
    let out = authd(&app.db_name)
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rotated = eventually(Duration::from_secs(2), || async {
        jwks_kids(&app).await.len() == 2
    })
    .await;
    assert!(rotated);
    let fresh = app.login("admin@example.test").await;
    // Refetches are throttled to one a second: poll rather than assume timing.
    let followed = eventually(Duration::from_secs(5), || async {
        hello(fresh.access.clone()).await.unwrap().status() == 200
    })
    .await;
    assert!(followed, "the example accepts tokens of the new key");
}

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
    let deleted = authd::cleanup::run_once(&app.db, Duration::from_secs(86_400))
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
