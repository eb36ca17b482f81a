//! Accounts brought in whole, from another system or a benchmark's seed.

use async_trait::async_trait;

use super::*;

/// A TOTP device as an import brings it (it becomes a factor named "Authenticator").
#[derive(Debug, Clone)]
pub struct TotpDevice {
    pub secret_sealed: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub last_step: Option<i64>,
}

/// One account with what it holds, as an import from another system (or a benchmark's seed)
/// brings it. Secrets come sealed with the gate's key, tokens and keys as hashes.
#[derive(Debug, Clone)]
pub struct ImportedAccount {
    pub user: NewUser,
    pub email_verified: bool,
    pub email_otp: bool,
    /// The method offered first at login (`totp`, `email` or `none`).
    pub preferred_method: Option<crate::factors::Method>,
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
