//! Storage, behind traits grouped by capability. Each method names one atomic intent and is
//! implemented as one conditional statement (or one transaction), so its guarantee holds for
//! any number of concurrent callers and server instances: a recovery code is consumed once, a
//! TOTP step accepted once, a refresh token rotated once, a challenge spent once.
//!
//! Times are Unix seconds, passed in by the caller: the store never reads the clock.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::rate::WindowCount;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub is_admin: bool,
    pub disabled: bool,
    /// `"none"`, `"totp"` or `"email"`.
    pub preferred_method: String,
    /// E-mailed codes switched on as a second factor.
    pub email_otp: bool,
    /// Whether a TOTP device is enrolled (read with the user, saving a query per request).
    pub has_totp: bool,
    pub password_hash: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct TotpDevice {
    pub secret_sealed: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub last_step: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct StoredRecoveryCode {
    pub id: i64,
    pub code_sealed: String,
}

#[derive(Debug, Clone)]
pub struct NewChallenge {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct Challenge {
    pub id: String,
    pub user_id: String,
    pub expires_at: i64,
    pub failures: u32,
    pub spent: bool,
    /// Keyed hash of the last e-mailed code, if one was sent.
    pub email_code_hash: Option<String>,
}

/// The factor a right code proved, to be claimed as the challenge completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorClaim {
    /// Record this TOTP step as used (it must be later than the last accepted one).
    TotpStep(i64),
    /// Use up this recovery code (it must be unused).
    RecoveryCode(i64),
    /// The e-mailed code lives and dies with the challenge: nothing more to claim.
    EmailCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Challenge spent, factor claimed, refresh token stored: all in one transaction.
    Completed,
    /// The step or code was used meanwhile (a replay or a race lost); nothing changed.
    FactorRefused,
    /// The challenge was spent, expired or died meanwhile; nothing changed.
    ChallengeGone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailReservation {
    /// The new code is recorded; send it, or call `release_email_send` if sending fails.
    Reserved,
    /// The last code went out less than the minimum interval ago.
    TooSoon { retry_after: i64 },
    /// The challenge has had its maximum number of sends.
    LimitReached,
    /// The challenge is spent, expired or dead.
    NotLive,
}

/// What a single-use e-mailed key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    Verification,
    Invitation,
    PasswordReset,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verification => "verify",
            Self::Invitation => "invite",
            Self::PasswordReset => "reset",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeCreated {
    Created,
    /// The user already has the maximum of live challenges; the earliest ends at this time.
    TooMany {
        earliest_expiry: i64,
    },
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub user_id: String,
    pub family_id: String,
    /// The `amr` of the login that began the family, space-separated.
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live and is now used; mint its successor in the same family.
    Rotated {
        user_id: String,
        family_id: String,
        amr: String,
    },
    /// The token had already been rotated: stolen or replayed. Its family is now revoked.
    Reused { user_id: String, family_id: String },
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: i64,
    pub user_id: Option<String>,
    pub event: &'static str,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StoredAuditEvent {
    pub at: i64,
    pub user_id: Option<String>,
    pub event: String,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict` when the username or e-mail (case-insensitively, and across the two:
    /// one user's e-mail cannot be another's username) is taken.
    async fn create_user(&self, user: &NewUser) -> StoreResult<User>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    /// By username or e-mail, case-insensitively.
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>>;
    async fn set_password_hash(&self, user_id: &str, hash: &str) -> StoreResult<()>;
    async fn set_admin(&self, user_id: &str, is_admin: bool) -> StoreResult<()>;
    async fn set_preferred_method(&self, user_id: &str, method: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait MfaStore: Send + Sync {
    async fn totp_device(&self, user_id: &str) -> StoreResult<Option<TotpDevice>>;
    /// Creates the device with `accepted_step` as its last step, stores the recovery codes and
    /// makes TOTP the preferred method, in one transaction. `false` if a device already exists.
    async fn enable_totp(
        &self,
        user_id: &str,
        secret_sealed: &str,
        accepted_step: i64,
        recovery_codes_sealed: &[String],
        now: i64,
    ) -> StoreResult<bool>;
    /// The replay guard: records `step` as used iff it is later than the last accepted step.
    async fn accept_totp_step(&self, user_id: &str, step: i64, now: i64) -> StoreResult<bool>;
    /// Deletes the device and every recovery code; the preferred method falls back to `none`.
    /// `false` if there was no device.
    async fn disable_totp(&self, user_id: &str) -> StoreResult<bool>;
    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<StoredRecoveryCode>>;
    async fn count_unused_recovery_codes(&self, user_id: &str) -> StoreResult<u64>;
    /// Marks one code used iff it is still unused; of concurrent callers exactly one gets `true`.
    async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_id: i64,
        now: i64,
    ) -> StoreResult<bool>;
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes_sealed: &[String],
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Inserts the challenge unless the user already has `max_live` live ones.
    async fn create_challenge(
        &self,
        challenge: &NewChallenge,
        max_live: u32,
        max_failures: u32,
        now: i64,
    ) -> StoreResult<ChallengeCreated>;
    async fn challenge_by_token(&self, token_hash: &str) -> StoreResult<Option<Challenge>>;
    /// Counts one wrong code iff the challenge is live; returns the new failure count.
    async fn record_challenge_failure(
        &self,
        id: &str,
        max_failures: u32,
        now: i64,
    ) -> StoreResult<Option<u32>>;
    /// Ends a login in one transaction: spends the live challenge (of concurrent callers
    /// exactly one can), claims the factor, stores
    /// the first refresh token. Either all of it happens or none: a recovery code is never used
    /// up by a login that did not complete.
    async fn complete_challenge(
        &self,
        challenge_id: &str,
        max_failures: u32,
        claim: FactorClaim,
        refresh: &NewRefreshToken,
        now: i64,
    ) -> StoreResult<Completion>;
    async fn create_setup_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    async fn setup_token_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>>;
    async fn delete_setup_tokens(&self, user_id: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait EmailStore: Send + Sync {
    async fn set_email_verified(&self, user_id: &str) -> StoreResult<()>;
    async fn set_email_otp(&self, user_id: &str, enabled: bool) -> StoreResult<()>;
    /// Records a new code for a live challenge, iff the last send is at least `min_interval`
    /// seconds old and fewer than `max_sends` went out; the previous code is kept aside so that
    /// `release_email_send` can restore it when the mail cannot be sent.
    async fn reserve_email_send(
        &self,
        challenge_id: &str,
        code_hash: &str,
        now: i64,
        min_interval: i64,
        max_sends: u32,
        max_failures: u32,
    ) -> StoreResult<EmailReservation>;
    /// Undoes a reservation whose mail did not go out.
    async fn release_email_send(&self, challenge_id: &str, code_hash: &str) -> StoreResult<()>;
    async fn create_email_key(
        &self,
        key_hash: &str,
        user_id: &str,
        purpose: KeyPurpose,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The user a live key belongs to, without using it.
    async fn email_key_user(
        &self,
        key_hash: &str,
        purpose: KeyPurpose,
        now: i64,
    ) -> StoreResult<Option<String>>;
    /// Uses a live key; of concurrent callers exactly one gets its user.
    async fn consume_email_key(
        &self,
        key_hash: &str,
        purpose: KeyPurpose,
        now: i64,
    ) -> StoreResult<Option<String>>;
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    async fn list_users(&self, limit: u32, offset: u32) -> StoreResult<Vec<User>>;
    async fn set_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<()>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()>;
    /// Uses the token iff it is live; a token used before revokes its whole family.
    async fn rotate_refresh_token(&self, token_hash: &str, now: i64)
        -> StoreResult<RefreshOutcome>;
    /// Revokes the family of this token; its user, or `None` for an unknown token.
    async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>>;
    async fn revoke_user_refresh_tokens(&self, user_id: &str, now: i64) -> StoreResult<()>;
}

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts one event under `key` in a fixed window of `window_seconds`, starting a new
    /// window when the old one is over; returns the count after this event.
    async fn throttle_hit(
        &self,
        key: &str,
        window_seconds: i64,
        now: i64,
    ) -> StoreResult<WindowCount>;
    /// The current window's count, without counting.
    async fn throttle_peek(
        &self,
        key: &str,
        window_seconds: i64,
        now: i64,
    ) -> StoreResult<Option<WindowCount>>;
}

/// An Ed25519 key for EdDSA access tokens.
#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    pub kid: String,
    /// The 32-byte seed, sealed.
    pub private_sealed: String,
    /// The 32-byte public key, base64url.
    pub public_key: String,
    pub created_at: i64,
    /// When a newer key took over signing; the key stays published while its tokens live.
    pub retired_at: Option<i64>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every stored key, newest first.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
    /// Adds a key and retires every key that was signing, in one transaction.
    async fn add_signing_key(&self, key: &StoredSigningKey, now: i64) -> StoreResult<()>;
    /// Adds the first key unless one exists (instances starting together agree on one).
    async fn add_first_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Several records in one transaction.
    async fn record_audit_batch(&self, records: &[AuditRecord]) -> StoreResult<()>;
    async fn recent_audit_events(
        &self,
        user_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredAuditEvent>>;
}

#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;
    /// Deletes expired challenges, setup tokens, refresh tokens and finished throttle windows.
    /// Returns how many rows went.
    async fn delete_expired(&self, now: i64) -> StoreResult<u64>;
}

/// Everything mfagate needs from a database.
pub trait Store:
    UserStore
    + MfaStore
    + ChallengeStore
    + EmailStore
    + AdminStore
    + KeyStore
    + TokenStore
    + ThrottleStore
    + AuditStore
    + MaintenanceStore
{
}

impl<T> Store for T where
    T: UserStore
        + MfaStore
        + ChallengeStore
        + EmailStore
        + AdminStore
        + KeyStore
        + TokenStore
        + ThrottleStore
        + AuditStore
        + MaintenanceStore
{
}
