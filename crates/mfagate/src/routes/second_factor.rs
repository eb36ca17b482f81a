//! The second step of a login: a code against the ephemeral token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Map;

use super::token_response;
use crate::error::ApiResult;
use crate::extract::{ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::VerifyRequest;

pub async fn verify(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    JsonBody(body): JsonBody<VerifyRequest>,
) -> ApiResult<Response> {
    gate.count_ip(client).await?;
    let pair = gate
        .gatekeeper()
        .verify_second_factor(&body.ephemeral_token, &body.code, &gate.context(client))
        .await?;
    Ok(token_response(&gate, StatusCode::OK, pair, Map::new()))
}
