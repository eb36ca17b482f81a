//! Health and public keys.

use crate::wire::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::gate::MfaGate;
use crate::openapi::ErrorBody;
use crate::wire::HealthBody;

#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses(
        (status = 200, description = "The database answers", body = HealthBody),
        (status = 503, description = "`unavailable`: the database does not answer", body = ErrorBody),
    ))]

pub async fn healthz(State(gate): State<MfaGate>) -> Response {
    match gate.gatekeeper().store().ping().await {
        Ok(()) => Json(HealthBody { status: "ok" }).into_response(),
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

/// The document [`crate::app`] serves, made once when the app is built.
#[derive(Clone)]
pub(crate) struct OpenApiDocument(pub axum::body::Bytes);

/// This document: every route the server answers, made from the handlers' annotations.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this server", body = serde_json::Value)))]
pub(crate) async fn openapi_json(
    axum::Extension(OpenApiDocument(document)): axum::Extension<OpenApiDocument>,
) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        document,
    )
        .into_response()
}

/// Public keys for verifying access tokens (EdDSA). HS256 tokens have none to publish.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations", operation_id = "jwks",
    responses((status = 200, description = "A JWK Set (RFC 7517): the EdDSA public keys; `{\"keys\": []}` under HS256",
        body = serde_json::Value)))]
pub async fn jwks(State(gate): State<MfaGate>) -> Json<serde_json::Value> {
    Json(gate.gatekeeper().jwks(gate.now()))
}
