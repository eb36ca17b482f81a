//! The OpenAPI 3.1 document (`GET /openapi.json`).
//!
//! Nothing here lists paths: every route is registered with `utoipa_axum::routes!` from its
//! handler's `#[utoipa::path]` annotation, which adds the route to the router and the operation
//! to the document in one step, so the two cannot differ. This file holds what the handlers
//! share: the error body, the bodies assembled around a token pair (`routes::token_response`,
//! `routes::login_response`), the security schemes and the document's header.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa::ToSchema;

use crate::wire::{ChallengeBody, SetupBody, UserBody};

/// The name of the Bearer scheme in `security(...)` annotations.
pub const BEARER: &str = "bearer";
/// The name of the refresh-cookie scheme (cookie mode).
pub const REFRESH_COOKIE_SCHEME: &str = "refresh_cookie";

/// Every failure: `{"error": code, "detail": sentence}` and, for some codes, more.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code, e.g. `invalid_code`, `throttled`, `validation_error`.
    pub error: String,
    /// A sentence for people, saying what to do next.
    pub detail: String,
    /// `invalid_code` / `invalid_credential`: tries left on this challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    /// `validation_error`: the problem with each field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

/// A token pair. In cookie mode `refresh` is not in the body but in the HttpOnly cookie
/// `mfagate_refresh`.
#[derive(Serialize, ToSchema)]
pub struct TokenPairBody {
    /// The access token (JWT; claims `sub`, `amr`, `sid`, `auth_time`).
    pub access: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

/// `mfa/verify`'s success: a token pair and, when `remember_device` was asked for (and not in
/// cookie mode, where it is the `mfagate_device` cookie), the device token.
#[derive(Serialize, ToSchema)]
pub struct VerifiedBody {
    #[serde(flatten)]
    pub tokens: TokenPairBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// What a correct password leads to: tokens, a challenge, or a setup token.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    Tokens(TokenPairBody),
    Challenge(ChallengeBody),
    Setup(SetupBody),
}

/// A new account and what comes next: tokens, a setup token (`required` mode), or only a
/// `detail` saying the verification e-mail is sent (verification `mandatory`).
#[derive(Serialize, ToSchema)]
pub struct RegisteredBody {
    pub user: UserBody,
    #[serde(flatten)]
    pub next: RegisteredNext,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum RegisteredNext {
    Tokens(TokenPairBody),
    Setup(SetupBody),
    VerificationSent {
        /// `verification e-mail sent`, or how to ask for another.
        detail: String,
    },
}

/// The document's header and security schemes around the operations the router collected.
pub(crate) fn finish(mut document: OpenApi) -> OpenApi {
    document.info = InfoBuilder::new()
        .title("mfagate")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Multi-factor authentication for REST APIs: password login, a second factor (TOTP, \
             e-mailed code, recovery code, passkey), access and refresh tokens, sessions and \
             step-up. Errors are `{\"error\", \"detail\"}` with the codes each operation lists.",
        ))
        .build();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("The access token of a token pair"))
                .build(),
        ),
    );
    components.add_security_scheme(
        REFRESH_COOKIE_SCHEME,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::routes::REFRESH_COOKIE,
            "In cookie mode: the refresh token, HttpOnly, SameSite=Strict, on the API's path",
        ))),
    );
    document
}
