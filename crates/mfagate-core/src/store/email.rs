//! E-mailed codes of a challenge and the single-use keys of mailed links.

use async_trait::async_trait;

use super::*;

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

#[async_trait]
pub trait EmailStore: Send + Sync {
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
    /// Uses a live verification key and marks its user's address verified, in one
    /// transaction; of concurrent callers exactly one gets the user.
    async fn verify_address_with_key(
        &self,
        key_hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>>;
}
