//! Several factors per user: `GET/POST /mfa/factors`, `POST /mfa/factors/{id}/verify`,
//! `PATCH` and `DELETE /mfa/factors/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mfagate_core::service::FactorView;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::totp::EnrollerAuth;
use super::{token_response, Delivery};
use crate::error::ApiResult;
use crate::extract::{AuthenticatedUser, ClientAddr, JsonBody};
use crate::gate::MfaGate;
use crate::openapi::{ErrorBody, TokenPairBody};
use crate::wire::{proof, rfc3339, DetailBody, Json};

/// A factor on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct FactorBody {
    /// Used in the paths below.
    pub id: String,
    /// `totp` or `webauthn`.
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

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewFactorRequest {
    /// `totp` or `webauthn`.
    pub kind: String,
    pub name: String,
}

/// `code` for TOTP, `credential` (`credential.toJSON()`) for a passkey.
#[derive(Deserialize, ToSchema)]
pub struct FactorProofRequest {
    pub code: Option<String>,
    pub credential: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RenameRequest {
    pub name: String,
}

/// `GET /mfa/factors`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FactorsBody {
    pub factors: Vec<FactorBody>,
}

/// `PATCH /mfa/factors/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FactorAnswer {
    pub factor: FactorBody,
}

/// `POST /mfa/factors`: the pending factor and what its device needs: for TOTP the secret, URL
/// and QR code; for a passkey the creation options.
#[derive(Serialize, ToSchema)]
pub struct FactorBegunBody {
    pub factor: FactorBody,
    /// TOTP: the base32 secret (also in the URL and QR code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// TOTP: the `otpauth://totp/...` URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_url: Option<String>,
    /// TOTP: the URL as a QR code, SVG.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code_svg: Option<String>,
    /// TOTP: the URL as a QR code, a `data:image/png;base64,` URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code_data_uri: Option<String>,
    /// A passkey: `PublicKeyCredentialCreationOptionsJSON` for `navigator.credentials.create`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
}

/// `POST /mfa/factors/{id}/verify`: the factor, the recovery codes when it was the first, and a
/// new session's tokens (enrolment ends the sessions that began without a second factor).
#[derive(Serialize, ToSchema)]
pub struct FactorVerifiedBody {
    pub factor: FactorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
    #[serde(flatten)]
    pub tokens: TokenPairBody,
}

#[utoipa::path(get, path = "/mfa/factors", tag = "factors", operation_id = "list_factors",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's verified factors", body = FactorsBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
    ))]
pub async fn list(
    State(gate): State<MfaGate>,
    auth: AuthenticatedUser,
) -> ApiResult<Json<FactorsBody>> {
    let factors: Vec<FactorBody> = gate
        .gatekeeper()
        .list_factors(&auth.user_id)
        .await?
        .into_iter()
        .map(FactorBody::from)
        .collect();
    Ok(Json(FactorsBody { factors }))
}

#[utoipa::path(post, path = "/mfa/factors", tag = "factors", operation_id = "begin_factor",
    security(("bearer" = [])), request_body = NewFactorRequest,
    responses(
        (status = 201, description = "A pending factor; verify it to use it", body = FactorBegunBody),
        (status = 400, description = "`validation_error`, `invalid_request`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`; `reauthentication_required` when the second factor is not recent (RFC 9470)", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
        (status = 409, description = "`too_many_factors`", body = ErrorBody),
    ))]
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
    let (secret, totp_url, qr_code_svg, qr_code_data_uri) = match begun.totp {
        Some(t) => (
            Some(t.secret),
            Some(t.totp_url),
            Some(t.qr_code_svg),
            Some(t.qr_code_data_uri),
        ),
        None => (None, None, None, None),
    };
    let answer = FactorBegunBody {
        factor: FactorBody::from(begun.factor),
        secret,
        totp_url,
        qr_code_svg,
        qr_code_data_uri,
        options: begun.webauthn_options,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[utoipa::path(post, path = "/mfa/factors/{id}/verify", tag = "factors", operation_id = "verify_factor",
    security(("bearer" = [])), params(("id" = String, Path, description = "The factor's id")), request_body = FactorProofRequest,
    responses(
        (status = 200, description = "The factor is verified and usable", body = FactorVerifiedBody),
        (status = 400, description = "`invalid_code`, `invalid_credential`, `invalid_request`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such pending factor (a passkey's ceremony is single use)", body = ErrorBody),
    ))]
pub async fn verify(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    delivery: Delivery,
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
        delivery,
        StatusCode::OK,
        verified.tokens,
        fields,
    ))
}

#[utoipa::path(patch, path = "/mfa/factors/{id}", tag = "factors", operation_id = "rename_factor",
    security(("bearer" = [])), params(("id" = String, Path, description = "The factor's id")), request_body = RenameRequest,
    responses(
        (status = 200, description = "The renamed factor", body = FactorAnswer),
        (status = 400, description = "`validation_error`", body = ErrorBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`", body = ErrorBody),
        (status = 403, description = "`mfa_disabled` (mode `disabled`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
pub async fn rename(
    State(gate): State<MfaGate>,
    client: ClientAddr,
    auth: AuthenticatedUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RenameRequest>,
) -> ApiResult<Json<FactorAnswer>> {
    let factor = gate
        .gatekeeper()
        .rename_factor(&auth.user_id, &id, &body.name, &gate.context(client))
        .await?;
    Ok(Json(FactorAnswer {
        factor: FactorBody::from(factor),
    }))
}

#[utoipa::path(delete, path = "/mfa/factors/{id}", tag = "factors", operation_id = "remove_factor",
    security(("bearer" = [])), params(("id" = String, Path, description = "The factor's id")),
    responses(
        (status = 200, description = "Removed; remembered devices are forgotten", body = DetailBody),
        (status = 401, description = "`not_authenticated`, `invalid_token`; `reauthentication_required` when the second factor is not recent (RFC 9470)", body = ErrorBody),
        (status = 403, description = "`mfa_enforced` (the last factor in mode `required`), `mfa_disabled`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
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

pub(crate) fn router() -> OpenApiRouter<MfaGate> {
    OpenApiRouter::new()
        .routes(routes!(list, begin))
        .routes(routes!(verify))
        .routes(routes!(rename, remove))
}
