//! Registration, login, the current user, refresh rotation, logout, access token checks.

use serde_json::json;

use crate::helpers::{amr, jwt_claims, spawn_app, spawn_app_with, PASSWORD};

#[tokio::test]
async fn register_returns_the_user_and_a_token_pair_with_amr_pwd() {
    let app = spawn_app().await;
    let answer = app.register("ann").await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let user = &answer.body["user"];
    assert!(user["id"].is_string());
    assert_eq!(user["username"], "ann");
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["mfa_enabled"], false);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 900);
    assert!(answer.body["refresh"]
        .as_str()
        .is_some_and(|r| r.len() >= 40));
    let claims = jwt_claims(answer.body["access"].as_str().unwrap());
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["iss"], "mfagate");
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].is_string());
}

#[tokio::test]
async fn registration_reports_every_invalid_field() {
    let app = spawn_app().await;
    let answer = app
        .post(
            "/auth/register",
            json!({"username": "a b", "email": "not-an-address", "password": "short"}),
            None,
        )
        .await;
    answer.assert_error(400, "validation_error");
    for field in ["username", "email", "password"] {
        assert!(
            answer.body["fields"][field].is_string(),
            "{field}: {}",
            answer.body
        );
    }
    let same = app
        .post(
            "/auth/register",
            json!({"username": "samesame", "email": "s@example.com", "password": "SameSame"}),
            None,
        )
        .await;
    same.assert_error(400, "validation_error");
    assert!(same.body["fields"]["password"].is_string());
    let long = app
        .post(
            "/auth/register",
            json!({"username": "longpw", "email": "l@example.com", "password": "x".repeat(1025)}),
            None,
        )
        .await;
    long.assert_error(400, "validation_error");
}

#[tokio::test]
async fn the_minimum_password_length_is_a_setting() {
    let app = spawn_app_with(|s| s.config.password_min_length = 12).await;
    let answer = app
        .post(
            "/auth/register",
            json!({"username": "ann", "email": "a@example.com", "password": "elevenchars"}),
            None,
        )
        .await;
    answer.assert_error(400, "validation_error");
    assert!(answer.body["fields"]["password"]
        .as_str()
        .unwrap()
        .contains("12"));
}

#[tokio::test]
async fn taken_usernames_and_emails_conflict_case_insensitively() {
    let app = spawn_app().await;
    assert_eq!(app.register("ann").await.status, 201);
    let by_name = app
        .post(
            "/auth/register",
            json!({"username": "ANN", "email": "other@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    by_name.assert_error(409, "already_exists");
    let by_email = app
        .post(
            "/auth/register",
            json!({"username": "bob", "email": "Ann@Example.com", "password": PASSWORD}),
            None,
        )
        .await;
    by_email.assert_error(409, "already_exists");
    // One user's e-mail cannot be another's username (login takes either).
    let crossing = app
        .post(
            "/auth/register",
            json!({"username": "ann@example.com", "email": "c@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    crossing.assert_error(409, "already_exists");
}

#[tokio::test]
async fn login_takes_username_or_email_in_any_case() {
    let app = spawn_app().await;
    app.register("ann").await;
    for name in ["ann", "ANN", "ann@example.com", "ANN@EXAMPLE.COM"] {
        let answer = app
            .post(
                "/auth/login",
                json!({"username": name, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        assert_eq!(amr(answer.body["access"].as_str().unwrap()), vec!["pwd"]);
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    app.register("ann").await;
    let wrong = app
        .post(
            "/auth/login",
            json!({"username": "ann", "password": "wrong password"}),
            None,
        )
        .await;
    let unknown = app
        .post(
            "/auth/login",
            json!({"username": "nobody", "password": "wrong password"}),
            None,
        )
        .await;
    wrong.assert_error(401, "invalid_credentials");
    unknown.assert_error(401, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
}

#[tokio::test]
async fn the_current_user_needs_a_valid_bearer_token() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    let me = app.get("/auth/user", Some(&access)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["username"], "ann");
    assert_eq!(me.body["mfa_enabled"], false);
    for token in [None, Some("garbage"), Some("a.b.c")] {
        let answer = app.get("/auth/user", token).await;
        answer.assert_error(401, "not_authenticated");
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    }
    // A tampered payload fails the signature.
    let mut parts: Vec<String> = access.split('.').map(str::to_string).collect();
    parts[1] = data_encoding::BASE64URL_NOPAD.encode(br#"{"sub":"x","iat":0,"exp":9999999999,"jti":"j","iss":"mfagate","amr":["pwd","mfa","otp"]}"#);
    app.get("/auth/user", Some(&parts.join(".")))
        .await
        .assert_error(401, "not_authenticated");
    // The refresh token is not an access token.
    let answer = app.login("ann").await;
    app.get("/auth/user", answer.body["refresh"].as_str())
        .await
        .assert_error(401, "not_authenticated");
    let basic = app
        .raw(
            app.client
                .get(app.url("/auth/user"))
                .header("authorization", format!("Basic {access}")),
        )
        .await;
    basic.assert_error(401, "not_authenticated");
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let app = spawn_app_with(|s| s.config.access_ttl = 1).await;
    let access = app.register_and_token("ann").await;
    app.clock.advance(2); // past the 1-second lifetime, without waiting for it
    app.get("/auth/user", Some(&access))
        .await
        .assert_error(401, "not_authenticated");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_its_family() {
    let app = spawn_app().await;
    let first = app.register("ann").await.body["refresh"]
        .as_str()
        .unwrap()
        .to_string();
    let rotated = app
        .post("/auth/token/refresh", json!({"refresh": first}), None)
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = rotated.body["refresh"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(amr(rotated.body["access"].as_str().unwrap()), vec!["pwd"]);
    assert_eq!(
        app.get("/auth/user", rotated.body["access"].as_str())
            .await
            .status,
        200
    );

    // The old token again: refused, and the live descendant dies with it.
    app.post("/auth/token/refresh", json!({"refresh": first}), None)
        .await
        .assert_error(401, "invalid_token");
    app.post("/auth/token/refresh", json!({"refresh": second}), None)
        .await
        .assert_error(401, "invalid_token");

    // Another login's family is untouched.
    let other = app.login("ann").await.body["refresh"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.post("/auth/token/refresh", json!({"refresh": other}), None)
            .await
            .status,
        200
    );
    app.post("/auth/token/refresh", json!({"refresh": "made-up"}), None)
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_mint_exactly_one_successor() {
    let app = spawn_app().await;
    let token = app.register("ann").await.body["refresh"]
        .as_str()
        .unwrap()
        .to_string();
    let attempts =
        (0..10).map(|_| app.post("/auth/token/refresh", json!({"refresh": token}), None));
    let answers = futures::future::join_all(attempts).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 1);
    for answer in answers.iter().filter(|a| a.status != 200) {
        answer.assert_error(401, "invalid_token");
    }
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let app = spawn_app_with(|s| s.config.refresh_ttl = 1).await;
    let token = app.register("ann").await.body["refresh"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(2); // past the 1-second lifetime, without waiting for it
    app.post("/auth/token/refresh", json!({"refresh": token}), None)
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn logout_revokes_the_family_and_needs_no_bearer_token() {
    let app = spawn_app().await;
    let token = app.register("ann").await.body["refresh"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = app
        .post("/auth/logout", json!({"refresh": token}), None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body["detail"].is_string());
    app.post("/auth/token/refresh", json!({"refresh": token}), None)
        .await
        .assert_error(401, "invalid_token");
    app.post("/auth/logout", json!({"refresh": "unknown"}), None)
        .await
        .assert_error(401, "invalid_token");
    app.post("/auth/logout", json!({}), None)
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn in_cookie_mode_the_refresh_token_travels_in_an_http_only_cookie() {
    let app = spawn_app_with(|s| s.gate.refresh_cookie = true).await;
    let answer = app.register("ann").await;
    assert_eq!(answer.status, 201);
    assert!(answer.body.get("refresh").is_none(), "{}", answer.body);
    let cookie = answer.header("set-cookie").expect("cookie").to_string();
    for attribute in [
        "mfagate_refresh=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/auth",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    let refreshed = app
        .raw(
            app.client
                .post(app.url("/auth/token/refresh"))
                .header("cookie", &pair)
                .json(&json!({})),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert!(refreshed.body.get("refresh").is_none());
    let next = refreshed
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(next, pair);
    let out = app
        .raw(
            app.client
                .post(app.url("/auth/logout"))
                .header("cookie", &next)
                .json(&json!({})),
        )
        .await;
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = app
        .raw(
            app.client
                .post(app.url("/auth/token/refresh"))
                .header("cookie", &next)
                .json(&json!({})),
        )
        .await;
    after.assert_error(401, "invalid_token");
}
