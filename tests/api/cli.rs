//! The `authd` binary: configuration errors, migrate, and the offline admin commands.

use std::{
    io::Write,
    process::{Output, Stdio},
};

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
        ("AUTHD_RESOURCE_SECRET", "too short"),
        (
            "DATABASE_URL",
            "mysql://app:hunter2secret@db.example.test/app",
        ),
        ("DATABASE_URL", "not a url"),
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
        assert!(
            !stderr.contains("hunter2secret"),
            "a password leaked: {stderr}"
        );
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
fn a_usage_error_is_printed_whole() {
    let out = authd_command("unused")
        .args(["user", "add"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("required") && stderr.contains("--email"),
        "the missing argument is named: {stderr}"
    );
    assert!(out.stdout.is_empty(), "errors go to stderr only");
}

#[test]
fn a_bad_mail_setting_stops_the_start_without_echoing_a_secret() {
    for url in [
        "smtps://mailer:supersecret@mail.test?tls=bogus",
        "ftp://mailer:supersecret@mail.test",
        "smtp://mailer:supersecret@[::1",
    ] {
        let out = authd_command("unused")
            .env("AUTHD_SMTP_URL", url)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("AUTHD_SMTP_URL"), "{stderr}");
        assert!(
            !stderr.contains("supersecret"),
            "the password leaked: {stderr}"
        );
    }
    // A template directory that cannot be used stops the start before the database is touched
    // (the guard drops the database should a regression create it).
    let dir = std::env::temp_dir().join(format!("authd-bad-templates-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("password_reset.txt"), "{{ linkk }}").unwrap();
    let db = TestDb::new();
    let out = authd_command(db.name())
        .env("AUTHD_EMAIL_TEMPLATES", &dir)
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("AUTHD_EMAIL_TEMPLATES") && stderr.contains("password_reset.txt"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
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

#[test]
fn a_permanent_database_error_fails_at_once_naming_the_database_without_its_password() {
    let started = std::time::Instant::now();
    let out = authd_command("x")
        .env(
            "DATABASE_URL",
            "postgres://no_such_role_0x5f:hunter2secret@127.0.0.1:5432/authd_never",
        )
        .env("AUTHD_DB_CONNECT_TIMEOUT", "120s")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no_such_role_0x5f@127.0.0.1:5432/authd_never")
            && stderr.contains("DATABASE_URL"),
        "host, port, database and role named: {stderr}"
    );
    assert!(
        !stderr.contains("hunter2secret"),
        "the password leaked: {stderr}"
    );
    // An unknown role does not go away by waiting: no retry until the 120 s timeout.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "failed at once"
    );
}

#[tokio::test]
async fn a_database_with_someone_elses_tables_is_refused() {
    let database = TestDb::new();
    let url = database.url();
    <sqlx::Postgres as sqlx::migrate::MigrateDatabase>::create_database(&url)
        .await
        .unwrap();
    {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE orders (id int)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let out = authd_command(database.name())
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already has tables") && stderr.contains("orders"),
        "{stderr}"
    );
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let users: Option<String> = sqlx::query_scalar("SELECT to_regclass('public.users')::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(users, None, "nothing of authd's was created");
}

#[tokio::test]
async fn offline_admin_commands() {
    let database = TestDb::new(); // dropped at the end, also if the test fails
    let db_name = database.name().to_owned();
    let out = authd_command(&db_name).arg("migrate").output().unwrap();
    assert_succeeded(&out);

    // Password from AUTHD_PASSWORD...
    let out = authd_command(&db_name)
        .env("AUTHD_PASSWORD", PASSWORD)
        .args(["user", "add", "--email", "root@example.test", "--admin"])
        .output()
        .unwrap();
    assert_succeeded(&out);
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
    assert_succeeded(&out);
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
    let app = spawn_with_db(config, database).await;
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

    // Enable: ann logs in again.
    let out = authd_command(&db_name)
        .args(["user", "enable", "--email", "ann@example.test"])
        .output()
        .unwrap();
    assert_succeeded(&out);
    wait_live(&app).await;
    let ann3 = app.login("ann@example.test").await;

    // List: one tab-separated line per user, oldest first; log lines go to stderr, never into
    // the listing.
    let out = authd_command(&db_name)
        .env("RUST_LOG", "debug")
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = listing.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert_eq!(
        &lines[0][1..5],
        ["root@example.test", "unverified", "enabled", "admin"]
    );
    assert_eq!(
        &lines[1][1..5],
        ["ann@example.test", "unverified", "enabled", "-"]
    );
    assert!(lines[1][5].ends_with('Z'), "RFC 3339 UTC: {}", lines[1][5]);

    // Delete: every session revoked (the running server refuses ann's token within a second),
    // the account gone, a tombstone without the address left.
    let out = authd_command(&db_name)
        .args(["user", "delete", "--email", "ann@example.test"])
        .output()
        .unwrap();
    assert_succeeded(&out);
    let dead = eventually(std::time::Duration::from_secs(1), || async {
        app.me_status(&ann3.access).await == 401
    })
    .await;
    assert!(
        dead,
        "ann's token refused within 1 s of the offline deletion"
    );
    assert_problem(
        app.login_response("ann@example.test", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let tombstone: serde_json::Value =
        sqlx::query_scalar("SELECT detail FROM auth_events WHERE kind = 'user_deleted'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(tombstone["by"], "cli");
    let out = authd_command(&db_name)
        .args(["user", "delete", "--email", "ann@example.test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a second delete finds nobody");
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("authd-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        // Canonical, as the binary sees it (the temp dir may be behind a symlink).
        Self(path.canonicalize().unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary on a database that does not answer, so that nothing is created should the
/// configuration unexpectedly be accepted (it then fails after one second with exit code 1).
fn unreachable_db_command() -> std::process::Command {
    let mut cmd = authd_command("unused");
    cmd.env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/authd")
        .env("AUTHD_DB_CONNECT_TIMEOUT", "1s");
    cmd
}

/// `authd user add --email E` in `dir`, with `stdin` as the piped standard input.
fn user_add_in(dir: &std::path::Path, db_name: &str, email: &str, stdin: &str) -> Output {
    let mut child = authd_command(db_name)
        .current_dir(dir)
        .args(["user", "add", "--email", email])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_dotenv_in_a_parent_directory_is_not_read() {
    let parent = TempDir::new();
    let work = parent.0.join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(
        parent.0.join(".env"),
        "AUTHD_PASSWORD=\"a planted passphrase\"\nAUTHD_RATE_LIMIT=off\n",
    )
    .unwrap();
    let database = TestDb::new(); // dropped at the end, also if the test fails
    let db_name = database.name().to_owned();

    let out = user_add_in(
        &work,
        &db_name,
        "ann@example.test",
        &format!("{PASSWORD}\n"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("read configuration"), "{stderr}");

    // The password typed on stdin was used, not the planted one.
    let app = spawn_with_db(test_config(&db_name), database).await;
    app.login("ann@example.test").await;
    assert_problem(
        app.login_response("ann@example.test", "a planted passphrase")
            .await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn the_dotenv_of_the_working_directory_is_read_and_named() {
    let work = TempDir::new();
    let dotenv = work.0.join(".env");
    std::fs::write(
        &dotenv,
        format!("# local settings\nAUTHD_PASSWORD=\"{PASSWORD}\"\nAUTHD_ACCESS_TTL=soon\n"),
    )
    .unwrap();
    let database = TestDb::new(); // dropped at the end, also if the test fails
    let db_name = database.name().to_owned();
    let announced = format!("authd: read configuration from {}", dotenv.display());

    // A variable of the environment wins over the file; the password comes from the file
    // (stdin is empty).
    let mut add = authd_command(&db_name);
    add.current_dir(&work.0)
        .env("AUTHD_ACCESS_TTL", "15m")
        .args(["user", "add", "--email", "ann@example.test"])
        .stdin(Stdio::null());
    let out = add.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ok = out.status.success();
    drop_database(&db_name).await;
    assert!(ok, "{stderr}");
    assert_eq!(stderr.lines().next(), Some(announced.as_str()), "{stderr}");

    // Without the override, the file's bad value stops the start naming the variable.
    let out = unreachable_db_command()
        .current_dir(&work.0)
        .arg("migrate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().next(), Some(announced.as_str()), "{stderr}");
    assert!(stderr.contains("AUTHD_ACCESS_TTL"), "{stderr}");
}

#[test]
fn a_malformed_dotenv_stops_the_start_naming_the_file_and_line() {
    let work = TempDir::new();
    let dotenv = work.0.join(".env");
    std::fs::write(
        &dotenv,
        "AUTHD_ACCESS_TTL=15m\n# comment\nAUTHD_PASSWORD secret-value-123\nAUTHD_RATE_LIMIT=off\n",
    )
    .unwrap();
    let out = unreachable_db_command()
        .current_dir(&work.0)
        .arg("migrate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{} line 3", dotenv.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-value"), "{stderr}");
}
