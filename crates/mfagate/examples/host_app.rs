//! A host app that mounts mfagate and protects its own routes.
//!
//! Run it:   APP_SECRET_KEY=$(openssl rand -hex 32) cargo run -p mfagate --example host_app
//! Then:     register and log in under http://127.0.0.1:3000/auth/..., and call
//!           GET /hello (any logged-in user) and GET /vault (only after a second factor).

use axum::routing::get;
use axum::{Json, Router};
use mfagate::{
    AuthenticatedUser, Config, GateOptions, Keys, MfaGate, MfaVerifiedUser, SecretBytes,
};
use serde_json::{json, Value};

/// Any valid access token.
async fn hello(user: AuthenticatedUser) -> Json<Value> {
    Json(json!({ "hello": user.user_id, "amr": user.amr }))
}

/// Only tokens whose `amr` shows a second factor; others get `403 mfa_required`.
async fn vault(MfaVerifiedUser(user): MfaVerifiedUser) -> Json<Value> {
    Json(json!({ "vault_of": user.user_id }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = match std::env::var("APP_SECRET_KEY") {
        Ok(text) => SecretBytes::parse(&text)?,
        Err(_) => return Err(
            "set APP_SECRET_KEY to 32+ bytes of hex, e.g. APP_SECRET_KEY=$(openssl rand -hex 32); \
                        keep it: it signs tokens and seals TOTP secrets"
                .into(),
        ),
    };
    let store = mfagate_store::open("sqlite://host_app.db").await?;
    let keys = Keys::from_secret(secret, None, Vec::new());
    let gate = MfaGate::new(store, Config::default(), keys, GateOptions::default()).await?;

    let app = Router::new()
        .route("/hello", get(hello))
        .route("/vault", get(vault))
        .with_state(gate.clone())
        .merge(gate.router());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!(
        "host app on http://127.0.0.1:3000 (API under /auth, try GET /hello with a Bearer token)"
    );
    axum::serve(listener, app).await?;
    Ok(())
}
