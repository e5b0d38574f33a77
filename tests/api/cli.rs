//! The `authd` binary: configuration errors, migrate, and the offline admin commands.

use std::{io::Write, process::Stdio};

use uuid::Uuid;

use crate::helpers::*;

#[test]
fn a_bad_value_stops_at_start_with_one_line_naming_the_variable() {
    for (var, value) in [
        ("AUTHD_ACCESS_TTL", "soon"),
        ("AUTHD_COOKIE_SAMESITE", "Sometimes"),
        ("AUTHD_ISSUER", "not a url"),
        ("AUTHD_BIND", "localhost"),
        ("AUTHD_COOKIE_SECURE", "perhaps"),
        (
            "AUTHD_ALLOWED_ORIGINS",
            "https://ok.test,https://bad.test/path",
        ),
    ] {
        let out = authd_command("unused").env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{var}: {stderr}");
        assert!(stderr.contains(var), "{var} named in: {stderr}");
    }
    for (envs, var) in [
        (
            vec![
                ("AUTHD_COOKIE_SAMESITE", "None"),
                ("AUTHD_COOKIE_SECURE", "false"),
            ],
            "AUTHD_COOKIE_SAMESITE",
        ),
        (
            vec![("AUTHD_COOKIE_NAME", "__Host-rt")],
            "AUTHD_COOKIE_PATH",
        ),
        (
            vec![
                ("AUTHD_COOKIE_NAME", "__Secure-rt"),
                ("AUTHD_COOKIE_SECURE", "false"),
            ],
            "AUTHD_COOKIE_SECURE",
        ),
    ] {
        let out = authd_command("unused").envs(envs.clone()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{envs:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(var) && stderr.trim().lines().count() == 1,
            "{stderr}"
        );
    }
}

#[test]
fn an_unreachable_database_fails_after_a_bounded_retry() {
    let out = authd_command("x")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/authd")
        .env("AUTHD_DB_CONNECT_TIMEOUT", "1s")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[tokio::test]
async fn offline_admin_commands() {
    let db_name = format!("authd_test_{}", Uuid::new_v4().simple());
    let out = authd_command(&db_name).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Password from AUTHD_PASSWORD...
    let out = authd_command(&db_name)
        .env("AUTHD_PASSWORD", PASSWORD)
        .args(["user", "add", "--email", "root@example.test", "--admin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...or from stdin.
    let mut child = authd_command(&db_name)
        .args(["user", "add", "--email", "ann@example.test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A weak password is refused.
    let out = authd_command(&db_name)
        .env("AUTHD_PASSWORD", "password")
        .args(["user", "add", "--email", "c@example.test"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Serve on that database: the CLI users can log in.
    let mut config = test_config(&db_name);
    config.open_registration = false;
    let app = spawn_with_db(config, db_name.clone()).await;
    let root = app.login("root@example.test").await;
    assert_eq!(root.body["user"]["roles"], serde_json::json!(["admin"]));
    let ann = app.login("ann@example.test").await;

    let out = authd_command(&db_name)
        .args(["sessions", "revoke", "--email", "ann@example.test"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_problem(app.refresh_with(&ann.refresh).await, 401, "session_revoked").await;

    let ann2 = app.login("ann@example.test").await;
    let out = authd_command(&db_name)
        .args(["user", "disable", "--email", "ann@example.test"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_problem(
        app.refresh_with(&ann2.refresh).await,
        401,
        "session_revoked",
    )
    .await;
    assert_problem(
        app.login_response("ann@example.test", PASSWORD).await,
        401,
        "user_disabled",
    )
    .await;

    let out = authd_command(&db_name)
        .args(["user", "disable", "--email", "nobody@example.test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
