//! Sessions: one login's family of refresh tokens, listed and ended by its user.

use async_trait::async_trait;

use super::*;

/// A live session as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The refresh family's id: the `sid` claim of its access tokens.
    pub id: String,
    /// The `amr` of the login (or reauthentication) it stands on, space-separated.
    pub amr: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The user's live sessions (a refresh token of the family is live), newest first.
    async fn live_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>>;
    /// Revokes every token of the user's session `session_id`; false when it is unknown,
    /// another user's, or over already.
    async fn end_session(&self, user_id: &str, session_id: &str, now: i64) -> StoreResult<bool>;
    /// Revokes every live token of the user and forgets every remembered device, in one
    /// transaction; how many sessions ended.
    async fn end_all_sessions(&self, user_id: &str, now: i64) -> StoreResult<u64>;
    /// Stores a remembered device (the hash of its token) of an active user.
    async fn remember_device(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<()>;
    /// Whether this device token is live and the user's (its last use is recorded). Device
    /// tokens die in the transactions that add or remove a factor, set the password, reset or
    /// disable the user, or end all sessions.
    async fn use_remembered_device(
        &self,
        token_hash: &str,
        user_id: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// A reauthentication with a password: iff `token.family_id` is a live session of
    /// `token.user_id` and the user is active, its live token is used up and `token` (fresh
    /// `auth_time` and `amr`) stored in the same family, in one transaction. False: nothing
    /// changed.
    async fn continue_session(&self, token: &NewRefreshToken, now: i64) -> StoreResult<bool>;
}
