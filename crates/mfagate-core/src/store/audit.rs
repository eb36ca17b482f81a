//! The audit trail.

use async_trait::async_trait;

use super::*;

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
pub trait AuditStore: Send + Sync {
    /// Several records in one transaction.
    async fn record_audit_batch(&self, records: &[AuditRecord]) -> StoreResult<()>;
    async fn recent_audit_events(
        &self,
        user_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredAuditEvent>>;
}
