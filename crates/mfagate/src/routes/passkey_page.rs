//! `GET /passkeys`: a small page to try passkeys against the server in a real browser (sign in,
//! add a passkey, sign in with it after the password or alone). It calls the public API like
//! any client; its script is a file of its own so the page's policy allows no inline script.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::link_pages::{escape, script_response, POLICY};
use crate::gate::MfaGate;

const PAGE: &str = include_str!("../../assets/passkeys.html");
const SCRIPT: &str = include_str!("../../assets/passkeys.js");

/// Where the page's script is served.
pub const SCRIPT_PATH: &str = "/mfagate-passkeys.js";

pub fn router(gate: &MfaGate) -> Router {
    Router::new()
        .route("/passkeys", get(page))
        .route(SCRIPT_PATH, get(script))
        .with_state(gate.clone())
}

async fn page(State(gate): State<MfaGate>) -> Response {
    let prefix = gate.options().prefix.trim_end_matches('/');
    let html = PAGE
        .replace("{{product}}", &escape(&gate.config().product_name))
        .replace("{{api}}", &escape(prefix))
        .replace("{{script}}", SCRIPT_PATH);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(POLICY),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
}

async fn script() -> Response {
    script_response(SCRIPT)
}
