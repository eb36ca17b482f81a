//! The audit trail: batches written at once, read newest first.

use super::*;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit_batch(&self, records: &[AuditRecord]) -> StoreResult<()> {
        // The whole batch as one JSON array in one statement: one cached statement for every
        // batch size.
        let rows = audit_rows(records.iter()).to_string();
        self.write(move |c| execute(c, IMPORT_EVENTS, [rows]))
            .await?;
        Ok(())
    }

    async fn recent_audit_events(
        &self,
        user_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredAuditEvent>> {
        let limit = i64::from(limit);
        let event = |row: &rusqlite::Row<'_>| {
            Ok(StoredAuditEvent {
                at: row.get("at")?,
                user_id: row.get("user_id")?,
                event: row.get("event")?,
                ip: row.get("ip")?,
                detail: row.get("detail")?,
            })
        };
        // Two statements, not `?1 IS NULL OR user_id = ?1`: that form cannot use the index.
        self.readers
            .read(|c| match user_id {
                Some(user_id) => query_all(
                    c,
                    "SELECT at, user_id, event, ip, detail FROM audit_events
                     WHERE user_id = ?2 ORDER BY id DESC LIMIT ?1",
                    params![limit, user_id],
                    event,
                ),
                None => query_all(
                    c,
                    "SELECT at, user_id, event, ip, detail FROM audit_events ORDER BY id DESC LIMIT ?1",
                    [limit],
                    event,
                ),
            })
            .await
    }
}
