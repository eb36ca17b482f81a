//! Every credential dies with the event that should end it: a password change or reset, an
//! administrator's MFA reset or disable, an enrolment, an accepted invitation, a reused refresh
//! token.

use mfagate::core::MfaMode;
use serde_json::json;

use crate::helpers::{
    amr, code, fresh_step, spawn_app, spawn_app_with, Enrolled, TestApp, PASSWORD,
};
use crate::limits::burst;

/// Resets ann's password through the mailed key.
async fn reset_password(app: &TestApp, address: &str, new_password: &str) {
    let before = app.mail.to(address).len();
    let asked = app
        .post("/auth/password/reset", json!({"email": address}), None)
        .await;
    assert_eq!(asked.status, 202);
    let key = app.mail.wait_for(address, before + 1).await.key();
    let done = app
        .post(
            "/auth/password/reset/confirm",
            json!({"key": key, "new_password": new_password}),
            None,
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
}

#[tokio::test]
async fn a_password_reset_ends_a_setup_token_and_the_enrolment_begun_with_it() {
    let app = spawn_app_with(|s| s.config.mode = MfaMode::Required).await;
    app.register("ann").await;
    // The attacker knows the password: a setup token, and an enrolment begun with it.
    let setup = app.login("ann").await.body["setup_token"]
        .as_str()
        .unwrap()
        .to_string();
    let begun = app.get("/auth/mfa/totp/activate", Some(&setup)).await;
    assert_eq!(begun.status, 200);
    let secret = data_encoding::BASE32_NOPAD
        .decode(begun.body["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    reset_password(&app, "ann@example.com", "the owner's new password").await;
    let attempt = app
        .post(
            "/auth/mfa/totp/activate",
            json!({"activation_token": begun.body["activation_token"], "code": code(&secret, fresh_step())}),
            Some(&setup),
        )
        .await;
    attempt.assert_error(401, "not_authenticated");
    app.get("/auth/mfa/totp/activate", Some(&setup))
        .await
        .assert_error(401, "not_authenticated");
    // The owner's next login never asks for the attacker's factor (the reset proved the
    // address, so required mode sends an e-mailed code).
    let owner = app
        .post(
            "/auth/login",
            json!({"username": "ann", "password": "the owner's new password"}),
            None,
        )
        .await;
    assert_eq!(owner.body["methods"], json!(["email"]), "{}", owner.body);
}

#[tokio::test]
async fn a_password_change_ends_live_challenges_pending_enrolments_and_sessions() {
    let app = spawn_app().await;
    fresh_step();
    let access = app.register_and_token("ann").await;
    let enrolled = app.enable_totp(&access).await;
    let ephemeral = app.challenge("ann").await;
    let changed = app
        .post(
            "/auth/password/change",
            json!({"old_password": PASSWORD, "new_password": "another password"}),
            Some(&enrolled.access),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    // The challenge begun with the old password is dead, even for a right code.
    app.verify(&ephemeral, &code(&enrolled.secret, enrolled.step + 1))
        .await
        .assert_error(401, "invalid_token");
    app.post(
        "/auth/token/refresh",
        json!({"refresh": enrolled.refresh}),
        None,
    )
    .await
    .assert_error(401, "invalid_token");

    // An enrolment begun before a change dies with it.
    let bob = app.register_and_token("bob").await;
    let begun = app.get("/auth/mfa/totp/activate", Some(&bob)).await;
    let secret = data_encoding::BASE32_NOPAD
        .decode(begun.body["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    app.post(
        "/auth/password/change",
        json!({"old_password": PASSWORD, "new_password": "another password"}),
        Some(&bob),
    )
    .await;
    app.post(
        "/auth/mfa/totp/activate",
        json!({"activation_token": begun.body["activation_token"], "code": code(&secret, fresh_step())}),
        Some(&bob),
    )
    .await
    .assert_error(400, "invalid_activation_token");
}

/// An administrator's token, and ann (id, TOTP enrolment) in the middle of a login.
async fn admin_and_challenged_user(app: &TestApp) -> (String, String, Enrolled, String) {
    fresh_step();
    let admin = app.admin_token("root").await;
    let registered = app.register("ann").await;
    let ann_id = registered.body["user"]["id"].as_str().unwrap().to_string();
    let enrolled = app
        .enable_totp(registered.body["access"].as_str().unwrap())
        .await;
    let ephemeral = app.challenge("ann").await;
    (admin, ann_id, enrolled, ephemeral)
}

#[tokio::test]
async fn a_disabled_user_cannot_finish_a_login_nor_manage_codes_with_an_old_token() {
    let app = spawn_app().await;
    let (admin, ann_id, enrolled, ephemeral) = admin_and_challenged_user(&app).await;
    let disabled = app
        .post(
            &format!("/auth/admin/users/{ann_id}/disable"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    app.verify(&ephemeral, &code(&enrolled.secret, enrolled.step + 1))
        .await
        .assert_error(401, "invalid_token");
    // The access token is still a valid JWT, but the account is not active.
    app.get("/auth/mfa/recovery-codes", Some(&enrolled.access))
        .await
        .assert_error(401, "not_authenticated");
    app.post(
        "/auth/mfa/recovery-codes/regenerate",
        json!({"code": enrolled.recovery_codes[0]}),
        Some(&enrolled.access),
    )
    .await
    .assert_error(401, "not_authenticated");
}

#[tokio::test]
async fn a_disabled_user_cannot_finish_an_enrolment_begun_with_a_setup_token() {
    let app = spawn_app_with(|s| s.config.mode = MfaMode::Required).await;
    let admin = app.admin_token_required("root").await;
    let registered = app.register("ann").await;
    let ann_id = registered.body["user"]["id"].as_str().unwrap().to_string();
    let setup = registered.body["setup_token"].as_str().unwrap().to_string();
    let begun = app.get("/auth/mfa/totp/activate", Some(&setup)).await;
    let secret = data_encoding::BASE32_NOPAD
        .decode(begun.body["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    app.post(
        &format!("/auth/admin/users/{ann_id}/disable"),
        json!({}),
        Some(&admin),
    )
    .await;
    app.post(
        "/auth/mfa/totp/activate",
        json!({"activation_token": begun.body["activation_token"], "code": code(&secret, fresh_step())}),
        Some(&setup),
    )
    .await
    .assert_error(401, "not_authenticated");
}

#[tokio::test]
async fn enabling_totp_ends_the_sessions_that_began_without_it_and_keeps_the_caller_logged_in() {
    let app = spawn_app().await;
    let registered = app.register("ann").await;
    let old_refresh = registered.body["refresh"].as_str().unwrap().to_string();
    let other = app.login("ann").await.body["refresh"]
        .as_str()
        .unwrap()
        .to_string();
    let (enrolled, activated) = app
        .enable_totp_with(registered.body["access"].as_str().unwrap())
        .await;
    assert_eq!(amr(&enrolled.access), vec!["pwd", "mfa", "otp"]);
    assert_eq!(activated.body["token_type"], "Bearer");
    for refresh in [old_refresh, other] {
        app.post("/auth/token/refresh", json!({"refresh": refresh}), None)
            .await
            .assert_error(401, "invalid_token");
    }
    let refreshed = app
        .post(
            "/auth/token/refresh",
            json!({"refresh": enrolled.refresh}),
            None,
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(
        amr(refreshed.body["access"].as_str().unwrap()),
        vec!["pwd", "mfa", "otp"]
    );
}

#[tokio::test]
async fn accepting_an_invitation_ends_its_other_keys() {
    let app = spawn_app().await;
    let admin = app.admin_token("root").await;
    for _ in 0..2 {
        let invited = app
            .post(
                "/auth/admin/invitations",
                json!({"email": "new@example.com"}),
                Some(&admin),
            )
            .await;
        assert_eq!(invited.status, 201, "{}", invited.body);
    }
    app.mail.wait_for("new@example.com", 2).await;
    let keys: Vec<String> = app
        .mail
        .to("new@example.com")
        .iter()
        .map(|m| m.key())
        .collect();
    assert_eq!(keys.len(), 2);
    let accepted = app
        .post(
            "/auth/register/set-password",
            json!({"key": keys[0], "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    app.post(
        "/auth/register/set-password",
        json!({"key": keys[1], "password": "an attacker's password"}),
        None,
    )
    .await
    .assert_error(400, "invalid_key");
}

#[tokio::test]
async fn an_administrators_mfa_reset_ends_challenges_and_sessions() {
    let app = spawn_app().await;
    let (admin, ann_id, enrolled, ephemeral) = admin_and_challenged_user(&app).await;
    let reset = app
        .post(
            &format!("/auth/admin/users/{ann_id}/reset-mfa"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(reset.status, 200);
    app.verify(&ephemeral, &code(&enrolled.secret, enrolled.step + 1))
        .await
        .assert_error(401, "invalid_token");
    app.post(
        "/auth/token/refresh",
        json!({"refresh": enrolled.refresh}),
        None,
    )
    .await
    .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_winners_successor_too() {
    let app = spawn_app().await;
    for round in 0..7 {
        let refresh = app.register(&format!("user{round}")).await.body["refresh"]
            .as_str()
            .unwrap()
            .to_string();
        let answers = burst(
            &app.addr,
            (0..20)
                .map(|_| {
                    (
                        "/auth/token/refresh".to_string(),
                        json!({"refresh": refresh}),
                        vec![],
                    )
                })
                .collect(),
        )
        .await;
        let winners: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}");
        // The reuse revoked the family, the winner's new token included.
        let child = winners[0].body["refresh"].as_str().unwrap();
        app.post("/auth/token/refresh", json!({"refresh": child}), None)
            .await
            .assert_error(401, "invalid_token");
    }
}

/// A refresh token names its row (`<id>.<secret>`) and is proved whole: another secret under
/// its id, or its secret alone, is an unknown token (refused, and no reuse: its family lives
/// on). A token from before tokens named their rows (no id; the migration re-keyed its row to
/// the token's hash) still rotates, and its successor names its row.
#[tokio::test]
async fn a_refresh_token_is_proved_whole_and_one_from_before_the_upgrade_still_rotates() {
    use mfagate::core::secret::{generate_token, hash_token};
    use mfagate::core::store::*;
    let app = spawn_app().await;
    app.register_and_token("ann").await;
    let login = app.login("ann").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let refresh = login.body["refresh"].as_str().unwrap().to_string();
    let (id, secret) = refresh.split_once('.').expect("the token names its row");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{refresh}"
    );
    for forged in [
        format!("{id}.{}", generate_token()),
        format!("{id}."),
        secret.to_string(),
    ] {
        for path in ["/auth/token/refresh", "/auth/logout"] {
            app.post(path, json!({ "refresh": forged }), None)
                .await
                .assert_error(401, "invalid_token");
        }
    }
    let rotated = app
        .post("/auth/token/refresh", json!({ "refresh": refresh }), None)
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);

    // A token as the migration left one made before: its row's id is its hash.
    let store = mfagate_store::open(&app.settings.database_url)
        .await
        .unwrap();
    let user = store.user_by_login("ann").await.unwrap().unwrap();
    let old = generate_token();
    let now = mfagate::gate::unix_now();
    store
        .insert_refresh_token(&NewRefreshToken {
            id: hash_token(&old),
            token_hash: hash_token(&old),
            user_id: user.id.clone(),
            family_id: "a-family-from-before".into(),
            amr: "pwd".into(),
            auth_time: now,
            created_at: now,
            expires_at: now + 3_600,
            ip: None,
            user_agent: None,
        })
        .await
        .unwrap();
    let from_old = app
        .post("/auth/token/refresh", json!({ "refresh": old }), None)
        .await;
    assert_eq!(from_old.status, 200, "{}", from_old.body);
    let successor = from_old.body["refresh"].as_str().unwrap();
    assert!(successor.contains('.'), "{successor}");
    // The old token is used now: presented again, it is a reuse, and its family ends.
    app.post("/auth/token/refresh", json!({ "refresh": old }), None)
        .await
        .assert_error(401, "invalid_token");
    app.post("/auth/token/refresh", json!({ "refresh": successor }), None)
        .await
        .assert_error(401, "invalid_token");
}
