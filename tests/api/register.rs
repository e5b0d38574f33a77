use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn register_returns_the_user_without_secrets() {
    let app = spawn_app().await;
    let res = app.register("  Ann@Example.TEST ", PASSWORD).await;
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["email"], "ann@example.test", "trimmed and lower-cased");
    assert_eq!(body["roles"], json!([]));
    assert_eq!(body["disabled"], false);
    assert_eq!(
        body["email_verified"], false,
        "API.md: User has email_verified"
    );
    assert!(body["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    assert!(
        time::OffsetDateTime::parse(
            body["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    let text = body.to_string();
    assert!(!text.contains("argon2") && !text.contains(PASSWORD) && !text.contains("password"));
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "argon2id with OWASP parameters"
    );
}

#[tokio::test]
async fn a_taken_email_is_409_whatever_its_case() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("ann@example.test", PASSWORD).await.status(),
        201
    );
    assert_problem(
        app.register("ANN@example.test", "another fine passphrase")
            .await,
        409,
        "email_taken",
    )
    .await;
}

#[tokio::test]
async fn invalid_input_is_400_with_field_errors() {
    let app = spawn_app().await;
    let body = assert_problem(
        app.register("not-an-email", "short").await,
        400,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password"]);

    let too_long = "x".repeat(129);
    let body = assert_problem(
        app.register("a@example.test", &too_long).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "password");

    let long_email = format!("{}@example.test", "a".repeat(250));
    assert_problem(
        app.register(&long_email, PASSWORD).await,
        400,
        "validation_failed",
    )
    .await;

    // 128 characters of any Unicode are fine, and never truncated.
    let unicode = "ü".repeat(128);
    assert_eq!(app.register("u@example.test", &unicode).await.status(), 201);
    assert_eq!(
        app.login_response("u@example.test", &unicode)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.login_response("u@example.test", &"ü".repeat(127))
            .await
            .status(),
        401,
        "not truncated"
    );
}

#[tokio::test]
async fn common_passwords_are_refused() {
    let app = spawn_app().await;
    for pw in ["password123", "Password123", "qwertyuiop", "iloveyou1"] {
        let body = assert_problem(
            app.register("c@example.test", pw).await,
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "password", "{pw}");
    }
}

#[tokio::test]
async fn closed_registration_is_403() {
    let app = spawn_app_with(|c| c.open_registration = false).await;
    assert_problem(
        app.register("ann@example.test", PASSWORD).await,
        403,
        "registration_closed",
    )
    .await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// Found by fuzzing: lower-casing can lengthen an email ('İ' → "i̇"). The limit applies to the
/// stored form, and the database accepts whatever authd normalized (no 500).
#[tokio::test]
async fn unicode_emails_are_normalized_once_and_bounded_after_normalization() {
    let app = spawn_app().await;
    let too_long = format!("{}İ@b.test", "a".repeat(246)); // 254 chars, 255 once lower-cased
    assert_problem(
        app.register(&too_long, PASSWORD).await,
        400,
        "validation_failed",
    )
    .await;
    let just_fits = format!("{}İ@b.test", "a".repeat(245));
    let res = app.register(&just_fits, PASSWORD).await;
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["email"].as_str().unwrap().chars().count(), 254);
    assert_eq!(
        app.login_response(&just_fits.to_uppercase(), PASSWORD)
            .await
            .status(),
        200
    );
}
