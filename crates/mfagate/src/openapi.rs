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
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
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
    add_shared_errors(&mut document);
    document
}

/// The errors every call may meet before its handler runs, added to each operation here
/// rather than repeated in each annotation: a body that is not JSON (`415`), too big (`413`)
/// or not an object of the right fields (`400`); the database out of reach (`503`).
fn add_shared_errors(document: &mut OpenApi) {
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in document.paths.paths.iter_mut() {
        if !path.starts_with("/auth/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            if operation.request_body.is_some() {
                responses.entry("400".into()).or_insert_with(|| {
                    error("`invalid_request`: the body is not a JSON object of these fields")
                });
                responses.insert(
                    "413".into(),
                    error("`payload_too_large`: the body is over 64 KiB"),
                );
                responses.insert(
                    "415".into(),
                    error("`unsupported_media_type`: send the body with `Content-Type: application/json`"),
                );
            }
            const UNAVAILABLE: &str =
                "`unavailable`: the database does not answer; try again shortly";
            match responses.get_mut("503") {
                Some(RefOr::T(own)) => {
                    own.description = format!("{}; {UNAVAILABLE}", own.description);
                }
                Some(RefOr::Ref(_)) => {}
                None => {
                    responses.insert("503".into(), error(UNAVAILABLE));
                }
            }
        }
    }
}
