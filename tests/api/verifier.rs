//! The `authd-verifier` crate (crates/authd-verifier) against real authd servers: revocations
//! from either instance reach it within a second, forged SETs are ignored, a stale feed makes
//! it fail closed or fall back to introspection, key rotations are followed without a restart,
//! and a feed that drops and comes back loses no revocation.

use std::{convert::Infallible, time::Duration};

use authd::tokens::jwt::KeyMaterial;
use authd_verifier::{Config, Error, FailurePolicy, Verifier};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::helpers::*;

const FEED_SECRET: &str = "resource-server-secret-0123456789abcdef";
const INTROSPECTION_SECRET: &str = "introspection-secret-0123456789abcdef";

/// authd with the feed and introspection switched on.
async fn authd() -> TestApp {
    spawn_app_with(secrets).await
}

fn secrets(c: &mut authd::config::Config) {
    c.resource_secret = Some(FEED_SECRET.into());
    c.introspection_secret = Some(INTROSPECTION_SECRET.into());
}

fn config(authd_url: &str, policy: FailurePolicy) -> Config {
    let mut config = Config::new(authd_url, FEED_SECRET);
    config.issuer = "http://localhost:8080".into(); // the test servers' AUTHD_ISSUER
    config.introspection_secret = Some(INTROSPECTION_SECRET.into());
    config.policy = policy;
    config
}

/// A verifier whose feed is up.
async fn fresh_verifier(authd_url: &str, policy: FailurePolicy) -> Verifier {
    let verifier = Verifier::start(config(authd_url, policy)).unwrap();
    assert!(
        verifier.wait_fresh(Duration::from_secs(10)).await,
        "the feed came up"
    );
    verifier
}

async fn revoke(app: &TestApp, session: &Tokens, with: &Tokens) {
    let res = app
        .delete(
            &format!("/auth/sessions/{}", session.session_id),
            &with.access,
        )
        .await;
    assert_eq!(res.status(), 204);
}

/// Asserts that `verifier` refuses `token` as revoked within a second from now.
async fn refused_within_a_second(verifier: &Verifier, token: &str) {
    let started = std::time::Instant::now();
    let refused = eventually(Duration::from_secs(1), || async {
        verifier.verify(token).await == Err(Error::Revoked)
    })
    .await;
    assert!(refused, "revoked within 1 s ({:?})", started.elapsed());
}

#[tokio::test]
async fn a_session_revoked_through_either_instance_is_refused_within_a_second() {
    let a = authd().await;
    let b = spawn_on_same_db(&a, secrets).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let phone = a.signup_and_login("ann@example.test").await;
    let laptop = a.login("ann@example.test").await;
    let tablet = a.login("ann@example.test").await;
    let verifier = fresh_verifier(&a.base, FailurePolicy::Reject).await;
    for t in [&phone, &laptop, &tablet] {
        let claims = verifier.verify(&t.access).await.unwrap();
        assert_eq!(claims.sid, t.session_id.to_string());
    }

    revoke(&b, &phone, &laptop).await; // the other instance
    refused_within_a_second(&verifier, &phone.access).await;
    revoke(&a, &laptop, &laptop).await; // the verifier's own
    refused_within_a_second(&verifier, &laptop.access).await;
    assert!(
        verifier.verify(&tablet.access).await.is_ok(),
        "others live on"
    );

    // A new verifier learns both from the snapshot.
    let late = fresh_verifier(&b.base, FailurePolicy::Reject).await;
    assert_eq!(late.verify(&phone.access).await, Err(Error::Revoked));
    assert_eq!(late.verify(&laptop.access).await, Err(Error::Revoked));
    assert!(late.verify(&tablet.access).await.is_ok());
}

/// The SETs of an authd's feed snapshot, as sent.
async fn snapshot_sets(app: &TestApp) -> Vec<String> {
    let mut res = app
        .client
        .get(app.url("/auth/revocations"))
        .bearer_auth(FEED_SECRET)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("event: ready") {
        let chunk = res
            .chunk()
            .await
            .unwrap()
            .expect("the snapshot ends with ready");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter(|block| block.contains("event: revocation"))
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

/// A SET like authd's, revoking `session` of `user`, signed by `key` under the name `kid`.
fn forged_set(key: &KeyMaterial, kid: &str, session: &str, user: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("secevent+jwt".into());
    header.kid = Some(kid.into());
    let now = authd::tokens::jwt::unix_now();
    let claims = json!({
        "iss": "http://localhost:8080", "aud": "authd", "iat": now,
        "jti": uuid::Uuid::new_v4(), "sid": session, "sub": user,
        "events": { "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
            "subject": {"format": "complex",
                        "session": {"format": "opaque", "id": session},
                        "user": {"format": "opaque", "id": user}},
            "event_timestamp": now, "tokens_valid_until": now + 900,
            "reason_admin": {"en": "user_revoked"}}}
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&key.private_der),
    )
    .unwrap()
}

/// What the fake authd serves: a copy of the real JWKS, and a feed of the given SETs, `ready`,
/// then a heartbeat a second.
#[derive(Clone)]
struct Fake {
    jwks: Value,
    sets: Vec<String>,
}

async fn fake_feed(State(fake): State<Fake>) -> Response {
    let mut events: Vec<String> = fake
        .sets
        .iter()
        .map(|set| {
            format!(
                "event: revocation\nid: {}\ndata: {set}\n\n",
                uuid::Uuid::new_v4()
            )
        })
        .collect();
    events.push(format!(
        "event: ready\ndata: {{\"snapshot\":{}}}\n\n",
        fake.sets.len()
    ));
    let beats = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some(("event: heartbeat\ndata: {\"time\":0}\n\n".to_owned(), ()))
    });
    let body = futures::stream::iter(events)
        .chain(beats)
        .map(|e| Ok::<_, Infallible>(Bytes::from(e)));
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test]
async fn forged_revocations_are_ignored_and_genuine_ones_kept() {
    let app = authd().await;
    wait_live(&app).await;
    let ann = app.signup_and_login("ann@example.test").await;
    let bob = app.signup_and_login("bob@example.test").await;
    let eve = app.signup_and_login("eve@example.test").await;
    revoke(&app, &eve, &eve).await;
    let genuine = snapshot_sets(&app).await;
    assert_eq!(genuine.len(), 1, "eve's revocation");
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    let real_kid = jsonwebtoken::decode_header(&ann.access)
        .unwrap()
        .kid
        .unwrap();
    let other_key = KeyMaterial::generate(authd::config::SigningAlg::EdDSA).unwrap();
    let (ann_sid, bob_sid) = (ann.session_id.to_string(), bob.session_id.to_string());
    let user = app.user_id("ann@example.test").await.to_string();
    let sets = vec![
        // Another key claiming to be authd's, then under its own (unknown) kid.
        forged_set(&other_key, &real_kid, &ann_sid, &user),
        forged_set(&other_key, &other_key.kid, &bob_sid, &user),
        genuine[0].clone(),
    ];
    let fake = serve(
        Router::new()
            .route(
                "/.well-known/jwks.json",
                get(|State(f): State<Fake>| async move { axum::Json(f.jwks) }),
            )
            .route("/auth/revocations", get(fake_feed))
            .with_state(Fake { jwks, sets }),
    )
    .await;

    // Every event before `ready` has been handled once the verifier is fresh.
    let verifier = fresh_verifier(&fake, FailurePolicy::Reject).await;
    assert_eq!(verifier.verify(&eve.access).await, Err(Error::Revoked));
    assert!(
        verifier.verify(&ann.access).await.is_ok(),
        "forged with authd's kid"
    );
    assert!(
        verifier.verify(&bob.access).await.is_ok(),
        "forged with its own kid"
    );
}

/// An HTTP proxy in front of authd that can shut the revocation feed (ending open streams and
/// refusing new ones with 503) while everything else (JWKS, introspection) still goes through.
struct FeedGate {
    base: String,
    open: watch::Sender<bool>,
}

#[derive(Clone)]
struct Gate {
    upstream: String,
    client: reqwest::Client,
    open: watch::Receiver<bool>,
}

async fn forward(State(gate): State<Gate>, req: Request) -> Response {
    let feed = req.uri().path() == "/auth/revocations";
    if feed && !*gate.open.borrow() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let url = format!("{}{}", gate.upstream, req.uri());
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    for hop in ["host", "content-length", "transfer-encoding", "connection"] {
        headers.remove(hop);
    }
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let res = gate
        .client
        .request(method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let mut out = Response::builder().status(res.status());
    for (name, value) in res.headers() {
        if !["content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            out = out.header(name, value);
        }
    }
    if !feed {
        return out.body(Body::from(res.bytes().await.unwrap())).unwrap();
    }
    let mut open = gate.open.clone();
    let closed = async move {
        let _ = open.wait_for(|o| !*o).await;
    };
    out.body(Body::from_stream(res.bytes_stream().take_until(closed)))
        .unwrap()
}

impl FeedGate {
    async fn start(upstream: &str) -> Self {
        let (open, rx) = watch::channel(true);
        let gate = Gate {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            open: rx,
        };
        let base = serve(Router::new().fallback(forward).with_state(gate)).await;
        Self { base, open }
    }

    fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

#[tokio::test]
async fn a_stale_feed_fails_closed_under_the_reject_policy() {
    let app = authd().await;
    wait_live(&app).await;
    let ann = app.signup_and_login("ann@example.test").await;
    let gate = FeedGate::start(&app.base).await;
    let verifier = fresh_verifier(&gate.base, FailurePolicy::Reject).await;
    assert!(verifier.verify(&ann.access).await.is_ok());

    let cut = std::time::Instant::now();
    gate.set_open(false);
    let closed = eventually(Duration::from_secs(10), || async {
        verifier.verify(&ann.access).await == Err(Error::FeedStale)
    })
    .await;
    assert!(closed, "fails closed once the feed is stale");
    // 5 s after the last heartbeat, which came at most 2 s before the cut.
    assert!(
        cut.elapsed() >= Duration::from_millis(2500),
        "not before the 5 s bound"
    );

    gate.set_open(true);
    assert!(verifier.wait_fresh(Duration::from_secs(10)).await);
    assert!(
        verifier.verify(&ann.access).await.is_ok(),
        "back with the feed"
    );
}

#[tokio::test]
async fn a_stale_feed_falls_back_to_introspection_under_the_introspect_policy() {
    let app = authd().await;
    wait_live(&app).await;
    let ann = app.signup_and_login("ann@example.test").await;
    let phone = app.login("ann@example.test").await;
    let gate = FeedGate::start(&app.base).await;
    let verifier = fresh_verifier(&gate.base, FailurePolicy::Introspect).await;

    gate.set_open(false);
    let stale = eventually(Duration::from_secs(10), || async {
        !verifier.feed_is_fresh()
    })
    .await;
    assert!(stale);
    // The feed cannot tell: authd's introspection answers from the database.
    revoke(&app, &phone, &ann).await;
    assert_eq!(verifier.verify(&phone.access).await, Err(Error::Inactive));
    let claims = verifier.verify(&ann.access).await.unwrap();
    assert_eq!(claims.sid, ann.session_id.to_string());
    assert!(!verifier.feed_is_fresh(), "that was introspection");
}

#[tokio::test]
async fn a_feed_cut_and_restored_loses_no_revocation() {
    let app = authd().await;
    let other = spawn_on_same_db(&app, secrets).await;
    wait_live(&app).await;
    wait_live(&other).await;
    let ann = app.signup_and_login("ann@example.test").await;
    let phone = app.login("ann@example.test").await;
    let gate = FeedGate::start(&app.base).await;
    let verifier = fresh_verifier(&gate.base, FailurePolicy::Reject).await;

    gate.set_open(false);
    revoke(&other, &phone, &ann).await;
    gate.set_open(true);
    let back = eventually(Duration::from_secs(10), || async {
        verifier.verify(&phone.access).await == Err(Error::Revoked)
    })
    .await;
    assert!(back, "the revocation made while the feed was cut arrives");
    assert!(verifier.verify(&ann.access).await.is_ok());
}

#[tokio::test]
async fn a_key_rotation_is_followed_without_a_restart() {
    let app = authd().await;
    wait_live(&app).await;
    let before = app.signup_and_login("ann@example.test").await;
    let verifier = fresh_verifier(&app.base, FailurePolicy::Reject).await;
    assert!(verifier.verify(&before.access).await.is_ok());

    let out = authd_command(&app.db_name)
        .args(["keys", "rotate", "--now"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = app.login("ann@example.test").await;
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid;
    assert_ne!(
        kid(&after.access),
        kid(&before.access),
        "signed by the new key"
    );
    let followed = eventually(Duration::from_secs(3), || async {
        verifier.verify(&after.access).await.is_ok()
    })
    .await;
    assert!(followed, "the new key verifies");
    assert!(
        verifier.verify(&before.access).await.is_ok(),
        "and the old one still"
    );
}

/// With ES256 and RS256 keys: tokens verify by their key's algorithm, the feed's SETs (signed
/// with the same key) revoke, and a token whose header names another algorithm than its key's
/// (PS256 or HS256 with the RSA key, ES256 with the EC key's kid but another key) is refused.
#[tokio::test]
async fn es256_and_rs256_tokens_verify_and_revoke_and_alg_confusion_is_refused() {
    use authd::config::SigningAlg;
    use jsonwebtoken::{Algorithm, EncodingKey};
    for alg in [SigningAlg::ES256, SigningAlg::RS256] {
        let app = spawn_app_with(|c| {
            secrets(c);
            c.signing_alg = alg;
        })
        .await;
        wait_live(&app).await;
        let phone = app.signup_and_login("ann@example.test").await;
        let laptop = app.login("ann@example.test").await;
        let verifier = fresh_verifier(&app.base, FailurePolicy::Reject).await;
        assert_eq!(
            jsonwebtoken::decode_header(&phone.access).unwrap().alg,
            alg.algorithm()
        );
        for t in [&phone, &laptop] {
            let claims = verifier.verify(&t.access).await.unwrap();
            assert_eq!(claims.sid, t.session_id.to_string(), "{alg}");
        }
        revoke(&app, &phone, &laptop).await;
        refused_within_a_second(&verifier, &phone.access).await;

        // Re-sign the laptop's claims with the real private key under other algorithms.
        let kid = jsonwebtoken::decode_header(&laptop.access)
            .unwrap()
            .kid
            .unwrap();
        let key = signing_key_of(&app, &laptop.access).await;
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                laptop.access.split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let sign = |a: Algorithm, enc: &EncodingKey| sign_as(a, &kid, &claims, enc);
        let real = key.encoding_key().unwrap();
        assert!(
            verifier.verify(&sign(alg.algorithm(), &real)).await.is_ok(),
            "control: the right alg verifies"
        );
        let other_ec = KeyMaterial::generate(SigningAlg::ES256).unwrap();
        let mut forged = vec![(
            "HS256 keyed with the public key",
            sign(Algorithm::HS256, &EncodingKey::from_secret(&key.public_key)),
        )];
        match alg {
            SigningAlg::RS256 => {
                forged.push(("PS256 by the RSA key", sign(Algorithm::PS256, &real)))
            }
            _ => forged.push((
                "ES256 by another EC key",
                sign(Algorithm::ES256, &other_ec.encoding_key().unwrap()),
            )),
        }
        let other_ed = KeyMaterial::generate(SigningAlg::EdDSA).unwrap();
        forged.push((
            "EdDSA naming this kid",
            sign(Algorithm::EdDSA, &other_ed.encoding_key().unwrap()),
        ));
        for (what, token) in forged {
            assert_eq!(
                verifier.verify(&token).await,
                Err(Error::Invalid),
                "{alg}: {what}"
            );
        }
    }
}
