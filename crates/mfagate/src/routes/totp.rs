//! TOTP enrolment and management, status, recovery codes, preferred method.

use crate::wire::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use mfagate_core::service::{Enroller, TotpEnrollment};
use mfagate_core::Error;
use serde::Serialize;
use serde_json::{json, Map};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{token_response, Delivery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{bearer_token, AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::openapi::{ErrorBody, TokenPairBody};
use crate::wire::{
    ActivateRequest, CodeRequest, DetailBody, MethodRequest, PreferredMethodBody,
    RecoveryCodesBody, StatusBody,
};

/// `POST /mfa/totp/activate`: the new session's tokens and the recovery codes, shown once.
#[derive(Serialize, ToSchema)]
pub struct ActivatedBody {
    #[serde(flatten)]
    pub tokens: TokenPairBody,
    pub recovery_codes: Vec<String>,
}

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

#[utoipa::path(get, path = "/mfa/totp/activate", tag = "totp", operation_id = "totp_begin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A new secret, its `otpauth://` URL and QR code, and the activation token", body = TotpEnrollment),
        (status = 401, description = "`not_authenticated`, `invalid_token` (an access token, or a setup token in `required` mode)", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
        (status = 409, description = "`totp_already_enabled`", body = ErrorBody),
    ))]
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

#[utoipa::path(post, path = "/mfa/totp/activate", tag = "totp", operation_id = "totp_activate",
    security(("bearer" = [])), request_body = ActivateRequest,
    responses(
        (status = 200, description = "TOTP is on: recovery codes (shown once) and a new session with the factor", body = ActivatedBody),
        (status = 400, description = "`invalid_code`, `invalid_activation_token`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token` (an access token, or a setup token in `required` mode)", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
        (status = 409, description = "`totp_already_enabled`", body = ErrorBody),
    ))]
pub async fn activate(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
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
        delivery,
        StatusCode::OK,
        activated.tokens,
        fields,
    ))
}

#[utoipa::path(post, path = "/mfa/totp/deactivate", tag = "totp", operation_id = "totp_deactivate",
    security(("bearer" = [])), request_body = CodeRequest,
    responses(
        (status = 200, description = "TOTP is off; its secret and the recovery codes are deleted", body = DetailBody),
        (status = 400, description = "`invalid_code`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`mfa_enforced` (mode `required`), `mfa_disabled`", body = ErrorBody),
        (status = 409, description = "`totp_not_enabled`", body = ErrorBody),
    ))]
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

#[utoipa::path(get, path = "/mfa/status", tag = "totp", operation_id = "mfa_status",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's second factors", body = StatusBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
    ))]
pub async fn status(
    State(gate): State<MfaGate>,
    auth: AuthenticatedUser,
) -> ApiResult<Json<StatusBody>> {
    Ok(Json(gate.gatekeeper().status(&auth.user_id).await?.into()))
}

#[utoipa::path(get, path = "/mfa/recovery-codes", tag = "totp", operation_id = "recovery_codes",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The unused recovery codes", body = RecoveryCodesBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`; `reauthentication_required` when the second factor is not recent (see `WWW-Authenticate`, RFC 9470)", body = ErrorBody),
        (status = 409, description = "`totp_not_enabled`: no second factor, so no recovery codes", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
    ))]
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

#[utoipa::path(post, path = "/mfa/recovery-codes/regenerate", tag = "totp", operation_id = "regenerate_recovery_codes",
    security(("bearer" = [])), request_body(content = CodeRequest, description = "A current TOTP code"),
    responses(
        (status = 200, description = "A new set; the old codes are dead", body = RecoveryCodesBody),
        (status = 400, description = "`invalid_code`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
        (status = 409, description = "`totp_not_enabled`", body = ErrorBody),
    ))]
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

#[utoipa::path(post, path = "/mfa/method", tag = "totp", operation_id = "set_preferred_method",
    security(("bearer" = [])), request_body = MethodRequest,
    responses(
        (status = 200, description = "The method offered first at login", body = PreferredMethodBody),
        (status = 400, description = "`invalid_method`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
    ))]
pub async fn set_method(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    JsonBody(body): JsonBody<MethodRequest>,
) -> ApiResult<Json<PreferredMethodBody>> {
    let chosen = gate
        .gatekeeper()
        .set_preferred_method(&auth.claims, &body.method, &gate.context(client))
        .await?;
    Ok(Json(PreferredMethodBody {
        preferred_method: chosen,
    }))
}

pub(crate) fn router() -> OpenApiRouter<MfaGate> {
    OpenApiRouter::new()
        .routes(routes!(begin_activation, activate))
        .routes(routes!(deactivate))
        .routes(routes!(status))
        .routes(routes!(recovery_codes))
        .routes(routes!(regenerate_recovery_codes))
        .routes(routes!(set_method))
}
