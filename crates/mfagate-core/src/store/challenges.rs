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
    /// The hash of the challenge's token, which a client proves it holds
    /// (`secret::token_matches`).
    pub token_hash: String,
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

impl FactorClaim {
    /// The method whose answer this claim is.
    pub fn method(&self) -> crate::factors::Method {
        use crate::factors::Method;
        match self {
            Self::TotpStep { .. } => Method::Totp,
            Self::RecoveryCode(_) => Method::RecoveryCode,
            Self::EmailCode => Method::Email,
            Self::SignCount { .. } => Method::Webauthn,
        }
    }
}

/// What a right answer proves: the factor to claim, and the refresh token that begins (or, for
/// a reauthentication, continues) the session.
#[derive(Debug, Clone)]
pub struct Proven {
    pub claim: FactorClaim,
    pub refresh: NewRefreshToken,
}

/// The check of an answer to a challenge, run by `ChallengeStore::answer_challenge` only after
/// the attempt is claimed. It compares what was read before (no I/O, no waiting): a store may
/// run it inside the transaction that claimed the attempt.
pub type AnswerCheck = Box<dyn FnOnce() -> Option<Proven> + Send>;

/// How an answer to a challenge ended (`ChallengeStore::answer_challenge`).
// One per answer, moved once or twice: a box for `Proved` would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Answered {
    /// The attempt was not claimed (never `AttemptClaim::Claimed`), so the answer was not
    /// checked.
    NotClaimed(AttemptClaim),
    /// Claimed, checked, wrong: the challenge is now at `failures` attempts.
    Wrong { failures: u32 },
    /// Claimed and checked right; `completion` says whether the login completed with it (on
    /// anything but `Completed`, nothing but the attempt's claim was written).
    Proved {
        failures: u32,
        proven: Proven,
        completion: Completion,
    },
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
    /// The challenge with this id (the one its token names, `secret::token_row`), live or not.
    /// Finding it proves nothing: the caller checks the token against `token_hash`.
    async fn challenge_by_id(&self, id: &str) -> StoreResult<Option<Challenge>>;
    /// `challenge_by_id`, with the verified factors of its user in enrolment order, read in one
    /// statement: an answer compares the code with them, and a read saved is a round trip (on
    /// PostgreSQL) or a read transaction (on SQLite) less per answer.
    async fn challenge_and_factors(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Challenge, Vec<Factor>)>>;
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
    /// Answers a challenge: claims the attempt (`claim_challenge_attempt`), and only if it
    /// was claimed runs `check`; when that proves a factor, completes the login with it
    /// (`complete_challenge`, handing back the claim on `user_window`). This default takes two
    /// transactions, one for the claim and one for the completion, with the check between. Both
    /// stores do all of it in one (SQLite: one job on its writer; PostgreSQL: one transaction,
    /// the completion under a savepoint so that a refused one keeps the claim), still claiming
    /// before they check: one write of the challenge's row and the user's window instead of
    /// two, and one commit fewer to wait for.
    async fn answer_challenge(
        &self,
        challenge_id: &str,
        max_failures: u32,
        user_window: Option<&WindowLimit>,
        check: AnswerCheck,
        now: i64,
    ) -> StoreResult<Answered> {
        let failures = match self
            .claim_challenge_attempt(challenge_id, max_failures, user_window, now)
            .await?
        {
            AttemptClaim::Claimed { failures } => failures,
            refused => return Ok(Answered::NotClaimed(refused)),
        };
        let Some(proven) = check() else {
            return Ok(Answered::Wrong { failures });
        };
        let completion = self
            .complete_challenge(
                challenge_id,
                proven.claim.clone(),
                &proven.refresh,
                user_window,
                now,
            )
            .await?;
        Ok(Answered::Proved {
            failures,
            proven,
            completion,
        })
    }
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
