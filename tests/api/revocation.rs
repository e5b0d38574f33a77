//! Instant revocation across instances: the NOTIFY-fed deny-list and its database fallback, and
//! the invariant that no TTL difference, restart, deletion or stalled connection breaks it.

use std::time::{Duration, Instant};

use authd::live::denylist::TRUST_FOR;
use uuid::Uuid;

use crate::{
    helpers::*,
    proxy::{DbProxy, Mode},
};

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

/// Statements authd's request pool (connections named `authd`) has sent so far, counted by a
/// proxy in front of the database as they go out: exact and immediate (no statistics-collector
/// delay to wait for), and the listener's heartbeats (`authd-listener`) are not among them.
fn request_pool_statements(proxy: &DbProxy) -> u64 {
    proxy.statements("authd")
}

#[tokio::test]
async fn bearer_checks_make_no_database_query_while_the_listener_is_live() {
    let proxy = DbProxy::start("127.0.0.1:5432").await;
    let database = TestDb::new();
    let mut config = test_config(database.name());
    config.database_url = proxy.url(database.name());
    let app = spawn_with_db(config, database).await;
    wait_live(&app).await;
    let t = app.signup_and_login("ann@example.test").await;
    app.me_status(&t.access).await; // warms the user cache
    let fallbacks = app.state.revocations.fallbacks();

    // Control: 20 requests that do read the database are counted.
    let before = request_pool_statements(&proxy);
    for _ in 0..20 {
        assert_eq!(app.get("/auth/sessions", &t.access).await.status(), 200);
    }
    let control = request_pool_statements(&proxy) - before;
    assert!(
        control >= 20,
        "the counter sees request queries ({control})"
    );

    // 100 Bearer-authenticated /auth/me: one query each would be >= 100 statements.
    let before = request_pool_statements(&proxy);
    for _ in 0..100 {
        assert_eq!(app.me_status(&t.access).await, 200);
    }
    let during = request_pool_statements(&proxy) - before;
    assert!(during < 50, "{during} statements for 100 requests");
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

/// How long the deny-list keeps an entry past its session's `access_expires_at`.
fn keep_after() -> i64 {
    authd::live::denylist::KEEP_AFTER_ACCESS_EXPIRY.as_secs() as i64
}

async fn access_expires_unix(app: &TestApp, session_id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT ceil(extract(epoch FROM access_expires_at))::int8 FROM sessions WHERE id = $1",
    )
    .bind(session_id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_instance_with_a_shorter_access_ttl_still_denies_longer_lived_tokens_after_a_restart() {
    let long = spawn_app_with(|c| c.access_ttl = Duration::from_secs(3600)).await;
    wait_live(&long).await;
    let t = long.signup_and_login("ann@example.test").await;
    let res = long
        .delete(&format!("/auth/sessions/{}", t.session_id), &t.access)
        .await;
    assert_eq!(res.status(), 204);
    // The revoking instance learns when the token dies (from its own NOTIFY), not "pending".
    let until = access_expires_unix(&long, t.session_id).await + keep_after();
    let exact = eventually(Duration::from_secs(1), || async {
        long.state.revocations.denied_until(t.session_id) == Some(until)
    })
    .await;
    assert!(exact, "kept until access_expires_at + leeway");
    // Ten minutes later, an instance configured with 2 s access tokens starts: a token minted
    // by the 1 h instance is still alive, so its revocation must be loaded.
    sqlx::query("UPDATE sessions SET revoked_at = now() - interval '10 minutes' WHERE id = $1")
        .bind(t.session_id)
        .execute(&long.db)
        .await
        .unwrap();
    let short = spawn_on_same_db(&long, |c| c.access_ttl = Duration::from_secs(2)).await;
    wait_live(&short).await;
    let fallbacks = short.state.revocations.fallbacks();
    assert_eq!(
        short.state.revocations.denied_until(t.session_id),
        Some(until)
    );
    // Two defences now: the deny-list knows the revocation (above), and the token's lifetime
    // exceeds what this instance issues, so it is refused for that alone.
    let (status, code, _) = problem(short.get("/auth/me", &t.access).await).await;
    assert_eq!(status, 401);
    assert!(
        ["session_revoked", "invalid_token"].contains(&code.as_str()),
        "{code}"
    );
    assert_eq!(
        short.state.revocations.fallbacks(),
        fallbacks,
        "from memory"
    );
}

#[tokio::test]
async fn a_bare_id_notice_is_denied_until_the_database_says_how_long() {
    let app = spawn_app().await;
    wait_live(&app).await;
    let t = app.signup_and_login("ann@example.test").await;
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1")
        .bind(t.session_id)
        .execute(&app.db)
        .await
        .unwrap();
    let until = access_expires_unix(&app, t.session_id).await + keep_after();
    assert!(
        eventually(Duration::from_secs(1), || async {
            app.state.revocations.denied_until(t.session_id) == Some(until)
        })
        .await
    );
    // Someone (an older trigger, a script) announces it again without a time: nothing is
    // shortened, and an id we had not heard of is kept until its time is read.
    let other = app.login("ann@example.test").await;
    for sid in [t.session_id, other.session_id] {
        sqlx::query("SELECT pg_notify('authd_revoked', $1)")
            .bind(sid.to_string())
            .execute(&app.db)
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(1), || async {
            app.state.revocations.denied_until(other.session_id) == Some(i64::MAX)
        })
        .await
    );
    assert_eq!(
        app.state.revocations.denied_until(t.session_id),
        Some(until)
    );
    assert_eq!(app.me_status(&other.access).await, 401, "fail closed");
    app.state
        .revocations
        .resolve_pending(&app.db)
        .await
        .unwrap();
    assert_eq!(
        app.state.revocations.denied_until(other.session_id),
        Some(access_expires_unix(&app, other.session_id).await + keep_after())
    );
}

#[tokio::test]
async fn deleted_users_and_sessions_are_denied_everywhere_and_after_any_reload() {
    const SECRET: &str = "introspection-secret-of-at-least-32-chars";
    let a = spawn_app_with(|c| c.introspection_secret = Some(SECRET.into())).await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let ann = a.signup_and_login("ann@example.test").await;
    let bob = a.signup_and_login("bob@example.test").await;
    let carol = a.signup_and_login("carol@example.test").await;
    for t in [&ann, &bob, &carol] {
        assert_eq!(b.me_status(&t.access).await, 200);
    }
    let ann_id = a.user_id("ann@example.test").await;
    assert!(b.state.users.get(ann_id).is_some(), "cached by /auth/me");
    // Account deletion (cascading to the sessions) and a manual DELETE of one session row.
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(ann_id)
        .execute(&a.db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(bob.session_id)
        .execute(&a.db)
        .await
        .unwrap();
    for app in [&a, &b] {
        for t in [&ann, &bob] {
            let denied = eventually(Duration::from_secs(1), || async {
                app.me_status(&t.access).await == 401
            })
            .await;
            assert!(denied, "rejected within 1 s");
            assert!(app.state.revocations.contains(t.session_id));
        }
        assert_eq!(app.me_status(&carol.access).await, 200);
        assert!(app.state.users.get(ann_id).is_none(), "nor cached any more");
    }
    let introspected: serde_json::Value = a
        .client
        .post(a.url("/auth/introspect"))
        .bearer_auth(SECRET)
        .form(&[("token", &ann.access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected, serde_json::json!({"active": false}));

    // A fresh instance loads them from the tombstones, and answers from memory.
    let c = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&c).await;
    let fallbacks = c.state.revocations.fallbacks();
    for t in [&ann, &bob] {
        assert_problem(c.get("/auth/me", &t.access).await, 401, "session_revoked").await;
    }
    assert_eq!(c.me_status(&carol.access).await, 200);
    assert_eq!(c.state.revocations.fallbacks(), fallbacks, "from memory");

    // So does an instance whose listener reconnects.
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'authd-listener' AND datname = current_database()")
        .execute(&a.db)
        .await
        .unwrap();
    for app in [&a, &b, &c] {
        for t in [&ann, &bob] {
            assert_eq!(app.me_status(&t.access).await, 401);
        }
        wait_live(app).await;
        for t in [&ann, &bob] {
            assert!(app.state.revocations.contains(t.session_id));
        }
    }
}

/// An instance whose database traffic goes through a fault proxy, and a second, direct one.
async fn instance_behind_proxy_and_another() -> (TestApp, TestApp, DbProxy) {
    let proxy = DbProxy::start("127.0.0.1:5432").await;
    let database = TestDb::new();
    let mut config = test_config(database.name());
    config.database_url = proxy.url(database.name());
    let a = spawn_with_db(config, database).await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    (a, b, proxy)
}

#[tokio::test]
async fn a_silently_stalled_listener_is_distrusted_within_half_a_second() {
    let (a, b, proxy) = instance_behind_proxy_and_another().await;
    let phone = a.signup_and_login("ann@example.test").await;
    let laptop = b.login("ann@example.test").await;
    assert_eq!(a.me_status(&phone.access).await, 200);
    let fallbacks = a.state.revocations.fallbacks();

    // A's LISTEN (and heartbeat) connections stop passing bytes, without any error.
    proxy.set_listener(Mode::Paused);
    let res = b
        .delete(
            &format!("/auth/sessions/{}", phone.session_id),
            &laptop.access,
        )
        .await;
    assert_eq!(res.status(), 204);
    let revoked = Instant::now();
    let rejected = eventually(Duration::from_secs(1), || async {
        a.me_status(&phone.access).await == 401
    })
    .await;
    let took = revoked.elapsed();
    assert!(
        rejected,
        "rejected by A within 1 s although A heard nothing"
    );
    assert!(
        took < TRUST_FOR + Duration::from_millis(300),
        "the list is distrusted {TRUST_FOR:?} after the last heartbeat that came back was sent ({took:?})"
    );
    assert!(!a.state.revocations.contains(phone.session_id));
    assert!(
        a.state.revocations.fallbacks() > fallbacks,
        "from the database"
    );
    assert_eq!(a.me_status(&laptop.access).await, 200, "A still serves");

    // The connection comes back: the notice arrives and the list is trusted again.
    proxy.set_listener(Mode::Open);
    wait_live(&a).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            a.state.revocations.contains(phone.session_id)
        })
        .await
    );
    let fallbacks = a.state.revocations.fallbacks();
    assert_eq!(a.me_status(&phone.access).await, 401);
    assert_eq!(a.me_status(&laptop.access).await, 200);
    assert_eq!(a.state.revocations.fallbacks(), fallbacks, "from memory");
}

#[tokio::test]
async fn truncating_the_sessions_table_denies_every_token_too() {
    let app = spawn_app().await;
    wait_live(&app).await;
    let t = app.signup_and_login("ann@example.test").await;
    assert_eq!(app.me_status(&t.access).await, 200);
    sqlx::query("TRUNCATE sessions CASCADE")
        .execute(&app.db)
        .await
        .unwrap();
    let denied = eventually(Duration::from_secs(1), || async {
        app.me_status(&t.access).await == 401
    })
    .await;
    assert!(denied);
    assert!(app.state.revocations.contains(t.session_id));
    let tombstones: i64 = sqlx::query_scalar("SELECT count(*) FROM session_tombstones")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tombstones, 1);
}
