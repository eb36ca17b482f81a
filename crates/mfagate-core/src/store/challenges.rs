//! Login challenges and the factor a right answer claims.

use async_trait::async_trait;

use super::*;

#[derive(Debug, Clone)]
pub struct NewChallenge {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// When the user has passkeys: the WebAuthn ceremony of this login, sealed.
    pub webauthn_state: Option<String>,
    /// A reauthentication's challenge: the session its answer continues (instead of a new one).
    pub session_id: Option<String>,
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
    /// The sealed WebAuthn ceremony, when the challenge offers passkeys.
    pub webauthn_state: Option<String>,
    /// A reauthentication's challenge: the session it continues.
    pub session_id: Option<String>,
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
    /// Record this passkey's signature counter: it must be above the stored one, or both
    /// zero (an authenticator that keeps no counter).
    SignCount { factor_id: String, count: u32 },
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
pub enum ChallengeCreated {
    Created,
    /// The user already has the maximum of live challenges; the earliest ends at this time.
    TooMany {
        earliest_expiry: i64,
    },
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

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Inserts the challenge unless the user already has `max_live` live ones. In the same
    /// transaction, created or not, hands back one claimed unit of each of `hand_back` (the
    /// login windows a right password was counted in, see `ThrottleStore::release_windows`):
    /// a login's hand-back costs no write of its own.
    async fn create_challenge(
        &self,
        challenge: &NewChallenge,
        max_live: u32,
        max_failures: u32,
        hand_back: &[WindowLimit],
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
    /// A reauthentication's challenge (with a `session_id`) instead continues that session: it
    /// must be live, its live token is used up, and `refresh` (of that family) replaces it.
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
    /// Stores a passwordless login ceremony (`passkey/begin`) under the hash of its token.
    async fn create_passkey_token(
        &self,
        token_hash: &str,
        state_sealed: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<()>;
    /// Takes a live passkey token's ceremony and deletes the token, in one statement: of any
    /// number of concurrent callers, one gets it. Unknown, expired or taken: `None`.
    async fn take_passkey_token(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>>;
}
