//! The audit trail: batches written at once, read newest first.

use super::*;

#[async_trait]
impl AuditStore for PgStore {
    async fn record_audit_batch(&self, records: &[AuditRecord]) -> StoreResult<()> {
        on_connection!(self, |c| {
            // One statement over arrays: one round trip and one commit however many events.
            let at: Vec<i64> = records.iter().map(|r| r.at).collect();
            let user_id: Vec<Option<&str>> = records.iter().map(|r| r.user_id.as_deref()).collect();
            let event: Vec<&str> = records.iter().map(|r| r.event).collect();
            let ip: Vec<Option<&str>> = records.iter().map(|r| r.ip.as_deref()).collect();
            let detail: Vec<Option<&str>> = records.iter().map(|r| r.detail.as_deref()).collect();
            sqlx::query(
                "INSERT INTO audit_events (at, user_id, event, ip, detail)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])",
            )
            .bind(&at)
            .bind(&user_id)
            .bind(&event)
            .bind(&ip)
            .bind(&detail)
            .execute(&mut *c)
            .await
            .store()?;
            Ok(())
        })
    }

    async fn recent_audit_events(
        &self,
        user_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredAuditEvent>> {
        on_connection!(self, |c| {
            // Two statements, not `$1 IS NULL OR user_id = $1`: that form cannot use the index.
            let query = match user_id {
            Some(user_id) => sqlx::query(
                "SELECT at, user_id, event, ip, detail FROM audit_events
                     WHERE user_id = $2 ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit))
            .bind(user_id.to_string()),
            None => sqlx::query(
                "SELECT at, user_id, event, ip, detail FROM audit_events ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit)),
        };
            let rows = query.fetch_all(&mut *c).await.store()?;
            rows.iter()
                .map(|row| {
                    Ok(StoredAuditEvent {
                        at: row.try_get("at").store()?,
                        user_id: row.try_get("user_id").store()?,
                        event: row.try_get("event").store()?,
                        ip: row.try_get("ip").store()?,
                        detail: row.try_get("detail").store()?,
                    })
                })
                .collect()
        })
    }
}
