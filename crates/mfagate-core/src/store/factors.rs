//! Factors: the devices a user enrolled, pending or verified.

use async_trait::async_trait;

use super::*;
use crate::factors::{FactorKind, Method};

/// One enrolled device of a user (a row of `factors`), verified or pending.
#[derive(Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub user_id: String,
    pub kind: FactorKind,
    pub name: String,
    /// TOTP: the sealed secret (context `service::totp_context`). WebAuthn: the sealed record
    /// of the credential once verified, the sealed registration ceremony while pending.
    pub secret_sealed: Option<String>,
    /// WebAuthn: the credential id (base64url), unique across users.
    pub credential_id: Option<String>,
    /// WebAuthn: the signature counter, which only grows.
    pub sign_count: i64,
    /// TOTP: the last accepted time step (the replay guard, per factor).
    pub last_step: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// False while the enrolment waits for its proof (and expires).
    pub verified: bool,
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factor")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("last_step", &self.last_step)
            .field("credential_id", &self.credential_id)
            .field("sign_count", &self.sign_count)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

/// A pending enrolment, as `FactorStore::begin_factor` stores it.
#[derive(Debug, Clone)]
pub struct NewFactor {
    pub id: String,
    pub user_id: String,
    pub kind: FactorKind,
    pub name: String,
    pub secret_sealed: Option<String>,
    pub created_at: i64,
    /// When the pending enrolment dies unless verified.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorBegun {
    Begun,
    /// Another verified factor of the user has this name (case-insensitively).
    NameTaken,
    /// The user holds the maximum of verified factors.
    TooMany,
    /// The user is disabled or unknown, or (with a setup token) the token is gone.
    Ended,
}

/// A verified passkey, as `verify_factor` stores it.
#[derive(Clone)]
pub struct NewPasskey {
    /// base64url, unique across users.
    pub credential_id: String,
    /// The library's record of the credential, sealed.
    pub record_sealed: String,
    /// JSON array of the transports the browser reported.
    pub transports: String,
    pub sign_count: i64,
}

crate::debug_showing!(NewPasskey {
    credential_id,
    sign_count
});

/// What `FactorStore::verify_factor` stores, all in one transaction.
#[derive(Debug, Clone)]
pub struct FactorVerification {
    pub user_id: String,
    pub factor_id: String,
    /// TOTP: the step the proof used, which counts as used.
    pub accepted_step: Option<i64>,
    /// WebAuthn: the credential the registration proved.
    pub passkey: Option<NewPasskey>,
    /// Stored iff this is the user's first factor (replacing any codes there were).
    pub recovery_codes_sealed: Vec<String>,
    /// With a setup token: it is spent by the verification, which fails if it is gone.
    pub setup_token_hash: Option<String>,
    /// The first refresh token of the new session the enrolment opens.
    pub refresh: NewRefreshToken,
    pub max_factors: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorVerified {
    /// Verified; `first` when it is the user's first factor (the recovery codes were stored).
    Verified { first: bool },
    /// The user reached the maximum of factors meanwhile; nothing changed.
    TooMany,
    /// The passkey's credential id is enrolled already (by this user or another).
    CredentialTaken,
    /// Unknown, expired, verified already, another user's, or the user or the setup token is
    /// gone: nothing changed.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorRenamed {
    Renamed(Factor),
    NameTaken,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorRemoved {
    /// Removed; `last` when it was the user's last factor (the recovery codes went with it).
    Removed {
        last: bool,
    },
    /// It is the user's last factor and `keep_last` was asked: nothing changed.
    LastKept,
    NotFound,
}

/// What `enable_totp` stores, all in one transaction: the user's first TOTP factor.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub user_id: String,
    pub factor_id: String,
    pub name: String,
    pub max_factors: u32,
    /// The credential epoch the enrolment began in (carried by the activation token).
    pub epoch: i64,
    /// With a setup token: it is spent by the enrolment, which fails if it is gone.
    pub setup_token_hash: Option<String>,
    pub secret_sealed: String,
    pub accepted_step: i64,
    pub recovery_codes_sealed: Vec<String>,
    /// The first refresh token of the new session the enrolment opens.
    pub refresh: NewRefreshToken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotpEnabled {
    Enabled,
    /// A TOTP factor exists already.
    AlreadyEnabled,
    /// The user holds the maximum of factors, or another factor has the name.
    NoRoom,
    /// The user's credentials ended since the enrolment began (password set, MFA reset,
    /// disabled), or the setup token is gone: nothing was stored.
    Ended,
}

#[async_trait]
pub trait FactorStore: Send + Sync {
    /// The user's verified factors, oldest first.
    async fn factors(&self, user_id: &str) -> StoreResult<Vec<Factor>>;
    /// A pending enrolment of the user that has not expired.
    async fn pending_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        now: i64,
    ) -> StoreResult<Option<Factor>>;
    /// Stores a pending enrolment iff the user is active, has fewer than `max_factors` verified
    /// factors, fewer than `max_pending` other enrolments in progress, and no factor of that
    /// name; a pending one of the same name is replaced (the user began again). With `setup_token_hash`, only while that setup token is live.
    async fn begin_factor(
        &self,
        factor: &NewFactor,
        max_factors: u32,
        max_pending: u32,
        setup_token_hash: Option<&str>,
        now: i64,
    ) -> StoreResult<FactorBegun>;
    /// In one transaction, iff the pending factor is live, the user active and below the
    /// maximum, and the setup token (if any) live: marks the factor verified (with its first
    /// step used), stores the recovery codes if it is the first factor, makes its method the
    /// preferred one if none was, spends the setup token, ends every session that began
    /// without a second factor, and stores the new session's token.
    async fn verify_factor(
        &self,
        verification: &FactorVerification,
        now: i64,
    ) -> StoreResult<FactorVerified>;
    /// In one transaction, iff the user is active, still in `epoch`, has no TOTP factor, is
    /// below the maximum and has no factor of that name, and the setup token (if any) is live:
    /// creates a verified TOTP factor with `accepted_step` as its last step, stores the
    /// recovery codes (if it is the first factor), makes TOTP the preferred method, spends the
    /// setup token, ends every session that began without a second factor, and stores the new
    /// session's token.
    async fn enable_totp(&self, enrolment: &TotpEnrolment, now: i64) -> StoreResult<TotpEnabled>;
    /// The replay guard: records `step` as used by this TOTP factor iff it is later than the
    /// factor's last accepted step.
    async fn accept_totp_step(
        &self,
        user_id: &str,
        factor_id: &str,
        step: i64,
        now: i64,
    ) -> StoreResult<bool>;
    /// Takes the ceremony state of a pending passkey enrolment, leaving none behind: the
    /// registration can be finished once, whatever the outcome (of concurrent callers, one
    /// gets it). `None`: unknown, expired, verified, another user's, or taken already.
    async fn take_enrolment_state(
        &self,
        user_id: &str,
        factor_id: &str,
        now: i64,
    ) -> StoreResult<Option<String>>;
    /// The verified passkey with this credential id (base64url), whoever holds it.
    async fn passkey_by_credential(&self, credential_id: &str) -> StoreResult<Option<Factor>>;
    /// The clone guard: records `count` as the passkey's signature counter iff it is above the
    /// stored one, or both are zero (an authenticator that keeps no counter), and the user is
    /// active. False: refused, nothing changed.
    async fn accept_sign_count(
        &self,
        user_id: &str,
        factor_id: &str,
        count: u32,
        now: i64,
    ) -> StoreResult<bool>;
    /// Renames a verified factor, unless another factor of the user has the name.
    async fn rename_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        name: &str,
    ) -> StoreResult<FactorRenamed>;
    /// Removes a verified factor; with the last one go the recovery codes, and the preferred
    /// method falls back to `fallback` (`none` if not given). With `keep_last`, the last
    /// factor is not removed.
    async fn remove_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        keep_last: bool,
        fallback: Option<Method>,
    ) -> StoreResult<FactorRemoved>;
    /// Removes every TOTP factor of the user, and the recovery codes if no factor is left; the
    /// preferred method falls back as in `remove_factor`. The ids removed (none: no TOTP).
    async fn remove_totp_factors(
        &self,
        user_id: &str,
        fallback: Option<Method>,
    ) -> StoreResult<Vec<String>>;
}
