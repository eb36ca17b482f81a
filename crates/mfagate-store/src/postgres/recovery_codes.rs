//! Recovery codes: one set per user, each used once.

use super::*;

/// The user's recovery codes become `codes_sealed`, and only those.
pub(super) async fn replace_codes(
    c: &mut sqlx::PgConnection,
    user_id: &str,
    codes_sealed: &[String],
) -> Result<(), sqlx::Error> {
    // One statement, one round trip for the whole set: the DELETE in the CTE sees only the old
    // codes (both run on one snapshot), the INSERT keeps the codes' order in their ids.
    sqlx::query(
        "WITH gone AS (DELETE FROM recovery_codes WHERE user_id = $1)
         INSERT INTO recovery_codes (user_id, code_sealed)
         SELECT $1, code FROM UNNEST($2::text[]) WITH ORDINALITY AS c (code, n) ORDER BY n",
    )
    .bind(user_id)
    .bind(codes_sealed)
    .execute(&mut *c)
    .await?;
    Ok(())
}

#[async_trait]
impl RecoveryCodeStore for PgStore {
    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<StoredRecoveryCode>> {
        on_connection!(self, |c| {
            let rows = sqlx::query("SELECT id, code_sealed FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL ORDER BY id")
            .bind(user_id)
            .fetch_all(&mut *c)
            .await
            .store()?;
            rows.iter()
                .map(|row| {
                    Ok(StoredRecoveryCode {
                        id: row.try_get("id").store()?,
                        code_sealed: row.try_get("code_sealed").store()?,
                    })
                })
                .collect()
        })
    }

    async fn count_unused_recovery_codes(&self, user_id: &str) -> StoreResult<u64> {
        on_connection!(self, |c| {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            )
            .bind(user_id)
            .fetch_one(&mut *c)
            .await
            .store()?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }

    async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_id: i64,
        now: i64,
    ) -> StoreResult<bool> {
        on_connection!(self, |c| {
            let used = sqlx::query("UPDATE recovery_codes SET used_at = $3 WHERE id = $2 AND user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .bind(code_id)
            .bind(now)
            .execute(&mut *c)
            .await
            .store()?;
            if used.rows_affected() != 1 {
                return Ok(false);
            }
            touch_totp_device(&mut *c, user_id, now).await.store()?;
            Ok(true)
        })
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes_sealed: &[String],
    ) -> StoreResult<bool> {
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            // Only while the user is active and still holds a factor (the row lock orders this
            // against a removal of the last factor, which locks it too).
            let enrolled: Option<bool> = sqlx::query_scalar(
                "SELECT NOT disabled
                   AND EXISTS (SELECT 1 FROM factors WHERE user_id = $1 AND verified_at IS NOT NULL)
                 FROM users WHERE id = $1 FOR UPDATE",
            )
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .store()?;
            if enrolled != Some(true) {
                return Ok(false);
            }
            replace_codes(&mut tx, user_id, codes_sealed)
                .await
                .store()?;
            tx.commit().await.store()?;
            Ok(true)
        })
    }
}
