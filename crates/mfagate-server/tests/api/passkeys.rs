//! Passkeys (API.md v3, "Passkeys (WebAuthn)"): real ceremonies with a software authenticator
//! (`soft_passkey.rs`: real authenticator data, client data, ES256 signatures) against the real
//! server. Enrolment as a factor, the second factor at login, a login without a password, and
//! everything that must be refused.

use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{amr, spawn_app, spawn_app_with, Answer, TestApp};
use crate::soft_passkey::SoftPasskey;

pub const ORIGIN: &str = "http://localhost:8080";

pub fn new_key() -> SoftPasskey {
    SoftPasskey::new(ORIGIN, "localhost")
}

/// Begins a passkey enrolment named `name`; the creation options are `options`.
pub async fn begin(app: &TestApp, token: &str, name: &str) -> Answer {
    app.post(
        "/auth/mfa/factors",
        json!({"kind": "webauthn", "name": name}),
        Some(token),
    )
    .await
}

/// Enrols `key` as a passkey named `name`; the verification's answer (a token pair, and the
/// recovery codes with the first factor).
pub async fn enrol(app: &TestApp, token: &str, name: &str, key: &mut SoftPasskey) -> Answer {
    let begun = begin(app, token, name).await;
    assert_eq!(begun.status, 201, "{}", begun.body);
    let id = begun.body["factor"]["id"].as_str().unwrap().to_string();
    let credential = key.register(&begun.body["options"]);
    let answer = app
        .post(
            &format!("/auth/mfa/factors/{id}/verify"),
            json!({ "credential": credential }),
            Some(token),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
}

fn access(answer: &Answer) -> String {
    answer.body["access"]
        .as_str()
        .expect("token pair")
        .to_string()
}

/// A password login that stops at the challenge.
async fn challenge(app: &TestApp, username: &str) -> Value {
    let answer = app.login(username).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["mfa_required"], true, "{}", answer.body);
    answer.body
}

async fn verify_with(app: &TestApp, challenge: &Value, credential: Value) -> Answer {
    app.post(
        "/auth/mfa/verify",
        json!({"ephemeral_token": challenge["ephemeral_token"], "credential": credential}),
        None,
    )
    .await
}

/// `passkey/begin`, then `key` answers the options and `passkey/finish` gets its answer.
async fn passwordless(app: &TestApp, username: Option<&str>, key: &mut SoftPasskey) -> Answer {
    let begun = begin_passwordless(app, username).await;
    let credential = key.assert(&begun["options"]);
    finish(app, &begun, credential).await
}

async fn begin_passwordless(app: &TestApp, username: Option<&str>) -> Value {
    let body = match username {
        Some(name) => json!({ "username": name }),
        None => json!({}),
    };
    let begun = app.post("/auth/passkey/begin", body, None).await;
    assert_eq!(begun.status, 200, "{}", begun.body);
    begun.body
}

async fn finish(app: &TestApp, begun: &Value, credential: Value) -> Answer {
    app.post(
        "/auth/passkey/finish",
        json!({"passkey_token": begun["passkey_token"], "credential": credential}),
        None,
    )
    .await
}

fn allowed_ids(options: &Value) -> Vec<String> {
    options["allowCredentials"]
        .as_array()
        .expect("allowCredentials")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn id_of(key: &SoftPasskey) -> String {
    data_encoding::BASE64URL_NOPAD.encode(&key.credential_id)
}

/// The audit events of `user` (the writer is asynchronous: waits until `event` shows).
async fn audited(app: &TestApp, user_id: &str, event: &str) -> Vec<String> {
    let store = mfagate_store::open(&app.settings.database_url)
        .await
        .unwrap();
    for _ in 0..50 {
        let events: Vec<String> = store
            .recent_audit_events(Some(user_id), 200)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        if events.iter().any(|e| e == event) {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no {event} audited for {user_id}");
}

async fn user_id(app: &TestApp, token: &str) -> String {
    app.get("/auth/user", Some(token)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_user_enrols_two_passkeys_and_logs_in_with_each_after_the_password_and_without_it() {
    let app = spawn_app().await;
    let registered = app.register("ann").await;
    let token = access(&registered);

    // Begin: W3C creation options, the user's own passkeys excluded.
    let begun = begin(&app, &token, "Laptop").await;
    assert_eq!(begun.status, 201, "{}", begun.body);
    assert_eq!(begun.body["factor"]["kind"], "webauthn");
    assert_eq!(begun.body["factor"]["verified"], false);
    let options = &begun.body["options"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], "ann");
    assert_eq!(
        options["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "preferred"
    );
    assert_eq!(options["excludeCredentials"], json!([]));

    let mut laptop = new_key();
    let id = begun.body["factor"]["id"].as_str().unwrap();
    let first = app
        .post(
            &format!("/auth/mfa/factors/{id}/verify"),
            json!({ "credential": laptop.register(options) }),
            Some(&token),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["factor"]["name"], "Laptop");
    assert_eq!(first.body["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(amr(&access(&first)), ["pwd", "mfa", "hwk"]);

    // The second: the first is excluded; no new recovery codes.
    let token = access(&first);
    let begun = begin(&app, &token, "Phone").await;
    assert_eq!(
        begun.body["options"]["excludeCredentials"][0]["id"],
        id_of(&laptop)
    );
    let mut phone = new_key();
    let second = enrol(&app, &token, "Phone", &mut phone).await;
    assert!(second.body.get("recovery_codes").is_none());
    let factors = app.get("/auth/mfa/factors", Some(&token)).await.body;
    let names: Vec<_> = factors["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].clone(), f["kind"].clone()))
        .collect();
    assert_eq!(
        names,
        [
            (json!("Laptop"), json!("webauthn")),
            (json!("Phone"), json!("webauthn"))
        ]
    );
    let status = app.get("/auth/mfa/status", Some(&token)).await.body;
    assert_eq!(status["methods"], json!(["webauthn"]));
    assert_eq!(status["mfa_enabled"], true);
    assert_eq!(status["preferred_method"], "webauthn");

    // After the password, with each passkey.
    for key in [&mut laptop, &mut phone] {
        let challenge = challenge(&app, "ann").await;
        assert_eq!(challenge["methods"], json!(["webauthn", "recovery_code"]));
        let request = &challenge["webauthn"];
        assert_eq!(request["rpId"], "localhost");
        let allowed = allowed_ids(request);
        assert_eq!(allowed.len(), 2);
        assert!(allowed.contains(&id_of(key)));
        let answer = verify_with(&app, &challenge, key.assert(request)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(amr(&access(&answer)), ["pwd", "mfa", "hwk"]);
    }

    // Without a password: by name, and discoverable (no name).
    let named = passwordless(&app, Some("ANN"), &mut laptop).await;
    assert_eq!(named.status, 200, "{}", named.body);
    assert_eq!(amr(&access(&named)), ["hwk", "mfa"]);
    let me = app.get("/auth/user", Some(&access(&named))).await;
    assert_eq!(me.body["username"], "ann");
    let begun = begin_passwordless(&app, None).await;
    assert_eq!(begun["options"]["userVerification"], "required");
    assert_eq!(begun["options"]["allowCredentials"], json!([]));
    assert_eq!(begun["expires_in"], 300);
    let discovered = finish(&app, &begun, phone.assert(&begun["options"])).await;
    assert_eq!(discovered.status, 200, "{}", discovered.body);
    assert_eq!(amr(&access(&discovered)), ["hwk", "mfa"]);
    // The tokens refresh like any others.
    let refreshed = app
        .post(
            "/auth/token/refresh",
            json!({"refresh": discovered.body["refresh"]}),
            None,
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(amr(&access(&refreshed)), ["hwk", "mfa"]);
    let listed = app.get("/auth/mfa/factors", Some(&token)).await.body;
    assert!(listed["factors"][0]["last_used_at"].is_string());
}

#[tokio::test]
async fn replays_other_origins_other_rp_ids_foreign_keys_and_counters_that_go_back_are_refused() {
    let app = spawn_app().await;
    let ann = access(&app.register("ann").await);
    let mut key = new_key();
    let enrolled = enrol(&app, &ann, "Key", &mut key).await;
    let ann = access(&enrolled);
    let ann_id = user_id(&app, &ann).await;
    let bob = access(&app.register("bob").await);
    let mut bobs = new_key();
    enrol(&app, &bob, "Bob's key", &mut bobs).await;

    // A replayed assertion: the challenge it answered is spent, a new one asks for another.
    let first = challenge(&app, "ann").await;
    let assertion = key.assert(&first["webauthn"]);
    assert_eq!(
        verify_with(&app, &first, assertion.clone()).await.status,
        200
    );
    verify_with(&app, &first, assertion.clone())
        .await
        .assert_error(401, "invalid_token");
    let second = challenge(&app, "ann").await;
    let replayed = verify_with(&app, &second, assertion).await;
    replayed.assert_error(400, "invalid_credential");
    assert_eq!(replayed.body["attempts_remaining"], 4);

    // Another user's passkey, another origin, another RP ID, no credential at all.
    let foreign = verify_with(&app, &second, bobs.assert(&second["webauthn"])).await;
    foreign.assert_error(400, "invalid_credential");
    assert_eq!(foreign.body["attempts_remaining"], 3);
    let mut elsewhere = key.clone();
    elsewhere.origin = "https://evil.example".into();
    verify_with(&app, &second, elsewhere.assert(&second["webauthn"]))
        .await
        .assert_error(400, "invalid_credential");
    let mut other_rp = key.clone();
    other_rp.rp_id = "example.com".into();
    verify_with(&app, &second, other_rp.assert(&second["webauthn"]))
        .await
        .assert_error(400, "invalid_credential");
    verify_with(&app, &second, json!({"id": "x"}))
        .await
        .assert_error(400, "invalid_credential");
    // The challenge had its five attempts: even the right key is refused now.
    verify_with(&app, &second, key.assert(&second["webauthn"]))
        .await
        .assert_error(429, "too_many_attempts");

    // A counter that goes back: a cloned key. Refused, audited, and the real key still works.
    let third = challenge(&app, "ann").await;
    let mut clone = key.clone();
    clone.counter = 0;
    verify_with(&app, &third, clone.assert(&third["webauthn"]))
        .await
        .assert_error(400, "invalid_credential");
    audited(&app, &ann_id, "passkey_possible_clone").await;
    let ok = verify_with(&app, &third, key.assert(&third["webauthn"])).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // ... also without a password.
    let mut clone = key.clone();
    clone.counter = 1;
    passwordless(&app, None, &mut clone)
        .await
        .assert_error(401, "invalid_credential");

    // Enrolment from another origin is refused, and its ceremony is spent with it.
    let begun = begin(&app, &ann, "Elsewhere").await;
    let id = begun.body["factor"]["id"].as_str().unwrap().to_string();
    let mut wrong = SoftPasskey::new("https://evil.example", "localhost");
    let path = format!("/auth/mfa/factors/{id}/verify");
    app.post(
        &path,
        json!({"credential": wrong.register(&begun.body["options"])}),
        Some(&ann),
    )
    .await
    .assert_error(400, "invalid_credential");
    let mut right = new_key();
    app.post(
        &path,
        json!({"credential": right.register(&begun.body["options"])}),
        Some(&ann),
    )
    .await
    .assert_error(404, "not_found");
    // A credential id is enrolled once, across users.
    let carol = access(&app.register("carol").await);
    let begun = begin(&app, &carol, "Stolen").await;
    let mut copy = key.clone();
    let id = begun.body["factor"]["id"].as_str().unwrap();
    app.post(
        &format!("/auth/mfa/factors/{id}/verify"),
        json!({"credential": copy.register(&begun.body["options"])}),
        Some(&carol),
    )
    .await
    .assert_error(400, "invalid_credential");
    // A code where a credential is due, and the other way round.
    app.post(&path, json!({"code": "123456"}), Some(&ann))
        .await
        .assert_error(400, "validation_error");
    app.post(&path, json!({"credential": "text"}), Some(&ann))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn a_passkey_token_and_a_challenge_answer_work_once_also_under_concurrent_use() {
    let app = spawn_app().await;
    let token = access(&app.register("ann").await);
    let mut key = new_key();
    enrol(&app, &token, "Key", &mut key).await;

    let begun = begin_passwordless(&app, Some("ann")).await;
    let credential = key.assert(&begun["options"]);
    let answers = join_all((0..8).map(|_| finish(&app, &begun, credential.clone()))).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 1, "exactly one finish wins");
    for refused in answers.iter().filter(|a| a.status != 200) {
        refused.assert_error(401, "invalid_token");
    }
    finish(&app, &begun, credential)
        .await
        .assert_error(401, "invalid_token");

    let challenge = challenge(&app, "ann").await;
    let credential = key.assert(&challenge["webauthn"]);
    let answers = join_all((0..8).map(|_| verify_with(&app, &challenge, credential.clone()))).await;
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 1);
    // The others: the challenge was spent (401), or had its attempts (429).
    for refused in answers.iter().filter(|a| a.status != 200) {
        let code = refused.body["error"].as_str().unwrap();
        assert!(
            ["invalid_token", "too_many_attempts"].contains(&code),
            "{}",
            refused.body
        );
    }
}

#[tokio::test]
async fn a_passwordless_login_obeys_the_account_rules_and_gives_nothing_away() {
    let mut app = spawn_app().await;
    let token = access(&app.register("ann").await);
    let mut key = new_key();
    enrol(&app, &token, "Key", &mut key).await;

    // An unknown name and a user without passkeys look like a user with one.
    let known = begin_passwordless(&app, Some("ann")).await;
    app.register("bob").await;
    for name in ["nobody", "bob"] {
        let other = begin_passwordless(&app, Some(name)).await;
        assert_eq!(allowed_ids(&other["options"]).len(), 1);
        assert_eq!(
            other["options"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            known["options"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>()
        );
        // ... and the same stand-in each time.
        let again = begin_passwordless(&app, Some(name)).await;
        assert_eq!(
            allowed_ids(&again["options"]),
            allowed_ids(&other["options"])
        );
        // Begun for another name, ann's passkey does not sign in.
        finish(&app, &other, key.assert(&other["options"]))
            .await
            .assert_error(401, "invalid_credential");
    }
    // No user verification: refused.
    let mut careless = key.clone();
    careless.user_verification = false;
    passwordless(&app, Some("ann"), &mut careless)
        .await
        .assert_error(401, "invalid_credential");
    // A disabled user, and one whose address must be verified first.
    app = app
        .restart_with(|s| s.config.email_verification = true)
        .await;
    passwordless(&app, Some("ann"), &mut key)
        .await
        .assert_error(403, "email_not_verified");
}

#[tokio::test]
async fn passwordless_logins_count_against_the_per_ip_limit() {
    let app = spawn_app_with(|s| {
        s.gate.ip_throttle = Some(mfagate::core::rate::Rate {
            limit: 3,
            window_seconds: 60,
        });
    })
    .await;
    let begun = begin_passwordless(&app, None).await;
    begin_passwordless(&app, Some("ann")).await;
    let mut key = new_key();
    finish(&app, &begun, key.assert(&begun["options"]))
        .await
        .assert_error(401, "invalid_credential");
    for path in ["/auth/passkey/begin", "/auth/passkey/finish"] {
        let throttled = app.post(path, json!({}), None).await;
        throttled.assert_error(429, "throttled");
        assert!(throttled.header("retry-after").is_some());
    }
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in_with_a_passkey() {
    let app = spawn_app().await;
    let token = access(&app.register("ann").await);
    let mut key = new_key();
    let enrolled = enrol(&app, &token, "Key", &mut key).await;
    let ann_id = user_id(&app, &access(&enrolled)).await;
    let admin = app.admin_token("root").await;
    let disabled = app
        .post(
            &format!("/auth/admin/users/{ann_id}/disable"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    passwordless(&app, None, &mut key)
        .await
        .assert_error(401, "invalid_credential");
    passwordless(&app, Some("ann"), &mut key)
        .await
        .assert_error(401, "invalid_credential");
    audited(&app, &ann_id, "admin_disabled_user").await;
}

#[tokio::test]
async fn in_required_mode_a_passkey_alone_completes_the_setup_and_every_later_login() {
    let app = spawn_app_with(|s| s.config.mode = mfagate::MfaMode::Required).await;
    let registered = app.register("ann").await;
    let setup = registered.body["setup_token"].as_str().unwrap().to_string();
    let mut key = new_key();
    let enrolled = enrol(&app, &setup, "Key", &mut key).await;
    assert_eq!(amr(&access(&enrolled)), ["pwd", "mfa", "hwk"]);
    // The setup token is spent.
    begin(&app, &setup, "Again")
        .await
        .assert_error(401, "not_authenticated");
    let challenge = challenge(&app, "ann").await;
    assert_eq!(challenge["methods"], json!(["webauthn", "recovery_code"]));
    let answer = verify_with(&app, &challenge, key.assert(&challenge["webauthn"])).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let alone = passwordless(&app, Some("ann"), &mut key).await;
    assert_eq!(alone.status, 200, "{}", alone.body);
    // The last factor stays in `required` mode.
    let factors = app
        .get("/auth/mfa/factors", Some(&access(&alone)))
        .await
        .body;
    let id = factors["factors"][0]["id"].as_str().unwrap();
    app.send(
        reqwest::Method::DELETE,
        &format!("/auth/mfa/factors/{id}"),
        None,
        Some(&access(&alone)),
    )
    .await
    .assert_error(403, "mfa_enforced");
}

#[tokio::test]
async fn passkeys_are_refused_where_the_server_does_not_offer_them() {
    let app = spawn_app_with(|s| {
        s.config.methods = vec![mfagate::core::Method::Totp, mfagate::core::Method::Email]
    })
    .await;
    let token = access(&app.register("ann").await);
    begin(&app, &token, "Key")
        .await
        .assert_error(400, "invalid_method");
    app.post("/auth/passkey/begin", json!({}), None)
        .await
        .assert_error(400, "invalid_method");
}

/// Credentials that are not what a browser sends: each gets the contract's 4xx, never a 500.
fn garbage_credentials(key: &SoftPasskey, options: &Value) -> Vec<Value> {
    let mut key = key.clone();
    let good = key.assert(options);
    let mut out = vec![
        json!({}),
        json!({"id": "", "rawId": "", "type": "public-key", "response": {}}),
        json!({"id": 7, "rawId": [1, 2], "type": null, "response": "x"}),
        json!({"id": "x", "rawId": "!!!not base64!!!", "type": "public-key",
               "response": {"clientDataJSON": "e30", "authenticatorData": "", "signature": ""}}),
        json!({"id": "x", "rawId": "A".repeat(20_000), "type": "public-key",
               "response": {"clientDataJSON": "A".repeat(20_000), "authenticatorData": "AA", "signature": "AA"}}),
    ];
    for (field, junk) in [
        ("clientDataJSON", json!("bm90IGpzb24")),
        ("authenticatorData", json!("AAAA")),
        ("signature", json!("AAAA")),
        ("userHandle", json!("\u{0}\u{fffd}")),
        ("clientDataJSON", json!(null)),
    ] {
        let mut broken = good.clone();
        broken["response"][field] = junk;
        out.push(broken);
    }
    out
}

#[tokio::test]
async fn malformed_credentials_get_the_contracts_errors_never_a_500() {
    let app = spawn_app().await;
    let token = access(&app.register("ann").await);
    let mut key = new_key();
    // The enrolment's new session is recent enough to add more.
    let token = access(&enrol(&app, &token, "Key", &mut key).await);

    // At a challenge: 400 invalid_credential (each spends an attempt; new challenges as needed).
    let mut challenge_body = challenge(&app, "ann").await;
    let mut used = 0;
    for junk in garbage_credentials(&key, &challenge_body["webauthn"]) {
        if used == 4 {
            challenge_body = challenge(&app, "ann").await;
            used = 0;
        }
        used += 1;
        let answer = verify_with(&app, &challenge_body, junk).await;
        answer.assert_error(400, "invalid_credential");
    }
    // Without a password: 401 invalid_credential.
    for junk in garbage_credentials(&key, &begin_passwordless(&app, None).await["options"]) {
        let begun = begin_passwordless(&app, None).await;
        finish(&app, &begun, junk)
            .await
            .assert_error(401, "invalid_credential");
    }
    // At enrolment: 400 invalid_credential, once (the ceremony is spent with it).
    let registration = key
        .clone()
        .register(&begin(&app, &token, "x").await.body["options"]);
    for field in ["attestationObject", "clientDataJSON"] {
        let begun = begin(&app, &token, "Another").await;
        let id = begun.body["factor"]["id"].as_str().unwrap().to_string();
        let mut broken = registration.clone();
        broken["response"][field] = json!("AAAA");
        app.post(
            &format!("/auth/mfa/factors/{id}/verify"),
            json!({ "credential": broken }),
            Some(&token),
        )
        .await
        .assert_error(400, "invalid_credential");
    }
    // Wrong JSON types around the credential: 400 invalid_request.
    app.post(
        "/auth/passkey/finish",
        json!({"passkey_token": 5, "credential": {}}),
        None,
    )
    .await
    .assert_error(400, "invalid_request");
    app.post("/auth/passkey/begin", json!({"username": ["ann"]}), None)
        .await
        .assert_error(400, "invalid_request");
}
