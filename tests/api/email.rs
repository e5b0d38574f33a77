//! API.md "Email" over real HTTP, real Postgres and a real SMTP server (tests/api/smtp.rs):
//! verification, password reset, sign-in codes and links, email change, limits, no enumeration,
//! delivery off the request path with retries.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    helpers::*,
    smtp::{SmtpSink, spawn_with_sink},
};

const NEW_PASSWORD: &str = "another perfectly fine passphrase";

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.post_json(path, &body).await
}

async fn expire_grants(app: &TestApp) {
    sqlx::query("UPDATE email_grants SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
}

/// The one number a `SELECT count(*) …` returns.
async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}

async fn events_of_kind(app: &TestApp, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM auth_events WHERE kind = $1")
        .bind(kind)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn registering_mails_a_verification_link_that_verifies_once() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |c| {
        c.app_url = Some("https://app.example.test".into());
    })
    .await;
    assert_eq!(
        app.register("ann@example.test", PASSWORD).await.status(),
        201
    );
    let mail = sink.nth_to("ann@example.test", 1).await;
    assert!(
        mail.link()
            .starts_with("https://app.example.test/verify-email#token="),
        "{}",
        mail.link()
    );
    assert_eq!(mail.token().len(), 43, "256-bit base64url token");
    assert!(mail.html.contains("verify-email"), "an HTML part too");

    let ann = app.login("ann@example.test").await;
    assert_eq!(ann.body["user"]["email_verified"], false);
    let res = post(&app, "/auth/email/verify", json!({ "token": mail.token() })).await;
    assert_eq!(res.status(), 200);
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["email"], "ann@example.test");
    let me: Value = app.get("/auth/me", &ann.access).await.json().await.unwrap();
    assert_eq!(me["email_verified"], true, "the cache learned it too");

    // Single use; and a made-up token is the same error.
    let again = post(&app, "/auth/email/verify", json!({ "token": mail.token() })).await;
    assert_problem(again, 400, "email_token_invalid").await;
    let forged = post(
        &app,
        "/auth/email/verify",
        json!({ "token": "A".repeat(43) }),
    )
    .await;
    assert_problem(forged, 400, "email_token_invalid").await;
    assert_eq!(events_of_kind(&app, "email_verification_sent").await, 1);
    assert_eq!(events_of_kind(&app, "email_verified").await, 1);
    assert_eq!(events_of_kind(&app, "email_token_rejected").await, 2);

    // Verified users are sent nothing more.
    let res = app
        .client
        .post(app.url("/auth/email/verify/request"))
        .bearer_auth(&ann.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(events_of_kind(&app, "email_verification_sent").await, 1);
}

#[tokio::test]
async fn a_verification_can_be_requested_again_and_expires() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    let ann = app.signup_and_login("ann@example.test").await;
    let first = sink.nth_to("ann@example.test", 1).await;
    expire_grants(&app).await;
    let res = post(
        &app,
        "/auth/email/verify",
        json!({ "token": first.token() }),
    )
    .await;
    assert_problem(res, 400, "email_token_invalid").await;

    let res = app
        .client
        .post(app.url("/auth/email/verify/request"))
        .bearer_auth(&ann.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({}));
    let second = sink.nth_to("ann@example.test", 2).await;
    let res = post(
        &app,
        "/auth/email/verify",
        json!({ "token": second.token() }),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn with_verification_required_an_unverified_user_is_told_only_after_a_correct_password() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |c| c.require_email_verified = true).await;
    assert_eq!(
        app.register("ann@example.test", PASSWORD).await.status(),
        201
    );
    let wrong = app
        .login_response("ann@example.test", "not the passphrase")
        .await;
    assert_problem(wrong, 401, "invalid_credentials").await;
    let right = app.login_response("ann@example.test", PASSWORD).await;
    assert_problem(right, 403, "email_not_verified").await;
    let sessions = count(&app, "SELECT count(*) FROM sessions").await;
    assert_eq!(sessions, 0);

    let mail = sink.nth_to("ann@example.test", 1).await;
    let res = post(&app, "/auth/email/verify", json!({ "token": mail.token() })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.login_response("ann@example.test", PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_known_and_unknown_addresses() {
    let sink = SmtpSink::start().await;
    // Limits off: this test sends many requests for one address.
    let app = spawn_with_sink(&sink, |c| c.rate_limit = false).await;
    assert_eq!(
        app.register("ann@example.test", PASSWORD).await.status(),
        201
    );
    sink.nth_to("ann@example.test", 1).await; // the verification mail

    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..30 {
        for (email, times) in [
            ("ann@example.test", &mut known),
            ("nobody@example.test", &mut unknown),
        ] {
            let start = Instant::now();
            let res = post(&app, "/auth/password/forgot", json!({ "email": email })).await;
            times.push(start.elapsed());
            assert_eq!(res.status(), 202, "{email} #{i}");
            assert_eq!(res.text().await.unwrap(), "{}", "the same body");
        }
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[15], unknown[15]);
    // The request path does the same work for both (the lookup runs in the background), so the
    // medians differ by noise only; the bound is loose on purpose (shared, noisy machines).
    assert!(
        k < u * 3 + Duration::from_millis(5) && u < k * 3 + Duration::from_millis(5),
        "median known {k:?} vs unknown {u:?}"
    );
    // Only the known address gets mail; the unknown one leaves no grant behind.
    let resets = eventually(Duration::from_secs(10), || async {
        sink.messages_to("ann@example.test").len() == 31
    })
    .await;
    assert!(resets, "30 reset links (and the verification) arrived");
    assert!(sink.messages_to("nobody@example.test").is_empty());
    let grants = count(
        &app,
        "SELECT count(*) FROM email_grants WHERE email = 'nobody@example.test'",
    )
    .await;
    assert_eq!(grants, 0);
}

#[tokio::test]
async fn a_reset_sets_the_password_verifies_and_ends_every_session_everywhere_within_a_second() {
    let sink = SmtpSink::start().await;
    let a = spawn_with_sink(&sink, |_| {}).await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    wait_live(&a).await;
    wait_live(&b).await;
    let phone = a.signup_and_login("ann@example.test").await;
    let laptop = b.login("ann@example.test").await;
    sink.nth_to("ann@example.test", 1).await; // verification

    let res = forgot(&a, "Ann@Example.test ").await;
    assert_eq!(res.status(), 202);
    let first = sink.nth_to("ann@example.test", 2).await;
    assert!(
        first.link().contains("/reset-password#token="),
        "{}",
        first.link()
    );
    let res = forgot(&a, "ann@example.test").await;
    assert_eq!(res.status(), 202);
    let second = sink.nth_to("ann@example.test", 3).await;

    // The new password follows the registration rules.
    let weak = post(
        &a,
        "/auth/password/reset",
        json!({ "token": second.token(), "new_password": "password" }),
    )
    .await;
    assert_problem(weak, 400, "validation_failed").await;
    // A reset token is no verification token.
    let wrong_purpose = post(&a, "/auth/email/verify", json!({ "token": second.token() })).await;
    assert_problem(wrong_purpose, 400, "email_token_invalid").await;

    let res = post(
        &a,
        "/auth/password/reset",
        json!({ "token": second.token(), "new_password": NEW_PASSWORD }),
    )
    .await;
    assert_eq!(res.status(), 204);
    for (app, tokens) in [(&a, &phone), (&b, &laptop), (&a, &laptop), (&b, &phone)] {
        let dead = eventually(Duration::from_secs(1), || async {
            app.me_status(&tokens.access).await == 401
        })
        .await;
        assert!(dead, "access token rejected within 1 s on every instance");
    }
    assert_problem(a.refresh_with(&phone.refresh).await, 401, "session_revoked").await;
    assert_eq!(
        a.revoked_reason(laptop.session_id).await.as_deref(),
        Some("password_reset")
    );
    assert_problem(
        a.login_response("ann@example.test", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let fresh = a.login_response("ann@example.test", NEW_PASSWORD).await;
    assert_eq!(fresh.status(), 200);
    let body: Value = fresh.json().await.unwrap();
    assert_eq!(
        body["user"]["email_verified"], true,
        "the link proved the address"
    );

    // Single use, and the other reset link died with it.
    for token in [second.token(), first.token()] {
        let res = post(
            &a,
            "/auth/password/reset",
            json!({ "token": token, "new_password": "yet another fine passphrase" }),
        )
        .await;
        assert_problem(res, 400, "email_token_invalid").await;
    }
    assert_eq!(events_of_kind(&a, "password_reset_requested").await, 2);
    assert_eq!(events_of_kind(&a, "password_reset").await, 1);
}

#[tokio::test]
async fn an_expired_reset_link_sets_nothing() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    let ann = app.signup_and_login("ann@example.test").await;
    forgot(&app, "ann@example.test").await;
    let mail = sink.nth_to("ann@example.test", 2).await;
    expire_grants(&app).await;
    let res = post(
        &app,
        "/auth/password/reset",
        json!({ "token": mail.token(), "new_password": NEW_PASSWORD }),
    )
    .await;
    assert_problem(res, 400, "email_token_invalid").await;
    assert_eq!(app.me_status(&ann.access).await, 200, "nothing was revoked");
    assert_eq!(
        app.login_response("ann@example.test", PASSWORD)
            .await
            .status(),
        200
    );
}

async fn ask_code(app: &TestApp, email: &str) -> reqwest::Response {
    post(app, "/auth/email/code", json!({ "email": email })).await
}

async fn forgot(app: &TestApp, email: &str) -> reqwest::Response {
    post(app, "/auth/password/forgot", json!({ "email": email })).await
}

async fn sign_in_by_code(app: &TestApp, email: &str, code: &str) -> reqwest::Response {
    code_sign_in(app, json!({ "email": email, "code": code })).await
}

async fn code_sign_in(app: &TestApp, body: Value) -> reqwest::Response {
    post(app, "/auth/email/code/verify", body).await
}

#[tokio::test]
async fn a_code_signs_in_once_and_kills_its_link() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    app.signup_and_login("ann@example.test").await;
    let res = ask_code(&app, "ann@example.test").await;
    assert_eq!(res.status(), 202);
    let mail = sink.nth_to("ann@example.test", 2).await;
    assert!(mail.link().contains("/email-sign-in#token="));
    let code = mail.code();
    assert!(
        !mail.subject.contains(&code),
        "no code in the subject (lock screens)"
    );

    let res = sign_in_by_code(&app, "ANN@example.test", &code).await;
    assert_eq!(res.status(), 200);
    let cookie = refresh_set_cookie(&res);
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let tokens = tokens_from(res).await;
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(
        tokens.body["user"]["email_verified"], true,
        "the code proved the address"
    );
    assert_eq!(app.me_status(&tokens.access).await, 200);
    app.refresh(&tokens.refresh).await;
    let method: String = sqlx::query_scalar("SELECT auth_method FROM sessions WHERE id = $1")
        .bind(tokens.session_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(method, "email_code");

    let again = sign_in_by_code(&app, "ann@example.test", &code).await;
    assert_problem(again, 401, "email_code_invalid").await;
    let link = code_sign_in(&app, json!({ "token": mail.token() })).await;
    assert_problem(link, 401, "email_code_invalid").await;
}

#[tokio::test]
async fn a_link_signs_in_once_and_kills_its_code() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    app.signup_and_login("ann@example.test").await;
    ask_code(&app, "ann@example.test").await;
    let mail = sink.nth_to("ann@example.test", 2).await;
    let res = code_sign_in(&app, json!({ "token": mail.token() })).await;
    assert_eq!(res.status(), 200);
    let res = sign_in_by_code(&app, "ann@example.test", &mail.code()).await;
    assert_problem(res, 401, "email_code_invalid").await;
    // A sign-in token is no reset or verification token, and vice versa.
    ask_code(&app, "ann@example.test").await;
    let next = sink.nth_to("ann@example.test", 3).await;
    let res = post(
        &app,
        "/auth/password/reset",
        json!({ "token": next.token(), "new_password": NEW_PASSWORD }),
    )
    .await;
    assert_problem(res, 400, "email_token_invalid").await;
    let res = post(&app, "/auth/email/verify", json!({ "token": next.token() })).await;
    assert_problem(res, 400, "email_token_invalid").await;
    assert_eq!(
        code_sign_in(&app, json!({ "token": next.token() }))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn five_wrong_codes_kill_the_code_and_its_link() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    app.signup_and_login("ann@example.test").await;
    ask_code(&app, "ann@example.test").await;
    let mail = sink.nth_to("ann@example.test", 2).await;
    let right = mail.code();
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    for _ in 0..5 {
        let res = sign_in_by_code(&app, "ann@example.test", &wrong).await;
        assert_problem(res, 401, "email_code_invalid").await;
    }
    let res = sign_in_by_code(&app, "ann@example.test", &right).await;
    assert_problem(res, 401, "email_code_invalid").await;
    let res = code_sign_in(&app, json!({ "token": mail.token() })).await;
    assert_problem(res, 401, "email_code_invalid").await;
    let wrong_tries = count(
        &app,
        "SELECT count(*) FROM auth_events WHERE kind = 'email_code_failed' AND detail ? 'attempts'",
    )
    .await;
    assert_eq!(wrong_tries, 5, "each wrong code is audited");
    let garbage = sign_in_by_code(&app, "ann@example.test", &"12ab56").await;
    assert_problem(garbage, 400, "validation_failed").await;
    let both = code_sign_in(&app, json!({ "token": mail.token(), "code": right })).await;
    assert_problem(both, 400, "validation_failed").await;
}

#[tokio::test]
async fn an_expired_code_signs_nobody_in_and_a_new_code_replaces_the_last() {
    let sink = SmtpSink::start().await;
    // Limits off: four messages to one address.
    let app = spawn_with_sink(&sink, |c| c.rate_limit = false).await;
    app.signup_and_login("ann@example.test").await;
    ask_code(&app, "ann@example.test").await;
    let first = sink.nth_to("ann@example.test", 2).await;
    expire_grants(&app).await;
    let res = sign_in_by_code(&app, "ann@example.test", &first.code()).await;
    assert_problem(res, 401, "email_code_invalid").await;

    ask_code(&app, "ann@example.test").await;
    let second = sink.nth_to("ann@example.test", 3).await;
    ask_code(&app, "ann@example.test").await;
    let third = sink.nth_to("ann@example.test", 4).await;
    let res = code_sign_in(&app, json!({ "token": second.token() })).await;
    assert_problem(res, 401, "email_code_invalid").await;
    let res = sign_in_by_code(&app, "ann@example.test", &third.code()).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn two_concurrent_uses_of_one_code_make_one_session() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    app.signup_and_login("ann@example.test").await;
    ask_code(&app, "ann@example.test").await;
    let mail = sink.nth_to("ann@example.test", 2).await;
    let body = json!({ "email": "ann@example.test", "code": mail.code() });
    let link = json!({ "token": mail.token() });
    let (r1, r2, r3) = tokio::join!(
        code_sign_in(&app, body.clone()),
        code_sign_in(&app, body),
        code_sign_in(&app, link)
    );
    let mut statuses = [
        r1.status().as_u16(),
        r2.status().as_u16(),
        r3.status().as_u16(),
    ];
    statuses.sort();
    assert_eq!(statuses, [200, 401, 401]);
    let sessions = count(
        &app,
        "SELECT count(*) FROM sessions WHERE auth_method = 'email_code'",
    )
    .await;
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn a_code_creates_an_account_only_when_email_signup_allows() {
    let sink = SmtpSink::start().await;
    let open = spawn_with_sink(&sink, |_| {}).await;
    ask_code(&open, "new@example.test").await;
    let mail = sink.nth_to("new@example.test", 1).await;
    let res = sign_in_by_code(&open, "new@example.test", &mail.code()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "new@example.test");
    assert_eq!(body["user"]["email_verified"], true);
    // No password was set: no password signs in.
    assert_problem(
        open.login_response("new@example.test", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(events_of_kind(&open, "user_registered").await, 1);

    let closed_sink = SmtpSink::start().await;
    let closed = spawn_with_sink(&closed_sink, |c| c.email_signup = Some(false)).await;
    closed.signup_and_login("ann@example.test").await;
    let res = ask_code(&closed, "new@example.test").await;
    assert_eq!(res.status(), 202, "the same answer");
    ask_code(&closed, "ann@example.test").await;
    closed_sink.nth_to("ann@example.test", 2).await;
    assert!(closed_sink.messages_to("new@example.test").is_empty());
    let grants = count(
        &closed,
        "SELECT count(*) FROM email_grants WHERE user_id IS NULL",
    )
    .await;
    assert_eq!(grants, 0);
}

#[tokio::test]
async fn an_email_change_needs_the_password_and_the_new_mailbox() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    let ann = app.signup_and_login("ann@example.test").await;
    app.signup_and_login("bob@example.test").await;
    let change = |new: &str, pw: &str| {
        app.client
            .post(app.url("/auth/email/change"))
            .bearer_auth(&ann.access)
            .json(&json!({ "new_email": new, "current_password": pw }))
            .send()
    };
    assert_problem(
        change("ann@example.org", "not the passphrase")
            .await
            .unwrap(),
        401,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        change("bob@example.test", PASSWORD).await.unwrap(),
        409,
        "email_taken",
    )
    .await;
    let res = change("ann@example.org", PASSWORD).await.unwrap();
    assert_eq!(res.status(), 202);
    let confirm = sink.nth_to("ann@example.org", 1).await;
    assert!(confirm.link().contains("/verify-email#token="));
    let notice = sink.nth_to("ann@example.test", 2).await;
    assert!(notice.text.contains("ann@example.org"), "{}", notice.text);
    assert!(
        !notice.text.contains("#token="),
        "the old mailbox gets no link"
    );

    // Nothing changes until the new mailbox confirms.
    let me: Value = app.get("/auth/me", &ann.access).await.json().await.unwrap();
    assert_eq!(me["email"], "ann@example.test");
    let res = post(
        &app,
        "/auth/email/verify",
        json!({ "token": confirm.token() }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let user: Value = res.json().await.unwrap();
    assert_eq!(
        (user["email"].as_str(), user["email_verified"].as_bool()),
        (Some("ann@example.org"), Some(true))
    );
    assert_eq!(
        app.login_response("ann@example.org", PASSWORD)
            .await
            .status(),
        200
    );
    assert_problem(
        app.login_response("ann@example.test", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    // The old verification link (to the old address) died with the change.
    let old_verify = sink.nth_to("ann@example.test", 1).await;
    let res = post(
        &app,
        "/auth/email/verify",
        json!({ "token": old_verify.token() }),
    )
    .await;
    assert_problem(res, 400, "email_token_invalid").await;
    assert_eq!(events_of_kind(&app, "email_changed").await, 1);
}

#[tokio::test]
async fn sends_are_limited_per_address_and_per_ip() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    for _ in 0..3 {
        let res = forgot(&app, "x@example.test").await;
        assert_eq!(res.status(), 202);
    }
    let res = ask_code(&app, "X@example.test").await;
    assert_eq!(
        res.status(),
        429,
        "3 per 15 min per address, whatever the kind"
    );
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 60, "Retry-After {retry}");
    assert_problem(res, 429, "rate_limited").await;
    // 20 per hour from one IP, over any addresses (3 used above).
    let mut limited_at = None;
    for i in 0..20 {
        let res = post(
            &app,
            "/auth/password/forgot",
            json!({ "email": format!("u{i}@example.test") }),
        )
        .await;
        if res.status() == 429 {
            limited_at = Some(i);
            break;
        }
    }
    // 4 requests above counted against the IP (the refused one too): the 21st is refused.
    assert_eq!(limited_at, Some(16), "the 21st send from one IP is refused");
}

#[tokio::test]
async fn a_failing_smtp_server_never_slows_the_answer_and_the_message_is_retried() {
    // Nothing listens on the port yet: every attempt fails until the server comes up.
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app =
        spawn_app_with(|c| c.smtp_url = Some(authd::mail::SmtpUrl::parse(&url).unwrap())).await;
    let start = Instant::now();
    let res = app.register("ann@example.test", PASSWORD).await;
    assert_eq!(res.status(), 201);
    let res = forgot(&app, "ann@example.test").await;
    assert_eq!(res.status(), 202);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "answered without waiting for SMTP"
    );
    let retried = eventually(Duration::from_secs(10), || async {
        metric(
            &app,
            "authd_emails_total{kind=\"password_reset\",outcome=\"retried\"}",
        )
        .await
            >= 1.0
    })
    .await;
    assert!(retried, "the failed delivery is counted and retried");

    let sink = SmtpSink::start_with(Some(port), &[]).await;
    let reset = eventually(Duration::from_secs(30), || async {
        sink.messages_to("ann@example.test").len() == 2
    })
    .await;
    assert!(reset, "both messages arrive once the server is up");
    assert_eq!(
        metric(
            &app,
            "authd_emails_total{kind=\"password_reset\",outcome=\"sent\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_temporary_rejection_is_retried() {
    let sink = SmtpSink::start_with(None, &["--fail-first", "1"]).await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    app.register("ann@example.test", PASSWORD).await;
    let mail = sink.nth_to("ann@example.test", 1).await;
    assert!(mail.link().contains("/verify-email#token="));
    assert_eq!(
        metric(
            &app,
            "authd_emails_total{kind=\"verify_email\",outcome=\"retried\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn without_smtp_mail_goes_to_the_outbox_directory() {
    let app = spawn_app().await;
    app.register("ann@example.test", PASSWORD).await;
    let outbox = app.state.config.email_outbox.clone();
    let found = eventually(Duration::from_secs(10), || async {
        std::fs::read_dir(&outbox).is_ok_and(|d| d.count() == 1)
    })
    .await;
    assert!(found, "one .eml in {}", outbox.display());
    let file = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(file.extension().unwrap(), "eml");
    let mail = crate::smtp::parse(&std::fs::read(&file).unwrap());
    assert!(mail.link().contains("/verify-email#token="));
    std::fs::remove_dir_all(&outbox).unwrap();
}

/// The value of one series in /metrics (0 if absent).
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_account_made_by_a_code_changes_its_address_right_after_a_code_sign_in() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    ask_code(&app, "new@example.test").await;
    let mail = sink.nth_to("new@example.test", 1).await;
    let tokens = tokens_from(code_sign_in(&app, json!({ "token": mail.token() })).await).await;
    let change = || {
        app.client
            .post(app.url("/auth/email/change"))
            .bearer_auth(&tokens.access)
            .json(&json!({ "new_email": "renamed@example.test" }))
            .send()
    };
    assert_eq!(change().await.unwrap().status(), 202);
    sink.nth_to("renamed@example.test", 1).await;
    // Five minutes later the session no longer stands in for a password.
    sqlx::query("UPDATE sessions SET created_at = created_at - interval '6 minutes'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_problem(change().await.unwrap(), 400, "validation_failed").await;
}

#[tokio::test]
async fn a_code_sign_in_takes_an_unverified_account_back_from_whoever_registered_it() {
    // Account pre-hijacking: someone registers the owner's address with their own password.
    let sink = SmtpSink::start().await;
    let app = spawn_with_sink(&sink, |_| {}).await;
    wait_live(&app).await;
    let squatter = app.signup_and_login("ann@example.test").await;
    sink.nth_to("ann@example.test", 1).await; // the verification the owner ignores

    ask_code(&app, "ann@example.test").await;
    let mail = sink.nth_to("ann@example.test", 2).await;
    let owner = tokens_from(code_sign_in(&app, json!({ "token": mail.token() })).await).await;
    assert_eq!(app.me_status(&owner.access).await, 200);
    assert_eq!(
        app.me_status(&squatter.access).await,
        401,
        "the squatter's session ended"
    );
    assert_eq!(
        app.revoked_reason(squatter.session_id).await.as_deref(),
        Some("email_proven")
    );
    assert_problem(
        app.login_response("ann@example.test", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;

    // Once the address is verified, a code sign-in leaves the password and sessions alone.
    let bob = app.signup_and_login("bob@example.test").await;
    let verify = sink.nth_to("bob@example.test", 1).await;
    post(
        &app,
        "/auth/email/verify",
        json!({ "token": verify.token() }),
    )
    .await;
    ask_code(&app, "bob@example.test").await;
    let mail = sink.nth_to("bob@example.test", 2).await;
    let res = code_sign_in(&app, json!({ "token": mail.token() })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.me_status(&bob.access).await, 200);
    assert_eq!(
        app.login_response("bob@example.test", PASSWORD)
            .await
            .status(),
        200
    );
}

async fn spawn_with_smtp(url: &str, ca: Option<&std::path::Path>) -> TestApp {
    let url = authd::mail::SmtpUrl::parse(url).unwrap();
    let ca = ca.map(|p| p.to_path_buf());
    spawn_app_with(|c| {
        c.smtp_url = Some(url);
        c.smtp_ca_file = ca;
    })
    .await
}

#[tokio::test]
async fn mail_goes_over_starttls_or_implicit_tls_with_auth_and_a_verified_certificate() {
    for (mode, scheme, query) in [
        ("starttls", "smtp", "?tls=required"),
        ("implicit", "smtps", ""),
    ] {
        let (sink, ca) = SmtpSink::start_tls(mode, "mailer:s3cret").await;
        let url = format!("{scheme}://mailer:s3cret@127.0.0.1:{}{query}", sink.port);
        let app = spawn_with_smtp(&url, Some(&ca)).await;
        app.register("ann@example.test", PASSWORD).await;
        let mail = sink.nth_to("ann@example.test", 1).await;
        assert!(mail.link().contains("/verify-email#token="), "{mode}");

        // A wrong password is a permanent failure: given up at once, nothing delivered.
        let wrong = format!("{scheme}://mailer:wrong@127.0.0.1:{}{query}", sink.port);
        let app = spawn_with_smtp(&wrong, Some(&ca)).await;
        app.register("bob@example.test", PASSWORD).await;
        let failed = eventually(Duration::from_secs(40), || async {
            metric(
                &app,
                "authd_emails_total{kind=\"verify_email\",outcome=\"failed\"}",
            )
            .await
                == 1.0
        })
        .await;
        assert!(failed, "{mode}: a refused login is counted as failed");

        // Without the CA the certificate is not trusted: nothing is delivered.
        let app = spawn_with_smtp(&url, None).await;
        app.register("cyd@example.test", PASSWORD).await;
        let refused = eventually(Duration::from_secs(10), || async {
            metric(
                &app,
                "authd_emails_total{kind=\"verify_email\",outcome=\"retried\"}",
            )
            .await
                >= 1.0
        })
        .await;
        assert!(
            refused,
            "{mode}: an untrusted certificate fails the attempt"
        );
        assert!(sink.messages_to("bob@example.test").is_empty());
        assert!(sink.messages_to("cyd@example.test").is_empty());
        let _ = std::fs::remove_dir_all(ca.parent().unwrap());
    }
}
