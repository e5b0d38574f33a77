//! Signing-key rotation across instances, AUTHD_SIGNING_KEY_FILE, and the resource-server example
//! that verifies tokens offline through the JWKS.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

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

    let out = authd_command(&a.db_name)
        .args(["keys", "rotate"])
        .output()
        .unwrap();
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
    let key = authd::tokens::jwt::KeyMaterial::generate().unwrap();
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
    let out = authd_command(&app.db_name)
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
