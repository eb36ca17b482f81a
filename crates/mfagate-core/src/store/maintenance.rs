//! Health and the clean-up.

use async_trait::async_trait;

use super::*;

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
