//! The second step of a login: a code against the ephemeral token, and e-mailed codes for it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::{counted_per_ip, token_response_with_device};
use crate::error::ApiResult;
use crate::extract::{ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::{proof, EphemeralRequest, Json, VerifyRequest};

/// Both count against the caller's per-IP budget: each checks a code or sends a mail.
pub(crate) fn router(gate: &MfaGate) -> Router<MfaGate> {
    let routes = Router::new()
        .route("/mfa/verify", post(verify))
        .route("/mfa/email/send", post(send_email_code));
    counted_per_ip(gate, routes)
}

pub async fn verify(
    State(gate): State<MfaGate>,
    client: ClientAddr,
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
        passed.tokens,
        passed.device_token,
    ))
}

pub async fn send_email_code(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<EphemeralRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let expires_in = gate
        .gatekeeper()
        .request_email_code(&body.ephemeral_token, &gate.context(client))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "detail": "a sign-in code was e-mailed", "expires_in": expires_in })),
    ))
}
