//! HTTP handlers: extract, call one `Gatekeeper` method, shape the reply.

pub mod accounts;
pub mod admin;
pub mod email;
pub mod factors;
pub mod link_pages;
pub mod meta;
pub mod passkey_page;
pub mod passkeys;
pub mod second_factor;
pub mod sessions;
pub mod totp;

use crate::wire::Json;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use mfagate_core::{LoginOutcome, TokenPair};
use serde_json::{json, Map, Value};

use crate::extract::ClientAddr;
use crate::gate::MfaGate;
use crate::wire::{ChallengeBody, SetupBody};

pub const REFRESH_COOKIE: &str = "mfagate_refresh";
/// The remembered device's token, in cookie mode.
pub const DEVICE_COOKIE: &str = "mfagate_device";

/// A body carrying a token pair beside `fields`. In cookie mode the refresh token goes into an
/// HttpOnly cookie instead of the body.
pub(crate) fn token_response(
    gate: &MfaGate,
    status: StatusCode,
    pair: TokenPair,
    mut fields: Map<String, Value>,
) -> Response {
    let cookie = gate.options().refresh_cookie.then(|| {
        format!(
            "{REFRESH_COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path={}; Max-Age={}",
            pair.refresh,
            cookie_path(gate),
            gate.config().refresh_ttl
        )
    });
    fields.insert("access".into(), json!(pair.access));
    if cookie.is_none() {
        fields.insert("refresh".into(), json!(pair.refresh));
    }
    fields.insert("token_type".into(), json!(pair.token_type));
    fields.insert("expires_in".into(), json!(pair.expires_in));
    let mut response = (status, Json(Value::Object(fields))).into_response();
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub(crate) fn cookie_path(gate: &MfaGate) -> String {
    let prefix = gate.options().prefix.trim_end_matches('/');
    if prefix.is_empty() {
        "/".into()
    } else {
        prefix.to_string()
    }
}

/// The refresh token from the cookie, in cookie mode.
pub(crate) fn refresh_from_cookie(gate: &MfaGate, headers: &HeaderMap) -> Option<String> {
    cookie(gate, headers, REFRESH_COOKIE)
}

/// The cookie `name`, in cookie mode.
pub(crate) fn cookie(gate: &MfaGate, headers: &HeaderMap, name: &str) -> Option<String> {
    if !gate.options().refresh_cookie {
        return None;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value.to_string())
}

/// A body carrying a token pair and, when one was asked for, a remembered device's token:
/// in the body, or in cookie mode as the `mfagate_device` cookie.
pub(crate) fn token_response_with_device(
    gate: &MfaGate,
    pair: TokenPair,
    device_token: Option<String>,
) -> Response {
    let mut fields = Map::new();
    let cookie = match device_token {
        Some(token) if gate.options().refresh_cookie => Some(format!(
            "{DEVICE_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path={}; Max-Age={}",
            cookie_path(gate),
            gate.config().remember_device_ttl
        )),
        Some(token) => {
            fields.insert("device_token".into(), json!(token));
            None
        }
        None => None,
    };
    let mut response = token_response(gate, StatusCode::OK, pair, fields);
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The answer to a correct password: tokens, a challenge, or a setup token.
pub(crate) fn login_response(
    gate: &MfaGate,
    status: StatusCode,
    outcome: LoginOutcome,
    fields: Map<String, Value>,
) -> Response {
    let merge = |value: Value| {
        let mut body = fields.clone();
        if let Value::Object(more) = value {
            body.extend(more);
        }
        (status, Json(Value::Object(body))).into_response()
    };
    match outcome {
        LoginOutcome::Tokens(pair) => token_response(gate, status, pair, fields.clone()),
        LoginOutcome::Challenge(challenge) => merge(json!(ChallengeBody {
            mfa_required: true,
            challenge
        })),
        LoginOutcome::SetupRequired(setup) => merge(json!(SetupBody {
            mfa_setup_required: true,
            setup
        })),
    }
}

/// `routes`, each request counted against the caller's per-IP budget
/// (`MFAGATE_IP_THROTTLE`) before anything else is done with it: a layer, so that no handler
/// has to remember the call.
pub(crate) fn counted_per_ip(gate: &MfaGate, routes: Router<MfaGate>) -> Router<MfaGate> {
    routes.route_layer(middleware::from_fn_with_state(gate.clone(), count_ip))
}

async fn count_ip(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    match gate.count_ip(client).await {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}
