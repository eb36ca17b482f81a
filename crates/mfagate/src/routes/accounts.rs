//! Register, log in, refresh, log out, who am I.

use crate::wire::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mfagate_core::service::RegisterOutcome;
use serde_json::{json, Map};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{counted_per_ip, login_response, token_response, Delivery, REFRESH_COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::openapi::{ErrorBody, LoginAnswer, RegisteredBody, TokenPairBody};
use crate::wire::{DetailBody, LoginRequest, RefreshRequest, RegisterRequest, UserBody};

#[utoipa::path(post, path = "/register", tag = "accounts", operation_id = "register",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The account, and tokens, a setup token (`required` mode) or a note that the verification e-mail is sent", body = RegisteredBody),
        (status = 400, description = "`validation_error` (see `fields`), `invalid_request`", body = ErrorBody),
        (status = 409, description = "`already_exists`: the username or e-mail is taken", body = ErrorBody),
        (status = 429, description = "`throttled` (per IP); see `Retry-After`", body = ErrorBody),
    ))]
pub async fn register(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> ApiResult<Response> {
    let ctx = gate.context(client);
    let (user, outcome) = gate
        .gatekeeper()
        .register(&body.username, &body.email, &body.password, &ctx)
        .await?;
    let mut fields = Map::new();
    fields.insert("user".into(), json!(UserBody::new(user, false)));
    Ok(match outcome {
        RegisterOutcome::LoggedIn(outcome) => {
            login_response(&gate, delivery, StatusCode::CREATED, outcome, fields)
        }
        RegisterOutcome::VerificationSent { sent } => {
            let detail = if sent {
                "verification e-mail sent"
            } else {
                "the verification e-mail could not be sent; ask for another at /auth/register/resend-verification"
            };
            fields.insert("detail".into(), json!(detail));
            (StatusCode::CREATED, Json(fields)).into_response()
        }
    })
}

#[utoipa::path(post, path = "/login", tag = "accounts", operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens (no second factor due, or a remembered device), a challenge, or a setup token", body = LoginAnswer),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown user or wrong password (the same answer)", body = ErrorBody),
        (status = 403, description = "`email_not_verified`; `cross_origin` (a device cookie sent from another site's page)", body = ErrorBody),
        (status = 429, description = "`throttled` (per account or IP); see `Retry-After`", body = ErrorBody),
    ))]
pub async fn login(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    let ctx = gate.context(client);
    let device = match body.device_token {
        Some(token) => Some(token),
        None => delivery.cookie(&gate, &headers, super::DEVICE_COOKIE)?,
    };
    let outcome = gate
        .gatekeeper()
        .login(&body.username, &body.password, device.as_deref(), &ctx)
        .await?;
    Ok(login_response(
        &gate,
        delivery,
        StatusCode::OK,
        outcome,
        Map::new(),
    ))
}

/// The refresh token: the body's, or in cookie mode the cookie's.
fn refresh_token(
    gate: &MfaGate,
    delivery: Delivery,
    headers: &HeaderMap,
    body: RefreshRequest,
) -> ApiResult<String> {
    match body.refresh {
        Some(token) => Ok(token),
        None => delivery
            .cookie(gate, headers, REFRESH_COOKIE)?
            .ok_or_else(|| ApiError::invalid_request("missing field `refresh`")),
    }
}

#[utoipa::path(post, path = "/token/refresh", tag = "accounts", operation_id = "refresh",
    request_body(content = RefreshRequest, description = "`{\"refresh\"}`, or `{}` in cookie mode"),
    security((), ("refresh_cookie" = [])),
    responses(
        (status = 200, description = "A new token pair; the old refresh token is spent", body = TokenPairBody),
        (status = 400, description = "`invalid_request`: no refresh token", body = ErrorBody),
        (status = 401, description = "`invalid_token`: unknown, expired, revoked or reused (reuse revokes the whole session)", body = ErrorBody),
        (status = 403, description = "`cross_origin`: a cookie sent from another site's page", body = ErrorBody),
    ))]
pub async fn refresh(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> ApiResult<Response> {
    let token = refresh_token(&gate, delivery, &headers, body)?;
    let pair = gate
        .gatekeeper()
        .refresh(&token, &gate.context(client))
        .await?;
    Ok(token_response(
        &gate,
        delivery,
        StatusCode::OK,
        pair,
        Map::new(),
    ))
}

#[utoipa::path(post, path = "/logout", tag = "accounts", operation_id = "logout",
    request_body(content = RefreshRequest, description = "`{\"refresh\"}`, or `{}` in cookie mode"),
    security((), ("refresh_cookie" = [])),
    responses(
        (status = 200, description = "The session's refresh tokens are revoked", body = DetailBody),
        (status = 400, description = "`invalid_request`: no refresh token", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`cross_origin`: a cookie sent from another site's page", body = ErrorBody),
    ))]
pub async fn logout(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> ApiResult<Response> {
    let token = refresh_token(&gate, delivery, &headers, body)?;
    gate.gatekeeper()
        .logout(&token, &gate.context(client))
        .await?;
    let mut response = Json(DetailBody {
        detail: "logged out: this session's refresh tokens are revoked",
    })
    .into_response();
    if delivery.cookies() {
        let clear = format!(
            "{REFRESH_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path={}; Max-Age=0",
            super::cookie_path(&gate)
        );
        if let Ok(value) = clear.parse() {
            response
                .headers_mut()
                .insert(axum::http::header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

#[utoipa::path(get, path = "/user", tag = "accounts", operation_id = "current_user",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
    ))]
pub async fn current_user(
    State(gate): State<MfaGate>,
    auth: AuthenticatedUser,
) -> ApiResult<Json<UserBody>> {
    let user = gate.gatekeeper().user(&auth.user_id).await?;
    let mfa_enabled = gate.gatekeeper().mfa_enabled(&user);
    Ok(Json(UserBody::new(user, mfa_enabled)))
}

/// Registering and logging in cost a password hash each: they count against the caller's
/// per-IP budget.
pub(crate) fn router(gate: &MfaGate) -> OpenApiRouter<MfaGate> {
    let counted = OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login));
    counted_per_ip(gate, counted)
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(current_user))
}
