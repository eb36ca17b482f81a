//! Recent authentication (step-up) and sessions (API.md v3): the `401 reauthentication_required`
//! answer with its RFC 9470 header on each listed call, `POST /auth/reauthenticate` through a
//! TOTP challenge and through a password, `auth_time` and `sid` across refreshes, the session
//! list, ending one session, and `logout/all`.

use mfagate::core::clock::Clock;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{code, jwt_claims, spawn_app, Answer, TestApp, PASSWORD};

const STEP_UP: &str = "Bearer error=\"insufficient_user_authentication\", max_age=300";

fn access(answer: &Answer) -> String {
    answer.body["access"]
        .as_str()
        .expect("token pair")
        .to_string()
}

fn claim(token: &str, name: &str) -> Value {
    jwt_claims(token)[name].clone()
}

/// Asserts the token's `auth_time` is a moment between `from` and now (the server's clock runs
/// on while a request is answered, so "now" is a range, not a second).
fn assert_fresh(app: &TestApp, token: &str, from: i64) {
    let auth_time = claim(token, "auth_time").as_i64().expect("auth_time");
    assert!(
        (from..=app.clock.now()).contains(&auth_time),
        "auth_time {auth_time} not in {from}..={}",
        app.clock.now()
    );
}

/// A TOTP code for the server's current step (the tests move its clock).
fn code_now(app: &TestApp, secret: &[u8]) -> String {
    code(secret, app.clock.now() / 30)
}

async fn reauthenticate(app: &TestApp, token: &str, body: Value) -> Answer {
    app.post("/auth/reauthenticate", body, Some(token)).await
}

/// A login from a client that names itself `agent`.
async fn login_as(app: &TestApp, username: &str, agent: &str) -> Answer {
    let request = app
        .client
        .post(app.url("/auth/login"))
        .header("User-Agent", agent)
        .json(&json!({"username": username, "password": PASSWORD}));
    app.raw(request).await
}

#[tokio::test]
async fn a_stale_token_is_stepped_up_on_each_listed_call_and_a_totp_challenge_renews_it() {
    let app = spawn_app().await;
    let enrolled = app.user_with_totp("ann").await;
    let fresh = enrolled.access.clone();
    let sid = claim(&fresh, "sid");
    assert!(sid.as_str().is_some_and(|s| !s.is_empty()), "{sid}");
    assert_eq!(claim(&fresh, "auth_time"), claim(&fresh, "iat"));
    assert_eq!(
        app.get("/auth/mfa/recovery-codes", Some(&fresh))
            .await
            .status,
        200
    );

    // Five minutes on, the same session's token is no longer a recent authentication.
    app.clock.advance(301);
    let refreshed = app
        .post(
            "/auth/token/refresh",
            json!({"refresh": enrolled.refresh}),
            None,
        )
        .await;
    let stale = access(&refreshed);
    assert_eq!(
        claim(&stale, "auth_time"),
        claim(&fresh, "auth_time"),
        "kept"
    );
    assert_eq!(claim(&stale, "sid"), sid);
    let factors = app.get("/auth/mfa/factors", Some(&stale)).await.body;
    let factor_id = factors["factors"][0]["id"].as_str().unwrap().to_string();
    for answer in [
        app.get("/auth/mfa/recovery-codes", Some(&stale)).await,
        app.post(
            "/auth/mfa/factors",
            json!({"kind": "totp", "name": "Second"}),
            Some(&stale),
        )
        .await,
        app.send(
            Method::DELETE,
            &format!("/auth/mfa/factors/{factor_id}"),
            None,
            Some(&stale),
        )
        .await,
    ] {
        answer.assert_error(401, "reauthentication_required");
        assert_eq!(answer.header("www-authenticate"), Some(STEP_UP));
    }

    // Reauthenticate: a user with a factor gets a challenge (no password needed).
    let reauthenticated_from = app.clock.now();
    let challenge = reauthenticate(&app, &stale, json!({})).await;
    assert_eq!(challenge.status, 200, "{}", challenge.body);
    assert_eq!(challenge.body["mfa_required"], true);
    let answer = app
        .verify(
            challenge.body["ephemeral_token"].as_str().unwrap(),
            &code_now(&app, &enrolled.secret),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let renewed = access(&answer);
    assert_eq!(claim(&renewed, "sid"), sid, "the same session");
    assert_fresh(&app, &renewed, reauthenticated_from);
    assert_eq!(
        app.get("/auth/mfa/recovery-codes", Some(&renewed))
            .await
            .status,
        200
    );
    let begun = app
        .post(
            "/auth/mfa/factors",
            json!({"kind": "totp", "name": "Second"}),
            Some(&renewed),
        )
        .await;
    assert_eq!(begun.status, 201, "{}", begun.body);
    let removed = app
        .send(
            Method::DELETE,
            &format!("/auth/mfa/factors/{factor_id}"),
            None,
            Some(&renewed),
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    // Still one session, and its new refresh token keeps the new auth_time.
    let sessions = app.get("/auth/sessions", Some(&renewed)).await.body;
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1);
    let again = app
        .post(
            "/auth/token/refresh",
            json!({"refresh": answer.body["refresh"]}),
            None,
        )
        .await;
    assert_eq!(
        claim(&access(&again), "auth_time"),
        claim(&renewed, "auth_time"),
        "kept across the refresh"
    );
    // The refresh token the reauthentication replaced is used up: presenting it is a reuse.
    app.post(
        "/auth/token/refresh",
        json!({"refresh": refreshed.body["refresh"]}),
        None,
    )
    .await
    .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn a_user_without_a_factor_reauthenticates_with_the_password() {
    let app = spawn_app().await;
    let registered = app.register("bob").await;
    let token = access(&registered);
    app.clock.advance(600);
    reauthenticate(&app, &token, json!({}))
        .await
        .assert_error(400, "validation_error");
    reauthenticate(&app, &token, json!({"password": "wrong password"}))
        .await
        .assert_error(401, "invalid_credentials");
    let reauthenticated_from = app.clock.now();
    let answer = reauthenticate(&app, &token, json!({"password": PASSWORD})).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let renewed = access(&answer);
    assert_eq!(claim(&renewed, "sid"), claim(&token, "sid"));
    assert_fresh(&app, &renewed, reauthenticated_from);
    assert_eq!(claim(&renewed, "amr"), json!(["pwd"]));
    // Throttled like a login: past the limit even the right password is refused.
    for _ in 0..10 {
        reauthenticate(&app, &renewed, json!({"password": "wrong password"})).await;
    }
    reauthenticate(&app, &renewed, json!({"password": PASSWORD}))
        .await
        .assert_error(429, "throttled");
    // Without a Bearer token there is no one to reauthenticate.
    app.post("/auth/reauthenticate", json!({}), None)
        .await
        .assert_error(401, "not_authenticated");
}

#[tokio::test]
async fn sessions_are_listed_one_is_ended_and_logout_all_ends_the_rest() {
    let app = spawn_app().await;
    app.register("ann").await;
    app.clock.advance(1);
    let mut logins = Vec::new();
    for agent in ["Firefox on a laptop", "Safari on a phone", "curl"] {
        logins.push(login_as(&app, "ann", agent).await);
        app.clock.advance(1);
    }
    let phone = access(&logins[1]);
    let listed = app.get("/auth/sessions", Some(&phone)).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let sessions = listed.body["sessions"].as_array().unwrap().clone();
    // Newest first; the registration's session too.
    assert_eq!(sessions.len(), 4, "{sessions:?}");
    let agents: Vec<_> = sessions.iter().map(|s| s["user_agent"].clone()).collect();
    assert_eq!(
        &agents[..3],
        [
            json!("curl"),
            json!("Safari on a phone"),
            json!("Firefox on a laptop")
        ]
    );
    let current: Vec<_> = sessions.iter().map(|s| s["current"] == true).collect();
    assert_eq!(current, [false, true, false, false]);
    for session in &sessions {
        assert_eq!(session["ip"], "127.0.0.1");
        assert_eq!(session["amr"], json!(["pwd"]));
        for field in ["created_at", "last_used_at", "expires_at"] {
            assert!(session[field].is_string(), "{session}");
        }
    }
    assert_eq!(sessions[1]["id"], claim(&phone, "sid"));

    // End the laptop's session: its refresh token dies, the others live.
    let laptop_id = sessions[2]["id"].as_str().unwrap();
    let ended = app
        .send(
            Method::DELETE,
            &format!("/auth/sessions/{laptop_id}"),
            None,
            Some(&phone),
        )
        .await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    app.post(
        "/auth/token/refresh",
        json!({"refresh": logins[0].body["refresh"]}),
        None,
    )
    .await
    .assert_error(401, "invalid_token");
    let curl = app
        .post(
            "/auth/token/refresh",
            json!({"refresh": logins[2].body["refresh"]}),
            None,
        )
        .await;
    assert_eq!(curl.status, 200, "{}", curl.body);
    app.send(
        Method::DELETE,
        &format!("/auth/sessions/{laptop_id}"),
        None,
        Some(&phone),
    )
    .await
    .assert_error(404, "not_found");
    // Another user cannot end ann's sessions.
    let bob = app.register_and_token("bob").await;
    let curl_id = sessions[0]["id"].as_str().unwrap();
    app.send(
        Method::DELETE,
        &format!("/auth/sessions/{curl_id}"),
        None,
        Some(&bob),
    )
    .await
    .assert_error(404, "not_found");
    let listed = app.get("/auth/sessions", Some(&phone)).await.body;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 3);

    // Sign out everywhere: every refresh token dies, the count says how many sessions.
    let all = app.post("/auth/logout/all", json!({}), Some(&phone)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["revoked"], 3);
    for refresh in [&logins[1].body["refresh"], &curl.body["refresh"]] {
        app.post("/auth/token/refresh", json!({ "refresh": refresh }), None)
            .await
            .assert_error(401, "invalid_token");
    }
    // The access token lives until it expires, and finds no session left.
    let listed = app.get("/auth/sessions", Some(&phone)).await.body;
    assert_eq!(listed["sessions"], json!([]));
    // bob's session was not touched.
    assert_eq!(
        app.get("/auth/sessions", Some(&bob)).await.body["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
