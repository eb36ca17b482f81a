//! The core's error type: what went wrong in domain words, free of HTTP. The library maps each
//! variant to the contract's status and error code.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("some fields are invalid")]
    Validation(BTreeMap<String, String>),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("unknown username or wrong password")]
    InvalidCredentials,
    #[error("too many attempts; retry in {retry_after} seconds")]
    Throttled { retry_after: u64 },
    #[error("this challenge has seen too many wrong codes; log in again after it expires")]
    TooManyAttempts { retry_after: u64 },
    #[error(
        "too many logins are waiting for a second factor; finish one or wait for one to expire"
    )]
    TooManyChallenges { retry_after: u64 },
    #[error("the code is wrong, expired or already used")]
    InvalidCode { attempts_remaining: Option<u32> },
    #[error("the passkey's answer did not verify: it is not a passkey of this user, was made for another challenge, site or origin, lacks user verification, or its signature counter did not grow")]
    InvalidCredential { attempts_remaining: Option<u32> },
    #[error("the passkey was not accepted: it is unknown, its signature or user verification failed, or it belongs to another account; start again at passkey/begin")]
    PasskeyRefused,
    #[error("the token is unknown, expired, already used or revoked")]
    InvalidToken,
    #[error(
        "authentication is required: send a valid access token as 'Authorization: Bearer <token>'"
    )]
    NotAuthenticated,
    #[error("the activation token is expired, tampered with, or belongs to another user; start again with GET")]
    InvalidActivationToken,
    #[error("TOTP is already enabled; deactivate it first to enrol a new device")]
    TotpAlreadyEnabled,
    #[error(
        "this user holds the most factors allowed (MFAGATE_MFA_MAX_FACTORS); remove one first"
    )]
    TooManyFactors,
    #[error("TOTP is not enabled for this user")]
    TotpNotEnabled,
    #[error("multi-factor authentication is disabled on this server")]
    MfaDisabled,
    #[error("a second factor is required on this server and cannot be switched off")]
    MfaEnforced,
    #[error("this token does not show a second factor; log in with one")]
    MfaRequired,
    #[error("{0}")]
    InvalidMethod(String),
    #[error("the current password is wrong")]
    InvalidPassword,
    #[error("this action needs an administrator")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("the e-mail address is not verified yet: follow the link in the verification e-mail, or ask for a new one at /auth/register/resend-verification")]
    EmailNotVerified,
    #[error("the e-mail could not be sent (the mail server is unreachable); nothing was lost, so ask again shortly")]
    EmailUnavailable,
    #[error("the key is unknown, expired or already used")]
    InvalidKey,
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
    #[error("the server is busy checking passwords; retry in {retry_after} seconds")]
    Overloaded { retry_after: u64 },
    #[error("this call needs a recent authentication with a second factor: log in again (or re-authenticate) and retry within {max_age} seconds")]
    ReauthenticationRequired { max_age: i64 },
    /// At start-up: the configured keys cannot open what the database holds. Says which key ids
    /// the data needs and what to do.
    #[error("{0}")]
    KeyMismatch(String),
    /// Never shown to clients: logged, and answered with a plain sentence.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn validation(field: &str, problem: impl Into<String>) -> Self {
        let mut fields = BTreeMap::new();
        fields.insert(field.to_string(), problem.into());
        Self::Validation(fields)
    }
}

/// What a store can report. A unique-key violation is a `Conflict`, a lost connection
/// `Unavailable`; anything else is a bug or an operational fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Error::AlreadyExists(what),
            StoreError::Unavailable(_) => {
                crate::metrics::database_error();
                Error::Unavailable
            }
            StoreError::Other(detail) => {
                crate::metrics::database_error();
                Error::Internal(detail)
            }
        }
    }
}

impl From<crate::sealing::SealError> for Error {
    fn from(error: crate::sealing::SealError) -> Self {
        Error::Internal(format!("cannot open a sealed value: {error}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
