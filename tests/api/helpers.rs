//! `spawn_app`: a real authd on 127.0.0.1:<random port> with its own fresh database, dropped
//! (WITH FORCE) when the test ends, also when it fails ([`TestDb`]). Cookies are handled by hand
//! so tests can replay old tokens.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use authd::{app::Application, cli::Cli, config::Config, tokens::keypair::KeyMaterial};
use clap::Parser;
use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

pub const PASSWORD: &str = "a perfectly fine passphrase";

pub fn server_url() -> String {
    std::env::var("AUTHD_TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub db_name: String,
    pub state: authd::state::AppState,
    /// Base URL of the separate metrics listener, when configured.
    pub metrics_base: Option<String>,
    /// Drops the database once the last app on it is gone.
    database: Arc<TestDb>,
}

/// A per-test database `authd_test_<uuid>` on the test server. The guard is made first, before
/// anything that can fail; whoever then creates the database (`Application::build`, `authd
/// migrate`, a test), dropping the guard drops it (`IF EXISTS ... WITH (FORCE)`), also while a
/// failed test unwinds. So no test leaves a database behind, and nothing needs to sweep the
/// shared server for leftovers.
pub struct TestDb {
    name: String,
}

impl TestDb {
    /// Reserves a fresh name; creates nothing yet.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            name: format!("authd_test_{}", Uuid::new_v4().simple()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL on the test server.
    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // The mail outbox `test_config` gave this database's servers.
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("authd-outbox-{name}")));
        // Drop may run inside the test's runtime (or while it unwinds from a panic): do the
        // cleanup on a thread with a runtime of its own, and never panic here.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&name));
            }
        })
        .join();
    }
}

impl TestApp {
    /// Lets `by` pass for the database: every session and refresh-token timestamp moves that far
    /// into the past, which for each rule that compares them with `now()` (idle and absolute
    /// expiry, the reuse grace) is the same as waiting, minus the sleep and its luck. Access
    /// tokens are checked against the wall clock and do not move.
    pub async fn pass_time(&self, by: Duration) {
        let secs = by.as_secs_f64();
        sqlx::query(
            "UPDATE sessions SET created_at = created_at - make_interval(secs => $1),
                last_used_at = last_used_at - make_interval(secs => $1),
                expires_at = expires_at - make_interval(secs => $1),
                absolute_expires_at = absolute_expires_at - make_interval(secs => $1),
                access_expires_at = access_expires_at - make_interval(secs => $1),
                revoked_at = revoked_at - make_interval(secs => $1)",
        )
        .bind(secs)
        .execute(&self.db)
        .await
        .unwrap();
        sqlx::query(
            "UPDATE refresh_tokens SET created_at = created_at - make_interval(secs => $1),
                used_at = used_at - make_interval(secs => $1)",
        )
        .bind(secs)
        .execute(&self.db)
        .await
        .unwrap();
    }
}

/// The config a test starts from: defaults, then the test's database and a random port.
pub fn test_config(db_name: &str) -> Config {
    // Parse from an empty command line; env vars of the test process are ignored below for
    // the settings that must be per-test.
    let mut config = Cli::try_parse_from(["authd"])
        .expect("default config parses")
        .config;
    config.database_url = format!("{}/{}", server_url(), db_name);
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.db_max_connections = 8;
    // Without an SMTP server mail goes to the outbox: a directory of this test's own.
    config.email_outbox = std::env::temp_dir().join(format!("authd-outbox-{db_name}"));
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDb::new();
    let mut config = test_config(database.name());
    customize(&mut config);
    spawn_with_config(config, Arc::new(database)).await
}

/// Starts one more server on the same database as `other` (several instances); the database
/// is dropped when both are gone.
pub async fn spawn_on_same_db(other: &TestApp, customize: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(&other.db_name);
    customize(&mut config);
    spawn_with_config(config, other.database.clone()).await
}

/// Starts a server on an existing (or to-be-created) database that the returned app owns.
pub async fn spawn_with_db(config: Config, database: TestDb) -> TestApp {
    spawn_with_config(config, Arc::new(database)).await
}

async fn spawn_with_config(config: Config, database: Arc<TestDb>) -> TestApp {
    init_logs();
    let app = Application::build(config).await.expect("app builds");
    let addr = app.local_addr().unwrap();
    let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
    let state = app.state().clone();
    let db = state.db.clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    TestApp {
        base: format!("http://{addr}"),
        client,
        db,
        db_name: database.name().to_owned(),
        state,
        metrics_base,
        database,
    }
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            authd::telemetry::init(None, authd::telemetry::LogTarget::Stdout);
        }
    });
}

/// What a login (or refresh) returned.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session_id: Uuid,
    pub body: Value,
    pub set_cookie: String,
}

/// All `Set-Cookie` headers of a response.
pub fn set_cookies(res: &Response) -> Vec<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The refresh cookie's `Set-Cookie` header (exactly one expected).
pub fn refresh_set_cookie(res: &Response) -> String {
    let all: Vec<String> = set_cookies(res)
        .into_iter()
        .filter(|c| c.starts_with("authd_refresh="))
        .collect();
    assert_eq!(all.len(), 1, "exactly one refresh Set-Cookie: {all:?}");
    all[0].clone()
}

pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

/// Whether a `Set-Cookie` header deletes the refresh cookie.
pub fn is_clearing(set_cookie: &str) -> bool {
    set_cookie.starts_with("authd_refresh=;") && set_cookie.contains("Max-Age=0")
}

pub async fn problem(res: Response) -> (StatusCode, String, Value) {
    let status = res.status();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = res.json().await.expect("problem body is JSON");
    assert_eq!(
        ct.as_deref(),
        Some("application/problem+json"),
        "problem content type for {body}"
    );
    assert_eq!(body["status"], status.as_u16(), "status field matches");
    assert_eq!(body["type"], "about:blank");
    (
        status,
        body["code"].as_str().unwrap_or_default().to_string(),
        body,
    )
}

/// Asserts a problem response with this status and code.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    let (s, c, body) = problem(res).await;
    assert_eq!(
        (s.as_u16(), c.as_str()),
        (status, code),
        "unexpected problem {body}"
    );
    body
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET `path` (no credentials) and its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.client.get(self.url(path)).send().await.unwrap();
        res.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/register",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Registers (if needed) and logs in; panics unless both succeed.
    pub async fn signup_and_login(&self, email: &str) -> Tokens {
        let r = self.register(email, PASSWORD).await;
        assert!(
            r.status() == 201 || r.status() == 409,
            "register: {}",
            r.status()
        );
        self.login(email).await
    }

    pub async fn login(&self, email: &str) -> Tokens {
        let res = self.login_response(email, PASSWORD).await;
        assert_eq!(res.status(), 200, "login of {email}");
        tokens_from(res).await
    }

    /// A user with the admin role, logged in.
    pub async fn admin(&self) -> Tokens {
        let r = self.register("admin@example.test", PASSWORD).await;
        assert_eq!(r.status(), 201);
        sqlx::query("UPDATE users SET roles = '{admin}' WHERE email = 'admin@example.test'")
            .execute(&self.db)
            .await
            .unwrap();
        self.login("admin@example.test").await
    }

    pub async fn refresh_with(&self, cookie_value: &str) -> Response {
        self.client
            .post(self.url("/auth/refresh"))
            .header(header::COOKIE, format!("authd_refresh={cookie_value}"))
            .send()
            .await
            .unwrap()
    }

    /// Refreshes, expecting success.
    pub async fn refresh(&self, cookie_value: &str) -> Tokens {
        let res = self.refresh_with(cookie_value).await;
        assert_eq!(res.status(), 200, "refresh");
        tokens_from(res).await
    }

    /// The status of an unauthenticated GET (health checks and the like).
    pub async fn status_of(&self, path: &str) -> reqwest::StatusCode {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn get(&self, path: &str, access: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, access: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    pub async fn me_status(&self, access: &str) -> u16 {
        self.get("/auth/me", access).await.status().as_u16()
    }

    pub async fn user_id(&self, email: &str) -> Uuid {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    pub async fn revoked_reason(&self, session_id: Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT revoked_reason FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

pub async fn tokens_from(res: Response) -> Tokens {
    let set_cookie = refresh_set_cookie(&res);
    let body: Value = res.json().await.unwrap();
    Tokens {
        access: body["access_token"].as_str().unwrap().to_string(),
        refresh: cookie_value(&set_cookie),
        session_id: body["session_id"].as_str().unwrap().parse().unwrap(),
        body,
        set_cookie,
    }
}

/// Polls `check` every 50 ms until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until an instance trusts its in-memory deny-list (listener connected + reloaded).
pub async fn wait_live(app: &TestApp) {
    let live = eventually(Duration::from_secs(10), || async {
        app.state.revocations.is_live()
    })
    .await;
    assert!(live, "the notification listener came up");
}

/// An empty directory to run the binary in, so no developer's `.env` is read by a test.
fn empty_dir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("authd-test-cwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The `authd` binary with a clean environment, on the given database, in an empty working
/// directory (tests that want a `.env` set their own `current_dir`).
pub fn authd_command(db_name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
    cmd.current_dir(empty_dir());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("{}/{}", server_url(), db_name))
        .env("AUTHD_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn");
    cmd
}

/// Drops a test database, disconnecting whoever still uses it.
pub async fn drop_database(name: &str) {
    if let Ok(mut conn) = PgConnection::connect(&format!("{}/postgres", server_url())).await {
        let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
    }
}

/// A free TCP port on 127.0.0.1 (for servers started as separate processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary (`authd serve`) on `database_url` and waits until it is ready.
/// `RUST_LOG` and any extra variables come from `env`; stdout and stderr are piped.
pub async fn spawn_authd_process(
    database_url: &str,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let port = free_port();
    let child = authd_command("unused")
        .env("DATABASE_URL", database_url)
        .env("AUTHD_BIND", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let up = eventually(Duration::from_secs(30), || async {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(up, "authd at {base} became ready");
    (child, base)
}

pub fn sigterm(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

impl TestApp {
    pub async fn readyz_status(&self) -> u16 {
        self.client
            .get(self.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// A PEM file holding a PKCS#8 key (for AUTHD_SIGNING_KEY_FILE), removed when dropped.
pub struct KeyFile(pub std::path::PathBuf);

impl KeyFile {
    pub fn new(pkcs8_der: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("authd-test-key-{}.pem", Uuid::new_v4()));
        std::fs::write(
            &path,
            pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8_der.to_vec())),
        )
        .unwrap();
        Self(path)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The key pair that signed `token`, its private part read from the database: for tests that
/// forge tokens with the real key.
pub async fn signing_key_of(app: &TestApp, token: &str) -> KeyMaterial {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let private_der: Vec<u8> =
        sqlx::query_scalar("SELECT private_der FROM signing_keys WHERE kid = $1")
            .bind(&kid)
            .fetch_one(&app.db)
            .await
            .unwrap();
    KeyMaterial::from_pkcs8(&private_der).unwrap()
}

/// `claims` signed with `key` as an access token whose header names `alg` and `kid`
/// (`typ: at+jwt`), whether or not that is the key's algorithm.
pub fn sign_as(
    alg: jsonwebtoken::Algorithm,
    kid: &str,
    claims: &Value,
    key: &jsonwebtoken::EncodingKey,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Asserts a command exited 0, showing its exit status and stderr otherwise.
pub fn assert_succeeded(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
}
