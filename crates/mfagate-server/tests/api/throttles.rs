//! Failed-login throttling per account, and the per-IP counter.

use mfagate::core::rate::Rate;
use serde_json::json;

use crate::helpers::{spawn_app_with, PASSWORD};

#[tokio::test]
async fn after_n_failed_logins_even_the_right_password_is_throttled() {
    let app = spawn_app_with(|s| s.config.login_throttle = Rate::parse("3/300").unwrap()).await;
    app.register("ann").await;
    // Case does not matter: `ANN` and `ann` fill one window.
    for name in ["ann", "ANN", "ann"] {
        app.post(
            "/auth/login",
            json!({"username": name, "password": "wrong"}),
            None,
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    let throttled = app.login("ann").await;
    throttled.assert_error(429, "throttled");
    let retry_after: i64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((290..=300).contains(&retry_after), "{retry_after}");
    // The tight window is per name as typed: the address is a window of its own, so a 429 on
    // the name does not tell which address belongs to it.
    assert_eq!(
        app.post(
            "/auth/login",
            json!({"username": "ann@example.com", "password": PASSWORD}),
            None,
        )
        .await
        .status,
        200
    );
    // Another account is not affected.
    app.register("bob").await;
    assert_eq!(app.login("bob").await.status, 200);
}

#[tokio::test]
async fn unknown_usernames_are_throttled_by_their_text() {
    let app = spawn_app_with(|s| s.config.login_throttle = Rate::parse("2/60").unwrap()).await;
    for _ in 0..2 {
        app.post(
            "/auth/login",
            json!({"username": "Ghost", "password": "x"}),
            None,
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    app.post(
        "/auth/login",
        json!({"username": "ghost", "password": "x"}),
        None,
    )
    .await
    .assert_error(429, "throttled");
}

#[tokio::test]
async fn the_login_throttle_can_be_switched_off() {
    let app = spawn_app_with(|s| s.config.login_throttle = None).await;
    app.register("ann").await;
    for _ in 0..15 {
        app.post(
            "/auth/login",
            json!({"username": "ann", "password": "wrong"}),
            None,
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    assert_eq!(app.login("ann").await.status, 200);
}

#[tokio::test]
async fn the_ip_throttle_counts_requests_per_client_address() {
    let app = spawn_app_with(|s| s.gate.ip_throttle = Rate::parse("4/60").unwrap()).await;
    // Registering counts too (each costs a password hash).
    assert_eq!(app.register("ann").await.status, 201);
    for _ in 0..3 {
        assert_eq!(app.login("ann").await.status, 200);
    }
    let throttled = app.login("ann").await;
    throttled.assert_error(429, "throttled");
    assert!(throttled.header("retry-after").is_some());
    // mfa/verify shares the counter.
    app.post(
        "/auth/mfa/verify",
        json!({"ephemeral_token": "x", "code": "1"}),
        None,
    )
    .await
    .assert_error(429, "throttled");
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let app = spawn_app_with(|s| {
        s.gate.ip_throttle = Rate::parse("2/60").unwrap();
        s.gate.trusted_proxies = mfagate::core::client_ip::parse_list("127.0.0.1").unwrap();
    })
    .await;
    let login = |ip: &'static str| {
        app.raw(
            app.client
                .post(app.url("/auth/login"))
                .header("x-forwarded-for", format!("203.0.113.9, {ip}"))
                .json(&json!({"username": "x", "password": "y"})),
        )
    };
    // Two clients behind the trusted proxy each get their own budget.
    for _ in 0..2 {
        login("198.51.100.1")
            .await
            .assert_error(401, "invalid_credentials");
    }
    login("198.51.100.1").await.assert_error(429, "throttled");
    login("198.51.100.2")
        .await
        .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(|s| s.gate.ip_throttle = Rate::parse("2/60").unwrap()).await;
    for ip in ["198.51.100.1", "198.51.100.2"] {
        app.raw(
            app.client
                .post(app.url("/auth/login"))
                .header("x-forwarded-for", ip)
                .json(&json!({"username": "x", "password": "y"})),
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    let third = app
        .raw(
            app.client
                .post(app.url("/auth/login"))
                .header("x-forwarded-for", "198.51.100.3")
                .json(&json!({"username": "x", "password": "y"})),
        )
        .await;
    third.assert_error(429, "throttled");
}
