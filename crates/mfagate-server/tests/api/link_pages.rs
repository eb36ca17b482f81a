//! The pages behind the mailed links, used in headless Chromium as a user would: open the link
//! from the mail, press the button (type the new password twice), read what the page says.

use serde_json::json;

use crate::browser::Browser;
use crate::helpers::spawn_app_with;

/// The mail's link, pointed at the test server (the mail names the default link base URL).
fn link_on(app: &crate::helpers::TestApp, mail: &crate::smtp::ReceivedMail, path: &str) -> String {
    let key = mail.key();
    assert!(
        mail.data
            .contains(&format!("http://127.0.0.1:8080{path}?key={key}")),
        "{}",
        mail.data
    );
    app.url(&format!("{path}?key={key}"))
}

#[tokio::test]
async fn the_verification_link_confirms_the_address_in_a_browser() {
    let app = spawn_app_with(|s| s.config.email_verification = true).await;
    assert_eq!(app.register("ann").await.status, 201);
    app.login("ann")
        .await
        .assert_error(403, "email_not_verified");
    let mail = app.mail.wait_for("ann@example.com", 1).await;
    let link = link_on(&app, &mail, "/verify-email");

    let browser = Browser::start().await;
    browser.open(&link).await;
    assert!(
        !browser.current_url().await.contains("key="),
        "the key leaves the address bar"
    );
    browser.click("button").await;
    let said = browser.settled_text("#result").await;
    assert!(said.contains("e-mail address is confirmed"), "{said}");
    assert!(app.login("ann").await.body["access"].is_string());

    // The same link again: the key is spent, and the page says so.
    browser.open(&link).await;
    browser.click("button").await;
    let said = browser.settled_text("#result").await;
    assert!(said.contains("Ask for a new e-mail"), "{said}");
    browser.close().await;
}

#[tokio::test]
async fn the_reset_link_sets_a_new_password_in_a_browser() {
    let app = spawn_app_with(|_| {}).await;
    assert_eq!(app.register("ann").await.status, 201);
    let asked = app
        .post(
            "/auth/password/reset",
            json!({"email": "ann@example.com"}),
            None,
        )
        .await;
    assert_eq!(asked.status, 202, "{}", asked.body);
    let mail = app.mail.wait_for("ann@example.com", 1).await;
    let link = link_on(&app, &mail, "/reset-password");

    let browser = Browser::start().await;
    browser.open(&link).await;
    // Two different passwords: refused by the page, nothing sent.
    browser
        .type_into("#password", "a brand new passphrase")
        .await;
    browser.type_into("#again", "another passphrase").await;
    browser.click("button").await;
    let said = browser.settled_text("#result").await;
    assert!(said.contains("differ"), "{said}");
    assert_eq!(
        app.login("ann").await.status,
        200,
        "the old password still works"
    );

    browser.open(&link).await;
    browser
        .type_into("#password", "a brand new passphrase")
        .await;
    browser.type_into("#again", "a brand new passphrase").await;
    browser.click("button").await;
    let said = browser.settled_text("#result").await;
    assert!(said.contains("password is reset"), "{said}");
    browser.close().await;

    app.login("ann")
        .await
        .assert_error(401, "invalid_credentials");
    let login = app.login_with("ann", "a brand new passphrase").await;
    assert_eq!(login.status, 200, "{}", login.body);
}
