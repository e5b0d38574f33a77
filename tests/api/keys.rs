//! Signing keys across instances: rotation (published before signing, or `--now`), revocation,
//! AUTHD_SIGNING_KEY_FILE (whose private part never reaches the database), and the
//! resource-server example that verifies tokens offline through the JWKS.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use authd::{
    app::Application,
    tokens::jwt::{KeyMaterial, SigningAlg},
};
use serde_json::Value;

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

/// Runs `authd <args>` on the app's database; returns its stdout, asserting success.
fn cli(app: &TestApp, args: &[&str]) -> String {
    let out = authd_command(&app.db_name).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "authd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `authd keys list` as (kid, state) pairs, checking each line's shape.
fn key_states(app: &TestApp) -> Vec<(String, String)> {
    cli(app, &["keys", "list"])
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[1], "EdDSA", "{line}");
            time::OffsetDateTime::parse(fields[2], &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("created in {line}: {e}"));
            (fields[0].to_string(), fields[3].to_string())
        })
        .collect()
}

fn state_of(app: &TestApp, kid: &str) -> String {
    key_states(app)
        .into_iter()
        .find(|(k, _)| k == kid)
        .unwrap_or_else(|| panic!("{kid} listed"))
        .1
}

/// The kid this instance signs with now.
fn signing_kid(app: &TestApp) -> Option<String> {
    app.state.jwt.keys().signing_kid().map(String::from)
}

#[tokio::test]
async fn rotate_now_reaches_every_instance_at_once_without_a_restart() {
    let a = spawn_app_with(|c| c.access_ttl = Duration::from_secs(2)).await;
    let b = spawn_on_same_db(&a, |c| c.access_ttl = Duration::from_secs(2)).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let before = a.signup_and_login("ann@example.test").await;
    let old_kid = kid_of(&before.access);

    let out = cli(&a, &["keys", "rotate", "--now"]);
    assert!(out.contains("signs now"), "{out}");

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
    assert_ne!(new_kid, old_kid, "the new key signs at once");
    assert_eq!(
        kid_of(&a.refresh(&before.refresh).await.access),
        new_kid,
        "on every instance"
    );
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
async fn a_signing_key_file_signs_but_its_private_part_never_reaches_the_database() {
    let a = spawn_app().await;
    wait_live(&a).await;
    let old_kid: String = sqlx::query_scalar("SELECT kid FROM signing_keys")
        .fetch_one(&a.db)
        .await
        .unwrap();
    let key = KeyMaterial::generate(SigningAlg::EdDSA).unwrap();
    let file = KeyFile::new(&key.private_der);
    let b = spawn_on_same_db(&a, |c| c.signing_key_file = Some(file.0.clone())).await;
    drop(file); // read once at start: the process keeps it

    let (private_der, public_key): (Option<Vec<u8>>, Vec<u8>) =
        sqlx::query_as("SELECT private_der, public_key FROM signing_keys WHERE kid = $1")
            .bind(&key.kid)
            .fetch_one(&a.db)
            .await
            .unwrap();
    assert_eq!(private_der, None, "only the public key is stored");
    assert_eq!(public_key, key.public_key);
    assert_eq!(
        state_of(&a, &key.kid),
        "signing",
        "and the kid, so every instance knows it"
    );

    let t = b.signup_and_login("ann@example.test").await;
    assert_eq!(kid_of(&t.access), key.kid);
    assert_eq!(b.me_status(&t.access).await, 200);
    assert_eq!(jwks_kids(&b).await, [key.kid.clone(), old_kid.clone()]);
    let synced = eventually(Duration::from_secs(2), || async {
        a.me_status(&t.access).await == 200
    })
    .await;
    assert!(synced, "the other instance accepts the file key's tokens");
    assert!(jwks_kids(&a).await.contains(&key.kid), "and publishes it");
    // The instance not given the file cannot sign with it: it goes on signing with the key it
    // holds, which every instance still publishes (and it logs an error).
    let from_a = a.login("ann@example.test").await;
    assert_eq!(kid_of(&from_a.access), old_kid);
    assert_eq!(b.me_status(&from_a.access).await, 200);
}

#[tokio::test]
async fn a_private_part_stored_by_an_older_authd_is_erased_when_the_file_is_given() {
    let a = spawn_app().await;
    let key = KeyMaterial::generate(SigningAlg::EdDSA).unwrap();
    // What db::keys::install used to do with a file key.
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_der, public_key, activates_at)
         VALUES ($1, $2, $3, now())",
    )
    .bind(&key.kid)
    .bind(&key.private_der)
    .bind(&key.public_key)
    .execute(&a.db)
    .await
    .unwrap();
    let file = KeyFile::new(&key.private_der);
    let b = spawn_on_same_db(&a, |c| c.signing_key_file = Some(file.0.clone())).await;
    let erased: bool =
        sqlx::query_scalar("SELECT private_der IS NULL FROM signing_keys WHERE kid = $1")
            .bind(&key.kid)
            .fetch_one(&a.db)
            .await
            .unwrap();
    assert!(erased);
    let t = b.signup_and_login("ann@example.test").await;
    assert_eq!(kid_of(&t.access), key.kid);
}

#[tokio::test]
async fn without_the_key_file_an_instance_refuses_to_start_while_that_key_signs() {
    let key = KeyMaterial::generate(SigningAlg::EdDSA).unwrap();
    let file = KeyFile::new(&key.private_der);
    let a = spawn_app_with(|c| c.signing_key_file = Some(file.0.clone())).await;

    let refused = Application::build(test_config(&a.db_name)).await;
    let message = format!("{:#}", refused.err().expect("start refused"));
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("AUTHD_SIGNING_KEY_FILE") && message.contains(&key.kid),
        "{message}"
    );
    // Given the file, it starts.
    let mut with_file = test_config(&a.db_name);
    with_file.signing_key_file = Some(file.0.clone());
    Application::build(with_file)
        .await
        .expect("starts with the file");

    // A revoked key never signs again: given the file, an instance refuses to start.
    let out = cli(&a, &["keys", "revoke", "--kid", &key.kid]);
    assert!(out.contains("new signing key"), "{out}");
    let mut with_file = test_config(&a.db_name);
    with_file.signing_key_file = Some(file.0.clone());
    let refused = Application::build(with_file).await;
    let message = format!("{:#}", refused.err().expect("start refused"));
    assert!(
        message.contains("AUTHD_SIGNING_KEY_FILE")
            && message.contains(&key.kid)
            && message.contains("revoked"),
        "{message}"
    );
    // And the replacement lives in the database: instances without a file start.
    Application::build(test_config(&a.db_name))
        .await
        .expect("starts with the replacement key");
}

#[tokio::test]
async fn a_revoked_key_disappears_everywhere_at_once_and_a_refresh_recovers() {
    let a = spawn_app().await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let t = a.signup_and_login("ann@example.test").await;
    let kid = kid_of(&t.access);

    let out = cli(&a, &["keys", "revoke", "--kid", &kid]);
    assert!(out.contains(&format!("revoked key {kid}")), "{out}");
    let states = key_states(&a);
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(state_of(&a, &kid), "revoked");
    let (new_kid, state) = states.into_iter().find(|(k, _)| *k != kid).unwrap();
    assert_eq!(
        state, "signing",
        "a new key replaced the revoked signing key"
    );

    for app in [&a, &b] {
        let gone = eventually(Duration::from_secs(2), || async {
            jwks_kids(app).await == [new_kid.clone()]
        })
        .await;
        assert!(gone, "the revoked key left the JWKS");
        assert_problem(app.get("/auth/me", &t.access).await, 401, "invalid_token").await;
    }
    // The refresh cookie is unaffected: the client recovers with a refresh, on any instance.
    let fresh = b.refresh(&t.refresh).await;
    assert_eq!(
        kid_of(&fresh.access),
        new_kid,
        "the replacement signs at once"
    );
    assert_eq!(a.me_status(&fresh.access).await, 200);

    // A key that is not signing is revoked without a replacement.
    let out = cli(&a, &["keys", "rotate"]);
    assert!(out.contains("published now"), "{out}");
    let pending = key_states(&a)
        .into_iter()
        .find(|(_, s)| s == "pending")
        .unwrap()
        .0;
    let published = eventually(Duration::from_secs(2), || async {
        jwks_kids(&b).await.contains(&pending)
    })
    .await;
    assert!(published);
    cli(&a, &["keys", "revoke", "--kid", &pending]);
    let gone = eventually(Duration::from_secs(2), || async {
        jwks_kids(&b).await == [new_kid.clone()]
    })
    .await;
    assert!(gone);
    assert_eq!(signing_kid(&b).as_deref(), Some(new_kid.as_str()));
    assert_eq!(key_states(&a).len(), 3);

    // Again: nothing to do; an unknown kid is an error.
    let out = cli(&a, &["keys", "revoke", "--kid", &kid]);
    assert!(out.contains("already revoked"), "{out}");
    let out = authd_command(&a.db_name)
        .args(["keys", "revoke", "--kid", "no-such-kid"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-kid"));
}

#[tokio::test]
async fn a_rotated_key_is_published_at_once_and_signs_after_the_jwks_max_age() {
    let a = spawn_app().await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let t = a.signup_and_login("ann@example.test").await;
    let old_kid = kid_of(&t.access);

    let out = cli(&a, &["keys", "rotate"]);
    assert!(out.contains("published now, signs from"), "{out}");
    let (new_kid, wait): (String, f64) = sqlx::query_as(
        "SELECT kid, extract(epoch FROM activates_at - now())::float8
         FROM signing_keys WHERE kid <> $1",
    )
    .bind(&old_kid)
    .fetch_one(&a.db)
    .await
    .unwrap();
    assert!(
        (290.0..=305.0).contains(&wait),
        "signs once the JWKS max-age (300 s) has passed: in {wait} s"
    );
    assert_eq!(state_of(&a, &new_kid), "pending");
    assert_eq!(state_of(&a, &old_kid), "signing");
    for app in [&a, &b] {
        let published = eventually(Duration::from_secs(2), || async {
            jwks_kids(app).await == [old_kid.clone(), new_kid.clone()]
        })
        .await;
        assert!(published, "the new key is published at once");
    }
    assert_eq!(
        kid_of(&b.login("ann@example.test").await.access),
        old_kid,
        "but tokens keep the old key"
    );
    let t = a.refresh(&t.refresh).await;
    assert_eq!(kid_of(&t.access), old_kid);

    // Time passes: the activation comes 2 s from now. Each instance switches on its own timer
    // (the NOTIFY of this update only told them the new time).
    sqlx::query(
        "UPDATE signing_keys SET activates_at = now() + interval '2 seconds' WHERE kid = $1",
    )
    .bind(&new_kid)
    .execute(&a.db)
    .await
    .unwrap();
    for app in [&a, &b] {
        let switched = eventually(Duration::from_secs(6), || async {
            signing_kid(app).as_deref() == Some(new_kid.as_str())
        })
        .await;
        assert!(switched, "the instance switched by itself");
        assert_eq!(
            jwks_kids(app).await,
            [new_kid.clone(), old_kid.clone()],
            "the old key stays published"
        );
    }
    let after = b.refresh(&t.refresh).await;
    assert_eq!(kid_of(&after.access), new_kid);
    assert_eq!(a.me_status(&after.access).await, 200);
    assert_eq!(a.me_status(&t.access).await, 200, "old tokens still verify");
    assert_eq!(state_of(&a, &new_kid), "signing");
    assert_eq!(state_of(&a, &old_kid), "retired");
}

/// The running example (killed on drop) and its base URL.
pub struct Example(Child, pub String);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The AUTHD_RESOURCE_SECRET the example and its authd share.
pub const EXAMPLE_FEED_SECRET: &str = "example-feed-secret-0123456789abcdef";

/// Starts `examples/resource_server.rs` against `app` (which must have `EXAMPLE_FEED_SECRET`).
async fn start_example(app: &TestApp) -> Example {
    start_example_at(&app.base, &[]).await
}

/// Starts `examples/resource_server.rs` with AUTHD_URL `base` (an authd with
/// `EXAMPLE_FEED_SECRET`), and `env` on top.
pub async fn start_example_at(base: &str, env: &[(&str, &str)]) -> Example {
    let base = base.to_owned();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Blocking work (build, read its stdout) off the test's single-threaded runtime, which
    // must keep serving authd meanwhile: the example fetches the JWKS at start.
    tokio::task::spawn_blocking(move || start_example_blocking(&base, env))
        .await
        .unwrap()
}

fn start_example_blocking(base: &str, env: Vec<(String, String)>) -> Example {
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
        .env("AUTHD_RESOURCE_SECRET", EXAMPLE_FEED_SECRET)
        .envs(env)
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
    let app = spawn_app_with(|c| c.resource_secret = Some(EXAMPLE_FEED_SECRET.into())).await;
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
        let res = hello(bad).await.unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
    }

    // After a rotation the example meets an unknown kid and refetches the JWKS once.
    cli(&app, &["keys", "rotate", "--now"]);
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

    // A revoked session is refused by the example within a second (the revocation feed).
    let res = app
        .delete(
            &format!("/auth/sessions/{}", fresh.session_id),
            &admin.access,
        )
        .await;
    assert_eq!(res.status(), 204);
    let refused = eventually(Duration::from_secs(1), || async {
        hello(fresh.access.clone()).await.unwrap().status() == 401
    })
    .await;
    assert!(refused, "revoked within 1 s");
    assert_eq!(hello(admin.access.clone()).await.unwrap().status(), 200);
}
