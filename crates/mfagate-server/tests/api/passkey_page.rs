//! A passkey enrolled and used in a real browser: headless Chromium with the WebDriver virtual
//! authenticator, on the server's `/passkeys` page, as a person would (type, click, read).

use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{spawn_app_with, PASSWORD};

#[tokio::test]
async fn a_passkey_is_enrolled_and_used_in_chromium_after_the_password_and_alone() {
    // The browser's origin is http://localhost:PORT, so the server must know that port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("http://localhost:{port}");
    let app = spawn_app_with(|s| {
        s.listen = format!("127.0.0.1:{port}");
        s.config.webauthn.origins = vec![origin.clone()];
    })
    .await;
    assert_eq!(app.register("ann").await.status, 201);

    let browser = Browser::start().await;
    let authenticator = browser.add_virtual_authenticator().await;
    browser.open(&format!("{origin}/passkeys")).await;
    browser.type_into("#username", "ann").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#login").await;
    let said = browser.settled_text("#result").await;
    assert_eq!(said, "Signed in as ann (pwd)");

    // The README's walk-through: a passkey on this authenticator, a second on another.
    browser.clear("#name").await;
    browser.type_into("#name", "Laptop").await;
    browser.click("#add").await;
    let said = browser.settled_text("#result").await;
    assert_eq!(said, "Passkey 'Laptop' added");
    assert_eq!(browser.text("#factors").await, "Laptop (webauthn)");
    let held = browser.authenticator_credentials(&authenticator).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        held[0]["isResidentCredential"], true,
        "residentKey preferred"
    );
    browser.remove_virtual_authenticator(&authenticator).await;
    let phone = browser.add_virtual_authenticator().await;
    browser.clear("#name").await;
    browser.type_into("#name", "Phone").await;
    browser.click("#add").await;
    let said = browser.settled_text("#result").await;
    assert_eq!(said, "Passkey 'Phone' added");
    assert_eq!(
        browser.text("#factors").await,
        "Laptop (webauthn)\nPhone (webauthn)"
    );
    assert_eq!(browser.authenticator_credentials(&phone).await.len(), 1);

    // Password, then the passkey.
    browser.click("#logout").await;
    browser.click("#login").await;
    let said = browser.settled_text("#result").await;
    assert_eq!(said, "Signed in as ann (pwd mfa hwk)");

    // The passkey alone, discoverable: no name typed.
    browser.click("#logout").await;
    browser.clear("#username").await;
    browser.clear("#password").await;
    browser.click("#passkey-login").await;
    let said = browser.settled_text("#result").await;
    assert_eq!(said, "Signed in as ann (hwk mfa)");
    assert_eq!(
        browser.text("#factors").await,
        "Laptop (webauthn)\nPhone (webauthn)"
    );
    browser.close().await;

    // The server saw the same passkey as any client would.
    let challenge = app.login("ann").await;
    assert_eq!(
        challenge.body["methods"],
        json!(["webauthn", "recovery_code"])
    );
}
