//! Every error is a problem+json 4xx with a stable code; nothing crashes or leaks.

use reqwest::header::CONTENT_TYPE;

use crate::helpers::*;

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let app = spawn_app().await;
    assert_problem(
        app.client.get(app.url("/nope")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.client.get(app.url("/auth/login")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_problem(
        app.client
            .put(app.url("/auth/sessions"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn bodies_are_checked_before_anything_else() {
    let app = spawn_app().await;
    let post = |ct: Option<&'static str>, body: Vec<u8>| {
        let mut req = app.client.post(app.url("/auth/login")).body(body);
        if let Some(ct) = ct {
            req = req.header(CONTENT_TYPE, ct);
        }
        req.send()
    };
    let json = Some("application/json");
    assert_problem(
        post(
            None,
            br#"{"email":"a@b.test","password":"12345678"}"#.to_vec(),
        )
        .await
        .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    assert_problem(
        post(Some("text/plain"), b"{}".to_vec()).await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    assert_problem(
        post(json, b"{not json".to_vec()).await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_problem(post(json, b"".to_vec()).await.unwrap(), 400, "invalid_json").await;
    assert_problem(
        post(
            json,
            b"{\"email\":\"\xff\xfe\",\"password\":\"x\"}".to_vec(),
        )
        .await
        .unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_problem(
        post(
            json,
            br#"{"email":"a@b.test","password":"12345678"} trailing"#.to_vec(),
        )
        .await
        .unwrap(),
        400,
        "invalid_json",
    )
    .await;

    let body = assert_problem(
        post(json, br#"{"email":"a@b.test"}"#.to_vec())
            .await
            .unwrap(),
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "password");
    assert_eq!(body["errors"][0]["message"], "is required");
    let body = assert_problem(
        post(
            json,
            br#"{"email":["a"],"password":"supersecretvalue"}"#.to_vec(),
        )
        .await
        .unwrap(),
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "email");
    assert!(!body.to_string().contains("supersecretvalue"));
    assert_problem(
        post(json, b"[]".to_vec()).await.unwrap(),
        400,
        "validation_failed",
    )
    .await;
    assert_problem(
        post(json, b"null".to_vec()).await.unwrap(),
        400,
        "validation_failed",
    )
    .await;

    let huge = format!(
        r#"{{"email":"a@b.test","password":"{}"}}"#,
        "x".repeat(20_000)
    );
    assert_problem(
        post(json, huge.into_bytes()).await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    // A 1 MB password is refused before any hashing (well within the request timeout).
    let megabyte = format!(
        r#"{{"email":"a@b.test","password":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let res = post(json, megabyte.into_bytes()).await.unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn internal_details_never_reach_the_body() {
    let app = spawn_app().await;
    let res = app.post_json("/auth/login", &serde_json::json!({"email": "a'; DROP TABLE users; --@x.test", "password": "whatever123"})).await;
    let (status, _, body) = problem(res).await;
    assert!(status.is_client_error());
    let text = body.to_string().to_lowercase();
    for leak in ["sqlx", "postgres", "syntax", "panicked", "select"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_body_is_one_json_object_and_nothing_else() {
    let app = spawn_app().await;
    app.register("ann@example.test", PASSWORD).await;
    let post = |path: &'static str, body: String| {
        app.client
            .post(app.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };

    // serde would fill a struct from an array, field by field: not a way in.
    for path in ["/auth/register", "/auth/login"] {
        for email in ["ann@example.test", "bob@example.test"] {
            let array = serde_json::json!([email, PASSWORD]).to_string();
            let body =
                assert_problem(post(path, array).await.unwrap(), 400, "validation_failed").await;
            assert_eq!(
                body["errors"],
                serde_json::json!([{"field": "body", "message": "must be a JSON object"}])
            );
        }
    }
    let users: Vec<String> = sqlx::query_scalar("SELECT email FROM users")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(users, ["ann@example.test"]);

    for other in ["null", r#""ann@example.test""#, "12345678", "true"] {
        let body = assert_problem(
            post("/auth/login", other.to_string()).await.unwrap(),
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "body", "{other}");
    }

    // Syntax comes first: garbage after an incomplete object is invalid JSON, not a missing
    // field, and the message does not quote the input.
    for garbage in [
        r#"{"email":"ann@example.test"}}"#,
        r#"{"email":"ann@example.test"} {"password":"x"}"#,
        r#"{"email":7,"password":"secret-value-123"},"#,
    ] {
        let body = assert_problem(
            post("/auth/login", garbage.to_string()).await.unwrap(),
            400,
            "invalid_json",
        )
        .await;
        assert!(!body.to_string().contains("secret-value"), "{body}");
        assert!(!body.to_string().contains("ann@"), "{body}");
    }

    // The same as an object still works, whitespace around it included.
    let object = format!(
        " {} \n",
        serde_json::json!({"email": "ann@example.test", "password": PASSWORD})
    );
    assert_eq!(post("/auth/login", object).await.unwrap().status(), 200);
}
