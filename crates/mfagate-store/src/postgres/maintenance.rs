//! The clean-up in bounded batches, and the health check.

use super::*;

/// The clean-up, batch by batch: $1 the time bound, $2 the batch size.
// `= ANY(ARRAY(...))` makes a TID (or key) lookup of exactly the batch, and `ORDER BY` the
// column walks its index: without it the planner takes a sequential scan with a LIMIT, which
// re-reads every row the passes before deleted (dead until vacuumed), so each pass of a large
// backlog gets slower (measured at a million accounts: 300 rows/s instead of thousands).
// The expiries and windows' ends are written `+ 0` to match their indexes, which are built on
// that expression so that only the clean-up can use them (PostgreSQL migration 15 says why).
pub(super) const CLEANUP: &[&str] = &[
    "DELETE FROM challenges WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM challenges WHERE expires_at + 0 <= $1 ORDER BY expires_at + 0 LIMIT $2))",
    "DELETE FROM challenges WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM challenges WHERE spent_at IS NOT NULL AND spent_at <= $1 ORDER BY spent_at LIMIT $2))",
    "DELETE FROM setup_tokens WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM setup_tokens WHERE expires_at + 0 <= $1 ORDER BY expires_at + 0 LIMIT $2))",
    "DELETE FROM refresh_tokens WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM refresh_tokens WHERE expires_at + 0 <= $1 ORDER BY expires_at + 0 LIMIT $2))",
    "DELETE FROM throttle_windows WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM throttle_windows WHERE window_end + 0 <= $1 ORDER BY window_end + 0 LIMIT $2))",
    "DELETE FROM email_keys WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM email_keys WHERE expires_at + 0 <= $1 ORDER BY expires_at + 0 LIMIT $2))",
    "DELETE FROM request_windows WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM request_windows WHERE window_end + 0 <= $1 ORDER BY window_end + 0 LIMIT $2))",
    "DELETE FROM recovery_codes WHERE id = ANY(ARRAY(
     SELECT id FROM recovery_codes WHERE used_at IS NOT NULL AND used_at <= $1 ORDER BY used_at LIMIT $2))",
    "DELETE FROM factors WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM factors WHERE verified_at IS NULL AND pending_expires_at + 0 <= $1
     ORDER BY pending_expires_at + 0 LIMIT $2))",
    "DELETE FROM remembered_devices WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM remembered_devices WHERE expires_at + 0 <= $1 ORDER BY expires_at + 0 LIMIT $2))",
    // A session's tokens go with it (their foreign key cascades, through
    // `refresh_tokens_by_family`). They have all expired by then, a session's expiry being its
    // newest token's, so the refresh tokens' own statement has usually deleted them.
    "DELETE FROM sessions WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM sessions WHERE expires_at + 0 <= $1 ORDER BY expires_at + 0 LIMIT $2))",
    "DELETE FROM passkey_tokens WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM passkey_tokens WHERE expires_at + 0 <= $1 ORDER BY expires_at + 0 LIMIT $2))",
];

pub(super) const CLEANUP_AUDIT: &str = "DELETE FROM audit_events WHERE id = ANY(ARRAY(
     SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2))";

pub(super) const CLEANUP_LOCK: i64 = 0x6d66_6167_0002;

/// What the clean-up's batches are planned with, besides the store's own settings (sequential
/// scans priced out, generic plans): no sort and no bitmap scan, so that each statement walks
/// its time index in order and stops after its batch, whatever the statistics say.
///
/// Why: a time index's rows are its backlog, and the statistics seldom know it. Analysed when
/// there was none (after a clean-up, by autovacuum; or on a new database), `spent_at IS NOT
/// NULL AND spent_at <= $1` is estimated at one row, and the planner takes a bitmap scan of the
/// whole index, then sorts it, then keeps 100: each batch read every spent challenge there was
/// (the pending factors' clean-up was planned the same way), so working off a backlog cost its
/// square. The generic plan a connection makes first is the one it keeps, so the settings are
/// set in every batch's transaction (`set_config(..., true)`), where the statements are
/// planned, in the round trip that takes the lock. The query-plan test plans the clean-up with
/// these and requires an ordered index walk without a sort, on tables analysed full and nearly
/// empty.
pub const CLEANUP_PLANNER_SETTINGS: &[(&str, &str)] =
    &[("enable_sort", "off"), ("enable_bitmapscan", "off")];

/// Takes the clean-up's lock ($1) and sets `CLEANUP_PLANNER_SETTINGS` for the transaction, in
/// one round trip (a unit test below keeps the two in step).
const CLEANUP_LOCK_AND_SETTINGS: &str = "SELECT pg_try_advisory_xact_lock($1),
        set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)";

#[async_trait]
impl MaintenanceStore for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        on_connection!(self, |c| {
            sqlx::query("SELECT 1").execute(c).await.store()?;
            Ok(())
        })
    }

    async fn delete_expired(
        &self,
        now: i64,
        audit_before: Option<i64>,
        batch: u32,
    ) -> StoreResult<u64> {
        self.warn_about_settings().await;
        let batch = i64::from(batch.max(1));
        let mut statements: Vec<(&'static str, i64)> =
            CLEANUP.iter().map(|statement| (*statement, now)).collect();
        if let Some(before) = audit_before {
            statements.push((CLEANUP_AUDIT, before));
        }
        let mut deleted = 0;
        for (statement, bound) in statements {
            // A short transaction per batch; one instance at a time: another that holds the
            // lock is doing this pass, so this one stops.
            let pass = on_connection!(self, |c| {
                let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
                let locked: bool = sqlx::query_scalar(CLEANUP_LOCK_AND_SETTINGS)
                    .bind(CLEANUP_LOCK)
                    .fetch_one(&mut *tx)
                    .await
                    .store()?;
                if !locked {
                    return Ok(None);
                }
                let rows = sqlx::query(statement)
                    .bind(bound)
                    .bind(batch)
                    .execute(&mut *tx)
                    .await
                    .store()?
                    .rows_affected();
                tx.commit().await.store()?;
                Ok(Some(rows))
            })?;
            match pass {
                Some(rows) => deleted += rows,
                None => return Ok(deleted),
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_statement_sets_every_planner_setting_of_the_clean_up() {
        for (name, value) in CLEANUP_PLANNER_SETTINGS {
            let set = format!("set_config('{name}', '{value}', true)");
            assert!(CLEANUP_LOCK_AND_SETTINGS.contains(&set), "missing {set}");
        }
        assert_eq!(
            CLEANUP_LOCK_AND_SETTINGS.matches("set_config(").count(),
            CLEANUP_PLANNER_SETTINGS.len()
        );
    }
}
