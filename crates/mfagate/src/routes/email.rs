//! Address verification, invitations, password change and reset: the flows of mailed keys.

use crate::wire::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mfagate_core::Error;
use serde_json::Map;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{counted_per_ip, login_response, Delivery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{bearer_token, AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::openapi::{ErrorBody, LoginAnswer};
use crate::wire::{
    DetailBody, EmailRequest, KeyRequest, OptionalEmailRequest, PasswordChangeRequest,
    PasswordResetConfirmRequest, SetPasswordRequest,
};

fn detail(text: &'static str) -> Json<DetailBody> {
    Json(DetailBody { detail: text })
}

#[utoipa::path(post, path = "/register/verify-email", tag = "e-mail", operation_id = "verify_email",
    request_body(content = KeyRequest, description = "The key from the verification e-mail's link"),
    responses(
        (status = 200, description = "The address is verified", body = DetailBody),
        (status = 400, description = "`invalid_key`: unknown, used or expired", body = ErrorBody),
    ))]
pub async fn verify_email(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<KeyRequest>,
) -> ApiResult<Json<DetailBody>> {
    gate.gatekeeper()
        .verify_email(&body.key, &gate.context(client))
        .await?;
    Ok(detail("the e-mail address is verified"))
}

/// With a Bearer token: for the caller. Without: for `{"email"}`, answering the same whether or
/// not the address is known, and without waiting for the mail, so timing tells nothing.
#[utoipa::path(post, path = "/register/resend-verification", tag = "e-mail", operation_id = "resend_verification",
    request_body(content = OptionalEmailRequest, description = "`{\"email\"}`, or `{}` with a Bearer token"),
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "The same answer whether or not the address is known", body = DetailBody),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token` (with a Bearer token)", body = ErrorBody),
        (status = 429, description = "`throttled`", body = ErrorBody),
    ))]
pub async fn resend_verification(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    headers: HeaderMap,
    JsonBody(body): JsonBody<OptionalEmailRequest>,
) -> ApiResult<(StatusCode, Json<DetailBody>)> {
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

#[utoipa::path(post, path = "/register/set-password", tag = "e-mail", operation_id = "set_password",
    request_body(content = SetPasswordRequest, description = "The key from an invitation's link and the new password"),
    responses(
        (status = 200, description = "The invitation is accepted: what a login would answer", body = LoginAnswer),
        (status = 400, description = "`invalid_key`, `validation_error`", body = ErrorBody),
    ))]
pub async fn set_password(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
    JsonBody(body): JsonBody<SetPasswordRequest>,
) -> ApiResult<Response> {
    let outcome = gate
        .gatekeeper()
        .set_password_with_key(&body.key, &body.password, &gate.context(client))
        .await?;
    Ok(login_response(
        &gate,
        delivery,
        StatusCode::OK,
        outcome,
        Map::new(),
    ))
}

#[utoipa::path(post, path = "/password/change", tag = "e-mail", operation_id = "change_password",
    security(("bearer" = [])), request_body = PasswordChangeRequest,
    responses(
        (status = 200, description = "Changed; every session of the user is ended", body = DetailBody),
        (status = 400, description = "`invalid_password` (the old one is wrong), `validation_error`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 429, description = "`throttled`", body = ErrorBody),
    ))]
pub async fn change_password(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(body): JsonBody<PasswordChangeRequest>,
) -> ApiResult<Json<DetailBody>> {
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

#[utoipa::path(post, path = "/password/reset", tag = "e-mail", operation_id = "request_password_reset",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "The same answer whether or not the address is known", body = DetailBody),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 429, description = "`throttled`", body = ErrorBody),
    ))]
pub async fn request_password_reset(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<EmailRequest>,
) -> ApiResult<(StatusCode, Json<DetailBody>)> {
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

#[utoipa::path(post, path = "/password/reset/confirm", tag = "e-mail", operation_id = "confirm_password_reset",
    request_body(content = PasswordResetConfirmRequest, description = "The key from the reset e-mail's link and the new password"),
    responses(
        (status = 200, description = "Reset; every session is ended; log in with the new password", body = DetailBody),
        (status = 400, description = "`invalid_key`, `validation_error`", body = ErrorBody),
    ))]
pub async fn confirm_password_reset(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<PasswordResetConfirmRequest>,
) -> ApiResult<Json<DetailBody>> {
    gate.gatekeeper()
        .confirm_password_reset(&body.key, &body.new_password, &gate.context(client))
        .await?;
    Ok(detail(
        "password reset; log in with the new password (your second factor is unchanged)",
    ))
}

/// The mailbox routes; those that mail or hash (resend, reset) count against the caller's
/// per-IP budget.
pub(crate) fn router(gate: &MfaGate) -> OpenApiRouter<MfaGate> {
    let counted = OpenApiRouter::new()
        .routes(routes!(resend_verification))
        .routes(routes!(request_password_reset));
    counted_per_ip(gate, counted)
        .routes(routes!(verify_email))
        .routes(routes!(set_password))
        .routes(routes!(change_password))
        .routes(routes!(confirm_password_reset))
}
