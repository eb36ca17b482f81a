//! A login without a password: `POST /passkey/begin` and `POST /passkey/finish`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Map;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{counted_per_ip, token_response, Delivery};
use crate::error::ApiResult;
use crate::extract::{ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::openapi::{ErrorBody, TokenPairBody};
use crate::wire::{Json, PasskeyBeginRequest, PasskeyFinishRequest};
use mfagate_core::service::PasskeyBegun;

/// Both count against the caller's per-IP budget, like a login.
pub(crate) fn router(gate: &MfaGate) -> OpenApiRouter<MfaGate> {
    let routes = OpenApiRouter::new()
        .routes(routes!(begin))
        .routes(routes!(finish));
    counted_per_ip(gate, routes)
}

#[utoipa::path(post, path = "/passkey/begin", tag = "passkeys", operation_id = "passkey_begin",
    request_body(content = PasskeyBeginRequest, description = "`{}` for a discoverable passkey, or `{\"username\"}`"),
    responses(
        (status = 200, description = "Options for `navigator.credentials.get` and the token that finishes the login", body = PasskeyBegun),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 429, description = "`throttled`", body = ErrorBody),
    ))]
pub async fn begin(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<PasskeyBeginRequest>,
) -> ApiResult<Json<PasskeyBegun>> {
    let begun = gate
        .gatekeeper()
        .passkey_begin(body.username.as_deref(), &gate.context(client))
        .await?;
    Ok(Json(begun))
}

#[utoipa::path(post, path = "/passkey/finish", tag = "passkeys", operation_id = "passkey_finish",
    request_body(content = PasskeyFinishRequest, description = "The token from `begin` and `credential.toJSON()`"),
    responses(
        (status = 200, description = "A token pair, amr `[\"hwk\", \"mfa\"]`", body = TokenPairBody),
        (status = 400, description = "`invalid_request`, `invalid_credential` (a counter that did not grow)", body = ErrorBody),
        (status = 401, description = "`invalid_token` (unknown, used or expired passkey token), `invalid_credential` (the passkey is refused)", body = ErrorBody),
        (status = 403, description = "`email_not_verified`", body = ErrorBody),
        (status = 429, description = "`throttled`", body = ErrorBody),
    ))]
pub async fn finish(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
    JsonBody(body): JsonBody<PasskeyFinishRequest>,
) -> ApiResult<Response> {
    let pair = gate
        .gatekeeper()
        .passkey_finish(&body.passkey_token, &body.credential, &gate.context(client))
        .await?;
    Ok(token_response(
        &gate,
        delivery,
        StatusCode::OK,
        pair,
        Map::new(),
    ))
}
