//! Recovery codes: one sealed set per user, each used once.

use async_trait::async_trait;

use super::*;

#[derive(Debug, Clone)]
pub struct StoredRecoveryCode {
    pub id: i64,
    pub code_sealed: String,
}

#[async_trait]
pub trait RecoveryCodeStore: Send + Sync {
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
