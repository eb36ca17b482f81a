//! The contract's conventions: error shapes for bad input, health, JWKS.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_answers_ok_when_the_database_answers() {
    let app = spawn_app().await;
    let answer = app.get("/healthz", None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn jwks_is_empty_under_hs256() {
    let app = spawn_app().await;
    let answer = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"keys": []}));
}

#[tokio::test]
async fn a_body_without_json_content_type_gets_415() {
    let app = spawn_app().await;
    let answer = app
        .raw(
            app.client
                .post(app.url("/auth/login"))
                .body(r#"{"username":"a","password":"b"}"#),
        )
        .await;
    answer.assert_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn malformed_json_wrong_types_missing_fields_and_non_objects_get_400_invalid_request() {
    let app = spawn_app().await;
    for body in [
        "{not json",
        r#"{"username": 5, "password": "x"}"#,
        r#"{"username": "ann"}"#,
        r#"["ann", "pw"]"#,
        "null",
        "",
    ] {
        let answer = app
            .raw(
                app.client
                    .post(app.url("/auth/login"))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        answer.assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_body_over_64_kib_gets_413() {
    let app = spawn_app().await;
    let big = "x".repeat(70 * 1024);
    let answer = app
        .post(
            "/auth/login",
            json!({"username": big, "password": "pw"}),
            None,
        )
        .await;
    answer.assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn unknown_paths_get_404_and_wrong_methods_get_405_in_the_error_shape() {
    let app = spawn_app().await;
    app.get("/nowhere", None)
        .await
        .assert_error(404, "not_found");
    app.get("/auth/nowhere", None)
        .await
        .assert_error(404, "not_found");
    let answer = app.get("/auth/login", None).await;
    answer.assert_error(405, "http_method_not_allowed");
    assert_eq!(answer.header("allow"), Some("POST"));
    app.raw(app.client.delete(app.url("/auth/mfa/status")))
        .await
        .assert_error(405, "http_method_not_allowed");
}

#[tokio::test]
async fn odd_unicode_never_causes_a_server_error() {
    let app = spawn_app().await;
    for username in [
        "\u{0}\u{0}\u{0}",
        "ａｎｎ",
        "💥💥💥",
        "a\u{202e}b\u{200b}c",
        "Ω≈ç√∫",
    ] {
        let answer = app
            .post(
                "/auth/register",
                json!({"username": username, "email": "x@example.com", "password": "👾 long password ✓"}),
                None,
            )
            .await;
        answer.assert_error(400, "validation_error");
        assert!(answer.body["fields"]["username"].is_string());
        let login = app
            .post(
                "/auth/login",
                json!({"username": username, "password": "\u{0}"}),
                None,
            )
            .await;
        login.assert_error(401, "invalid_credentials");
    }
    // A unicode password is fine.
    let answer = app
        .post(
            "/auth/register",
            json!({"username": "unicode_ann", "email": "u@example.com", "password": "pässwörd ✓ 🔑"}),
            None,
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let login = app
        .post(
            "/auth/login",
            json!({"username": "unicode_ann", "password": "pässwörd ✓ 🔑"}),
            None,
        )
        .await;
    assert_eq!(login.status, 200);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let answer = app.get("/healthz", None).await;
    assert!(answer
        .header("x-request-id")
        .is_some_and(|id| !id.is_empty()));
    let echoed = app
        .raw(
            app.client
                .get(app.url("/healthz"))
                .header("x-request-id", "trace-me-42"),
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-me-42"));
}

#[tokio::test]
async fn every_json_answer_ends_with_a_newline() {
    let app = spawn_app().await;
    let cases = [
        app.client.get(app.url("/healthz")),
        app.client.get(app.url("/.well-known/jwks.json")),
        app.client.get(app.url("/no/such/path")),
        app.client.delete(app.url("/auth/login")),
        app.client
            .post(app.url("/auth/login"))
            .json(&json!({"username": "nobody", "password": "wrong password"})),
        app.client.post(app.url("/auth/login")).body("{}"),
    ];
    for request in cases {
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(
            response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json")),
            "{status}"
        );
        let text = response.text().await.unwrap();
        assert!(text.ends_with("}\n"), "{status}: {text:?}");
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        serde_json::from_str::<serde_json::Value>(&text).expect("still JSON");
    }
}
