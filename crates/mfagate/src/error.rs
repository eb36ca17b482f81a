//! One error type for the HTTP API: every failure, the framework's own included, leaves as
//! `{"error": code, "detail": sentence}` plus the contract's extra fields.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mfagate_core::Error;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    extra: Map<String, Value>,
    retry_after: Option<u64>,
    /// Overrides the plain `Bearer` challenge of a 401 (RFC 9470 step-up).
    www_authenticate: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
            www_authenticate: None,
        }
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    pub fn throttled(retry_after: u64) -> Self {
        Error::Throttled { retry_after }.into()
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        use StatusCode as S;
        let detail = error.to_string();
        match error {
            Error::Validation(fields) => ApiError::new(
                S::BAD_REQUEST,
                "validation_error",
                "some fields are invalid; see 'fields'",
            )
            .with("fields", json!(fields)),
            Error::AlreadyExists(_) => ApiError::new(S::CONFLICT, "already_exists", detail),
            Error::InvalidCredentials => {
                ApiError::new(S::UNAUTHORIZED, "invalid_credentials", detail)
            }
            Error::Throttled { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(S::TOO_MANY_REQUESTS, "throttled", detail)
            },
            Error::TooManyAttempts { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(S::TOO_MANY_REQUESTS, "too_many_attempts", detail)
            },
            Error::TooManyChallenges { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(S::TOO_MANY_REQUESTS, "too_many_challenges", detail)
            },
            Error::InvalidCode { attempts_remaining } => {
                let error = ApiError::new(S::BAD_REQUEST, "invalid_code", detail);
                match attempts_remaining {
                    Some(n) => error.with("attempts_remaining", json!(n)),
                    None => error,
                }
            }
            Error::InvalidCredential { attempts_remaining } => {
                let error = ApiError::new(S::BAD_REQUEST, "invalid_credential", detail);
                match attempts_remaining {
                    Some(n) => error.with("attempts_remaining", json!(n)),
                    None => error,
                }
            }
            Error::PasskeyRefused => ApiError::new(S::UNAUTHORIZED, "invalid_credential", detail),
            Error::InvalidToken => ApiError::new(S::UNAUTHORIZED, "invalid_token", detail),
            Error::NotAuthenticated => ApiError::new(S::UNAUTHORIZED, "not_authenticated", detail),
            Error::InvalidActivationToken => {
                ApiError::new(S::BAD_REQUEST, "invalid_activation_token", detail)
            }
            Error::TotpAlreadyEnabled => ApiError::new(S::CONFLICT, "totp_already_enabled", detail),
            Error::TooManyFactors => ApiError::new(S::CONFLICT, "too_many_factors", detail),
            Error::TotpNotEnabled => ApiError::new(S::CONFLICT, "totp_not_enabled", detail),
            Error::MfaDisabled => ApiError::new(S::FORBIDDEN, "mfa_disabled", detail),
            Error::MfaEnforced => ApiError::new(S::FORBIDDEN, "mfa_enforced", detail),
            Error::MfaRequired => ApiError::new(S::FORBIDDEN, "mfa_required", detail),
            Error::InvalidMethod(_) => ApiError::new(S::BAD_REQUEST, "invalid_method", detail),
            Error::InvalidPassword => ApiError::new(S::BAD_REQUEST, "invalid_password", detail),
            Error::Forbidden => ApiError::new(S::FORBIDDEN, "forbidden", detail),
            Error::NotFound(_) => ApiError::new(S::NOT_FOUND, "not_found", detail),
            Error::EmailNotVerified => ApiError::new(S::FORBIDDEN, "email_not_verified", detail),
            Error::EmailUnavailable => {
                ApiError::new(S::SERVICE_UNAVAILABLE, "email_unavailable", detail)
            }
            Error::InvalidKey => ApiError::new(S::BAD_REQUEST, "invalid_key", detail),
            Error::Unavailable => ApiError::new(S::SERVICE_UNAVAILABLE, "unavailable", detail),
            Error::Overloaded { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(S::SERVICE_UNAVAILABLE, "overloaded", detail)
            },
            Error::ReauthenticationRequired { max_age } => ApiError {
                www_authenticate: Some(format!(
                    "Bearer error=\"insufficient_user_authentication\", max_age={max_age}"
                )),
                ..ApiError::new(S::UNAUTHORIZED, "reauthentication_required", detail)
            },
            Error::Internal(_) | Error::KeyMismatch(_) => {
                let reason = detail;
                // The reason may name tables or keys: it goes to the log, never to the client.
                tracing::error!(%reason, "internal error");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code));
        body.insert("detail".into(), json!(self.detail));
        body.extend(self.extra);
        let mut response = (self.status, crate::wire::Json(Value::Object(body))).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = self
                .www_authenticate
                .and_then(|c| HeaderValue::from_str(&c).ok())
                .unwrap_or(HeaderValue::from_static("Bearer"));
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
