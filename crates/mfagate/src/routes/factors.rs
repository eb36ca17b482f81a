//! Several factors per user: `GET/POST /mfa/factors`, `POST /mfa/factors/{id}/verify`,
//! `PATCH` and `DELETE /mfa/factors/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use mfagate_core::service::FactorView;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::token_response;
use super::totp::EnrollerAuth;
use crate::error::ApiResult;
use crate::extract::{AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::{proof, rfc3339, DetailBody, Json};

/// A factor on the wire.
#[derive(Debug, Serialize)]
pub struct FactorBody {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Only on a begun enrolment (`false`): listed factors are verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

impl From<FactorView> for FactorBody {
    fn from(factor: FactorView) -> Self {
        Self {
            id: factor.id,
            kind: factor.kind.as_str(),
            name: factor.name,
            created_at: rfc3339(factor.created_at),
            last_used_at: factor.last_used_at.and_then(rfc3339),
            verified: (!factor.verified).then_some(false),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct NewFactorRequest {
    pub kind: String,
    pub name: String,
}

/// `code` for TOTP, `credential` (`credential.toJSON()`) for a passkey.
#[derive(Deserialize)]
pub struct FactorProofRequest {
    pub code: Option<String>,
    pub credential: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct RenameRequest {
    pub name: String,
}

pub async fn list(State(gate): State<MfaGate>, auth: AuthenticatedUser) -> ApiResult<Json<Value>> {
    let factors: Vec<FactorBody> = gate
        .gatekeeper()
        .list_factors(&auth.user_id)
        .await?
        .into_iter()
        .map(FactorBody::from)
        .collect();
    Ok(Json(json!({ "factors": factors })))
}

pub async fn begin(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    EnrollerAuth(enroller): EnrollerAuth,
    JsonBody(body): JsonBody<NewFactorRequest>,
) -> ApiResult<Response> {
    let begun = gate
        .gatekeeper()
        .begin_factor(&enroller, &body.kind, &body.name, &gate.context(client))
        .await?;
    let mut answer = Map::new();
    answer.insert("factor".into(), json!(FactorBody::from(begun.factor)));
    if let Some(Value::Object(more)) = begun.totp.map(|setup| json!(setup)) {
        answer.extend(more);
    }
    if let Some(options) = begun.webauthn_options {
        answer.insert("options".into(), options);
    }
    Ok((StatusCode::CREATED, Json(Value::Object(answer))).into_response())
}

pub async fn verify(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    EnrollerAuth(enroller): EnrollerAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<FactorProofRequest>,
) -> ApiResult<Response> {
    let verified = gate
        .gatekeeper()
        .verify_factor(
            &enroller,
            &id,
            &proof(body.code, body.credential)?,
            &gate.context(client),
        )
        .await?;
    let mut fields = Map::new();
    fields.insert("factor".into(), json!(FactorBody::from(verified.factor)));
    if let Some(codes) = verified.recovery_codes {
        fields.insert("recovery_codes".into(), json!(codes));
    }
    // Always a token pair: enrolment ended every session that began without a second factor
    // (the caller's too) and opened a new one with it.
    Ok(token_response(
        &gate,
        StatusCode::OK,
        verified.tokens,
        fields,
    ))
}

pub async fn rename(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RenameRequest>,
) -> ApiResult<Json<Value>> {
    let factor = gate
        .gatekeeper()
        .rename_factor(&auth.user_id, &id, &body.name, &gate.context(client))
        .await?;
    Ok(Json(json!({ "factor": FactorBody::from(factor) })))
}

pub async fn remove(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    Path(id): Path<String>,
) -> ApiResult<Json<DetailBody>> {
    gate.gatekeeper()
        .remove_factor(&auth.claims, &id, &gate.context(client))
        .await?;
    Ok(Json(DetailBody {
        detail: "the factor is removed",
    }))
}

pub(crate) fn router() -> Router<MfaGate> {
    Router::new()
        .route("/mfa/factors", get(list).post(begin))
        .route("/mfa/factors/{id}/verify", post(verify))
        .route("/mfa/factors/{id}", patch(rename).delete(remove))
}
