//! Remember this device (API.md v3): a device token from `mfa/verify` lets the password alone
//! finish its user's logins, in the body or as the `mfagate_device` cookie, and dies with each
//! event the contract lists. Passkeys answer the challenges (no waiting for TOTP steps).

use reqwest::Method;
use serde_json::json;

use crate::helpers::{amr, spawn_app, spawn_app_with, Answer, TestApp, PASSWORD};
use crate::passkeys::{enrol, new_key};
use crate::soft_passkey::SoftPasskey;

fn access(answer: &Answer) -> String {
    answer.body["access"]
        .as_str()
        .expect("token pair")
        .to_string()
}

/// A user with a passkey; its key.
async fn user_with_passkey(app: &TestApp, username: &str) -> SoftPasskey {
    let token = app.register_and_token(username).await;
    let mut key = new_key();
    enrol(app, &token, "Key", &mut key).await;
    key
}

async fn login_with_device(app: &TestApp, username: &str, device: Option<&str>) -> Answer {
    app.post(
        "/auth/login",
        json!({"username": username, "password": PASSWORD, "device_token": device}),
        None,
    )
    .await
}

/// A login through the challenge, answered with `key`, asking to remember the device.
async fn remembered_login(app: &TestApp, username: &str, key: &mut SoftPasskey) -> Answer {
    let challenge = app.login(username).await.body;
    assert_eq!(challenge["mfa_required"], true, "{challenge}");
    let answer = app
        .post(
            "/auth/mfa/verify",
            json!({
                "ephemeral_token": challenge["ephemeral_token"],
                "credential": key.assert(&challenge["webauthn"]),
                "remember_device": true,
            }),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
}

fn device(answer: &Answer) -> String {
    answer.body["device_token"]
        .as_str()
        .expect("device token")
        .to_string()
}

#[tokio::test]
async fn a_remembered_device_skips_the_challenge_for_its_user_only() {
    let app = spawn_app().await;
    let mut key = user_with_passkey(&app, "ann").await;
    let mut bobs = user_with_passkey(&app, "bob").await;
    // Without asking, no device token.
    let challenge = app.login("ann").await.body;
    let plain = app
        .post(
            "/auth/mfa/verify",
            json!({"ephemeral_token": challenge["ephemeral_token"],
                   "credential": key.assert(&challenge["webauthn"])}),
            None,
        )
        .await;
    assert!(plain.body.get("device_token").is_none());

    let remembered = remembered_login(&app, "ann", &mut key).await;
    let token = device(&remembered);
    let skipped = login_with_device(&app, "ann", Some(&token)).await;
    assert_eq!(skipped.status, 200, "{}", skipped.body);
    assert_eq!(amr(&access(&skipped)), ["pwd", "mfa", "swk"]);
    // It stands for the second factor only: the password is still checked.
    app.post(
        "/auth/login",
        json!({"username": "ann", "password": "wrong password", "device_token": token}),
        None,
    )
    .await
    .assert_error(401, "invalid_credentials");
    // Another user's, unknown, or expired: the login goes on as if it were absent.
    for (user, device) in [("bob", token.as_str()), ("ann", "not-a-device-token")] {
        let answer = login_with_device(&app, user, Some(device)).await;
        assert_eq!(answer.body["mfa_required"], true, "{}", answer.body);
    }
    app.clock.advance(30 * 24 * 3600 + 1);
    let expired = login_with_device(&app, "ann", Some(&token)).await;
    assert_eq!(expired.body["mfa_required"], true, "{}", expired.body);
    // bob's own device token lets bob in, and not ann.
    let bobs_token = device(&remembered_login(&app, "bob", &mut bobs).await);
    let bob_in = login_with_device(&app, "bob", Some(&bobs_token)).await;
    assert_eq!(amr(&access(&bob_in)), ["pwd", "mfa", "swk"]);
    let ann = login_with_device(&app, "ann", Some(&bobs_token)).await;
    assert_eq!(ann.body["mfa_required"], true, "{}", ann.body);
}

#[tokio::test]
async fn device_tokens_die_with_each_event_that_changes_how_the_user_proves_who_they_are() {
    let app = spawn_app().await;
    let mut key = user_with_passkey(&app, "ann").await;
    let admin = app.admin_token("root").await;
    let mut password = PASSWORD.to_string();

    // Each event, then the device token remembered before it is dead.
    for event in [
        "add a factor",
        "remove a factor",
        "change the password",
        "reset the password",
        "logout/all",
        "admin MFA reset",
    ] {
        let remembered = remembered_login(&app, "ann", &mut key).await;
        let token = device(&remembered);
        let fresh = access(&remembered);
        let ok = login_with_device(&app, "ann", Some(&token)).await;
        assert_eq!(ok.status, 200, "{event}: {}", ok.body);
        match event {
            "add a factor" => {
                let mut second = new_key();
                enrol(&app, &fresh, "Second", &mut second).await;
            }
            "remove a factor" => {
                let factors = app.get("/auth/mfa/factors", Some(&fresh)).await.body;
                let second = factors["factors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["name"] == "Second")
                    .unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let removed = app
                    .send(
                        Method::DELETE,
                        &format!("/auth/mfa/factors/{second}"),
                        None,
                        Some(&fresh),
                    )
                    .await;
                assert_eq!(removed.status, 200, "{}", removed.body);
            }
            "change the password" => {
                let changed = app
                    .post(
                        "/auth/password/change",
                        json!({"old_password": password, "new_password": "another horse battery"}),
                        Some(&fresh),
                    )
                    .await;
                assert_eq!(changed.status, 200, "{}", changed.body);
                // Back, so the helpers' password works again (this ends devices too).
                let back = app
                    .post(
                        "/auth/password/change",
                        json!({"old_password": "another horse battery", "new_password": PASSWORD}),
                        Some(&fresh),
                    )
                    .await;
                assert_eq!(back.status, 200, "{}", back.body);
                password = PASSWORD.to_string();
            }
            "reset the password" => {
                let before = app.mail.to("ann@example.com").len();
                app.post(
                    "/auth/password/reset",
                    json!({"email": "ann@example.com"}),
                    None,
                )
                .await;
                let key = app.mail.wait_for("ann@example.com", before + 1).await.key();
                let reset = app
                    .post(
                        "/auth/password/reset/confirm",
                        json!({"key": key, "new_password": PASSWORD}),
                        None,
                    )
                    .await;
                assert_eq!(reset.status, 200, "{}", reset.body);
            }
            "logout/all" => {
                let all = app.post("/auth/logout/all", json!({}), Some(&fresh)).await;
                assert_eq!(all.status, 200, "{}", all.body);
            }
            _ => {
                let ann = app.get("/auth/user", Some(&fresh)).await.body["id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let reset = app
                    .post(
                        &format!("/auth/admin/users/{ann}/reset-mfa"),
                        json!({}),
                        Some(&admin),
                    )
                    .await;
                assert_eq!(reset.status, 200, "{}", reset.body);
                // No factor left: the password alone logs in, the device token adds nothing.
                let after = login_with_device(&app, "ann", Some(&token)).await;
                assert_eq!(amr(&access(&after)), ["pwd"], "{event}");
                continue;
            }
        }
        let after = login_with_device(&app, "ann", Some(&token)).await;
        assert_eq!(after.body["mfa_required"], true, "{event}: {}", after.body);
    }
}

#[tokio::test]
async fn in_cookie_mode_the_device_token_is_an_http_only_cookie() {
    let app = spawn_app_with(|s| s.gate.refresh_cookie = true).await;
    let mut key = user_with_passkey(&app, "ann").await;
    let remembered = remembered_login(&app, "ann", &mut key).await;
    assert!(remembered.body.get("device_token").is_none());
    let cookie = remembered
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("mfagate_device="))
        .expect("the device cookie")
        .to_string();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/auth",
        "Max-Age=2592000",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    let request = app
        .client
        .post(app.url("/auth/login"))
        .header("Cookie", pair)
        .json(&json!({"username": "ann", "password": PASSWORD}));
    let skipped = app.raw(request).await;
    assert_eq!(skipped.status, 200, "{}", skipped.body);
    assert_eq!(amr(&access(&skipped)), ["pwd", "mfa", "swk"]);
}
