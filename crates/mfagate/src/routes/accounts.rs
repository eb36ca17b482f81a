//! Register, log in, refresh, log out, who am I.

use crate::wire::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mfagate_core::service::RegisterOutcome;
use serde_json::{json, Map};

use axum::routing::{get, post};
use axum::Router;

use super::{counted_per_ip, login_response, refresh_from_cookie, token_response, REFRESH_COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::{DetailBody, LoginRequest, RefreshRequest, RegisterRequest, UserBody};

pub async fn register(
    State(gate): State<MfaGate>,
    client: ClientAddr,
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
            login_response(&gate, StatusCode::CREATED, outcome, fields)
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

pub async fn login(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    let ctx = gate.context(client);
    let device = body
        .device_token
        .or_else(|| super::cookie(&gate, &headers, super::DEVICE_COOKIE));
    let outcome = gate
        .gatekeeper()
        .login(&body.username, &body.password, device.as_deref(), &ctx)
        .await?;
    Ok(login_response(&gate, StatusCode::OK, outcome, Map::new()))
}

fn refresh_token(gate: &MfaGate, headers: &HeaderMap, body: RefreshRequest) -> ApiResult<String> {
    body.refresh
        .or_else(|| refresh_from_cookie(gate, headers))
        .ok_or_else(|| ApiError::invalid_request("missing field `refresh`"))
}

pub async fn refresh(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> ApiResult<Response> {
    let token = refresh_token(&gate, &headers, body)?;
    let pair = gate
        .gatekeeper()
        .refresh(&token, &gate.context(client))
        .await?;
    Ok(token_response(&gate, StatusCode::OK, pair, Map::new()))
}

pub async fn logout(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> ApiResult<Response> {
    let token = refresh_token(&gate, &headers, body)?;
    gate.gatekeeper()
        .logout(&token, &gate.context(client))
        .await?;
    let mut response = Json(DetailBody {
        detail: "logged out: this session's refresh tokens are revoked",
    })
    .into_response();
    if gate.options().refresh_cookie {
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
pub(crate) fn router(gate: &MfaGate) -> Router<MfaGate> {
    let counted = Router::new()
        .route("/register", post(register))
        .route("/login", post(login));
    counted_per_ip(gate, counted)
        .route("/token/refresh", post(refresh))
        .route("/logout", post(logout))
        .route("/user", get(current_user))
}
