//! Request and response bodies, as the contract names their fields.

use mfagate_core::service::{ChallengeIssued, MfaStatus, Proof, SetupIssued};
use mfagate_core::store::User;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub username: String,
    pub email: String,
    pub password: String,
}
mfagate_core::debug_showing!(RegisterRequest { username, email });

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// A remembered device's token (in cookie mode, the `mfagate_device` cookie instead).
    pub device_token: Option<String>,
}
mfagate_core::debug_showing!(LoginRequest { username });

/// `refresh` may be absent when the refresh cookie carries it.
#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh: Option<String>,
}
mfagate_core::debug_showing!(RefreshRequest {});

/// `code`, or for a passkey `credential` (what `credential.toJSON()` gives).
#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    pub ephemeral_token: String,
    pub code: Option<String>,
    pub credential: Option<serde_json::Value>,
    /// Ask for a device token that skips the second factor at later logins.
    #[serde(default)]
    pub remember_device: bool,
}
mfagate_core::debug_showing!(VerifyRequest { remember_device });

/// The proof a body carries: `credential` (an object) if present, else `code`; neither is a
/// `400 invalid_request` naming both.
pub fn proof(
    code: Option<String>,
    credential: Option<serde_json::Value>,
) -> Result<Proof, crate::error::ApiError> {
    match (credential, code) {
        (Some(credential @ serde_json::Value::Object(_)), _) => Ok(Proof::Credential(credential)),
        (Some(_), _) => Err(crate::error::ApiError::invalid_request(
            "`credential` must be the object that credential.toJSON() returns",
        )),
        (None, Some(code)) => Ok(Proof::Code(code)),
        (None, None) => Err(crate::error::ApiError::invalid_request(
            "missing field `code` (or `credential` for a passkey)",
        )),
    }
}

/// `POST /passkey/begin`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasskeyBeginRequest {
    pub username: Option<String>,
}

/// `POST /passkey/finish`.
#[derive(Deserialize, ToSchema)]
pub struct PasskeyFinishRequest {
    pub passkey_token: String,
    pub credential: serde_json::Value,
}
mfagate_core::debug_showing!(PasskeyFinishRequest {});

#[derive(Deserialize, ToSchema)]
pub struct ActivateRequest {
    pub activation_token: String,
    pub code: String,
}
mfagate_core::debug_showing!(ActivateRequest {});

#[derive(Deserialize, ToSchema)]
pub struct CodeRequest {
    pub code: String,
}
mfagate_core::debug_showing!(CodeRequest {});

#[derive(Debug, Deserialize, ToSchema)]
pub struct MethodRequest {
    pub method: String,
}

#[derive(Deserialize, ToSchema)]
pub struct EphemeralRequest {
    pub ephemeral_token: String,
}
mfagate_core::debug_showing!(EphemeralRequest {});

#[derive(Deserialize, ToSchema)]
pub struct KeyRequest {
    pub key: String,
}
mfagate_core::debug_showing!(KeyRequest {});

#[derive(Debug, Deserialize, ToSchema)]
pub struct OptionalEmailRequest {
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct SetPasswordRequest {
    pub key: String,
    pub password: String,
}
mfagate_core::debug_showing!(SetPasswordRequest {});

#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    pub old_password: String,
    pub new_password: String,
}
mfagate_core::debug_showing!(PasswordChangeRequest {});

#[derive(Deserialize, ToSchema)]
pub struct PasswordResetConfirmRequest {
    pub key: String,
    pub new_password: String,
}
mfagate_core::debug_showing!(PasswordResetConfirmRequest {});

#[derive(Debug, Deserialize, ToSchema)]
pub struct InvitationRequest {
    pub email: String,
    pub username: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub user_id: Option<String>,
    pub limit: Option<u32>,
}

/// An audit event as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventBody {
    pub at: Option<String>,
    pub user_id: Option<String>,
    pub event: String,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

impl From<mfagate_core::store::StoredAuditEvent> for AuditEventBody {
    fn from(event: mfagate_core::store::StoredAuditEvent) -> Self {
        Self {
            at: rfc3339(event.at),
            user_id: event.user_id,
            event: event.event,
            ip: event.ip,
            detail: event.detail,
        }
    }
}

/// The cursor of the page after `user`: its creation time and id, as `TIME.ID`.
pub fn user_cursor(user: &User) -> String {
    format!("{}.{}", user.created_at, user.id)
}

/// Reads a cursor made by [`user_cursor`].
pub fn parse_user_cursor(cursor: &str) -> Option<mfagate_core::store::UserPageStart> {
    let (time, id) = cursor.split_once('.')?;
    let created_at = time.parse().ok()?;
    (!id.is_empty() && id.len() <= 64).then(|| mfagate_core::store::UserPageStart::After {
        created_at,
        id: id.to_string(),
    })
}

/// A user as administrators see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserBody {
    pub id: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub is_admin: bool,
    pub disabled: bool,
    pub invitation_pending: bool,
    pub preferred_method: &'static str,
    pub created_at: Option<String>,
}

impl From<User> for AdminUserBody {
    fn from(user: User) -> Self {
        Self {
            invitation_pending: user.password_hash
                == mfagate_core::service::INVITED_PASSWORD_MARKER,
            id: user.id,
            username: user.username,
            email: user.email,
            email_verified: user.email_verified,
            is_admin: user.is_admin,
            disabled: user.disabled,
            preferred_method: mfagate_core::factors::preference_name(user.preferred_method),
            created_at: rfc3339(user.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    pub id: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub mfa_enabled: bool,
}

impl UserBody {
    pub fn new(user: User, mfa_enabled: bool) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            email_verified: user.email_verified,
            mfa_enabled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeBody {
    pub mfa_required: bool,
    #[serde(flatten)]
    pub challenge: ChallengeIssued,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetupBody {
    pub mfa_setup_required: bool,
    #[serde(flatten)]
    pub setup: SetupIssued,
}

pub fn rfc3339(unix_seconds: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    pub mfa_enabled: bool,
    pub methods: Vec<&'static str>,
    pub preferred_method: &'static str,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    pub recovery_codes_remaining: usize,
}

impl From<MfaStatus> for StatusBody {
    fn from(status: MfaStatus) -> Self {
        Self {
            mfa_enabled: status.mfa_enabled,
            methods: status.methods.iter().map(|m| m.as_str()).collect(),
            preferred_method: mfagate_core::factors::preference_name(status.preferred_method),
            created_at: status.created_at.and_then(rfc3339),
            last_used_at: status.last_used_at.and_then(rfc3339),
            recovery_codes_remaining: status.recovery_codes_remaining,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesBody {
    pub recovery_codes: Vec<String>,
}
mfagate_core::debug_showing!(RecoveryCodesBody {});

#[derive(Debug, Serialize, ToSchema)]
pub struct DetailBody {
    pub detail: &'static str,
}

/// `{"detail"}` with a sentence made for the call (it names the user, say).
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    pub detail: String,
}

/// `POST /admin/invitations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationBody {
    pub detail: &'static str,
    pub id: String,
    pub username: String,
    pub email: String,
}

/// A page of `GET /admin/users`; `next` is the `after` of the following page, `null` on the last.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsersPageBody {
    pub users: Vec<AdminUserBody>,
    pub next: Option<String>,
}

/// `GET /admin/audit`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventsBody {
    pub events: Vec<AuditEventBody>,
}

/// `POST /mfa/email/send`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailCodeSentBody {
    pub detail: &'static str,
    /// Seconds the mailed code is valid.
    pub expires_in: i64,
}

/// `POST /mfa/method`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreferredMethodBody {
    pub preferred_method: String,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok`, or `unavailable` (with a 503) when the database does not answer.
    pub status: &'static str,
}

/// A JSON answer. Like `axum::Json`, with a newline after the document, so that an answer
/// printed by curl does not run into the shell's next prompt and line-based tools see a line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        use axum::http::{header, HeaderValue, StatusCode};
        let mut body = Vec::with_capacity(256);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => {
                body.push(b'\n');
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
                    .into_response()
            }
            // Our own types always serialise; a failure is a bug, answered in the contract's
            // shape rather than as half a document.
            Err(error) => {
                tracing::error!(%error, "an answer did not serialise");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    "{\"error\":\"internal_error\",\"detail\":\"something went wrong on our side; it has been logged\"}\n",
                )
                    .into_response()
            }
        }
    }
}
