//! The library as a host app uses it: the router merged into the app's own, and the two
//! extractors guarding the app's routes.

use axum::routing::get;
use axum::{Json, Router};
use mfagate::{AuthenticatedUser, MfaGate, MfaVerifiedUser, RecentlyAuthenticated};
use serde_json::{json, Value};

use crate::helpers::{code, spawn_app};

async fn me(user: AuthenticatedUser) -> Json<Value> {
    Json(json!({"user_id": user.user_id, "amr": user.amr}))
}

async fn vault(MfaVerifiedUser(user): MfaVerifiedUser) -> Json<Value> {
    Json(json!({"secret_for": user.user_id}))
}

async fn close_account(RecentlyAuthenticated(user): RecentlyAuthenticated<60>) -> Json<Value> {
    Json(json!({"closed": user.user_id}))
}

/// A host app with its own gate over the test server's database, keys and clock (moving the
/// server's clock ages tokens for both); its address.
async fn host_app_beside(server: &crate::helpers::TestApp) -> String {
    let settings = server.settings.clone();
    let store = mfagate_store::open(&settings.database_url).await.unwrap();
    let keys = mfagate_server::startup::keys(&settings).unwrap();
    let gate = MfaGate::new(store, settings.config.clone(), keys, settings.gate.clone())
        .await
        .unwrap();
    serve_host_app(gate).await
}

/// Serves `gate`'s API beside the host's own routes on a random port.
async fn serve_host_app(gate: MfaGate) -> String {
    let app = Router::new()
        .route("/me", get(me))
        .route("/vault", get(vault))
        .route("/close-account", axum::routing::post(close_account))
        .with_state(gate.clone())
        .merge(gate.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn host_routes_take_any_valid_token_or_only_second_factor_tokens() {
    // The server under test gives us a real store and keys; the host app mounts its own gate
    // over the same database.
    let server = spawn_app().await;
    let host = host_app_beside(&server).await;
    let client = reqwest::Client::new();

    // Register through the host app's mounted API.
    let registered: Value = client
        .post(format!("{host}/auth/register"))
        .json(&json!({"username": "ann", "email": "ann@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let password_only = registered["access"].as_str().unwrap();

    let me = client
        .get(format!("{host}/me"))
        .bearer_auth(password_only)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["amr"], json!(["pwd"]));
    assert_eq!(body["user_id"], registered["user"]["id"]);

    let vault = client
        .get(format!("{host}/vault"))
        .bearer_auth(password_only)
        .send()
        .await
        .unwrap();
    assert_eq!(vault.status(), 403);
    let body: Value = vault.json().await.unwrap();
    assert_eq!(body["error"], "mfa_required");

    let anonymous = client.get(format!("{host}/me")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"], "not_authenticated");

    // Enrol through the server (same database), then log in with TOTP through the host.
    let enrolled = server.enable_totp(password_only).await;
    let login: Value = client
        .post(format!("{host}/auth/login"))
        .json(&json!({"username": "ann", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verified: Value = client
        .post(format!("{host}/auth/mfa/verify"))
        .json(&json!({"ephemeral_token": login["ephemeral_token"], "code": code(&enrolled.secret, enrolled.step + 1)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let strong = verified["access"]
        .as_str()
        .expect("tokens after the second factor");
    let vault = client
        .get(format!("{host}/vault"))
        .bearer_auth(strong)
        .send()
        .await
        .unwrap();
    assert_eq!(vault.status(), 200);
    let body: Value = vault.json().await.unwrap();
    assert_eq!(body["secret_for"], registered["user"]["id"]);
}

#[tokio::test]
async fn a_passkey_login_without_a_password_opens_the_hosts_second_factor_routes() {
    let server = spawn_app().await;
    let host = host_app_beside(&server).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let request = client.post(format!("{host}{path}")).json(&body);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    // Enrol a passkey through the host's mounted API, then log in with it alone.
    let registered = post(
        "/auth/register",
        json!({"username": "ann", "email": "ann@example.com", "password": "correct horse battery"}),
    )
    .await;
    let access = registered["access"].as_str().unwrap();
    let mut key = crate::passkeys::new_key();
    let begun: Value = client
        .post(format!("{host}/auth/mfa/factors"))
        .bearer_auth(access)
        .json(&json!({"kind": "webauthn", "name": "Key"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verified = client
        .post(format!(
            "{host}/auth/mfa/factors/{}/verify",
            begun["factor"]["id"].as_str().unwrap()
        ))
        .bearer_auth(access)
        .json(&json!({"credential": key.register(&begun["options"])}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let begun = post("/auth/passkey/begin", json!({})).await;
    let tokens = post(
        "/auth/passkey/finish",
        json!({"passkey_token": begun["passkey_token"], "credential": key.assert(&begun["options"])}),
    )
    .await;
    let hwk = tokens["access"].as_str().expect("a token pair");
    let vault = client
        .get(format!("{host}/vault"))
        .bearer_auth(hwk)
        .send()
        .await
        .unwrap();
    assert_eq!(vault.status(), 200);
    let me: Value = client
        .get(format!("{host}/me"))
        .bearer_auth(hwk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["amr"], json!(["hwk", "mfa"]));
}

#[tokio::test]
async fn a_hosts_sensitive_route_asks_for_a_recent_authentication_like_mfagates_own() {
    let server = spawn_app().await;
    let host = host_app_beside(&server).await;
    let client = reqwest::Client::new();
    let close = |token: String| {
        let request = client
            .post(format!("{host}/close-account"))
            .bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    // A user with a second factor must have used it, however recent the password.
    let bobs_password = server.register_and_token("bob").await;
    let enrolled = server.enable_totp(&bobs_password).await;
    assert_eq!(close(enrolled.access.clone()).await.status(), 200);
    assert_eq!(close(bobs_password).await.status(), 401);

    let token = server.register_and_token("ann").await;
    assert_eq!(close(token.clone()).await.status(), 200);
    server.clock.advance(61);
    let stale = close(token.clone()).await;
    assert_eq!(stale.status(), 401);
    assert_eq!(
        stale.headers()["www-authenticate"],
        "Bearer error=\"insufficient_user_authentication\", max_age=60"
    );
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["error"], "reauthentication_required");
    let renewed: Value = client
        .post(format!("{host}/auth/reauthenticate"))
        .bearer_auth(&token)
        .json(&json!({"password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = renewed["access"]
        .as_str()
        .expect("a token pair")
        .to_string();
    assert_eq!(close(fresh).await.status(), 200);
}
