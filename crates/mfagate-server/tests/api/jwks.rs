//! EdDSA access tokens: the published JWKS, an independent verifier (PyJWT), key rotation, and a
//! separate service verifying tokens from the JWKS alone.

use axum::routing::get;
use axum::{Json, Router};
use mfagate::core::JwtAlgorithm;
use mfagate::remote::{JwksVerifier, RemoteMfaUser, RemoteUser};
use serde_json::{json, Value};

use crate::helpers::{jwt_claims, spawn_app_with, TestApp};

async fn eddsa_app() -> TestApp {
    spawn_app_with(|s| s.config.jwt_algorithm = JwtAlgorithm::EdDsa).await
}

fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(part.as_bytes())
            .unwrap(),
    )
    .unwrap()
}

/// Verifies `token` with PyJWT against the JWKS at `jwks_url`; the claims, or PyJWT's error.
async fn pyjwt_verify(jwks_url: String, token: String) -> Result<Value, String> {
    const SCRIPT: &str = r#"
import json, sys, urllib.request
import jwt
jwks = json.load(urllib.request.urlopen(sys.argv[1]))
token = sys.argv[2]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks["keys"] if k["kid"] == kid)
claims = jwt.decode(token, key=jwt.PyJWK(key).key, algorithms=["EdDSA"], issuer="mfagate")
print(json.dumps(claims))
"#;
    if let Some(missing) = crate::tools::missing_python_module("jwt", "pyjwt[crypto]") {
        panic!("{missing}");
    }
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", SCRIPT, &jwks_url, &token])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[tokio::test]
async fn eddsa_tokens_verify_with_pyjwt_against_the_published_jwks() {
    let app = eddsa_app().await;
    let access = app.register_and_token("ann").await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, 200);
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert_eq!(header(&access)["alg"], "EdDSA");
    assert_eq!(header(&access)["kid"], keys[0]["kid"]);

    let claims = pyjwt_verify(app.url("/.well-known/jwks.json"), access.clone())
        .await
        .expect("PyJWT accepts it");
    assert_eq!(claims, jwt_claims(&access));
    assert_eq!(claims["amr"], json!(["pwd"]));

    // PyJWT refuses a token whose payload was changed.
    let mut parts: Vec<String> = access.split('.').map(str::to_string).collect();
    let mut forged = jwt_claims(&access);
    forged["amr"] = json!(["pwd", "mfa", "otp"]);
    parts[1] = data_encoding::BASE64URL_NOPAD.encode(forged.to_string().as_bytes());
    let forged = parts.join(".");
    assert!(
        pyjwt_verify(app.url("/.well-known/jwks.json"), forged.clone())
            .await
            .is_err()
    );
    app.get("/auth/user", Some(&forged))
        .await
        .assert_error(401, "not_authenticated");
    assert_eq!(app.get("/auth/user", Some(&access)).await.status, 200);
}

#[tokio::test]
async fn a_rotated_key_keeps_old_tokens_valid_until_they_expire() {
    let app = eddsa_app().await;
    let old_token = app.register_and_token("ann").await;
    let old_kid = header(&old_token)["kid"].as_str().unwrap().to_string();

    let env = app.cli_env();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mfagate"))
            .args(["keys", "rotate"])
            .envs(env)
            .env("MFAGATE_JWT_ALGORITHM", "EdDSA")
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
    assert!(String::from_utf8_lossy(&output.stdout).contains("new signing key"));

    let app = app.restart_with(|_| {}).await;
    let new_token = app.login("ann").await.body["access"]
        .as_str()
        .unwrap()
        .to_string();
    let new_kid = header(&new_token)["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid, "the new key signs");
    let jwks = app.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    // The old token still works, at the server and for an independent verifier.
    assert_eq!(app.get("/auth/user", Some(&old_token)).await.status, 200);
    assert!(pyjwt_verify(app.url("/.well-known/jwks.json"), old_token)
        .await
        .is_ok());
    assert!(pyjwt_verify(app.url("/.well-known/jwks.json"), new_token)
        .await
        .is_ok());
}

#[tokio::test]
async fn rotation_is_refused_under_hs256_with_a_clear_message() {
    let app = spawn_app_with(|_| {}).await;
    let env = app.cli_env();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mfagate"))
            .args(["keys", "rotate"])
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("EdDSA"));
}

async fn orders(user: RemoteUser) -> Json<Value> {
    Json(json!({ "orders_of": user.user_id }))
}

async fn payouts(RemoteMfaUser(user): RemoteMfaUser) -> Json<Value> {
    Json(json!({ "payouts_of": user.user_id }))
}

#[tokio::test]
async fn another_service_verifies_tokens_from_the_jwks_without_the_secret() {
    let app = eddsa_app().await;
    let registered = app.register("ann").await;
    let access = registered.body["access"].as_str().unwrap().to_string();

    let verifier = JwksVerifier::new(app.url("/.well-known/jwks.json"), "mfagate");
    let service = Router::new()
        .route("/orders", get(orders))
        .route("/payouts", get(payouts))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });

    let ok = app
        .raw(
            app.client
                .get(format!("{base}/orders"))
                .bearer_auth(&access),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["orders_of"], registered.body["user"]["id"]);
    app.raw(
        app.client
            .get(format!("{base}/payouts"))
            .bearer_auth(&access),
    )
    .await
    .assert_error(403, "mfa_required");
    app.raw(
        app.client
            .get(format!("{base}/orders"))
            .bearer_auth("not.a.token"),
    )
    .await
    .assert_error(401, "not_authenticated");
    app.raw(app.client.get(format!("{base}/orders")))
        .await
        .assert_error(401, "not_authenticated");
}
