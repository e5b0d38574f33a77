//! Look-alike identities: every way of typing the same address or password (any keyboard, OS,
//! input method) names the same account and the same password (PRECIS, RFC 8264/8265; IDNA
//! UTS #46), and invisible characters are refused.

use crate::helpers::*;

/// Registers `first`, then expects `second` to be the same account: 409 on register, and a
/// login with either form reaching that one user.
async fn assert_same_account(first: &str, second: &str, stored: &str) {
    let app = spawn_app().await;
    let res = app.register(first, PASSWORD).await;
    assert_eq!(res.status(), 201, "register {first:?}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["email"], stored, "the normalized form is stored");
    assert_problem(app.register(second, PASSWORD).await, 409, "email_taken").await;
    let a = app.login(first).await;
    let b = app.login(second).await;
    assert_eq!(a.body["user"]["id"], b.body["user"]["id"]);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn fullwidth_and_ascii_addresses_are_one_account() {
    assert_same_account(
        "ａｂｃ@example.test",
        "abc@example.test",
        "abc@example.test",
    )
    .await;
    assert_same_account(
        "abc@EXAMPLE.TEST",
        "ＡＢＣ@Ｅｘａｍｐｌｅ．ｔｅｓｔ",
        "abc@example.test",
    )
    .await;
}

#[tokio::test]
async fn an_idn_domain_in_unicode_and_punycode_is_one_account() {
    let stored = "user@xn--bcher-kva.example";
    assert_same_account("user@bücher.example", stored, stored).await;
    // Decomposed ü (as macOS may send it) and upper case, the other way round.
    assert_same_account(stored, "user@BU\u{308}CHER.example", stored).await;
}

#[tokio::test]
async fn a_decomposed_local_part_is_the_composed_one() {
    assert_same_account(
        "jose\u{301}@example.test",
        "JOSÉ@example.test",
        "josé@example.test",
    )
    .await;
}

#[tokio::test]
async fn invisible_characters_in_an_address_are_refused() {
    // Twenty registrations from one address: more than its rate limit allows.
    let app = spawn_app_with(|c| c.rate_limit = false).await;
    for (name, c) in [
        ("zero width space", '\u{200B}'),
        ("right-to-left override", '\u{202E}'),
        ("soft hyphen", '\u{00AD}'),
        ("word joiner", '\u{2060}'),
        ("zero width joiner", '\u{200D}'),
    ] {
        for email in [
            format!("ab{c}c@example.test"),
            format!("abc@exa{c}mple.test"),
        ] {
            let body = assert_problem(
                app.register(&email, PASSWORD).await,
                400,
                "validation_failed",
            )
            .await;
            assert_eq!(body["errors"][0]["field"], "email", "{name}");
            let text = body.to_string();
            assert!(
                !text.contains(c) && !text.contains("abc") && !text.contains("example"),
                "{name}: the input is not echoed: {text}"
            );
            // Login refuses it the same way, before any lookup.
            assert_problem(
                app.login_response(&email, PASSWORD).await,
                400,
                "validation_failed",
            )
            .await;
        }
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn admin_lookup_finds_the_account_by_any_form() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    assert_eq!(
        app.register("user@bücher.example", PASSWORD).await.status(),
        201
    );
    let res = app
        .get(
            "/admin/users?email=USER@xn--bcher-kva.example",
            &admin.access,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["users"][0]["email"], "user@xn--bcher-kva.example");
}

#[tokio::test]
async fn a_decomposed_password_is_the_composed_one() {
    let app = spawn_app().await;
    let composed = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
    let decomposed = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";
    assert_eq!(
        app.register("ann@example.test", decomposed).await.status(),
        201
    );
    assert_eq!(
        app.login_response("ann@example.test", composed)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.login_response("ann@example.test", decomposed)
            .await
            .status(),
        200
    );
    assert_problem(
        app.login_response("ann@example.test", "cafe creme brulee")
            .await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn an_ideographic_space_in_a_password_is_a_space() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("ann@example.test", "correct\u{3000}horse\u{3000}battery")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.login_response("ann@example.test", "correct horse battery")
            .await
            .status(),
        200
    );
    // A no-break space (Option-Space on a Mac keyboard) too.
    assert_eq!(
        app.login_response("ann@example.test", "correct\u{a0}horse battery")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_password_change_uses_the_same_normalization() {
    let app = spawn_app().await;
    let tokens = app.signup_and_login("ann@example.test").await;
    let res = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(&tokens.access)
        .json(&serde_json::json!({
            "current_password": PASSWORD.replace(' ', "\u{3000}"),
            "new_password": "nai\u{308}ve passphrase",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.login_response("ann@example.test", "na\u{ef}ve passphrase")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn invisible_characters_in_a_password_are_refused() {
    let app = spawn_app().await;
    for c in ['\u{200B}', '\u{202E}', '\u{0007}', '\u{00AD}'] {
        let password = format!("hunter2{c}hunter2");
        let body = assert_problem(
            app.register("ann@example.test", &password).await,
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "password");
        assert!(!body.to_string().contains("hunter2"));
    }
}
