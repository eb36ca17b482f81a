//! Address verification, invitations, password change and reset: the flows of mailed keys.

use crate::wire::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mfagate_core::Error;
use serde_json::{json, Map, Value};

use axum::routing::post;
use axum::Router;

use super::{counted_per_ip, login_response};
use crate::error::{ApiError, ApiResult};
use crate::extract::{bearer_token, AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::{
    EmailRequest, KeyRequest, OptionalEmailRequest, PasswordChangeRequest,
    PasswordResetConfirmRequest, SetPasswordRequest,
};

fn detail(text: &str) -> Json<Value> {
    Json(json!({ "detail": text }))
}

pub async fn verify_email(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<KeyRequest>,
) -> ApiResult<Json<Value>> {
    gate.gatekeeper()
        .verify_email(&body.key, &gate.context(client))
        .await?;
    Ok(detail("the e-mail address is verified"))
}

/// With a Bearer token: for the caller. Without: for `{"email"}`, answering the same whether or
/// not the address is known, and without waiting for the mail, so timing tells nothing.
pub async fn resend_verification(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    headers: HeaderMap,
    JsonBody(body): JsonBody<OptionalEmailRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let ctx = gate.context(client);
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        let token = bearer_token(&headers).ok_or(Error::NotAuthenticated)?;
        let claims = gate.gatekeeper().authenticate(token, gate.now()).await?;
        gate.gatekeeper()
            .resend_verification_for_user(&claims.sub, &ctx)
            .await?;
    } else {
        let address = body.email.ok_or_else(|| {
            ApiError::invalid_request("missing field `email` (or send a Bearer token)")
        })?;
        let background = gate.clone();
        tokio::spawn(async move {
            background
                .gatekeeper()
                .resend_verification_for_email(&address, &ctx)
                .await;
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        detail("if the address is registered and unverified, a verification e-mail is on its way"),
    ))
}

pub async fn set_password(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<SetPasswordRequest>,
) -> ApiResult<Response> {
    let outcome = gate
        .gatekeeper()
        .set_password_with_key(&body.key, &body.password, &gate.context(client))
        .await?;
    Ok(login_response(&gate, StatusCode::OK, outcome, Map::new()))
}

pub async fn change_password(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(body): JsonBody<PasswordChangeRequest>,
) -> ApiResult<Json<Value>> {
    gate.gatekeeper()
        .change_password(
            &auth.user_id,
            &body.old_password,
            &body.new_password,
            &gate.context(client),
        )
        .await?;
    Ok(detail("password changed; every session was logged out"))
}

pub async fn request_password_reset(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<EmailRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let ctx = gate.context(client);
    let background = gate.clone();
    tokio::spawn(async move {
        background
            .gatekeeper()
            .request_password_reset(&body.email, &ctx)
            .await;
    });
    Ok((
        StatusCode::ACCEPTED,
        detail("if the address is registered, a reset e-mail is on its way"),
    ))
}

pub async fn confirm_password_reset(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<PasswordResetConfirmRequest>,
) -> ApiResult<Json<Value>> {
    gate.gatekeeper()
        .confirm_password_reset(&body.key, &body.new_password, &gate.context(client))
        .await?;
    Ok(detail(
        "password reset; log in with the new password (your second factor is unchanged)",
    ))
}

/// The mailbox routes; those that mail or hash (resend, reset) count against the caller's
/// per-IP budget.
pub(crate) fn router(gate: &MfaGate) -> Router<MfaGate> {
    let counted = Router::new()
        .route("/register/resend-verification", post(resend_verification))
        .route("/password/reset", post(request_password_reset));
    counted_per_ip(gate, counted)
        .route("/register/verify-email", post(verify_email))
        .route("/register/set-password", post(set_password))
        .route("/password/change", post(change_password))
        .route("/password/reset/confirm", post(confirm_password_reset))
}
