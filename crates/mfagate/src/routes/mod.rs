//! HTTP handlers: extract, call one `Gatekeeper` method, shape the reply.

pub mod accounts;
pub mod admin;
pub mod docs;
pub mod email;
pub mod factors;
pub mod link_pages;
pub mod meta;
pub mod passkeys;
pub mod second_factor;
pub mod sessions;
pub mod totp;
pub mod ui;

use crate::wire::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use mfagate_core::{LoginOutcome, TokenPair};
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::extract::ClientAddr;
use crate::gate::MfaGate;
use crate::wire::{ChallengeBody, SetupBody};

pub const REFRESH_COOKIE: &str = "mfagate_refresh";
/// The remembered device's token, in cookie mode.
pub const DEVICE_COOKIE: &str = "mfagate_device";

/// Asks for cookie mode on one request, whatever `MFAGATE_REFRESH_COOKIE` says (`1` or `true`):
/// the account portal sends it, so that its refresh token never reaches page script.
pub const COOKIE_MODE_HEADER: &str = "x-mfagate-cookies";

/// Where this request's refresh and device tokens travel: in the JSON bodies, or in cookie mode
/// (the server's setting, or [`COOKIE_MODE_HEADER`]) in HttpOnly, SameSite=Strict cookies.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    cookies: bool,
}

impl FromRequestParts<MfaGate> for Delivery {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        gate: &MfaGate,
    ) -> Result<Self, Self::Rejection> {
        let asked = parts
            .headers
            .get(COOKIE_MODE_HEADER)
            .is_some_and(|v| v == "1" || v.as_bytes().eq_ignore_ascii_case(b"true"));
        Ok(Self {
            cookies: gate.options().refresh_cookie || asked,
        })
    }
}

impl Delivery {
    pub fn cookies(self) -> bool {
        self.cookies
    }

    /// The cookie `name`, in cookie mode. A cookie is a credential the browser attaches by
    /// itself, so one sent from another site's page is refused (`403 cross_origin`): the
    /// request must come from one of the configured page origins (`MFAGATE_WEBAUTHN_ORIGINS`),
    /// or be same-origin by `Sec-Fetch-Site`, or by `Origin` against `Host` when the browser
    /// sends no fetch metadata; a request with neither is not from a browser page.
    pub fn cookie(
        self,
        gate: &MfaGate,
        headers: &HeaderMap,
        name: &str,
    ) -> Result<Option<String>, ApiError> {
        if !self.cookies {
            return Ok(None);
        }
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(cookie, _)| *cookie == name)
            .map(|(_, value)| value.to_string());
        if value.is_some() && !from_our_pages(&gate.config().webauthn.origins, headers) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "this call reads a cookie and came from another site's page; call it from this \
                 server's own pages, or send the token in the body",
            ));
        }
        Ok(value)
    }
}

/// Whether a request comes from one of `our_origins`, a page of this origin, or no page at all.
fn from_our_pages(our_origins: &[String], headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if origin.is_some_and(|o| our_origins.iter().any(|ours| ours.eq_ignore_ascii_case(o))) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// A body carrying a token pair beside `fields`. In cookie mode the refresh token goes into an
/// HttpOnly cookie instead of the body.
pub(crate) fn token_response(
    gate: &MfaGate,
    delivery: Delivery,
    status: StatusCode,
    pair: TokenPair,
    mut fields: Map<String, Value>,
) -> Response {
    let cookie = delivery.cookies.then(|| {
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

/// A body carrying a token pair and, when one was asked for, a remembered device's token:
/// in the body, or in cookie mode as the `mfagate_device` cookie.
pub(crate) fn token_response_with_device(
    gate: &MfaGate,
    delivery: Delivery,
    pair: TokenPair,
    device_token: Option<String>,
) -> Response {
    let mut fields = Map::new();
    let cookie = match device_token {
        Some(token) if delivery.cookies => Some(format!(
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
    let mut response = token_response(gate, delivery, StatusCode::OK, pair, fields);
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The answer to a correct password: tokens, a challenge, or a setup token.
pub(crate) fn login_response(
    gate: &MfaGate,
    delivery: Delivery,
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
        LoginOutcome::Tokens(pair) => token_response(gate, delivery, status, pair, fields.clone()),
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
pub(crate) fn counted_per_ip(
    gate: &MfaGate,
    routes: OpenApiRouter<MfaGate>,
) -> OpenApiRouter<MfaGate> {
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
