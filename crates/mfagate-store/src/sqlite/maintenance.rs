//! The clean-up in bounded batches, and the health check.

use super::*;

pub(super) const CLEANUP: &[&str] = &[
    "DELETE FROM challenges WHERE rowid IN
     (SELECT rowid FROM challenges WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    "DELETE FROM challenges WHERE rowid IN
     (SELECT rowid FROM challenges WHERE spent_at IS NOT NULL AND spent_at <= ?1 ORDER BY spent_at LIMIT ?2)",
    "DELETE FROM setup_tokens WHERE rowid IN
     (SELECT rowid FROM setup_tokens WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    "DELETE FROM refresh_tokens WHERE rowid IN
     (SELECT rowid FROM refresh_tokens WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    "DELETE FROM throttle_windows WHERE rowid IN
     (SELECT rowid FROM throttle_windows WHERE window_end <= ?1 ORDER BY window_end LIMIT ?2)",
    "DELETE FROM email_keys WHERE rowid IN
     (SELECT rowid FROM email_keys WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    "DELETE FROM recovery_codes WHERE id IN
     (SELECT id FROM recovery_codes WHERE used_at IS NOT NULL AND used_at <= ?1 ORDER BY used_at LIMIT ?2)",
    "DELETE FROM factors WHERE rowid IN
     (SELECT rowid FROM factors WHERE verified_at IS NULL AND pending_expires_at <= ?1
      ORDER BY pending_expires_at LIMIT ?2)",
    "DELETE FROM remembered_devices WHERE rowid IN
     (SELECT rowid FROM remembered_devices WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    // A session's tokens go with it (their foreign key cascades, through
    // `refresh_tokens_by_family`). They have all expired by then, a session's expiry being its
    // newest token's, so the refresh tokens' own statement has usually deleted them.
    "DELETE FROM sessions WHERE rowid IN
     (SELECT rowid FROM sessions WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    "DELETE FROM passkey_tokens WHERE rowid IN
     (SELECT rowid FROM passkey_tokens WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
];

pub(super) const CLEANUP_AUDIT: &str = "DELETE FROM audit_events WHERE id IN
     (SELECT id FROM audit_events WHERE at < ?1 ORDER BY at LIMIT ?2)";

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.readers
            .read(|c| query_opt(c, "SELECT 1", [], |_| Ok(())))
            .await?;
        Ok(())
    }

    async fn delete_expired(
        &self,
        now: i64,
        audit_before: Option<i64>,
        batch: u32,
    ) -> StoreResult<u64> {
        let batch = i64::from(batch.max(1));
        let mut deleted: u64 = 0;
        let mut statements: Vec<(&'static str, i64)> =
            CLEANUP.iter().map(|statement| (*statement, now)).collect();
        if let Some(before) = audit_before {
            statements.push((CLEANUP_AUDIT, before));
        }
        // Each batch is a job of its own: writes queued behind the clean-up wait for one batch
        // at most, never for the whole backlog.
        for (statement, bound) in statements {
            let changed = self
                .write(move |c| execute(c, statement, params![bound, batch]))
                .await?;
            deleted += changed as u64;
        }
        Ok(deleted)
    }
}
