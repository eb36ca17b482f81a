//! E-mailed codes of a challenge and the single-use keys of verification, invitation and reset mails.

use super::*;

#[async_trait]
impl EmailStore for SqliteStore {
    async fn reserve_email_send(
        &self,
        challenge_id: &str,
        code_hash: &str,
        now: i64,
        min_interval: i64,
        max_sends: u32,
        max_failures: u32,
    ) -> StoreResult<EmailReservation> {
        let (id, code_hash) = (challenge_id.to_owned(), code_hash.to_owned());
        // Every SET expression reads the old row, so the previous code is what gets kept aside.
        let reserved = self
            .write(move |c| {
                execute(
                    c,
                    "UPDATE challenges SET
                   email_prev_hash = email_code_hash, email_prev_sent_at = email_sent_at,
                   email_code_hash = ?2, email_sent_at = ?3, email_sends = email_sends + 1
                 WHERE id = ?1 AND spent_at IS NULL AND expires_at > ?3 AND failures < ?6
                   AND email_sends < ?5 AND (email_sent_at IS NULL OR email_sent_at + ?4 <= ?3)",
                    params![
                        id,
                        code_hash,
                        now,
                        min_interval,
                        i64::from(max_sends),
                        i64::from(max_failures)
                    ],
                )
            })
            .await?;
        if reserved == 1 {
            return Ok(EmailReservation::Reserved);
        }
        let row = self
            .readers
            .read(|c| {
                query_opt(
                    c,
                    "SELECT expires_at, failures, spent_at, email_sent_at, email_sends FROM challenges WHERE id = ?1",
                    [challenge_id],
                    |row| <(i64, i64, Option<i64>, Option<i64>, i64)>::try_from(row),
                )
            })
            .await?;
        let Some((expires_at, failures, spent_at, sent_at, sends)) = row else {
            return Ok(EmailReservation::NotLive);
        };
        if spent_at.is_some() || expires_at <= now || failures >= i64::from(max_failures) {
            return Ok(EmailReservation::NotLive);
        }
        if sends >= i64::from(max_sends) {
            return Ok(EmailReservation::LimitReached);
        }
        Ok(EmailReservation::TooSoon {
            retry_after: sent_at.map_or(1, |at| at + min_interval - now).max(1),
        })
    }

    async fn release_email_send(&self, challenge_id: &str, code_hash: &str) -> StoreResult<()> {
        let (id, code_hash) = (challenge_id.to_owned(), code_hash.to_owned());
        self.write(move |c| {
            execute(
                c,
                "UPDATE challenges SET
               email_code_hash = email_prev_hash, email_sent_at = email_prev_sent_at,
               email_sends = email_sends - 1, email_prev_hash = NULL, email_prev_sent_at = NULL
             WHERE id = ?1 AND email_code_hash = ?2",
                params![id, code_hash],
            )
        })
        .await?;
        Ok(())
    }

    async fn create_email_key(
        &self,
        key_hash: &str,
        user_id: &str,
        purpose: KeyPurpose,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (key_hash, user_id) = (key_hash.to_owned(), user_id.to_owned());
        self.write(move |c| execute(c, "INSERT INTO email_keys (key_hash, user_id, purpose, expires_at) VALUES (?1, ?2, ?3, ?4)", params![key_hash, user_id, purpose.as_str(), expires_at]))
            .await?;
        Ok(())
    }

    async fn email_key_user(
        &self,
        key_hash: &str,
        purpose: KeyPurpose,
        now: i64,
    ) -> StoreResult<Option<String>> {
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    "SELECT user_id FROM email_keys
                     WHERE key_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3",
                    params![key_hash, purpose.as_str(), now],
                    |row| row.get(0),
                )
            })
            .await
    }

    async fn verify_address_with_key(
        &self,
        key_hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let key_hash = key_hash.to_owned();
        self.write(move |c| {
            let user: Option<String> = query_opt(
                c,
                "UPDATE email_keys SET used_at = ?2
                 WHERE key_hash = ?1 AND purpose = 'verify' AND used_at IS NULL AND expires_at > ?2
                 RETURNING user_id",
                params![key_hash, now],
                |row| row.get(0),
            )?;
            if let Some(user) = &user {
                execute(
                    c,
                    "UPDATE users SET email_verified = 1 WHERE id = ?1",
                    [user],
                )?;
            }
            Ok(user)
        })
        .await
    }
}
