//! Security e-mails (on by default): each notice arrives at a real SMTP listener and says what
//! happened, when, from where and what to do; a mail server that is down never fails the
//! action (it is logged and audited); `MFAGATE_SECURITY_EMAILS=false` sends none.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app_with, Answer, TestApp, PASSWORD};
use crate::passkeys::{enrol, new_key};
use crate::smtp::ReceivedMail;

const ANN: &str = "ann@example.com";

fn access(answer: &Answer) -> String {
    answer.body["access"]
        .as_str()
        .expect("token pair")
        .to_string()
}

/// Waits for ann's `count`-th message and checks it is a notice of `what`, with the time, the
/// address and the advice every notice carries.
async fn notice(app: &TestApp, count: usize, subject: &str, body: &[&str]) -> ReceivedMail {
    let mail = app.mail.wait_for(ANN, count).await;
    assert!(mail.subject().contains(subject), "{}", mail.subject());
    for expected in
        body.iter()
            .chain(&["When: ", "(UTC)", "From: 127.0.0.1", "sign out everywhere"])
    {
        assert!(
            mail.data.contains(expected),
            "{expected:?} not in {}",
            mail.data
        );
    }
    mail
}

/// The subjects of ann's messages from the `from`-th on (1-based), once there are `count`.
async fn subjects_from(app: &TestApp, from: usize, count: usize) -> Vec<String> {
    app.mail.wait_for(ANN, count).await;
    let mut subjects: Vec<String> = app.mail.to(ANN)[from - 1..count]
        .iter()
        .map(ReceivedMail::subject)
        .collect();
    subjects.sort();
    subjects
}

#[tokio::test]
async fn each_security_notice_arrives_and_says_what_when_where_and_what_to_do() {
    let app = spawn_app_with(|s| s.config.security_emails = true).await;
    let admin = app.admin_token("root").await;
    let token = app.register_and_token("ann").await;
    let ann = app.get("/auth/user", Some(&token)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A factor added (the first brings the recovery codes), another, one removed.
    let mut laptop = new_key();
    let first = enrol(&app, &token, "Laptop", &mut laptop).await;
    notice(
        &app,
        1,
        "A second factor was added",
        &["Laptop", "(passkey)"],
    )
    .await;
    let codes: Vec<String> = serde_json::from_value(first.body["recovery_codes"].clone()).unwrap();
    let token = access(&first);
    let mut phone = new_key();
    let second = enrol(&app, &token, "Phone", &mut phone).await;
    notice(&app, 2, "A second factor was added", &["Phone"]).await;
    let token = access(&second);
    let factors = app.get("/auth/mfa/factors", Some(&token)).await.body;
    let phone_id = factors["factors"][1]["id"].as_str().unwrap().to_string();
    let removed = app
        .send(
            Method::DELETE,
            &format!("/auth/mfa/factors/{phone_id}"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    notice(
        &app,
        3,
        "A second factor was removed",
        &["Phone", "no longer"],
    )
    .await;

    // A recovery code used at login: how many are left.
    let challenge = app.login("ann").await.body;
    let used = app
        .verify(challenge["ephemeral_token"].as_str().unwrap(), &codes[0])
        .await;
    assert_eq!(used.status, 200, "{}", used.body);
    notice(
        &app,
        4,
        "A recovery code was used",
        &["9 unused codes are left"],
    )
    .await;
    // New codes, proved with another recovery code: two notices.
    let regenerated = app
        .post(
            "/auth/mfa/recovery-codes/regenerate",
            json!({"code": codes[1]}),
            Some(&access(&used)),
        )
        .await;
    assert_eq!(regenerated.status, 200, "{}", regenerated.body);
    let subjects = subjects_from(&app, 5, 6).await;
    assert!(
        subjects[0].contains("A recovery code was used"),
        "{subjects:?}"
    );
    assert!(
        subjects[1].contains("recovery codes were replaced"),
        "{subjects:?}"
    );

    // A login that a remembered device let skip the second factor.
    let challenge = app.login("ann").await.body;
    let remembered = app
        .post(
            "/auth/mfa/verify",
            json!({"ephemeral_token": challenge["ephemeral_token"],
                   "credential": laptop.assert(&challenge["webauthn"]),
                   "remember_device": true}),
            None,
        )
        .await;
    let device = remembered.body["device_token"].as_str().unwrap();
    let skipped = app
        .post(
            "/auth/login",
            json!({"username": "ann", "password": PASSWORD, "device_token": device}),
            None,
        )
        .await;
    assert_eq!(skipped.status, 200, "{}", skipped.body);
    notice(
        &app,
        7,
        "skipped your second factor",
        &["remembered device"],
    )
    .await;

    // The password changed, then reset from the mailed key.
    let changed = app
        .post(
            "/auth/password/change",
            json!({"old_password": PASSWORD, "new_password": "a brand new password"}),
            Some(&access(&remembered)),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    notice(
        &app,
        8,
        "password was changed",
        &["every session was ended"],
    )
    .await;
    app.post("/auth/password/reset", json!({"email": ANN}), None)
        .await;
    let key = app.mail.wait_for(ANN, 9).await.key();
    let reset = app
        .post(
            "/auth/password/reset/confirm",
            json!({"key": key, "new_password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    notice(&app, 10, "password was reset", &["second factor stays on"]).await;

    // An administrator's MFA reset.
    let cleared = app
        .post(
            &format!("/auth/admin/users/{ann}/reset-mfa"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    notice(
        &app,
        11,
        "second factors of your mfagate account were reset",
        &["administrator"],
    )
    .await;
}

#[tokio::test]
async fn a_mail_server_that_is_down_never_fails_the_action_and_is_audited() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(|s| {
        s.config.security_emails = true;
        s.smtp_url = Some(mfagate_server::settings::Redacted(format!(
            "smtp://127.0.0.1:{closed}"
        )));
    })
    .await;
    let token = app.register_and_token("ann").await;
    let ann = app.get("/auth/user", Some(&token)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let changed = app
        .post(
            "/auth/password/change",
            json!({"old_password": PASSWORD, "new_password": "a brand new password"}),
            Some(&token),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let store = mfagate_store::open(&app.settings.database_url)
        .await
        .unwrap();
    for _ in 0..100 {
        let events = store.recent_audit_events(Some(&ann), 50).await.unwrap();
        if let Some(failed) = events.iter().find(|e| e.event == "security_email_failed") {
            assert!(
                failed
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("password_changed")),
                "{failed:?}"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the failed security e-mail was not audited");
}

#[tokio::test]
async fn security_emails_can_be_switched_off() {
    let app = spawn_app_with(|s| s.config.security_emails = false).await;
    assert!(
        mfagate::Config::default().security_emails,
        "on unless switched off"
    );
    let token = app.register_and_token("ann").await;
    let mut key = new_key();
    enrol(&app, &token, "Laptop", &mut key).await;
    // The mails ann gets are the reset keys she asks for: no notice of the factor, and none of
    // the reset done in between (a notice is sent before the next request could be).
    app.post("/auth/password/reset", json!({"email": ANN}), None)
        .await;
    let key = app.mail.wait_for(ANN, 1).await.key();
    let reset = app
        .post(
            "/auth/password/reset/confirm",
            json!({"key": key, "new_password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    app.clock.advance(61);
    app.post("/auth/password/reset", json!({"email": ANN}), None)
        .await;
    app.mail.wait_for(ANN, 2).await;
    let subjects: Vec<String> = app.mail.to(ANN).iter().map(ReceivedMail::subject).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects.iter().all(|s| s.contains("Reset your")),
        "{subjects:?}"
    );
}
