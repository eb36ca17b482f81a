//! Health and public keys.

use crate::wire::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::gate::MfaGate;

pub async fn healthz(State(gate): State<MfaGate>) -> Response {
    match gate.gatekeeper().store().ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "error": "unavailable",
                    "detail": "the database does not answer"
                })),
            )
                .into_response()
        }
    }
}

/// Public keys for verifying access tokens (EdDSA). HS256 tokens have none to publish.
pub async fn jwks(State(gate): State<MfaGate>) -> Json<serde_json::Value> {
    Json(gate.gatekeeper().jwks(gate.now()))
}
