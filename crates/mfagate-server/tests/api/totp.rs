//! TOTP enrolment (URI, QR codes, activation), status, recovery codes, deactivation, method.

use serde_json::json;

use crate::helpers::{code, fresh_step, spawn_app};

pub(crate) fn decode_png_qr(data_uri: &str) -> String {
    let base64 = data_uri
        .strip_prefix("data:image/png;base64,")
        .expect("PNG data URI");
    let bytes = data_encoding::BASE64
        .decode(base64.as_bytes())
        .expect("base64");
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // A pixel per byte, whatever the depth (mfagate's is 1 bit).
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let frame = reader.next_frame(&mut pixels).expect("PNG frame");
    let (width, height) = (frame.width as usize, frame.height as usize);
    assert_eq!(frame.color_type, png::ColorType::Grayscale);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the PNG");
    grids[0].decode().expect("QR decodes").1
}

#[tokio::test]
async fn enrolment_offers_a_secret_a_key_uri_and_qr_codes_of_that_uri() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann.smith+1").await;
    let answer = app.get("/auth/mfa/totp/activate", Some(&access)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let secret = answer.body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits of base32 without padding");
    assert!(!secret.contains('='));
    assert_eq!(
        data_encoding::BASE32_NOPAD
            .decode(secret.as_bytes())
            .unwrap()
            .len(),
        20
    );
    let url = answer.body["totp_url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("otpauth://totp/mfagate:ann.smith%2B1?secret={secret}&issuer=mfagate&algorithm=SHA1&digits=6&period=30")
    );
    assert_eq!(
        decode_png_qr(answer.body["qr_code_data_uri"].as_str().unwrap()),
        url
    );
    let svg = answer.body["qr_code_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"));
    assert!(answer.body["activation_token"].is_string());
    // Nothing is enabled until the code is proved.
    let status = app.get("/auth/mfa/status", Some(&access)).await;
    assert_eq!(status.body["mfa_enabled"], false);
}

#[tokio::test]
async fn activation_enables_totp_returns_recovery_codes_and_prefers_totp() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    let before = app.get("/auth/mfa/status", Some(&access)).await;
    assert_eq!(
        before.body,
        json!({"mfa_enabled": false, "methods": [], "preferred_method": "none", "created_at": null, "last_used_at": null, "recovery_codes_remaining": 0})
    );
    let enrolled = app.enable_totp(&access).await;
    assert_eq!(enrolled.recovery_codes.len(), 10);
    let status = app.get("/auth/mfa/status", Some(&access)).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["mfa_enabled"], true);
    assert_eq!(status.body["methods"], json!(["totp"]));
    assert_eq!(status.body["preferred_method"], "totp");
    assert!(status.body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(status.body["last_used_at"], json!(null));
    assert_eq!(status.body["recovery_codes_remaining"], 10);
    assert_eq!(
        app.get("/auth/user", Some(&access)).await.body["mfa_enabled"],
        true
    );
    // A second enrolment is refused, at both steps.
    app.get("/auth/mfa/totp/activate", Some(&access))
        .await
        .assert_error(409, "totp_already_enabled");
    app.post(
        "/auth/mfa/totp/activate",
        json!({"activation_token": "x", "code": "123456"}),
        Some(&access),
    )
    .await
    .assert_error(409, "totp_already_enabled");
}

#[tokio::test]
async fn activation_refuses_wrong_codes_and_bad_or_foreign_activation_tokens() {
    let app = spawn_app().await;
    let ann = app.register_and_token("ann").await;
    let bob = app.register_and_token("bob").await;
    let begun = app.get("/auth/mfa/totp/activate", Some(&ann)).await;
    let token = begun.body["activation_token"].as_str().unwrap();
    let secret = data_encoding::BASE32_NOPAD
        .decode(begun.body["secret"].as_str().unwrap().as_bytes())
        .unwrap();
    let step = fresh_step();
    let wrong = format!(
        "{:06}",
        (code(&secret, step).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    app.post(
        "/auth/mfa/totp/activate",
        json!({"activation_token": token, "code": wrong}),
        Some(&ann),
    )
    .await
    .assert_error(400, "invalid_code");
    app.post(
        "/auth/mfa/totp/activate",
        json!({"activation_token": token, "code": code(&secret, step)}),
        Some(&bob),
    )
    .await
    .assert_error(400, "invalid_activation_token");
    let tampered = format!("{}x", token);
    app.post(
        "/auth/mfa/totp/activate",
        json!({"activation_token": tampered, "code": code(&secret, step)}),
        Some(&ann),
    )
    .await
    .assert_error(400, "invalid_activation_token");
    // An access token is not an activation token.
    app.post(
        "/auth/mfa/totp/activate",
        json!({"activation_token": ann, "code": code(&secret, step)}),
        Some(&ann),
    )
    .await
    .assert_error(400, "invalid_activation_token");
    // Spaces inside the code are fine.
    let spaced = code(&secret, step);
    let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
    let ok = app
        .post(
            "/auth/mfa/totp/activate",
            json!({"activation_token": token, "code": spaced}),
            Some(&ann),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    app.get("/auth/mfa/totp/activate", None)
        .await
        .assert_error(401, "not_authenticated");
}

#[tokio::test]
async fn recovery_codes_can_be_viewed_and_regenerated_with_a_code() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    app.get("/auth/mfa/recovery-codes", Some(&access))
        .await
        .assert_error(409, "totp_not_enabled");
    app.post(
        "/auth/mfa/recovery-codes/regenerate",
        json!({"code": "123456"}),
        Some(&access),
    )
    .await
    .assert_error(409, "totp_not_enabled");
    let enrolled = app.enable_totp(&access).await;
    // A token from the password alone (perhaps stolen) must not read the codes (API.md v3:
    // a recent authentication with a second factor is needed).
    let refused = app.get("/auth/mfa/recovery-codes", Some(&access)).await;
    refused.assert_error(401, "reauthentication_required");
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer error=\"insufficient_user_authentication\", max_age=300")
    );
    let access = enrolled.access.clone();
    let viewed = app.get("/auth/mfa/recovery-codes", Some(&access)).await;
    assert_eq!(viewed.status, 200);
    assert_eq!(
        viewed.body["recovery_codes"],
        json!(enrolled.recovery_codes)
    );

    app.post(
        "/auth/mfa/recovery-codes/regenerate",
        json!({"code": "000000"}),
        Some(&access),
    )
    .await
    .assert_error(400, "invalid_code");
    let regenerated = app
        .post(
            "/auth/mfa/recovery-codes/regenerate",
            json!({"code": code(&enrolled.secret, enrolled.step + 1)}),
            Some(&access),
        )
        .await;
    assert_eq!(regenerated.status, 200, "{}", regenerated.body);
    let fresh: Vec<String> =
        serde_json::from_value(regenerated.body["recovery_codes"].clone()).unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !enrolled.recovery_codes.contains(c)));
    assert_eq!(
        app.get("/auth/mfa/recovery-codes", Some(&access))
            .await
            .body["recovery_codes"],
        json!(fresh)
    );
    // Old codes are dead.
    let ephemeral = app.challenge("ann").await;
    app.verify(&ephemeral, &enrolled.recovery_codes[0])
        .await
        .assert_error(400, "invalid_code");
    // A recovery code regenerates too, and is spent by it.
    let again = app
        .post(
            "/auth/mfa/recovery-codes/regenerate",
            json!({"code": fresh[0]}),
            Some(&access),
        )
        .await;
    assert_eq!(again.status, 200);
}

#[tokio::test]
async fn deactivation_needs_a_valid_code_and_deletes_everything() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    app.post(
        "/auth/mfa/totp/deactivate",
        json!({"code": "123456"}),
        Some(&access),
    )
    .await
    .assert_error(409, "totp_not_enabled");
    let enrolled = app.enable_totp(&access).await;
    app.post(
        "/auth/mfa/totp/deactivate",
        json!({"code": "999999"}),
        Some(&access),
    )
    .await
    .assert_error(400, "invalid_code");
    // The code used at activation is a replay.
    app.post(
        "/auth/mfa/totp/deactivate",
        json!({"code": code(&enrolled.secret, enrolled.step)}),
        Some(&access),
    )
    .await
    .assert_error(400, "invalid_code");
    let answer = app
        .post(
            "/auth/mfa/totp/deactivate",
            json!({"code": enrolled.recovery_codes[3].to_uppercase()}),
            Some(&access),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let status = app.get("/auth/mfa/status", Some(&access)).await;
    assert_eq!(status.body["mfa_enabled"], false);
    assert_eq!(status.body["preferred_method"], "none");
    assert_eq!(status.body["recovery_codes_remaining"], 0);
    // Login no longer asks for a second factor.
    let login = app.login("ann").await;
    assert!(login.body["access"].is_string(), "{}", login.body);
    // And TOTP can be enrolled again.
    app.enable_totp(&access).await;
}

#[tokio::test]
async fn the_preferred_method_follows_the_rules() {
    let app = spawn_app().await;
    let access = app.register_and_token("ann").await;
    app.post("/auth/mfa/method", json!({"method": "totp"}), Some(&access))
        .await
        .assert_error(400, "invalid_method");
    app.post("/auth/mfa/method", json!({"method": "sms"}), Some(&access))
        .await
        .assert_error(400, "invalid_method");
    let none = app
        .post("/auth/mfa/method", json!({"method": "none"}), Some(&access))
        .await;
    assert_eq!(none.status, 200);
    assert_eq!(none.body, json!({"preferred_method": "none"}));
    app.enable_totp(&access).await;
    app.post("/auth/mfa/method", json!({"method": "none"}), Some(&access))
        .await
        .assert_error(400, "invalid_method");
    let totp = app
        .post("/auth/mfa/method", json!({"method": "totp"}), Some(&access))
        .await;
    assert_eq!(totp.body, json!({"preferred_method": "totp"}));
    app.post("/auth/mfa/method", json!({"method": 5}), Some(&access))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn mfa_management_needs_an_access_token() {
    let app = spawn_app().await;
    for path in [
        "/auth/mfa/status",
        "/auth/mfa/recovery-codes",
        "/auth/mfa/totp/activate",
    ] {
        app.get(path, None)
            .await
            .assert_error(401, "not_authenticated");
    }
    for path in [
        "/auth/mfa/totp/deactivate",
        "/auth/mfa/recovery-codes/regenerate",
    ] {
        app.post(path, json!({"code": "123456"}), Some("nope"))
            .await
            .assert_error(401, "not_authenticated");
    }
}

#[tokio::test]
async fn totp_algorithm_digits_period_and_issuer_are_settings() {
    use mfagate::core::totp::{self, Algorithm, TotpParams};
    let params = TotpParams {
        algorithm: Algorithm::Sha256,
        digits: 8,
        period: 60,
    };
    let app = crate::helpers::spawn_app_with(|s| {
        s.config.totp = params;
        s.config.totp_issuer = "Acme Corp".into();
    })
    .await;
    let access = app.register_and_token("ann").await;
    let begun = app.get("/auth/mfa/totp/activate", Some(&access)).await;
    let secret_text = begun.body["secret"].as_str().unwrap();
    assert_eq!(
        begun.body["totp_url"],
        format!("otpauth://totp/Acme%20Corp:ann?secret={secret_text}&issuer=Acme%20Corp&algorithm=SHA256&digits=8&period=60")
    );
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_text.as_bytes())
        .unwrap();
    let now = crate::helpers::now();
    let six_digits = totp::code_at(&secret, now, &TotpParams::default());
    app.post(
        "/auth/mfa/totp/activate",
        json!({"activation_token": begun.body["activation_token"], "code": six_digits}),
        Some(&access),
    )
    .await
    .assert_error(400, "invalid_code");
    let answer = app
        .post(
            "/auth/mfa/totp/activate",
            json!({"activation_token": begun.body["activation_token"], "code": totp::code_at(&secret, now, &params)}),
            Some(&access),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}
