//! The second step of a login: a code against the ephemeral token, and e-mailed codes for it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{counted_per_ip, token_response_with_device, Delivery};
use crate::error::ApiResult;
use crate::extract::{ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::openapi::{ErrorBody, VerifiedBody};
use crate::wire::{proof, EmailCodeSentBody, EphemeralRequest, Json, VerifyRequest};

/// Both count against the caller's per-IP budget: each checks a code or sends a mail.
pub(crate) fn router(gate: &MfaGate) -> OpenApiRouter<MfaGate> {
    let routes = OpenApiRouter::new()
        .routes(routes!(verify))
        .routes(routes!(send_email_code));
    counted_per_ip(gate, routes)
}

#[utoipa::path(post, path = "/mfa/verify", tag = "second factor", operation_id = "mfa_verify",
    request_body(content = VerifyRequest, description = "The challenge's `ephemeral_token` and a `code` (TOTP, e-mailed or recovery code) or a passkey's `credential`"),
    responses(
        (status = 200, description = "A token pair (and a device token when `remember_device`); the challenge is spent", body = VerifiedBody),
        (status = 400, description = "`invalid_code` / `invalid_credential` with `attempts_remaining`, `invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_token`: unknown, spent or expired challenge", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` (the challenge is dead), `throttled`", body = ErrorBody),
    ))]
pub async fn verify(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
    JsonBody(body): JsonBody<VerifyRequest>,
) -> ApiResult<Response> {
    let passed = gate
        .gatekeeper()
        .verify_second_factor(
            &body.ephemeral_token,
            &proof(body.code, body.credential)?,
            body.remember_device,
            &gate.context(client),
        )
        .await?;
    Ok(token_response_with_device(
        &gate,
        delivery,
        passed.tokens,
        passed.device_token,
    ))
}

#[utoipa::path(post, path = "/mfa/email/send", tag = "second factor", operation_id = "mfa_email_send",
    request_body = EphemeralRequest,
    responses(
        (status = 202, description = "A sign-in code was mailed to the verified address", body = EmailCodeSentBody),
        (status = 400, description = "`invalid_method`: e-mail is not a method of this challenge", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
        (status = 429, description = "`throttled`: too many sends; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "`email_unavailable`: the mail server cannot be reached", body = ErrorBody),
    ))]
pub async fn send_email_code(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<EphemeralRequest>,
) -> ApiResult<(StatusCode, Json<EmailCodeSentBody>)> {
    let expires_in = gate
        .gatekeeper()
        .request_email_code(&body.ephemeral_token, &gate.context(client))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EmailCodeSentBody {
            detail: "a sign-in code was e-mailed",
            expires_in,
        }),
    ))
}
