//! Recovery codes: one set per user, each used once.

use super::*;

/// The user's recovery codes become `codes_sealed`, and only those.
pub(super) fn replace_codes(
    c: &rusqlite::Connection,
    user_id: &str,
    codes_sealed: &[String],
) -> rusqlite::Result<()> {
    execute(
        c,
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        [user_id],
    )?;
    execute(
        c,
        "INSERT INTO recovery_codes (user_id, code_sealed)
         SELECT ?1, value FROM json_each(?2) ORDER BY key",
        params![
            user_id,
            serde_json::Value::from(codes_sealed.to_vec()).to_string()
        ],
    )
    .map(drop)
}

#[async_trait]
impl RecoveryCodeStore for SqliteStore {
    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<StoredRecoveryCode>> {
        self.readers
            .read(|c| {
                query_all(
                    c,
                    "SELECT id, code_sealed FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL ORDER BY id",
                    [user_id],
                    |row| {
                        Ok(StoredRecoveryCode {
                            id: row.get("id")?,
                            code_sealed: row.get("code_sealed")?,
                        })
                    },
                )
            })
            .await
    }

    async fn count_unused_recovery_codes(&self, user_id: &str) -> StoreResult<u64> {
        let count: Option<i64> = self
            .readers
            .read(|c| {
                query_opt(
                    c,
                    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
                    [user_id],
                    |row| row.get(0),
                )
            })
            .await?;
        Ok(count.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_id: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let user_id = user_id.to_owned();
        self.write(move |c| {
            let used = execute(
                c,
                "UPDATE recovery_codes SET used_at = ?3 WHERE id = ?2 AND user_id = ?1 AND used_at IS NULL",
                params![user_id, code_id, now],
            )?;
            if used != 1 {
                return Ok(false);
            }
            touch_totp_device(c, &user_id, now)?;
            Ok(true)
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes_sealed: &[String],
    ) -> StoreResult<bool> {
        let (user_id, codes) = (user_id.to_owned(), codes_sealed.to_vec());
        self.write(move |c| {
            // Only while the user is active and still holds a factor: codes made just as the
            // last factor went would otherwise outlive it.
            let enrolled = query_opt(
                c,
                "SELECT 1 FROM users WHERE id = ?1 AND disabled = 0
                   AND EXISTS (SELECT 1 FROM factors WHERE user_id = ?1 AND verified_at IS NOT NULL)",
                [&user_id],
                |_| Ok(()),
            )?;
            if enrolled.is_none() {
                return Ok(false);
            }
            replace_codes(c, &user_id, &codes)?;
            Ok(true)
        })
        .await
    }
}
