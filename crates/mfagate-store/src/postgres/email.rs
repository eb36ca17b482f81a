//! E-mailed codes of a challenge and the single-use keys of verification, invitation and reset mails.

use super::*;

#[async_trait]
impl EmailStore for PgStore {
    async fn reserve_email_send(
        &self,
        challenge_id: &str,
        code_hash: &str,
        now: i64,
        min_interval: i64,
        max_sends: u32,
        max_failures: u32,
    ) -> StoreResult<EmailReservation> {
        on_connection!(self, |c| {
            // Every SET expression reads the old row, so the previous code is what gets kept aside.
            let reserved = sqlx::query(
                "UPDATE challenges SET
                   email_prev_hash = email_code_hash, email_prev_sent_at = email_sent_at,
                   email_code_hash = $2, email_sent_at = $3, email_sends = email_sends + 1
                 WHERE id = $1 AND spent_at IS NULL AND expires_at > $3 AND failures < $6
                   AND email_sends < $5 AND (email_sent_at IS NULL OR email_sent_at + $4 <= $3)",
            )
            .bind(challenge_id)
            .bind(code_hash)
            .bind(now)
            .bind(min_interval)
            .bind(i64::from(max_sends))
            .bind(i64::from(max_failures))
            .execute(&mut *c)
            .await
            .store()?;
            if reserved.rows_affected() == 1 {
                return Ok(EmailReservation::Reserved);
            }
            let row = sqlx::query(
            "SELECT expires_at, failures, spent_at, email_sent_at, email_sends FROM challenges WHERE id = $1",
        )
        .bind(challenge_id)
        .fetch_optional(&mut *c)
        .await
        .store()?;
            let Some(row) = row else {
                return Ok(EmailReservation::NotLive);
            };
            let expires_at: i64 = row.try_get("expires_at").store()?;
            let failures: i64 = row.try_get("failures").store()?;
            let spent_at: Option<i64> = row.try_get("spent_at").store()?;
            let sent_at: Option<i64> = row.try_get("email_sent_at").store()?;
            let sends: i64 = row.try_get("email_sends").store()?;
            if spent_at.is_some() || expires_at <= now || failures >= i64::from(max_failures) {
                return Ok(EmailReservation::NotLive);
            }
            if sends >= i64::from(max_sends) {
                return Ok(EmailReservation::LimitReached);
            }
            Ok(EmailReservation::TooSoon {
                retry_after: sent_at.map_or(1, |at| at + min_interval - now).max(1),
            })
        })
    }

    async fn release_email_send(&self, challenge_id: &str, code_hash: &str) -> StoreResult<()> {
        on_connection!(self, |c| {
            sqlx::query(
                "UPDATE challenges SET
                   email_code_hash = email_prev_hash, email_sent_at = email_prev_sent_at,
                   email_sends = email_sends - 1, email_prev_hash = NULL, email_prev_sent_at = NULL
                 WHERE id = $1 AND email_code_hash = $2",
            )
            .bind(challenge_id)
            .bind(code_hash)
            .execute(&mut *c)
            .await
            .store()?;
            Ok(())
        })
    }

    async fn create_email_key(
        &self,
        key_hash: &str,
        user_id: &str,
        purpose: KeyPurpose,
        expires_at: i64,
    ) -> StoreResult<()> {
        on_connection!(self, |c| {
            sqlx::query("INSERT INTO email_keys (key_hash, user_id, purpose, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(key_hash)
            .bind(user_id)
            .bind(purpose.as_str())
            .bind(expires_at)
            .execute(&mut *c)
            .await
            .store()?;
            Ok(())
        })
    }

    async fn email_key_user(
        &self,
        key_hash: &str,
        purpose: KeyPurpose,
        now: i64,
    ) -> StoreResult<Option<String>> {
        on_connection!(self, |c| {
            sqlx::query_scalar(
                "SELECT user_id FROM email_keys
                 WHERE key_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
            )
            .bind(key_hash)
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(&mut *c)
            .await
            .store()
        })
    }

    async fn verify_address_with_key(
        &self,
        key_hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        on_connection!(self, |c| {
            // One statement: the key is used and the address verified together, or neither.
            sqlx::query_scalar(
                "WITH used AS (
                   UPDATE email_keys SET used_at = $2
                   WHERE key_hash = $1 AND purpose = 'verify' AND used_at IS NULL AND expires_at > $2
                   RETURNING user_id)
                 UPDATE users SET email_verified = TRUE FROM used WHERE users.id = used.user_id
                 RETURNING users.id",
            )
            .bind(key_hash)
            .bind(now)
            .fetch_optional(&mut *c)
            .await
            .store()
        })
    }
}
