//! A login without a password: `POST /passkey/begin` and `POST /passkey/finish`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::Map;

use super::{counted_per_ip, token_response};
use crate::error::ApiResult;
use crate::extract::{ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::{Json, PasskeyBeginRequest, PasskeyFinishRequest};
use mfagate_core::service::PasskeyBegun;

/// Both count against the caller's per-IP budget, like a login.
pub(crate) fn router(gate: &MfaGate) -> Router<MfaGate> {
    let routes = Router::new()
        .route("/passkey/begin", post(begin))
        .route("/passkey/finish", post(finish));
    counted_per_ip(gate, routes)
}

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

pub async fn finish(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<PasskeyFinishRequest>,
) -> ApiResult<Response> {
    let pair = gate
        .gatekeeper()
        .passkey_finish(&body.passkey_token, &body.credential, &gate.context(client))
        .await?;
    Ok(token_response(&gate, StatusCode::OK, pair, Map::new()))
}
