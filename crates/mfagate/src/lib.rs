//! mfagate: multi-factor authentication for axum.
//!
//! Mount the API in your app and protect your own routes:
//!
//! ```ignore
//! let gate = MfaGate::new(store, Config::default(), keys, GateOptions::default()).await?;
//! let app = Router::new()
//!     .route("/me", get(|user: AuthenticatedUser| async move { user.user_id }))
//!     .route("/vault", get(|MfaVerifiedUser(user): MfaVerifiedUser| async move { user.user_id }))
//!     .with_state(gate.clone())
//!     .merge(gate.router());
//! ```
//!
//! [`app`] is the whole server: the router plus `/healthz`, JSON 404s, request ids and tracing.

pub mod error;
pub mod extract;
pub mod gate;
pub mod mail;
pub mod openapi;
#[cfg(feature = "remote-jwks")]
pub mod remote;
pub mod routes;
pub mod wire;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ApiResult};
pub use extract::{
    AdminUser, AuthenticatedUser, ClientAddr, JsonBody, MfaVerifiedUser, RecentlyAuthenticated,
};
pub use gate::{GateOptions, MfaGate};
pub use mfagate_core as core;
pub use mfagate_core::{Config, Keys, MfaMode, SecretBytes};

/// Request bodies over this size get `413 payload_too_large`.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

impl MfaGate {
    /// The API under the configured prefix (default `/auth`), plus `/.well-known/jwks.json`.
    pub fn router(&self) -> Router {
        let (router, _) = self.documented_router().split_for_parts();
        router
            .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
            .layer(middleware::map_response(framework_errors_as_json))
            .with_state(self.clone())
    }

    /// The OpenAPI 3.1 document of [`MfaGate::router`]'s calls (served by [`app`] at
    /// `/openapi.json`).
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        openapi::finish(self.documented_router().into_openapi())
    }

    /// The API's routes with their documentation: each is registered from its handler's
    /// annotation, which adds the route and the operation together.
    fn documented_router(&self) -> OpenApiRouter<MfaGate> {
        // Every `/mfa/*` call answers `403 mfa_disabled` in `disabled` mode, before anything
        // else is checked (this layer runs first).
        let second_factor = OpenApiRouter::new()
            .merge(routes::second_factor::router(self))
            .merge(routes::totp::router())
            .merge(routes::factors::router())
            .route_layer(middleware::from_fn_with_state(
                self.clone(),
                reject_when_mfa_disabled,
            ));
        let api = OpenApiRouter::new()
            .merge(routes::accounts::router(self))
            .merge(routes::email::router(self))
            .merge(routes::admin::router())
            .merge(routes::passkeys::router(self))
            .merge(routes::sessions::router(self))
            .merge(second_factor);
        let prefix = self.options().prefix.trim_end_matches('/').to_string();
        let mounted = if prefix.is_empty() {
            api
        } else {
            OpenApiRouter::new().nest(&prefix, api)
        };
        mounted.routes(routes!(routes::meta::jwks))
    }
}

/// The whole HTTP server: [`MfaGate::router`], `/healthz`, `/openapi.json`, the pages behind the
/// e-mails' links ([`link_pages`]), the account portal at `/ui/` and the API reference at
/// `/docs` (unless [`GateOptions::ui`] is off), a JSON 404 for unknown paths, a request id
/// (`x-request-id`, taken from the client or generated) on every log line and response, and a
/// log line per answer.
pub fn app(gate: &MfaGate) -> Router {
    app_with(gate, Router::new())
}

/// [`app`] with a host app's own routes merged in before the layers, so that they get the
/// request ids, the log line per answer and the JSON 404 too. (`/openapi.json` describes
/// mfagate's routes, not the host's.)
pub fn app_with(gate: &MfaGate, routes: Router) -> Router {
    let mut documented = gate.documented_router();
    if gate.options().ui {
        documented = documented
            .merge(routes::ui::router())
            .merge(routes::docs::router());
    }
    let (site, document) = documented
        .merge(routes::link_pages::router())
        .routes(routes!(routes::meta::healthz))
        .routes(routes!(routes::meta::openapi_json))
        .split_for_parts();
    // Made once: each request for it is a copy of a reference.
    let document = openapi::finish(document).to_json().unwrap_or_else(|error| {
        // Our own types: a failure is a bug, and the server still serves everything else.
        tracing::error!(%error, "the OpenAPI document did not serialise");
        "{}".into()
    });
    site.layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::map_response(framework_errors_as_json))
        .layer(axum::Extension(routes::meta::OpenApiDocument(
            axum::body::Bytes::from(document),
        )))
        .with_state(gate.clone())
        .merge(routes)
        .fallback(not_found)
        .layer(middleware::from_fn(count_request))
        .layer(middleware::map_response(framework_errors_as_json))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // The path only: query strings are the client's and may hold anything.
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %request_id,
                    )
                })
                // One line per answer at info, inside the span (so with method, path and request
                // id): a 400, 415 or 429 leaves a trace as well as a 200.
                .on_response(
                    |response: &Response, latency: std::time::Duration, _: &tracing::Span| {
                        tracing::info!(
                            status = response.status().as_u16(),
                            ms = format_args!("{:.1}", latency.as_secs_f64() * 1000.0),
                            "answered"
                        );
                    },
                )
                // A 5xx is already logged where it happened (with its reason); the layer's own
                // failure line would only repeat it.
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::x_request_id(NewRequestId))
        .layer(middleware::map_request(drop_unsafe_request_id))
}

/// `GET /verify-email`, `/set-password` and `/reset-password` (each with `?key=...`): small
/// pages that post the key from an e-mail's link to the API and say what happened. Merge them
/// into your router when the links in e-mails (`link_base_url`) point at your app and it has no
/// pages of its own for these paths.
pub fn link_pages(gate: &MfaGate) -> Router {
    let (pages, _) = routes::link_pages::router().split_for_parts();
    pages.with_state(gate.clone())
}

/// Counts each request by its route (the pattern, never the path: `/auth/sessions/{id}`),
/// method and status, with its duration: `mfagate_http_requests_total` and
/// `mfagate_http_request_duration_seconds`.
async fn count_request(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    // The methods HTTP defines; anything else one label, so a client cannot mint labels.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("mfagate_http_requests_total",
        "route" => route.clone(), "method" => method, "status" => status)
    .increment(1);
    metrics::histogram!("mfagate_http_request_duration_seconds",
        "route" => route, "method" => method)
    .record(started.elapsed().as_secs_f64());
    response
}

/// A client's `X-Request-Id` goes into every log line of its request, so only ids of a safe
/// shape (1 to 64 of `A-Z a-z 0-9 . _ -`) are kept; any other is dropped and a fresh one made,
/// so a crafted id cannot forge log fields.
async fn drop_unsafe_request_id(
    mut request: Request<axum::body::Body>,
) -> Request<axum::body::Body> {
    let safe = |value: &HeaderValue| {
        let bytes = value.as_bytes();
        (1..=64).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let headers = request.headers_mut();
    let values: Vec<&HeaderValue> = headers.get_all("x-request-id").iter().collect();
    if values.len() > 1 || values.first().is_some_and(|v| !safe(v)) {
        headers.remove("x-request-id");
    }
    request
}

/// Generates the `X-Request-Id` of a request that came without one (`secret::request_id`).
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        axum::http::HeaderValue::from_str(&mfagate_core::secret::request_id())
            .ok()
            .map(RequestId::new)
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see the API documentation",
    )
}

async fn reject_when_mfa_disabled(
    State(gate): State<MfaGate>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Response {
    if gate.config().mode == MfaMode::Disabled {
        return ApiError::from(core::Error::MfaDisabled).into_response();
    }
    next.run(request).await
}

/// Gives the framework's own error responses (405, 413, ...) the contract's JSON shape.
async fn framework_errors_as_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint; see the API documentation"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "http_method_not_allowed",
            "this endpoint does not take that HTTP method; see the Allow header",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is over 64 KiB"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as JSON with 'Content-Type: application/json'",
        ),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        s if s.is_server_error() => (
            "internal_error",
            "something went wrong on our side; it has been logged",
        ),
        _ => ("invalid_request", "the request could not be understood"),
    };
    let allow: Option<HeaderValue> = response.headers().get(header::ALLOW).cloned();
    let mut rewritten = ApiError::new(status, code, detail).into_response();
    if let Some(allow) = allow {
        rewritten.headers_mut().insert(header::ALLOW, allow);
    }
    rewritten
}
