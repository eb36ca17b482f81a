//! Users and the events that end every credential of one.

use async_trait::async_trait;

use super::*;
use crate::factors::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub is_admin: bool,
    pub disabled: bool,
    /// The method a challenge offers first; `None`: none chosen.
    pub preferred_method: Option<Method>,
    /// E-mailed codes switched on as a second factor.
    pub email_otp: bool,
    /// Whether a verified TOTP factor is enrolled (read with the user, saving a query per
    /// request).
    pub has_totp: bool,
    /// Whether a verified passkey is enrolled (read the same way).
    pub has_webauthn: bool,
    /// Bumped by every event that ends the user's credentials (password set, MFA reset,
    /// disable): a pending enrolment carries the epoch it began in and dies when it moves on.
    pub credential_epoch: i64,
    pub password_hash: String,
    pub created_at: i64,
}

/// A user found by a password login's name (`UserStore::login_candidate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCandidate {
    pub user: User,
    /// Whether any recovery code of the user is unused.
    pub has_unused_recovery_codes: bool,
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

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict` when the username or e-mail (case-insensitively, and across the two:
    /// one user's e-mail cannot be another's username) is taken.
    async fn create_user(&self, user: &NewUser) -> StoreResult<User>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    /// By username or e-mail, case-insensitively.
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>>;
    /// `user_by_login` for a password login: the user with whether any of their recovery codes
    /// is unused (a challenge offers them only then), read in one statement.
    async fn login_candidate(&self, login: &str) -> StoreResult<Option<LoginCandidate>>;
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
    /// Makes `method` the preferred one (`None`: none) and, with `email_otp`, switches
    /// e-mailed codes on or off, in one statement. `false`, with nothing changed, when `method`
    /// is TOTP and the user holds no TOTP factor (any more).
    async fn choose_method(
        &self,
        user_id: &str,
        method: Option<Method>,
        email_otp: Option<bool>,
    ) -> StoreResult<bool>;
}
