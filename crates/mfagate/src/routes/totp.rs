//! TOTP enrolment and management, status, recovery codes, preferred method.

use crate::wire::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use mfagate_core::service::{Enroller, TotpEnrollment};
use mfagate_core::Error;
use serde_json::{json, Map};

use super::token_response;
use crate::error::{ApiError, ApiResult};
use crate::extract::{bearer_token, AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::wire::{
    ActivateRequest, CodeRequest, DetailBody, MethodRequest, RecoveryCodesBody, StatusBody,
};

/// The caller of the activation endpoints: an access token, or in `required` mode a setup token.
pub struct EnrollerAuth(pub Enroller);

impl FromRequestParts<MfaGate> for EnrollerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        gate: &MfaGate,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(Error::NotAuthenticated)?;
        Ok(Self(
            gate.gatekeeper()
                .authenticate_enroller(token, gate.now())
                .await?,
        ))
    }
}

pub async fn begin_activation(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    EnrollerAuth(enroller): EnrollerAuth,
) -> ApiResult<Json<TotpEnrollment>> {
    Ok(Json(
        gate.gatekeeper()
            .begin_totp(&enroller, &gate.context(client))
            .await?,
    ))
}

pub async fn activate(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    EnrollerAuth(enroller): EnrollerAuth,
    JsonBody(body): JsonBody<ActivateRequest>,
) -> ApiResult<Response> {
    let activated = gate
        .gatekeeper()
        .activate_totp(
            &enroller,
            &body.activation_token,
            &body.code,
            &gate.context(client),
        )
        .await?;
    let mut fields = Map::new();
    fields.insert("recovery_codes".into(), json!(activated.recovery_codes));
    // Always a token pair: enrolment ended every session that began without a second factor
    // (the caller's too) and opened a new one with it.
    Ok(token_response(
        &gate,
        StatusCode::OK,
        activated.tokens,
        fields,
    ))
}

pub async fn deactivate(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(body): JsonBody<CodeRequest>,
) -> ApiResult<Json<DetailBody>> {
    gate.gatekeeper()
        .deactivate_totp(&auth.user_id, &body.code, &gate.context(client))
        .await?;
    Ok(Json(DetailBody {
        detail: "TOTP is off; its secret and every recovery code are deleted",
    }))
}

pub async fn status(
    State(gate): State<MfaGate>,
    auth: AuthenticatedUser,
) -> ApiResult<Json<StatusBody>> {
    Ok(Json(gate.gatekeeper().status(&auth.user_id).await?.into()))
}

pub async fn recovery_codes(
    State(gate): State<MfaGate>,
    auth: AuthenticatedUser,
) -> ApiResult<Json<RecoveryCodesBody>> {
    Ok(Json(RecoveryCodesBody {
        recovery_codes: gate
            .gatekeeper()
            .recovery_codes(&auth.claims, gate.now())
            .await?,
    }))
}

pub async fn regenerate_recovery_codes(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(body): JsonBody<CodeRequest>,
) -> ApiResult<Json<RecoveryCodesBody>> {
    let codes = gate
        .gatekeeper()
        .regenerate_recovery_codes(&auth.user_id, &body.code, &gate.context(client))
        .await?;
    Ok(Json(RecoveryCodesBody {
        recovery_codes: codes,
    }))
}

pub async fn set_method(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(body): JsonBody<MethodRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let chosen = gate
        .gatekeeper()
        .set_preferred_method(&auth.claims, &body.method, &gate.context(client))
        .await?;
    Ok(Json(json!({ "preferred_method": chosen })))
}

pub(crate) fn router() -> Router<MfaGate> {
    Router::new()
        .route("/mfa/totp/activate", get(begin_activation).post(activate))
        .route("/mfa/totp/deactivate", post(deactivate))
        .route("/mfa/status", get(status))
        .route("/mfa/recovery-codes", get(recovery_codes))
        .route(
            "/mfa/recovery-codes/regenerate",
            post(regenerate_recovery_codes),
        )
        .route("/mfa/method", post(set_method))
}
