//! `GET /auth/revocations` (API.md "Revocation feed for resource servers"): the snapshot, live
//! events from every instance, signed SETs with CAEP session-revoked events, heartbeats, key
//! announcements, authentication and the subscriber gauge.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::helpers::*;

const SECRET: &str = "resource-server-secret-0123456789abcdef";
const CAEP_SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";

/// One server-sent event.
#[derive(Debug, Clone, Default)]
struct Sse {
    event: String,
    id: Option<String>,
    data: String,
}

/// A subscriber reading the stream as a resource server would.
struct Subscriber {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
    /// The server ended the stream.
    closed: bool,
}

impl Subscriber {
    async fn connect(app: &TestApp) -> Self {
        let res = app
            .client
            .get(app.url("/auth/revocations"))
            .bearer_auth(SECRET)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Self {
            body: Box::pin(res.bytes_stream()),
            buffer: String::new(),
            closed: false,
        }
    }

    /// The next event, waiting at most `within`; `None` if the stream ended or time ran out.
    async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut ev = Sse {
                    event: "message".into(),
                    ..Sse::default()
                };
                for line in block.lines() {
                    match line.split_once(':') {
                        Some(("event", v)) => ev.event = v.trim().into(),
                        Some(("id", v)) => ev.id = Some(v.trim().into()),
                        Some(("data", v)) => ev.data.push_str(v.trim_start()),
                        _ => {}
                    }
                }
                return Some(ev);
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()?;
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => {
                    self.closed = true;
                    return None;
                }
            }
        }
    }

    /// The next event of `kind`, skipping others (heartbeats).
    async fn next_of(&mut self, kind: &str, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next(left).await?;
            if ev.event == kind {
                return Some(ev);
            }
        }
    }
}

/// Verifies a SET with nothing but the JWKS and returns its header and claims.
async fn verify_set(app: &TestApp, set: &str) -> (jsonwebtoken::Header, Value) {
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    let header = jsonwebtoken::decode_header(set).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| Some(k["kid"].as_str().unwrap()) == header.kid.as_deref())
        .expect("the SET's kid is in the JWKS");
    // The key and its algorithm from the JWK alone (jsonwebtoken's own JWK parsing).
    let alg: jsonwebtoken::Algorithm = jwk["alg"].as_str().unwrap().parse().unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    assert_eq!(
        header.alg, alg,
        "the SET is signed with its key's algorithm"
    );
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_audience(&["authd"]);
    v.set_issuer(&["http://localhost:8080"]);
    v.required_spec_claims.clear(); // a SET has no exp
    v.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(set, &key, &v).expect("the SET verifies");
    (header, data.claims)
}

fn revoked_session(claims: &Value) -> (String, String, i64) {
    let event = &claims["events"][CAEP_SESSION_REVOKED];
    (
        event["subject"]["session"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        event["subject"]["user"]["id"].as_str().unwrap().to_owned(),
        event["tokens_valid_until"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn the_feed_is_off_without_a_secret_and_closed_to_a_wrong_one() {
    let off = spawn_app().await;
    let res = off
        .client
        .get(off.url("/auth/revocations"))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
    let on = spawn_app_with(|c| c.resource_secret = Some(SECRET.into())).await;
    for auth in [None, Some("wrong-secret-wrong-secret-wrong-secret-00")] {
        let mut req = on.client.get(on.url("/auth/revocations"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        assert_problem(req.send().await.unwrap(), 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn a_subscriber_gets_the_snapshot_then_every_instances_revocations_within_a_second() {
    let a = spawn_app_with(|c| c.resource_secret = Some(SECRET.into())).await;
    let b = spawn_on_same_db(&a, |c| c.resource_secret = Some(SECRET.into())).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let phone = a.signup_and_login("ann@example.test").await;
    let laptop = a.login("ann@example.test").await;
    let ann = a.user_id("ann@example.test").await;
    // Revoked before anyone subscribed: it is in the snapshot.
    assert_eq!(
        a.delete(
            &format!("/auth/sessions/{}", phone.session_id),
            &laptop.access
        )
        .await
        .status(),
        204
    );

    let mut sub = Subscriber::connect(&a).await;
    let first = sub
        .next(Duration::from_secs(5))
        .await
        .expect("a snapshot event");
    assert_eq!(first.event, "revocation");
    let (header, claims) = verify_set(&a, &first.data).await;
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    assert_eq!(
        first.id.as_deref(),
        claims["jti"].as_str(),
        "the event id is the SET's jti"
    );
    let (sid, sub_id, until) = revoked_session(&claims);
    assert_eq!(
        (sid, sub_id),
        (phone.session_id.to_string(), ann.to_string())
    );
    assert!(
        until >= authd::tokens::jwt::unix_now(),
        "its tokens could still be alive"
    );
    let ready = sub.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (ready.event.as_str(), ready.data.as_str()),
        ("ready", r#"{"snapshot":1}"#)
    );

    // Revoked through the other instance: told on this stream within a second.
    let started = std::time::Instant::now();
    let res = b
        .delete(
            &format!("/auth/sessions/{}", laptop.session_id),
            &laptop.access,
        )
        .await;
    assert_eq!(res.status(), 204);
    // The phone's own NOTIFY may still arrive live after the snapshot (a duplicate, which is
    // allowed: events are idempotent): wait for the laptop's.
    let claims = loop {
        let left = Duration::from_secs(1).saturating_sub(started.elapsed());
        let live = sub
            .next_of("revocation", left)
            .await
            .expect("the live event within 1 s");
        let (_, claims) = verify_set(&a, &live.data).await;
        if revoked_session(&claims).0 == laptop.session_id.to_string() {
            break claims;
        }
        assert_eq!(revoked_session(&claims).0, phone.session_id.to_string());
    };
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        claims["events"][CAEP_SESSION_REVOKED]["reason_admin"]["en"],
        "user_revoked"
    );
}

#[tokio::test]
async fn heartbeats_keys_and_the_subscriber_gauge() {
    let app = spawn_app_with(|c| c.resource_secret = Some(SECRET.into())).await;
    wait_live(&app).await;
    let mut sub = Subscriber::connect(&app).await;
    assert_eq!(
        sub.next(Duration::from_secs(5)).await.unwrap().event,
        "ready"
    );
    let beat = sub
        .next_of("heartbeat", Duration::from_secs(5))
        .await
        .expect("a heartbeat within 5 s");
    let beat: Value = serde_json::from_str(&beat.data).unwrap();
    assert!(beat["time"].as_i64().unwrap() > 0);
    let gauge = |app: &TestApp| {
        let app_url = app.url("/metrics");
        let client = app.client.clone();
        async move {
            let text = client
                .get(app_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .find_map(|l| {
                    l.strip_prefix("authd_revocation_feed_subscribers ")?
                        .parse::<i64>()
                        .ok()
                })
                .unwrap()
        }
    };
    assert_eq!(gauge(&app).await, 1);

    // A key change is announced: verifiers refetch the JWKS.
    sqlx::query("SELECT pg_notify('authd_keys', '')")
        .execute(&app.db)
        .await
        .unwrap();
    assert!(sub.next_of("keys", Duration::from_secs(2)).await.is_some());

    drop(sub);
    let freed = eventually(Duration::from_secs(5), || async { gauge(&app).await == 0 }).await;
    assert!(freed, "a gone subscriber frees its slot");
}

#[tokio::test]
async fn what_an_instance_missed_while_its_listener_was_down_reaches_subscribers_on_resync() {
    use crate::proxy::{DbProxy, Mode};
    let proxy = DbProxy::start("127.0.0.1:5432").await;
    let database = TestDb::new();
    let mut config = test_config(database.name());
    config.database_url = proxy.url(database.name());
    config.resource_secret = Some(SECRET.into());
    let a = spawn_with_db(config, database).await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let phone = b.signup_and_login("ann@example.test").await;
    let laptop = b.login("ann@example.test").await;

    let mut sub = Subscriber::connect(&a).await;
    assert_eq!(
        sub.next(Duration::from_secs(5)).await.unwrap().event,
        "ready"
    );
    // A's listener connection is cut (its NOTIFYs are lost); B revokes meanwhile.
    proxy.set_listener(Mode::Cut);
    let res = b
        .delete(
            &format!("/auth/sessions/{}", phone.session_id),
            &laptop.access,
        )
        .await;
    assert_eq!(res.status(), 204);
    // No heartbeat while A may be missing revocations (a verifier sees its feed go stale).
    let mut beats = 0;
    while let Some(ev) = sub.next(Duration::from_secs(2)).await {
        assert_ne!(ev.event, "revocation", "A cannot know yet");
        if ev.event == "heartbeat" {
            beats += 1;
        }
    }
    assert!(
        beats <= 1,
        "heartbeats stop while the listener is down ({beats})"
    );

    // The listener is rebuilt: the stream ends, and a reconnect's snapshot has the revocation.
    proxy.set_listener(Mode::Open);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !sub.closed && tokio::time::Instant::now() < deadline {
        let e = sub.next(Duration::from_millis(500)).await;
        assert!(e.as_ref().is_none_or(|e| e.event == "heartbeat"), "{e:?}");
    }
    assert!(sub.closed, "the stream ends when A's listener reconnects");
    let mut again = Subscriber::connect(&a).await;
    let first = again.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.event, "revocation");
    let (_, claims) = verify_set(&a, &first.data).await;
    assert_eq!(revoked_session(&claims).0, phone.session_id.to_string());
}

#[tokio::test]
async fn subscribers_are_capped() {
    let app = spawn_app_with(|c| c.resource_secret = Some(SECRET.into())).await;
    wait_live(&app).await;
    let max = authd::live::feed::MAX_SUBSCRIBERS;
    let mut subs = Vec::with_capacity(max);
    for _ in 0..max {
        subs.push(Subscriber::connect(&app).await);
    }
    let res = app
        .client
        .get(app.url("/auth/revocations"))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_problem(res, 503, "unavailable").await;
    subs.truncate(max - 1);
    let freed = eventually(Duration::from_secs(5), || async {
        app.state.feed.subscribers() < max
    })
    .await;
    assert!(freed);
    assert_eq!(
        Subscriber::connect(&app)
            .await
            .next(Duration::from_secs(5))
            .await
            .unwrap()
            .event,
        "ready"
    );
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_not_buffered_for() {
    let app = spawn_app_with(|c| c.resource_secret = Some(SECRET.into())).await;
    wait_live(&app).await;
    let t = app.signup_and_login("ann@example.test").await;
    let ann = app.user_id("ann@example.test").await;
    // Connected, and then never read again.
    let mut stuck = Subscriber::connect(&app).await;
    assert_eq!(
        stuck.next(Duration::from_secs(5)).await.unwrap().event,
        "ready"
    );
    // 15,000 revocations (rows made in SQL, announced like real ones; fewer than the signer's
    // backlog, so no resync ends the stream for it): far more than the
    // broadcast ring, the connection's buffer and the socket buffers hold.
    sqlx::query(
        "WITH s AS (
            INSERT INTO sessions (id, user_id, expires_at, absolute_expires_at, access_expires_at,
                                  revoked_at, revoked_reason)
            SELECT gen_random_uuid(), $1, now() + interval '1 day', now() + interval '1 day',
                   now() + interval '1 hour', now(), 'admin_revoked'
            FROM generate_series(1, 15000)
            RETURNING id, access_expires_at)
         SELECT count(pg_notify('authd_revoked_until',
                                id::text || ' ' || ceil(extract(epoch FROM access_expires_at))::int8::text))
         FROM s",
    )
    .bind(ann)
    .execute(&app.db)
    .await
    .unwrap();
    let dropped = eventually(Duration::from_secs(30), || async {
        app.state.feed.subscribers() == 0
    })
    .await;
    assert!(dropped, "the stuck subscriber was dropped");
    // The server stays healthy for everyone else.
    assert_eq!(app.me_status(&t.access).await, 200);
    let mut fresh = Subscriber::connect(&app).await;
    let ready = fresh
        .next_of("ready", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(ready.data, r#"{"snapshot":15000}"#);
    drop(stuck);
}

#[tokio::test]
async fn with_es256_keys_the_feeds_sets_are_es256_and_verify_through_the_jwks() {
    let app = spawn_app_with(|c| {
        c.resource_secret = Some(SECRET.into());
        c.signing_alg = authd::config::SigningAlg::ES256;
    })
    .await;
    wait_live(&app).await;
    let t = app.signup_and_login("ann@example.test").await;
    let mut sub = Subscriber::connect(&app).await;
    assert_eq!(
        sub.next(Duration::from_secs(5)).await.unwrap().event,
        "ready"
    );
    let res = app
        .delete(&format!("/auth/sessions/{}", t.session_id), &t.access)
        .await;
    assert_eq!(res.status(), 204);
    let event = sub
        .next_of("revocation", Duration::from_secs(2))
        .await
        .expect("the logout on the stream");
    let (header, claims) = verify_set(&app, &event.data).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    assert_eq!(revoked_session(&claims).0, t.session_id.to_string());
}
