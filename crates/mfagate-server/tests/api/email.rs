//! E-mail flows through a real SMTP listener: codes, verification, invitations, passwords,
//! the admin API, and a mail server that is down.

use mfagate::MfaMode;
use serde_json::json;

use crate::helpers::{amr, code, spawn_app, spawn_app_with, PASSWORD};
use crate::smtp::MailBox;

#[tokio::test]
async fn an_emailed_code_is_a_second_factor_with_amr_eml() {
    let app = spawn_app().await;
    let access = app.user_with_email_codes("ann").await;
    let status = app.get("/auth/mfa/status", Some(&access)).await;
    assert_eq!(status.body["mfa_enabled"], true);
    assert_eq!(status.body["methods"], json!(["email"]));
    assert_eq!(status.body["preferred_method"], "email");

    let login = app.login("ann").await;
    assert_eq!(login.body["mfa_required"], true, "{}", login.body);
    assert_eq!(login.body["methods"], json!(["email"]));
    assert_eq!(login.body["email_sent"], true);
    let mail = app.mail.wait_for("ann@example.com", 2).await;
    let code = mail.code();
    assert_eq!(code.len(), 7);
    assert!(mail.subject().contains("sign-in code"));
    let verified = app
        .verify(login.body["ephemeral_token"].as_str().unwrap(), &code)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(
        amr(verified.body["access"].as_str().unwrap()),
        vec!["pwd", "mfa", "eml"]
    );
}

#[tokio::test]
async fn a_new_code_replaces_the_old_and_wrong_codes_spend_attempts() {
    let app = spawn_app_with(|s| s.config.email_resend_interval = 0).await;
    app.user_with_email_codes("ann").await;
    let login = app.login("ann").await;
    let ephemeral = login.body["ephemeral_token"].as_str().unwrap().to_string();
    let first = app.mail.wait_for("ann@example.com", 2).await.code();
    let wrong = app.verify(&ephemeral, "0000000").await;
    wrong.assert_error(400, "invalid_code");
    assert_eq!(wrong.body["attempts_remaining"], 4);

    let sent = app
        .post(
            "/auth/mfa/email/send",
            json!({"ephemeral_token": ephemeral}),
            None,
        )
        .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    assert!(sent.body["detail"].is_string());
    assert!((1..=300).contains(&sent.body["expires_in"].as_i64().unwrap()));
    let second = app.mail.wait_for("ann@example.com", 3).await.code();
    if first != second {
        app.verify(&ephemeral, &first)
            .await
            .assert_error(400, "invalid_code");
    }
    assert_eq!(app.verify(&ephemeral, &second).await.status, 200);
}

#[tokio::test]
async fn sends_are_spaced_and_limited_per_challenge() {
    let app = spawn_app().await;
    app.user_with_email_codes("ann").await;
    let ephemeral = app.challenge("ann").await;
    // Login sent the first code; asking again at once is too soon.
    let too_soon = app
        .post(
            "/auth/mfa/email/send",
            json!({"ephemeral_token": ephemeral}),
            None,
        )
        .await;
    too_soon.assert_error(429, "throttled");
    let retry_after: i64 = too_soon.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");

    let app = app
        .restart_with(|s| s.config.email_resend_interval = 0)
        .await;
    let ephemeral = app.challenge("ann").await;
    for _ in 0..4 {
        let sent = app
            .post(
                "/auth/mfa/email/send",
                json!({"ephemeral_token": ephemeral}),
                None,
            )
            .await;
        assert_eq!(sent.status, 202, "{}", sent.body);
    }
    let sixth = app
        .post(
            "/auth/mfa/email/send",
            json!({"ephemeral_token": ephemeral}),
            None,
        )
        .await;
    sixth.assert_error(429, "throttled");
    assert!(sixth.header("retry-after").is_some());
}

#[tokio::test]
async fn email_send_refuses_users_without_email_codes_and_bad_tokens() {
    let app = spawn_app().await;
    app.user_with_totp("ann").await;
    let ephemeral = app.challenge("ann").await;
    app.post(
        "/auth/mfa/email/send",
        json!({"ephemeral_token": ephemeral}),
        None,
    )
    .await
    .assert_error(400, "invalid_method");
    app.post(
        "/auth/mfa/email/send",
        json!({"ephemeral_token": "nope"}),
        None,
    )
    .await
    .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn totp_and_email_together_list_both_preferred_first() {
    let app = spawn_app().await;
    let access = app.user_with_email_codes("ann").await;
    let enrolled = app.enable_totp(&access).await;
    // Activation made TOTP preferred; e-mail stays available.
    let login = app.login("ann").await;
    assert_eq!(
        login.body["methods"],
        json!(["totp", "recovery_code", "email"])
    );
    assert!(login.body.get("email_sent").is_none());
    let ephemeral = login.body["ephemeral_token"].as_str().unwrap();
    assert_eq!(
        app.verify(ephemeral, &code(&enrolled.secret, enrolled.step + 1))
            .await
            .status,
        200
    );

    let chosen = app
        .post(
            "/auth/mfa/method",
            json!({"method": "email"}),
            Some(&access),
        )
        .await;
    assert_eq!(chosen.body["preferred_method"], "email");
    let login = app.login("ann").await;
    assert_eq!(
        login.body["methods"],
        json!(["email", "totp", "recovery_code"])
    );
    assert_eq!(login.body["email_sent"], true);
    let status = app.get("/auth/mfa/status", Some(&access)).await;
    assert_eq!(status.body["methods"], json!(["totp", "email"]));
}

#[tokio::test]
async fn the_email_method_needs_a_verified_address_and_none_switches_it_off() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    app.post(
        "/auth/mfa/method",
        json!({"method": "email"}),
        Some(&access),
    )
    .await
    .assert_error(400, "invalid_method");
    app.verify_email_of("ann", &access).await;
    assert_eq!(
        app.post(
            "/auth/mfa/method",
            json!({"method": "email"}),
            Some(&access)
        )
        .await
        .status,
        200
    );
    // Switching e-mailed codes off needs a recent login that used a second factor: a token
    // from the password alone (perhaps stolen) cannot.
    let refused = app
        .post("/auth/mfa/method", json!({"method": "none"}), Some(&access))
        .await;
    refused.assert_error(401, "reauthentication_required");
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer error=\"insufficient_user_authentication\", max_age=300")
    );
    let sent = app.mail.to("ann@example.com").len();
    let login = app.login("ann").await;
    assert_eq!(login.body["mfa_required"], true);
    let code = app.mail.wait_for("ann@example.com", sent + 1).await.code();
    let verified = app
        .verify(login.body["ephemeral_token"].as_str().unwrap(), &code)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    let recent = verified.body["access"].as_str().unwrap().to_string();
    let none = app
        .post("/auth/mfa/method", json!({"method": "none"}), Some(&recent))
        .await;
    assert_eq!(none.body["preferred_method"], "none", "{}", none.body);
    assert!(app.login("ann").await.body["access"].is_string());

    let totp_only = app
        .restart_with(|s| s.config.methods = vec![mfagate::core::Method::Totp])
        .await;
    totp_only
        .post(
            "/auth/mfa/method",
            json!({"method": "email"}),
            Some(&access),
        )
        .await
        .assert_error(400, "invalid_method");
}

#[tokio::test]
async fn when_the_mail_server_is_down_the_answer_is_503_and_the_challenge_survives() {
    // A port with nobody listening.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let app = spawn_app_with(|s| s.config.email_resend_interval = 0).await;
    app.user_with_email_codes("ann").await;
    let app = app
        .restart_with(|s| {
            s.smtp_url = Some(mfagate_server::settings::Redacted(format!(
                "smtp://127.0.0.1:{port}"
            )))
        })
        .await;
    let login = app.login("ann").await;
    assert_eq!(login.status, 200);
    assert_eq!(login.body["email_sent"], false, "{}", login.body);
    let ephemeral = login.body["ephemeral_token"].as_str().unwrap().to_string();
    app.post(
        "/auth/mfa/email/send",
        json!({"ephemeral_token": ephemeral}),
        None,
    )
    .await
    .assert_error(503, "email_unavailable");

    // The mail server comes back on that port: the same challenge gets its code.
    let revived = MailBox::default();
    revived.listen(port).await;
    let sent = app
        .post(
            "/auth/mfa/email/send",
            json!({"ephemeral_token": ephemeral}),
            None,
        )
        .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let code = revived.wait_for("ann@example.com", 1).await.code();
    assert_eq!(app.verify(&ephemeral, &code).await.status, 200);
}

#[tokio::test]
async fn mandatory_verification_blocks_login_until_the_mailed_key_is_used() {
    let app = spawn_app_with(|s| s.config.email_verification = true).await;
    let registered = app.register("ann").await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["detail"], "verification e-mail sent");
    assert!(
        registered.body.get("access").is_none() && registered.body.get("setup_token").is_none()
    );
    assert_eq!(registered.body["user"]["email_verified"], false);
    app.login("ann")
        .await
        .assert_error(403, "email_not_verified");

    // Asking again by address answers the same for known and unknown addresses.
    let again = app
        .post(
            "/auth/register/resend-verification",
            json!({"email": "ann@example.com"}),
            None,
        )
        .await;
    assert_eq!(again.status, 202);
    let unknown = app
        .post(
            "/auth/register/resend-verification",
            json!({"email": "nobody@example.com"}),
            None,
        )
        .await;
    assert_eq!(unknown.status, 202);
    assert_eq!(again.body, unknown.body);
    let first = app.mail.wait_for("ann@example.com", 1).await.key();
    let second = app.mail.wait_for("ann@example.com", 2).await.key();
    assert_ne!(first, second);
    assert!(app.mail.to("nobody@example.com").is_empty());

    app.post(
        "/auth/register/verify-email",
        json!({"key": "made-up"}),
        None,
    )
    .await
    .assert_error(400, "invalid_key");
    let verified = app
        .post("/auth/register/verify-email", json!({"key": first}), None)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    app.post("/auth/register/verify-email", json!({"key": first}), None)
        .await
        .assert_error(400, "invalid_key");
    let login = app.login("ann").await;
    assert!(login.body["access"].is_string(), "{}", login.body);
    assert_eq!(
        app.get("/auth/user", login.body["access"].as_str())
            .await
            .body["email_verified"],
        true
    );
}

#[tokio::test]
async fn an_expired_verification_key_is_refused() {
    let app = spawn_app_with(|s| {
        s.config.email_verification = true;
        s.config.verification_ttl = 1;
    })
    .await;
    app.register("ann").await;
    let key = app.mail.wait_for("ann@example.com", 1).await.key();
    app.clock.advance(2); // past the 1-second lifetime, without waiting for it
    app.post("/auth/register/verify-email", json!({"key": key}), None)
        .await
        .assert_error(400, "invalid_key");
}

#[tokio::test]
async fn invitations_need_an_admin_and_set_password_answers_as_a_login_would() {
    let app = spawn_app().await;
    let admin = app.admin_token("root").await;
    let member = app.register_and_token("bob").await;
    app.post(
        "/auth/admin/invitations",
        json!({"email": "new@example.com"}),
        Some(&member),
    )
    .await
    .assert_error(403, "forbidden");
    app.post(
        "/auth/admin/invitations",
        json!({"email": "bob@example.com"}),
        Some(&admin),
    )
    .await
    .assert_error(409, "already_exists");
    let invited = app
        .post(
            "/auth/admin/invitations",
            json!({"email": "new@example.com", "username": "newbie"}),
            Some(&admin),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    assert_eq!(invited.body["email"], "new@example.com");
    assert!(invited.body["detail"].is_string());
    let key = app.mail.wait_for("new@example.com", 1).await.key();
    // No password works before the invitation is accepted.
    app.post(
        "/auth/login",
        json!({"username": "newbie", "password": "!invited"}),
        None,
    )
    .await
    .assert_error(401, "invalid_credentials");

    app.post(
        "/auth/register/set-password",
        json!({"key": key, "password": "short"}),
        None,
    )
    .await
    .assert_error(400, "validation_error");
    let accepted = app
        .post(
            "/auth/register/set-password",
            json!({"key": key, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(amr(accepted.body["access"].as_str().unwrap()), vec!["pwd"]);
    app.post(
        "/auth/register/set-password",
        json!({"key": key, "password": PASSWORD}),
        None,
    )
    .await
    .assert_error(400, "invalid_key");
    let me = app
        .get("/auth/user", accepted.body["access"].as_str())
        .await;
    assert_eq!(me.body["username"], "newbie");
    assert_eq!(me.body["email_verified"], true);
}

#[tokio::test]
async fn in_required_mode_set_password_never_skips_the_second_factor() {
    let app = spawn_app_with(|s| s.config.mode = MfaMode::Required).await;
    let admin_setup = app.admin_token_required("root").await;
    // With e-mail allowed, the now-verified address gets an e-mail challenge.
    let invited = app
        .post(
            "/auth/admin/invitations",
            json!({"email": "e@example.com"}),
            Some(&admin_setup),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    assert_eq!(invited.body["username"], "e@example.com");
    let key = app.mail.wait_for("e@example.com", 1).await.key();
    let answer = app
        .post(
            "/auth/register/set-password",
            json!({"key": key, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["mfa_required"], true);
    assert_eq!(answer.body["methods"], json!(["email"]));
    assert_eq!(answer.body["email_sent"], true);
    assert!(answer.body.get("access").is_none());
    let code = app.mail.wait_for("e@example.com", 2).await.code();
    let tokens = app
        .verify(answer.body["ephemeral_token"].as_str().unwrap(), &code)
        .await;
    assert_eq!(
        amr(tokens.body["access"].as_str().unwrap()),
        vec!["pwd", "mfa", "eml"]
    );

    // With TOTP only, a setup token instead.
    let app = app
        .restart_with(|s| s.config.methods = vec![mfagate::core::Method::Totp])
        .await;
    let invited = app
        .post(
            "/auth/admin/invitations",
            json!({"email": "t@example.com"}),
            Some(&admin_setup),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    let key = app.mail.wait_for("t@example.com", 1).await.key();
    let answer = app
        .post(
            "/auth/register/set-password",
            json!({"key": key, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(answer.body["mfa_setup_required"], true, "{}", answer.body);
    assert!(answer.body.get("access").is_none());
}

#[tokio::test]
async fn password_change_needs_the_old_password_and_ends_every_session() {
    let app = spawn_app().await;
    let registered = app.register("ann").await;
    let access = registered.body["access"].as_str().unwrap().to_string();
    let refresh = registered.body["refresh"].as_str().unwrap().to_string();
    app.post(
        "/auth/password/change",
        json!({"old_password": "wrong", "new_password": "a new password"}),
        Some(&access),
    )
    .await
    .assert_error(400, "invalid_password");
    let weak = app
        .post(
            "/auth/password/change",
            json!({"old_password": PASSWORD, "new_password": "short"}),
            Some(&access),
        )
        .await;
    weak.assert_error(400, "validation_error");
    assert!(weak.body["fields"]["new_password"].is_string());
    app.post(
        "/auth/password/change",
        json!({"old_password": PASSWORD, "new_password": "x"}),
        None,
    )
    .await
    .assert_error(401, "not_authenticated");
    let changed = app
        .post(
            "/auth/password/change",
            json!({"old_password": PASSWORD, "new_password": "a new password"}),
            Some(&access),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    app.post("/auth/token/refresh", json!({"refresh": refresh}), None)
        .await
        .assert_error(401, "invalid_token");
    app.login("ann")
        .await
        .assert_error(401, "invalid_credentials");
    let login = app.login_with("ann", "a new password").await;
    assert_eq!(login.status, 200);
}

#[tokio::test]
async fn password_reset_reveals_nothing_never_logs_in_and_keeps_the_second_factor() {
    let app = spawn_app().await;
    let registered = app.register("ann").await;
    let refresh = registered.body["refresh"].as_str().unwrap().to_string();
    let enrolled = app
        .enable_totp(registered.body["access"].as_str().unwrap())
        .await;

    let known = app
        .post(
            "/auth/password/reset",
            json!({"email": "ANN@example.com"}),
            None,
        )
        .await;
    let unknown = app
        .post(
            "/auth/password/reset",
            json!({"email": "ghost@example.com"}),
            None,
        )
        .await;
    assert_eq!(known.status, 202);
    assert_eq!(unknown.status, 202);
    assert_eq!(known.body, unknown.body);
    let mail = app.mail.wait_for("ann@example.com", 1).await;
    assert!(mail.subject().contains("Reset"));
    let key = mail.key();
    assert!(app.mail.to("ghost@example.com").is_empty());

    let weak = app
        .post(
            "/auth/password/reset/confirm",
            json!({"key": key, "new_password": "ann"}),
            None,
        )
        .await;
    weak.assert_error(400, "validation_error");
    assert!(weak.body["fields"]["new_password"].is_string());
    let done = app
        .post(
            "/auth/password/reset/confirm",
            json!({"key": key, "new_password": "a fresh password"}),
            None,
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.get("access").is_none(), "reset never logs in");
    app.post(
        "/auth/password/reset/confirm",
        json!({"key": key, "new_password": "another one!"}),
        None,
    )
    .await
    .assert_error(400, "invalid_key");
    app.post("/auth/token/refresh", json!({"refresh": refresh}), None)
        .await
        .assert_error(401, "invalid_token");
    let login = app
        .post(
            "/auth/login",
            json!({"username": "ann", "password": "a fresh password"}),
            None,
        )
        .await;
    assert_eq!(
        login.body["mfa_required"], true,
        "the second factor stays on: {}",
        login.body
    );
    let ephemeral = login.body["ephemeral_token"].as_str().unwrap();
    assert_eq!(
        app.verify(ephemeral, &code(&enrolled.secret, enrolled.step + 1))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn administrators_list_reset_and_disable_users() {
    let app = spawn_app().await;
    let admin = app.admin_token("root").await;
    let registered = app.register("ann").await;
    let ann_id = registered.body["user"]["id"].as_str().unwrap().to_string();
    let ann_access = registered.body["access"].as_str().unwrap().to_string();
    app.enable_totp(&ann_access).await;

    app.get("/auth/admin/users", Some(&ann_access))
        .await
        .assert_error(403, "forbidden");
    app.get("/auth/admin/users", None)
        .await
        .assert_error(401, "not_authenticated");
    let listed = app.get("/auth/admin/users", Some(&admin)).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let users = listed.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert!(users
        .iter()
        .any(|u| u["username"] == "root" && u["is_admin"] == true));
    let page = app
        .get("/auth/admin/users?limit=1&offset=1", Some(&admin))
        .await;
    assert_eq!(page.body["users"].as_array().unwrap().len(), 1);

    app.post(
        &format!("/auth/admin/users/{ann_id}/reset-mfa"),
        json!({}),
        Some(&ann_access),
    )
    .await
    .assert_error(403, "forbidden");
    let reset = app
        .post(
            &format!("/auth/admin/users/{ann_id}/reset-mfa"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert!(app.login("ann").await.body["access"].is_string());
    app.post(
        "/auth/admin/users/nobody/reset-mfa",
        json!({}),
        Some(&admin),
    )
    .await
    .assert_error(404, "not_found");

    let disabled = app
        .post(
            &format!("/auth/admin/users/{ann_id}/disable"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(disabled.status, 200);
    app.login("ann")
        .await
        .assert_error(401, "invalid_credentials");
    app.get("/auth/user", Some(&ann_access))
        .await
        .assert_error(401, "not_authenticated");
    let enabled = app
        .post(
            &format!("/auth/admin/users/{ann_id}/enable"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(enabled.status, 200);
    assert_eq!(app.login("ann").await.status, 200);
}

#[tokio::test]
async fn the_command_line_invites_through_the_configured_mail_server() {
    let app = spawn_app().await;
    let smtp = app.settings.smtp_url.clone().unwrap().0;
    let env = app.cli_env();
    // On the blocking pool: this test's runtime must keep serving the SMTP listener meanwhile.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mfagate"))
            .args([
                "user",
                "invite",
                "--email",
                "cli@example.com",
                "--username",
                "cli_user",
            ])
            .envs(env)
            .env("MFAGATE_SMTP_URL", &smtp)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("invited cli_user"));
    let key = app.mail.wait_for("cli@example.com", 1).await.key();
    let accepted = app
        .post(
            "/auth/register/set-password",
            json!({"key": key, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
}

#[tokio::test]
async fn the_mailed_link_opens_a_page_of_the_server_that_posts_the_key_to_the_api() {
    let app = spawn_app_with(|s| {
        s.config.email_verification = true;
        s.gate.prefix = "/api".into();
    })
    .await;
    let registered = app
        .post(
            "/api/register",
            json!({"username": "ann", "email": "ann@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let mail = app.mail.wait_for("ann@example.com", 1).await;
    assert!(mail.data.contains("expires in 3 days"), "{}", mail.data);
    assert!(!mail.data.contains("4320 minutes"), "{}", mail.data);
    let key = mail.key();
    let link = format!("http://127.0.0.1:8080/verify-email?key={key}");
    assert!(mail.data.contains(&link), "{}", mail.data);

    // The link's path on this server: a page, not a 404.
    let response = app
        .client
        .get(app.url(&format!("/verify-email?key={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("content-type").starts_with("text/html"));
    assert!(header("content-security-policy").contains("script-src 'self'"));
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    let page = response.text().await.unwrap();
    assert!(
        page.contains(r#"data-api="/api/register/verify-email""#),
        "posts to the configured prefix: {page}"
    );
    assert!(
        !page.contains(&key),
        "the key stays in the address, not the page"
    );
    assert!(!page.contains("<script>"), "no inline script");

    let script = app
        .client
        .get(app.url("/mfagate-link-page.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let script = script.text().await.unwrap();
    assert!(script.contains("fetch(form.dataset.api") && script.contains("JSON.stringify(body)"));

    // The pages for invitations and resets ask for the new password, under the body field the
    // API takes.
    for (path, field) in [
        ("/set-password", "password"),
        ("/reset-password", "new_password"),
    ] {
        let page = app
            .client
            .get(app.url(&format!("{path}?key=x")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let page = page.text().await.unwrap();
        assert!(
            page.contains(&format!(r#"data-fields="{field}""#)),
            "{page}"
        );
        assert!(page.contains(r#"type="password""#), "{page}");
    }

    // What the page posts is what the API takes.
    let verified = app
        .post("/api/register/verify-email", json!({"key": key}), None)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
}

#[tokio::test]
async fn the_user_list_pages_by_cursor_and_bounds_its_offset() {
    let app = spawn_app().await;
    let admin = app.admin_token("root").await;
    for name in ["ann", "bob", "cid", "dee"] {
        assert_eq!(app.register(name).await.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/auth/admin/users?limit=2".to_string();
    for _ in 0..5 {
        let page = app.get(&path, Some(&admin)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let users = page.body["users"].as_array().unwrap();
        seen.extend(
            users
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_string()),
        );
        match page.body["next"].as_str() {
            Some(next) => {
                assert_eq!(users.len(), 2, "only full pages have a next");
                path = format!("/auth/admin/users?limit=2&after={next}");
            }
            None => break,
        }
    }
    // In order of creation; users made in the same second follow their ids.
    assert_eq!(seen.len(), 5, "{seen:?}");
    seen.sort();
    assert_eq!(seen, ["ann", "bob", "cid", "dee", "root"], "each user once");

    app.get("/auth/admin/users?after=nonsense", Some(&admin))
        .await
        .assert_error(400, "validation_error");
    app.get("/auth/admin/users?offset=10001", Some(&admin))
        .await
        .assert_error(400, "validation_error");
    let deep = app
        .get("/auth/admin/users?offset=10000", Some(&admin))
        .await;
    assert_eq!(deep.status, 200);
    assert_eq!(deep.body["users"], json!([]));
}

#[tokio::test]
async fn administrators_read_the_audit_trail_of_a_user_or_of_everyone() {
    let app = spawn_app().await;
    let admin = app.admin_token("root").await;
    let access = app.register_and_token("ann").await;
    app.login_with("ann", "a wrong password").await;
    let ann = app.get("/auth/user", Some(&access)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.get("/auth/admin/audit", Some(&access))
        .await
        .assert_error(403, "forbidden");
    // Events are stored by a background writer right after each request.
    let mut events = serde_json::Value::Null;
    for _ in 0..40 {
        let answer = app
            .get(
                &format!("/auth/admin/audit?user_id={ann}&limit=10"),
                Some(&admin),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        events = answer.body["events"].clone();
        if events.as_array().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let names: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.first(),
        Some(&"login_failed"),
        "newest first: {names:?}"
    );
    assert!(names.contains(&"user_registered"), "{names:?}");
    assert!(events
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["user_id"] == ann));
    let everyone = app.get("/auth/admin/audit?limit=1", Some(&admin)).await;
    assert_eq!(everyone.body["events"].as_array().unwrap().len(), 1);
}
