//! A host app that mounts mfagate and protects its own routes.
//!
//! Run it:   cargo run --release -p mfagate --example host_app
//!
//! It listens on http://127.0.0.1:3000 and keeps its data in `host_app.db` with its secret key in
//! `host_app.key` beside it (made on the first run, mode 0600; back the two up together: the key
//! seals the TOTP secrets in the database). `APP_SECRET_KEY` (32+ bytes, hex or base64) is used
//! instead when set. Routes: the mfagate API under `/auth` (see API.md), `GET /hello` for any
//! logged-in user, `GET /vault` only after a second factor, `/healthz`, and the pages behind
//! the e-mails' links. E-mails (verification keys, sign-in codes) are written to the log: this
//! is an example, not a deployment.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;

use axum::routing::get;
use axum::Router;
use mfagate::wire::Json;
use mfagate::{
    AuthenticatedUser, Config, GateOptions, Keys, MfaGate, MfaVerifiedUser, SecretBytes,
};
use serde_json::{json, Value};

const DATABASE: &str = "host_app.db";
const KEY_FILE: &str = "host_app.key";
const LISTEN: &str = "127.0.0.1:3000";

/// Any valid access token.
async fn hello(user: AuthenticatedUser) -> Json<Value> {
    Json(json!({ "hello": user.user_id, "amr": user.amr }))
}

/// Only tokens whose `amr` shows a second factor; others get `403 mfa_required`.
async fn vault(MfaVerifiedUser(user): MfaVerifiedUser) -> Json<Value> {
    Json(json!({ "vault_of": user.user_id }))
}

/// `APP_SECRET_KEY`, or the key file beside the database, made on the first run. A key that
/// changes between runs would leave the sealed TOTP secrets unreadable; mfagate refuses to start
/// with one, and says so.
fn secret_key() -> Result<SecretBytes, Box<dyn std::error::Error>> {
    if let Ok(text) = std::env::var("APP_SECRET_KEY") {
        return Ok(SecretBytes::parse(&text)?);
    }
    let path = Path::new(KEY_FILE);
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SecretBytes::parse(&text)
            .map_err(|problem| format!("{KEY_FILE}: the key {problem}"))?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = SecretBytes::generate(32);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path)?;
            writeln!(file, "{}", secret.to_hex())?;
            file.sync_all()?;
            tracing::warn!("made a new secret key in {KEY_FILE}; keep it with {DATABASE}");
            Ok(secret)
        }
        Err(error) => Err(format!("cannot read {KEY_FILE}: {error}").into()),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Without a subscriber nothing is logged: not the e-mails, not an internal error.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("host_app: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let secret = secret_key()?;
    let store = mfagate_store::open(&format!("sqlite://{DATABASE}")).await?;
    let keys = Keys::from_secret(secret, None, Vec::new());
    // `MfaGate::new` writes e-mails to the log; `MfaGate::from_gatekeeper` with an
    // `SmtpMailer` sends them.
    let gate = MfaGate::new(store, Config::default(), keys, GateOptions::default()).await?;

    let own_routes = Router::new()
        .route("/hello", get(hello))
        .route("/vault", get(vault))
        .with_state(gate.clone());
    // The API under /auth, /healthz, the e-mail link pages, request ids and a log line per
    // answer, around the app's own routes.
    let app = mfagate::app_with(&gate, own_routes);

    let listener = tokio::net::TcpListener::bind(LISTEN).await?;
    tracing::info!(
        "host app on http://{LISTEN}: the API under /auth, GET /hello (any logged-in user), GET /vault (after a second factor)"
    );
    // With the peer address, so that throttles and the audit trail see the client's IP.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
