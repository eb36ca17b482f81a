//! The three modes, switched by restarting on the same database.

use mfagate::MfaMode;
use serde_json::json;

use crate::helpers::{amr, code, spawn_app, spawn_app_with};

#[tokio::test]
async fn disabled_mode_ignores_factors_and_closes_every_mfa_endpoint_first() {
    let app = spawn_app().await;
    let enrolled = app.user_with_totp("ann").await;
    let app = app
        .restart_with(|s| s.config.mode = MfaMode::Disabled)
        .await;
    let login = app.login("ann").await;
    assert_eq!(login.status, 200);
    let access = login.body["access"]
        .as_str()
        .expect("tokens, no challenge")
        .to_string();
    assert_eq!(amr(&access), vec!["pwd"]);
    // 403 before any other check: no token, bad body, or a good request alike.
    app.get("/auth/mfa/status", None)
        .await
        .assert_error(403, "mfa_disabled");
    app.get("/auth/mfa/status", Some(&access))
        .await
        .assert_error(403, "mfa_disabled");
    app.post("/auth/mfa/verify", json!({}), None)
        .await
        .assert_error(403, "mfa_disabled");
    app.post(
        "/auth/mfa/totp/deactivate",
        json!({"code": code(&enrolled.secret, enrolled.step + 1)}),
        Some(&access),
    )
    .await
    .assert_error(403, "mfa_disabled");
    app.get("/auth/mfa/totp/activate", Some(&access))
        .await
        .assert_error(403, "mfa_disabled");
    app.post("/auth/mfa/method", json!({"method": "none"}), Some(&access))
        .await
        .assert_error(403, "mfa_disabled");
    // Back to optional: the factor is still there.
    let app = app
        .restart_with(|s| s.config.mode = MfaMode::Optional)
        .await;
    assert_eq!(app.login("ann").await.body["mfa_required"], true);
}

#[tokio::test]
async fn required_mode_hands_a_setup_token_that_only_enrolment_accepts() {
    let app = spawn_app_with(|s| s.config.mode = MfaMode::Required).await;
    let registered = app.register("ann").await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["mfa_setup_required"], true);
    assert_eq!(registered.body["expires_in"], 900);
    assert!(registered.body.get("access").is_none());
    assert_eq!(registered.body["user"]["username"], "ann");

    let login = app.login("ann").await;
    assert_eq!(login.status, 200);
    assert_eq!(login.body["mfa_setup_required"], true);
    assert!(login.body.get("access").is_none());
    let setup = login.body["setup_token"].as_str().unwrap().to_string();
    // Anywhere but the two activation calls, a setup token is not authenticated.
    app.get("/auth/user", Some(&setup))
        .await
        .assert_error(401, "not_authenticated");
    app.get("/auth/mfa/status", Some(&setup))
        .await
        .assert_error(401, "not_authenticated");
    app.post("/auth/mfa/method", json!({"method": "totp"}), Some(&setup))
        .await
        .assert_error(401, "not_authenticated");

    let (enrolled, activated) = app.enable_totp_with(&setup).await;
    let access = activated.body["access"]
        .as_str()
        .expect("enrolment completes the login");
    assert_eq!(amr(access), vec!["pwd", "mfa", "otp"]);
    assert!(activated.body["refresh"].is_string());
    assert_eq!(activated.body["token_type"], "Bearer");
    assert_eq!(
        activated.body["recovery_codes"].as_array().unwrap().len(),
        10
    );
    // The setup token is spent.
    app.get("/auth/mfa/totp/activate", Some(&setup))
        .await
        .assert_error(401, "not_authenticated");

    // Next time: a normal challenge; and the factor cannot be switched off.
    let ephemeral = app.challenge("ann").await;
    assert_eq!(
        app.verify(&ephemeral, &code(&enrolled.secret, enrolled.step + 1))
            .await
            .status,
        200
    );
    app.post(
        "/auth/mfa/totp/deactivate",
        json!({"code": enrolled.recovery_codes[0]}),
        Some(access),
    )
    .await
    .assert_error(403, "mfa_enforced");
    app.post("/auth/mfa/method", json!({"method": "none"}), Some(access))
        .await
        .assert_error(400, "invalid_method");
}

#[tokio::test]
async fn switching_an_existing_deployment_to_required_sends_users_without_a_factor_to_enrol() {
    let app = spawn_app().await;
    app.register("ann").await;
    let app = app
        .restart_with(|s| s.config.mode = MfaMode::Required)
        .await;
    let login = app.login("ann").await;
    assert_eq!(login.body["mfa_setup_required"], true, "{}", login.body);
}

#[tokio::test]
async fn an_expired_setup_token_is_refused() {
    let app = spawn_app_with(|s| {
        s.config.mode = MfaMode::Required;
        s.config.setup_token_ttl = 1;
    })
    .await;
    let setup = app.register("ann").await.body["setup_token"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(2); // past the 1-second lifetime, without waiting for it
    app.get("/auth/mfa/totp/activate", Some(&setup))
        .await
        .assert_error(401, "not_authenticated");
}
