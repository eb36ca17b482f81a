//! The account portal at `/ui/`, used in headless Chromium as a person would: type, click, read
//! what the page says, read the QR code off the page and type the codes an authenticator app
//! would show, and answer passkey prompts with the WebDriver virtual authenticator. Each page
//! of each flow is saved as a screenshot in the test artefacts (`target/test-artifacts/portal`).

use mfagate::core::clock::Clock;
use mfagate::core::totp;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{code, spawn_app_with, TestApp, PASSWORD};
use mfagate_server::Settings;

/// A server the browser reaches as `http://localhost:PORT` (passkeys belong to `localhost`; a
/// `Secure` cookie is kept over plain http there only).
async fn portal_app(configure: impl FnOnce(&mut Settings)) -> (TestApp, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("http://localhost:{port}");
    let app = spawn_app_with(|s| {
        s.listen = format!("127.0.0.1:{port}");
        s.config.webauthn.origins = vec![origin.clone()];
        configure(s);
    })
    .await;
    (app, origin)
}

/// The code an authenticator app shows at the start of the server's next time step. Moving the
/// clock to a step's start makes each call's code a new one (each step is accepted once per
/// factor), and leaves the page a whole step to use it: a code read late in a step could reach
/// the server two steps later, outside the window, and the test would fail by the wall clock.
fn app_code(app: &TestApp, secret: &[u8]) -> String {
    app.clock.advance(30 - app.clock.now().rem_euclid(30));
    code(secret, totp::step_at(app.clock.now(), 30))
}

/// Reads the QR code on the page, as a phone would, and returns the key in it.
async fn scan_qr(browser: &Browser, css: &str) -> Vec<u8> {
    let src = browser.property(css, "src").await;
    let url = crate::totp::decode_png_qr(&src);
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    let secret = url
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .expect("secret in the URL");
    data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .expect("base32 key")
}

/// Types a name and password on the sign-in page and presses "Sign in".
async fn sign_in(browser: &Browser, username: &str, password: &str) {
    browser.clear("#signin-username").await;
    browser.type_into("#signin-username", username).await;
    browser.clear("#signin-password").await;
    browser.type_into("#signin-password", password).await;
    browser.click("#signin-submit").await;
}

/// Waits for the account page and checks what it says this sign-in used.
async fn assert_signed_in_with(browser: &Browser, used: &str) {
    browser.wait_visible("#view-account").await;
    let summary = browser.wait_text("#account-summary", used).await;
    assert!(summary.contains(used), "{summary}");
}

/// Presses "Sign out" and waits for the sign-in page.
async fn sign_out(browser: &Browser) {
    browser.click("#logout").await;
    browser.wait_visible("#view-signin").await;
}

async fn shot(browser: &Browser, test: &str, name: &str) {
    browser.screenshot(&format!("portal/{test}"), name).await;
}

#[tokio::test]
async fn register_enrol_totp_sign_in_step_up_codes_sessions_and_password_on_a_phone() {
    let t = "totp";
    let (app, origin) = portal_app(|_| {}).await;
    let browser = Browser::start().await;
    browser.resize(390, 844).await;
    browser.open(&format!("{origin}/ui/")).await;
    browser.wait_visible("#view-signin").await;
    assert_eq!(
        browser.focused_id().await,
        "signin-title",
        "focus on the heading"
    );
    shot(&browser, t, "01-sign-in").await;

    // Register.
    browser.click("#to-register").await;
    browser.wait_visible("#view-register").await;
    browser.type_into("#register-username", "ann").await;
    browser
        .type_into("#register-email", "ann@example.com")
        .await;
    browser.type_into("#register-password", "short").await;
    browser.click("#register-submit").await;
    let said = browser.wait_text("#error", "password").await;
    assert!(said.contains("at least 8"), "the API's detail: {said}");
    shot(&browser, t, "02-register-error").await;
    browser.clear("#register-password").await;
    browser.type_into("#register-password", PASSWORD).await;
    browser.click("#register-submit").await;
    browser.wait_visible("#view-account").await;
    assert!(browser
        .text("#account-summary")
        .await
        .contains("Signed in as ann"));
    assert!(
        browser.is_visible("#factor-none").await,
        "no factor yet, and it says so"
    );
    shot(&browser, t, "03-account-new").await;

    // The refresh token is an HttpOnly cookie: page script sees no cookie at all.
    assert_eq!(browser.script("return document.cookie;").await, "");
    assert_eq!(
        browser
            .script("return localStorage.length + sessionStorage.length;")
            .await,
        0
    );

    // Enrol TOTP: read the QR code off the page, type the app's code.
    browser.type_into("#account-enrol-name", "Phone").await;
    browser.click("#account-add-totp").await;
    browser.wait_visible("#view-account .qr").await;
    shot(&browser, t, "04-enrol-qr").await;
    let secret = scan_qr(&browser, "#view-account .qr").await;
    browser
        .type_into("#account-enrol-code", &app_code(&app, &secret))
        .await;
    browser.click("#account-enrol-confirm").await;
    browser.wait_visible("#view-codes").await;
    let codes = browser.texts("#codes-list li").await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    assert!(browser
        .text("#notice")
        .await
        .contains("Authenticator app 'Phone' added"));
    shot(&browser, t, "05-recovery-codes").await;
    browser.click("#codes-done").await;
    browser.wait_visible("#view-account").await;
    assert_eq!(browser.texts("#factor-list .factor-name").await, ["Phone"]);
    assert!(browser
        .wait_text("#codes-remaining", "10 unused")
        .await
        .contains("10"));

    // Sign out, sign in: password, then the app's code; the keyboard alone submits the form.
    browser.click("#logout").await;
    browser.wait_text("#notice", "Signed out").await;
    browser.clear("#signin-username").await;
    browser.type_into("#signin-username", "ann").await;
    browser.type_into("#signin-password", PASSWORD).await;
    browser.keys("\u{E007}").await;
    browser.wait_visible("#view-challenge").await;
    assert!(browser
        .text("#challenge-intro")
        .await
        .contains("a code from your authenticator app"));
    shot(&browser, t, "06-challenge").await;
    // Cancel goes back to the sign-in page, and signing in again works (its button is free).
    browser.click("#challenge-cancel").await;
    browser.wait_visible("#view-signin").await;
    sign_in(&browser, "ann", PASSWORD).await;
    browser.wait_visible("#view-challenge").await;
    browser.type_into("#challenge-code", "000000").await;
    browser.click("#challenge-submit").await;
    let said = browser.wait_text("#error", "left").await;
    assert!(said.contains("4 attempts left"), "{said}");
    browser.clear("#challenge-code").await;
    browser
        .type_into("#challenge-code", &app_code(&app, &secret))
        .await;
    browser.click("#challenge-submit").await;
    assert_signed_in_with(&browser, "password, authenticator app.").await;

    // Rename the factor.
    browser.click("#factor-list .rename").await;
    let rename_input = browser
        .script("return document.querySelector('#factor-list input').id;")
        .await;
    let rename_input = format!("#{}", rename_input.as_str().unwrap());
    browser.clear(&rename_input).await;
    browser.type_into(&rename_input, "Work phone").await;
    browser.click("#factor-list form button").await;
    browser
        .wait_text("#notice", "Renamed to 'Work phone'")
        .await;
    assert_eq!(
        browser.texts("#factor-list .factor-name").await,
        ["Work phone"]
    );

    // Recovery codes, recently authenticated: shown at once.
    browser.click("#codes-show").await;
    browser.wait_visible("#view-codes").await;
    assert_eq!(browser.texts("#codes-list li").await, codes);
    browser.click("#codes-done").await;
    browser.wait_visible("#view-account").await;

    // Ten minutes on, the same call asks to confirm it is you first (step-up), then shows them.
    app.clock.advance(600);
    browser.click("#codes-show").await;
    browser.wait_visible("#view-challenge").await;
    assert_eq!(browser.text("#challenge-title").await, "Confirm it is you");
    assert!(!browser.is_visible("#challenge-remember").await);
    shot(&browser, t, "07-step-up").await;
    browser
        .type_into("#challenge-code", &app_code(&app, &secret))
        .await;
    browser.click("#challenge-submit").await;
    browser.wait_visible("#view-codes").await;
    assert_eq!(browser.texts("#codes-list li").await, codes);
    browser.click("#codes-done").await;
    browser.wait_visible("#view-account").await;

    // Replace them with a code from the app: the old ones are dead.
    browser
        .type_into("#codes-regenerate-code", &app_code(&app, &secret))
        .await;
    browser.click("#codes-regenerate").await;
    browser.wait_visible("#view-codes").await;
    let new_codes = browser.texts("#codes-list li").await;
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|c| !codes.contains(c)));
    browser.click("#codes-done").await;
    browser.wait_visible("#view-account").await;
    let old = app.verify(&app.challenge("ann").await, &codes[0]).await;
    old.assert_error(400, "invalid_code");

    // Sessions: another one (from the API), listed; end it from the page.
    let ephemeral = app.challenge("ann").await;
    let other = app.verify(&ephemeral, &new_codes[0]).await;
    assert_eq!(other.status, 200, "{}", other.body);
    browser.open(&format!("{origin}/ui/")).await;
    browser.wait_visible("#view-account").await;
    assert!(
        browser
            .wait_text("#session-list", "This browser")
            .await
            .contains("127.0.0.1"),
        "IP shown"
    );
    assert_eq!(browser.texts("#session-list li").await.len(), 2);
    shot(&browser, t, "08-sessions").await;
    browser.click("#session-list .end-session").await;
    browser.wait_text("#notice", "The session is ended").await;
    assert_eq!(browser.texts("#session-list li").await.len(), 1);
    let dead = app
        .post(
            "/auth/token/refresh",
            json!({"refresh": other.body["refresh"]}),
            None,
        )
        .await;
    dead.assert_error(401, "invalid_token");

    // Sign in with a recovery code.
    sign_out(&browser).await;
    sign_in(&browser, "ann", PASSWORD).await;
    browser.wait_visible("#view-challenge").await;
    browser.type_into("#challenge-code", &new_codes[1]).await;
    browser.click("#challenge-submit").await;
    assert_signed_in_with(&browser, "password, recovery code.").await;
    browser.wait_text("#codes-remaining", "8 unused").await;

    // Change the password: every session ends, the new one works.
    browser.type_into("#password-old", PASSWORD).await;
    browser
        .type_into("#password-new", "a new horse battery")
        .await;
    shot(&browser, t, "09-account").await;
    browser.click("#password-submit").await;
    browser.wait_text("#notice", "Password changed").await;
    browser.wait_visible("#view-signin").await;
    shot(&browser, t, "10-password-changed").await;
    app.login("ann")
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        app.login_with("ann", "a new horse battery").await.body["mfa_required"],
        true
    );

    // Sign out everywhere.
    sign_in(&browser, "ann", "a new horse battery").await;
    browser.wait_visible("#view-challenge").await;
    browser
        .type_into("#challenge-code", &app_code(&app, &secret))
        .await;
    browser.click("#challenge-submit").await;
    browser.wait_visible("#view-account").await;
    browser.click("#logout-all").await;
    browser.wait_text("#notice", "Signed out everywhere").await;
    // The cookie's session is dead: a reload lands on the sign-in page.
    browser.open(&format!("{origin}/ui/")).await;
    browser.wait_visible("#view-signin").await;
    browser.close().await;
}

#[tokio::test]
async fn passkeys_are_enrolled_named_used_after_the_password_and_alone_and_removed() {
    let t = "passkeys";
    let (app, origin) = portal_app(|_| {}).await;
    assert_eq!(app.register("ann").await.status, 201);
    let browser = Browser::start().await;
    let laptop = browser.add_virtual_authenticator().await;
    browser.open(&format!("{origin}/ui/")).await;
    browser.wait_visible("#view-signin").await;
    sign_in(&browser, "ann", PASSWORD).await;
    browser.wait_visible("#view-account").await;

    // The first passkey brings the recovery codes.
    browser.type_into("#account-enrol-name", "Laptop").await;
    browser.click("#account-add-passkey").await;
    browser.wait_visible("#view-codes").await;
    assert!(browser
        .text("#notice")
        .await
        .contains("Passkey 'Laptop' added"));
    browser.click("#codes-done").await;
    browser.wait_visible("#view-account").await;
    let held = browser.authenticator_credentials(&laptop).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["isResidentCredential"], true);

    // A second, on another authenticator (the session is recent: no step-up).
    browser.remove_virtual_authenticator(&laptop).await;
    let phone = browser.add_virtual_authenticator().await;
    browser.type_into("#account-enrol-name", "Phone").await;
    browser.click("#account-add-passkey").await;
    browser.wait_text("#notice", "Passkey 'Phone' added").await;
    assert_eq!(
        browser.texts("#factor-list .factor-name").await,
        ["Laptop", "Phone"]
    );
    shot(&browser, t, "01-two-passkeys").await;

    // Password, then the passkey; and remember this device.
    sign_out(&browser).await;
    sign_in(&browser, "ann", PASSWORD).await;
    browser.wait_visible("#challenge-passkey").await;
    shot(&browser, t, "02-challenge-passkey").await;
    browser.click("#challenge-remember").await;
    browser.click("#challenge-passkey").await;
    assert_signed_in_with(&browser, "password, passkey.").await;

    // The remembered device (an HttpOnly cookie) skips the second step next time.
    sign_out(&browser).await;
    sign_in(&browser, "ann", PASSWORD).await;
    assert_signed_in_with(&browser, "password, remembered device.").await;

    // The passkey alone, discoverable: no name typed.
    sign_out(&browser).await;
    browser.click("#passkey-signin").await;
    assert_signed_in_with(&browser, "This sign-in used: passkey.").await;
    assert_eq!(browser.authenticator_credentials(&phone).await.len(), 1);

    // Remove one: the button asks once more before it removes.
    browser.click("#factor-list li:nth-child(1) .remove").await;
    browser
        .wait_text(
            "#factor-list li:nth-child(1) .remove",
            "Really remove Laptop",
        )
        .await;
    browser.click("#factor-list li:nth-child(1) .remove").await;
    browser.wait_text("#notice", "'Laptop' removed").await;
    assert_eq!(browser.texts("#factor-list .factor-name").await, ["Phone"]);
    shot(&browser, t, "03-removed").await;
    browser.close().await;

    let challenge = app.login("ann").await;
    assert_eq!(
        challenge.body["methods"],
        json!(["webauthn", "recovery_code"])
    );
}

#[tokio::test]
async fn required_mode_sets_up_a_factor_before_the_first_sign_in_completes() {
    let t = "required";
    let (app, origin) = portal_app(|s| s.config.mode = mfagate::core::MfaMode::Required).await;
    let browser = Browser::start().await;
    browser.open(&format!("{origin}/ui/#register")).await;
    browser.wait_visible("#view-register").await;
    browser.type_into("#register-username", "bob").await;
    browser
        .type_into("#register-email", "bob@example.com")
        .await;
    browser.type_into("#register-password", PASSWORD).await;
    browser.click("#register-submit").await;
    browser.wait_visible("#view-setup").await;
    browser.type_into("#setup-enrol-name", "Phone").await;
    browser.click("#setup-add-totp").await;
    browser.wait_visible("#view-setup .qr").await;
    shot(&browser, t, "01-setup").await;
    let secret = scan_qr(&browser, "#view-setup .qr").await;
    browser
        .type_into("#setup-enrol-code", &app_code(&app, &secret))
        .await;
    browser.click("#setup-enrol-confirm").await;
    browser.wait_visible("#view-codes").await;
    assert_eq!(browser.texts("#codes-list li").await.len(), 10);
    browser.click("#codes-done").await;
    assert_signed_in_with(&browser, "Signed in as bob").await;
    browser.close().await;
    assert_eq!(app.login("bob").await.body["mfa_required"], true);
}

#[tokio::test]
async fn an_e_mailed_code_signs_in_and_mailed_links_verify_the_address_and_reset_the_password() {
    let t = "email";
    let (app, origin) = portal_app(|s| s.config.email_verification = true).await;
    let browser = Browser::start().await;

    // Register: verification is mandatory, so the page says to read the mail.
    browser.open(&format!("{origin}/ui/#register")).await;
    browser.wait_visible("#view-register").await;
    browser.type_into("#register-username", "cyd").await;
    browser
        .type_into("#register-email", "cyd@example.com")
        .await;
    browser.type_into("#register-password", PASSWORD).await;
    browser.click("#register-submit").await;
    browser
        .wait_text("#notice", "verification e-mail sent")
        .await;
    shot(&browser, t, "01-verification-sent").await;

    // Signing in before verifying says what to do.
    sign_in(&browser, "cyd", PASSWORD).await;
    let said = browser.wait_text("#error", "verif").await;
    assert!(!said.is_empty());

    // The mailed link opens the verification page.
    let mail = app.mail.wait_for("cyd@example.com", 1).await;
    browser
        .open(&app.url(&format!("/verify-email?key={}", mail.key())))
        .await;
    browser.click("button").await;
    assert!(browser.settled_text("#result").await.contains("confirmed"));

    // Sign in (no second factor yet), and choose e-mailed codes on the account page.
    browser.open(&format!("{origin}/ui/")).await;
    browser.wait_visible("#view-signin").await;
    sign_in(&browser, "cyd", PASSWORD).await;
    browser.wait_visible("#view-account").await;
    assert!(!browser.is_visible("#account-unverified").await, "verified");
    browser.click("#method-select option[value=email]").await;
    browser.click("#method-save").await;
    browser
        .wait_text("#notice", "Saved: A code by e-mail")
        .await;
    sign_out(&browser).await;
    let before = app.mail.to("cyd@example.com").len();
    sign_in(&browser, "cyd", PASSWORD).await;
    browser.wait_visible("#view-challenge").await;
    browser.wait_text("#notice", "We e-mailed you a code").await;
    shot(&browser, t, "02-email-code").await;
    let mail = app.mail.wait_for("cyd@example.com", before + 1).await;
    browser.type_into("#challenge-code", &mail.code()).await;
    browser.click("#challenge-submit").await;
    assert_signed_in_with(&browser, "password, e-mailed code.").await;
    sign_out(&browser).await;

    // Forgotten password: the page asks for the address, the mailed link sets a new one.
    browser.click("#to-forgot").await;
    browser.wait_visible("#view-forgot").await;
    browser.type_into("#forgot-email", "cyd@example.com").await;
    let before = app.mail.to("cyd@example.com").len();
    browser.click("#forgot-submit").await;
    browser.wait_text("#notice", "reset e-mail").await;
    shot(&browser, t, "03-forgot").await;
    let mail = app.mail.wait_for("cyd@example.com", before + 1).await;
    browser
        .open(&app.url(&format!("/reset-password?key={}", mail.key())))
        .await;
    browser.type_into("#password", "a new horse battery").await;
    browser.type_into("#again", "a new horse battery").await;
    browser.click("button").await;
    assert!(browser.settled_text("#result").await.contains("reset"));
    browser.close().await;
    let after = app.login_with("cyd", "a new horse battery").await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.body["mfa_required"], true, "the second factor stays");
    app.login("cyd")
        .await
        .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn the_portal_is_served_with_a_strict_policy_and_can_be_switched_off() {
    let (app, _) = portal_app(|_| {}).await;
    let page = app.client.get(app.url("/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let policy = header("content-security-policy");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    assert!(
        html.contains("content=\"/auth\""),
        "the API prefix is given to the script"
    );
    for asset in ["/ui/portal.js", "/ui/portal.css"] {
        assert_eq!(app.get_status(asset).await, 200, "{asset}");
    }
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/ui"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/ui/");

    let (off, _) = portal_app(|s| s.gate.ui = false).await;
    off.get("/ui/", None).await.assert_error(404, "not_found");
    let doc = off.get("/openapi.json", None).await.body;
    assert!(
        doc["paths"].get("/ui/").is_none(),
        "not documented when off"
    );
    assert!(doc["paths"].get("/auth/login").is_some());
}

/// The portal's cookie mode, asked for per request, and its defence against requests forged by
/// other sites' pages: a cookie is read only from a same-origin request.
#[tokio::test]
async fn cookie_mode_per_request_keeps_the_refresh_token_out_of_bodies_and_refuses_other_origins() {
    let (app, origin) = portal_app(|_| {}).await;
    assert_eq!(app.register("ann").await.status, 201);
    let login = app
        .client
        .post(app.url("/auth/login"))
        .header("x-mfagate-cookies", "1")
        .json(&json!({"username": "ann", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.starts_with("mfagate_refresh="), "{set_cookie}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let body: serde_json::Value = login.json().await.unwrap();
    assert!(body["access"].is_string());
    assert!(body.get("refresh").is_none(), "{body}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let refresh = |origin: Option<&str>, site: Option<&str>, cookie: &str| {
        let mut request = app
            .client
            .post(app.url("/auth/token/refresh"))
            .header("x-mfagate-cookies", "1")
            .header("cookie", cookie)
            .json(&json!({}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        request
    };
    // Another site's page: refused before the token is looked at (the session lives on).
    for (o, s) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (Some("http://localhost:1"), Some("cross-site")),
        (None, Some("same-site")),
    ] {
        let answer = app.raw(refresh(o, s, &cookie)).await;
        answer.assert_error(403, "cross_origin");
    }
    // The server's own page (by Origin against Host, or by fetch metadata): a new pair.
    let host_origin = app.addr.clone();
    let answer = app.raw(refresh(Some(&host_origin), None, &cookie)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cookie = answer
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let answer = app
        .raw(refresh(Some(&origin), Some("same-origin"), &cookie))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.get("refresh").is_none());
    // A page on one of the configured origins (MFAGATE_WEBAUTHN_ORIGINS), e.g. a front end on
    // a sibling host: accepted although the browser calls it same-site, not same-origin.
    let cookie = answer
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let answer = app
        .raw(refresh(Some(&origin), Some("same-site"), &cookie))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Without the header the server is in body mode (its default): the cookie is not read.
    let plain = app
        .client
        .post(app.url("/auth/token/refresh"))
        .header(
            "cookie",
            answer
                .header("set-cookie")
                .unwrap()
                .split(';')
                .next()
                .unwrap(),
        )
        .json(&json!({}));
    app.raw(plain).await.assert_error(400, "invalid_request");
}

/// `/docs` renders the OpenAPI document with the vendored RapiDoc, under its strict policy.
#[tokio::test]
async fn the_api_reference_renders_the_document_in_a_browser() {
    let (app, origin) = portal_app(|_| {}).await;
    let browser = Browser::start().await;
    browser.open(&format!("{origin}/docs")).await;
    let mut rendered = String::new();
    for _ in 0..200 {
        rendered = browser
            .script("var d = document.querySelector('rapi-doc'); return d && d.shadowRoot ? d.shadowRoot.textContent : '';")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string();
        if rendered.contains("/auth/mfa/verify") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(rendered.contains("/auth/mfa/verify"), "{rendered:.300}");
    browser.screenshot("portal/docs", "01-reference").await;
    browser.close().await;
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-eval"));
}

#[tokio::test]
async fn in_disabled_mode_the_account_page_offers_no_second_factor() {
    let (app, origin) = portal_app(|s| s.config.mode = mfagate::core::MfaMode::Disabled).await;
    assert_eq!(app.register("eve").await.status, 201);
    let browser = Browser::start().await;
    browser.open(&format!("{origin}/ui/")).await;
    browser.wait_visible("#view-signin").await;
    sign_in(&browser, "eve", PASSWORD).await;
    browser.wait_visible("#view-account").await;
    assert!(!browser.is_visible("#factor-list").await);
    assert!(!browser.is_visible("#codes-show").await);
    assert!(browser.is_visible("#session-list").await);
    assert!(browser.is_visible("#password-form").await);
    browser.screenshot("portal/disabled", "01-account").await;
    browser.close().await;
}
