//! Storage, behind traits grouped by capability. Each method names one atomic intent and is
//! implemented as one conditional statement (or one transaction), so its guarantee holds for
//! any number of concurrent callers and server instances: a recovery code is consumed once, a
//! TOTP step accepted once, a refresh token rotated once, a challenge spent once.
//!
//! Times are Unix seconds, passed in by the caller: the store never reads the clock.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::factors::FactorKind;

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
    /// Whether a verified TOTP factor is enrolled (read with the user, saving a query per
    /// request).
    pub has_totp: bool,
    /// Bumped by every event that ends the user's credentials (password set, MFA reset,
    /// disable): a pending enrolment carries the epoch it began in and dies when it moves on.
    pub credential_epoch: i64,
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

/// A TOTP device as an import brings it (it becomes a factor named "Authenticator").
#[derive(Debug, Clone)]
pub struct TotpDevice {
    pub secret_sealed: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub last_step: Option<i64>,
}

/// One enrolled device of a user (a row of `factors`), verified or pending.
#[derive(Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub user_id: String,
    pub kind: FactorKind,
    pub name: String,
    /// TOTP: the sealed secret (context `service::totp_context`).
    pub secret_sealed: Option<String>,
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

/// What `FactorStore::verify_factor` stores, all in one transaction.
#[derive(Debug, Clone)]
pub struct FactorVerification {
    pub user_id: String,
    pub factor_id: String,
    /// TOTP: the step the proof used, which counts as used.
    pub accepted_step: Option<i64>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorClaim {
    /// Record this TOTP step as used by this factor (it must be later than the factor's last
    /// accepted one).
    TotpStep { factor_id: String, step: i64 },
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
    /// When the user last proved who they are (the login that began the family).
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The token that replaces a rotated one; it inherits user, family, `amr` and `auth_time`.
#[derive(Debug, Clone)]
pub struct RefreshSuccessor {
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live and is now used; its successor is stored in the same family, in the
    /// same transaction (so a concurrent reuse that revokes the family revokes it too).
    Rotated {
        user_id: String,
        family_id: String,
        amr: String,
        auth_time: i64,
    },
    /// The token had already been rotated: stolen or replayed. Its family is now revoked.
    Reused { user_id: String, family_id: String },
    /// Unknown, expired or revoked, or its user is disabled.
    Invalid,
}

/// One fixed window of a limit: at most `limit` claims under `key` per `window_seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLimit {
    /// A fixed-size keyed hash (see `throttle`), never the raw name or address.
    pub key: String,
    pub limit: u32,
    pub window_seconds: i64,
}

/// The answer to a claim on one or more windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// One unit is counted in every window.
    Granted,
    /// A window is full for `retry_after` more seconds; nothing was counted.
    Refused { retry_after: i64 },
}

/// The answer to a claim of one second-factor attempt on a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptClaim {
    /// Counted against the challenge (now at `failures` attempts) and the user's window.
    Claimed { failures: u32 },
    /// Unknown, spent or expired.
    ChallengeGone,
    /// The challenge has had its attempts; it expires at `expires_at`.
    ChallengeDead { expires_at: i64 },
    /// The user's window of failed attempts is full for `retry_after` seconds.
    UserThrottled { retry_after: i64 },
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

/// An event that ends every credential of a user: see `UserStore::change_account`.
#[derive(Debug, Clone)]
pub enum AccountChange {
    /// A new password hash; `verify_email` when it came through the mailbox.
    SetPassword {
        hash: String,
        verify_email: bool,
    },
    /// Every factor, the recovery codes and e-mailed codes off.
    ResetMfa,
    Disable,
}

/// Where a page of the administrators' user list begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPageStart {
    /// Right after this user, in order of creation (keyset pagination: the cost of a page does
    /// not grow with how far into the list it is).
    After { created_at: i64, id: String },
    /// After skipping this many users (kept for clients of the first version; bounded by the
    /// core, since its cost grows with the offset).
    Offset(u32),
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
    /// Applies `change` and, in the same transaction, ends every live challenge, setup token,
    /// pending enrolment (the credential epoch moves on), refresh family and unused invitation
    /// or reset key of the user. With `key`, that key is used up in the same transaction, and
    /// nothing happens (`false`) unless it was live.
    async fn change_account(
        &self,
        user_id: &str,
        change: &AccountChange,
        key: Option<(&str, KeyPurpose)>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Grants or withdraws administrator rights; false when the user already was in that state
    /// (so a repeated command changes and audits nothing).
    async fn set_admin(&self, user_id: &str, is_admin: bool) -> StoreResult<bool>;
    async fn set_preferred_method(&self, user_id: &str, method: &str) -> StoreResult<()>;
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
    /// factors and none of that name; a pending one of the same name is replaced (the user
    /// began again). With `setup_token_hash`, only while that setup token is live.
    async fn begin_factor(
        &self,
        factor: &NewFactor,
        max_factors: u32,
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
        fallback: Option<&str>,
    ) -> StoreResult<FactorRemoved>;
    /// Removes every TOTP factor of the user, and the recovery codes if no factor is left; the
    /// preferred method falls back as in `remove_factor`. The ids removed (none: no TOTP).
    async fn remove_totp_factors(
        &self,
        user_id: &str,
        fallback: Option<&str>,
    ) -> StoreResult<Vec<String>>;
}

#[async_trait]
pub trait MfaStore: Send + Sync {
    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<StoredRecoveryCode>>;
    async fn count_unused_recovery_codes(&self, user_id: &str) -> StoreResult<u64>;
    /// Marks one code used iff it is still unused; of concurrent callers exactly one gets `true`.
    async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_id: i64,
        now: i64,
    ) -> StoreResult<bool>;
    /// Replaces every recovery code of an active user who still holds a factor; `false`
    /// otherwise (disabled, or the last factor went meanwhile).
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes_sealed: &[String],
    ) -> StoreResult<bool>;
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
    /// Claims one attempt before any code is checked: counts it against the challenge (which
    /// must be live with fewer than `max_failures` attempts) and against `user_window`, all or
    /// nothing. Of any number of concurrent callers at most `max_failures` are granted.
    async fn claim_challenge_attempt(
        &self,
        challenge_id: &str,
        max_failures: u32,
        user_window: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<AttemptClaim>;
    /// Ends a login in one transaction: spends the live challenge of an active user (of
    /// concurrent callers exactly one can), claims the factor, stores the first refresh token.
    /// Either all of it happens or none: a recovery code is never used up by a login that did
    /// not complete. The attempt was claimed before (`claim_challenge_attempt`); a completed
    /// login hands back its claim on `release` (the user's failure window) in the same
    /// transaction.
    async fn complete_challenge(
        &self,
        challenge_id: &str,
        claim: FactorClaim,
        refresh: &NewRefreshToken,
        release: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<Completion>;
    async fn create_setup_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    async fn setup_token_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>>;
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
    /// A page of users in order of creation, from `start`.
    async fn list_users(&self, limit: u32, start: &UserPageStart) -> StoreResult<Vec<User>>;
    /// Enables a user (disabling is an `AccountChange`, which ends their credentials).
    async fn enable_user(&self, user_id: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()>;
    /// Uses the token iff it is live and its user active, storing `successor` in the same
    /// transaction; a token used before revokes its whole family.
    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        successor: &RefreshSuccessor,
        now: i64,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes the family of this token; its user, or `None` for an unknown token.
    async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>>;
}

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Claims one unit in every window iff each has room (a finished window starts over), all
    /// or nothing: of any number of concurrent callers at most `limit` are granted per window.
    async fn claim_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<Claim>;
    /// Hands back one claimed unit in each of these windows that is still current: for limits
    /// that count failures, once the attempt turned out right.
    async fn release_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<()>;
    /// Counts one request in a window that every server on this database shares (the per-IP
    /// request limit), iff it has room. Where one process owns the database (SQLite) that
    /// process's own count is already the deployment's, and this grants without a write.
    async fn claim_request_window(&self, window: &WindowLimit, now: i64) -> StoreResult<Claim>;
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
    /// The ids of every sealing key the database has been used with, oldest first: data sealed
    /// under any of them may be stored, so a key set must be able to open them all.
    async fn sealing_key_ids(&self) -> StoreResult<Vec<String>>;
    /// Records that the database is used with this sealing key (idempotent).
    async fn record_sealing_key(&self, key_id: &str, now: i64) -> StoreResult<()>;
}

/// One account with what it holds, as an import from another system (or a benchmark's seed)
/// brings it. Secrets come sealed with the gate's key, tokens and keys as hashes.
#[derive(Debug, Clone)]
pub struct ImportedAccount {
    pub user: NewUser,
    pub email_verified: bool,
    pub email_otp: bool,
    /// The method offered first at login (`totp`, `email` or `none`).
    pub preferred_method: String,
    pub totp: Option<TotpDevice>,
    /// Sealed codes, each with when it was used (if it was).
    pub recovery_codes: Vec<(String, Option<i64>)>,
    pub sessions: Vec<NewRefreshToken>,
    /// Key hash, purpose, expiry.
    pub email_keys: Vec<(String, KeyPurpose, i64)>,
    pub challenges: Vec<NewChallenge>,
    pub audit: Vec<AuditRecord>,
}

#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Stores the accounts and everything they hold, all or nothing, in one transaction.
    /// Usernames, addresses, ids and hashes must be new (`Conflict` otherwise).
    async fn import_accounts(&self, accounts: &[ImportedAccount]) -> StoreResult<()>;
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
    /// One pass of the clean-up: deletes at most `batch` rows of each kind that serves nothing
    /// any more (expired challenges, setup tokens, refresh tokens, e-mail keys and throttle
    /// windows, spent challenges, used recovery codes, expired pending factor enrolments, audit
    /// events older than `audit_before`),
    /// each kind in a transaction of its own, so a backlog never holds the SQLite writer or
    /// PostgreSQL's locks for long. Returns how many rows went; the caller repeats the pass,
    /// pausing between passes, until it returns 0.
    async fn delete_expired(
        &self,
        now: i64,
        audit_before: Option<i64>,
        batch: u32,
    ) -> StoreResult<u64>;
}

/// Everything mfagate needs from a database.
pub trait Store:
    UserStore
    + FactorStore
    + MfaStore
    + ChallengeStore
    + EmailStore
    + AdminStore
    + KeyStore
    + TokenStore
    + ThrottleStore
    + AuditStore
    + ImportStore
    + MaintenanceStore
{
}

impl<T> Store for T where
    T: UserStore
        + FactorStore
        + MfaStore
        + ChallengeStore
        + EmailStore
        + AdminStore
        + KeyStore
        + TokenStore
        + ThrottleStore
        + AuditStore
        + ImportStore
        + MaintenanceStore
{
}
