//! Faults: the database going away and coming back, pool exhaustion, graceful shutdown,
//! concurrent migrations. The database outage is made with a TCP proxy (see proxy.rs) so each
//! test breaks only its own server.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    helpers::*,
    proxy::{DbProxy, Mode},
};

async fn app_behind_proxy(
    customize: impl FnOnce(&mut authd::config::Config),
) -> (TestApp, DbProxy) {
    let proxy = DbProxy::start("127.0.0.1:5432").await;
    let database = TestDb::new();
    let db_name = database.name().to_owned();
    let mut config = test_config(&db_name);
    config.database_url = proxy.url(&db_name);
    customize(&mut config);
    (spawn_with_db(config, database).await, proxy)
}

/// Waits until authd's request pool has sent the (paused) proxy something since it had sent
/// `before` messages: the request being waited for is then inside the server, waiting on the
/// database. (Nothing else uses the request pool meanwhile: cleanup runs at start, then every
/// 10 minutes.)
async fn reaches_the_database(proxy: &DbProxy, before: u64) {
    let reached = eventually(Duration::from_secs(30), || {
        let sent = proxy.messages("authd");
        async move { sent > before }
    })
    .await;
    assert!(reached, "the request reached the database");
}

async fn status(app: &TestApp, req: reqwest::RequestBuilder) -> (u16, Duration) {
    let started = Instant::now();
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    if status >= 400 {
        problem(res).await; // every error is still a problem+json
    }
    let _ = app;
    (status, started.elapsed())
}

#[tokio::test]
async fn a_database_outage_gives_503s_not_hangs_and_the_server_recovers_by_itself() {
    let (app, proxy) = app_behind_proxy(|_| {}).await;
    let t = app.signup_and_login("ann@example.test").await;
    let refresh_req = || {
        app.client
            .post(app.url("/auth/refresh"))
            .header("cookie", format!("authd_refresh={}", t.refresh))
    };

    proxy.set(Mode::Cut);
    let unready = eventually(Duration::from_secs(10), || async {
        app.readyz_status().await == 503
    })
    .await;
    assert!(unready, "/readyz reports the outage");
    assert_eq!(app.status_of("/healthz").await, 200, "the process is up");
    for (what, req) in [
        (
            "login",
            app.client
                .post(app.url("/auth/login"))
                .json(&serde_json::json!({"email": "ann@example.test", "password": PASSWORD})),
        ),
        ("refresh", refresh_req()),
        (
            "me",
            app.client.get(app.url("/auth/me")).bearer_auth(&t.access),
        ),
    ] {
        let (code, took) = status(&app, req).await;
        assert_eq!(code, 503, "{what} during the outage");
        assert!(
            took < Duration::from_secs(10),
            "{what} answered, not hung ({took:?})"
        );
    }
    let res = refresh_req().send().await.unwrap();
    assert!(
        set_cookies(&res).is_empty(),
        "a 503 does not clear the cookie: the token may still be good"
    );
    assert_eq!(res.headers()["retry-after"], "1");
    assert_problem(res, 503, "unavailable").await;
    // The database is known down: the rest fail fast without waiting on the pool, while routes
    // that need no database keep working.
    let known_down = eventually(Duration::from_secs(2), || async {
        app.state.db_health.is_down()
    })
    .await;
    assert!(known_down);
    let jwks = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);

    // Back again: no restart, and the refresh token was never half-consumed.
    proxy.set(Mode::Open);
    let ready = eventually(Duration::from_secs(15), || async {
        app.readyz_status().await == 200
    })
    .await;
    assert!(ready, "recovers by itself");
    assert!(!app.state.db_health.is_down(), "the breaker closed");
    let t1 = app.refresh(&t.refresh).await;
    assert_eq!(app.me_status(&t1.access).await, 200);
    let live = eventually(Duration::from_secs(15), || async {
        app.state.revocations.is_live()
    })
    .await;
    assert!(live, "the revocation listener reconnects too");
}

#[tokio::test]
async fn a_refresh_caught_by_the_outage_is_either_fully_rotated_or_still_valid() {
    let (app, proxy) = app_behind_proxy(|_| {}).await;
    let t = app.signup_and_login("ann@example.test").await;
    // Hold the database traffic so the refresh is in flight, then cut everything.
    proxy.set(Mode::Paused);
    let sent = proxy.messages("authd");
    let pending = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/auth/refresh");
        let cookie = format!("authd_refresh={}", t.refresh);
        async move {
            client
                .post(url)
                .header("cookie", cookie)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    reaches_the_database(&proxy, sent).await;
    proxy.set(Mode::Cut);
    let code = pending.await.unwrap().unwrap();
    assert_eq!(code, 503, "the caught refresh fails cleanly");
    proxy.set(Mode::Open);

    // Whatever the database saw, presenting the same token again works: it was either not
    // consumed, or consumed with its successor written in the same statement (grace replay).
    let again = eventually(Duration::from_secs(15), || async {
        app.refresh_with(&t.refresh).await.status() == 200
    })
    .await;
    assert!(again);
    let rows: Vec<(bool,)> =
        sqlx::query_as("SELECT used_at IS NOT NULL FROM refresh_tokens ORDER BY created_at")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [(true,), (false,)],
        "one token consumed, exactly one successor, nothing half-written"
    );
    assert!(app.revoked_reason(t.session_id).await.is_none());
}

#[tokio::test]
async fn an_exhausted_pool_gives_503_with_retry_after_instead_of_queueing_forever() {
    let app = spawn_app_with(|c| c.db_max_connections = 1).await;
    let t = app.signup_and_login("ann@example.test").await;
    let held = app.state.db.acquire().await.unwrap();
    let (code, took) = status(
        &app,
        app.client
            .get(app.url("/auth/sessions"))
            .bearer_auth(&t.access),
    )
    .await;
    assert_eq!(code, 503);
    assert!(took < Duration::from_secs(10), "bounded wait ({took:?})");
    let res = app
        .client
        .get(app.url("/auth/sessions"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(app.status_of("/healthz").await, 200);
    assert!(
        !app.state.db_health.is_down(),
        "a busy pool is not a database outage"
    );
    drop(held);
    assert_eq!(app.get("/auth/sessions", &t.access).await.status(), 200);
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_refresh_finish_and_stops_accepting() {
    let proxy = DbProxy::start("127.0.0.1:5432").await;
    let database = TestDb::new(); // dropped at the end, also if the test fails
    let db_name = database.name().to_owned();
    let (mut child, base) = spawn_authd_process(&proxy.url(&db_name), &[]).await;
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let client = reqwest::Client::new();
    let creds = serde_json::json!({"email": "ann@example.test", "password": PASSWORD});
    client
        .post(format!("{base}/auth/register"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    let t = tokens_from(
        client
            .post(format!("{base}/auth/login"))
            .json(&creds)
            .send()
            .await
            .unwrap(),
    )
    .await;

    proxy.set(Mode::Paused); // the refresh will wait on the database
    let sent = proxy.messages("authd");
    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/auth/refresh");
        let cookie = format!("authd_refresh={}", t.refresh);
        async move { client.post(url).header("cookie", cookie).send().await }
    });
    reaches_the_database(&proxy, sent).await;
    sigterm(child.id());
    let refused = eventually(Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;
    assert!(refused, "no new connections after SIGTERM");
    assert!(
        child.try_wait().unwrap().is_none(),
        "still finishing the in-flight request"
    );

    proxy.set(Mode::Open);
    let res = in_flight
        .await
        .unwrap()
        .expect("the in-flight refresh got its response");
    assert_eq!(res.status(), 200, "the in-flight refresh completed");
    let t1 = tokens_from(res).await;
    assert_ne!(t1.refresh, t.refresh);
    let exited = eventually(Duration::from_secs(25), || {
        let done = child.try_wait().unwrap();
        async move { done.is_some() }
    })
    .await;
    assert!(exited, "the process exits once drained");
    assert!(child.wait().unwrap().success(), "exit status 0");
}

#[tokio::test]
async fn two_instances_can_migrate_the_same_new_database_at_once() {
    let database = TestDb::new(); // dropped at the end, also if the test fails
    let url = database.url();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_authd"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .arg("migrate")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (run(), run());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count() as i64;
    assert_eq!(applied, files, "every migration applied exactly once");
}
