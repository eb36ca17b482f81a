//! Sessions on PostgreSQL (see `SessionStore`).

use async_trait::async_trait;
use mfagate_core::store::{NewRefreshToken, Session, SessionStore, StoreResult};
use sqlx::Row;

use super::{on_connection, PgStore, SqlResult};

/// Forgets every remembered device of the user (inside the caller's transaction).
pub(super) async fn forget_devices(
    c: &mut sqlx::PgConnection,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM remembered_devices WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

#[async_trait]
impl SessionStore for PgStore {
    async fn live_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>> {
        on_connection!(self, |c| {
            let rows = sqlx::query(
                // `OFFSET 0` keeps the token check a sub-plan run per session by its family:
                // as a semi-join it could walk all of `refresh_tokens_by_family`.
                "SELECT id, amr, ip, user_agent, created_at, last_used_at, expires_at
                 FROM sessions s
                 WHERE s.user_id = $1 AND s.expires_at > $2
                   AND EXISTS (SELECT 1 FROM refresh_tokens t
                               WHERE t.family_id = s.id AND t.used_at IS NULL
                                 AND t.revoked_at IS NULL AND t.expires_at > $2 OFFSET 0)
                 ORDER BY s.created_at DESC, s.id",
            )
            .bind(user_id)
            .bind(now)
            .fetch_all(&mut *c)
            .await
            .store()?;
            rows.iter()
                .map(|row| {
                    Ok(Session {
                        id: row.try_get("id").store()?,
                        amr: row.try_get("amr").store()?,
                        ip: row.try_get("ip").store()?,
                        user_agent: row.try_get("user_agent").store()?,
                        created_at: row.try_get("created_at").store()?,
                        last_used_at: row.try_get("last_used_at").store()?,
                        expires_at: row.try_get("expires_at").store()?,
                    })
                })
                .collect()
        })
    }

    async fn end_session(&self, user_id: &str, session_id: &str, now: i64) -> StoreResult<bool> {
        on_connection!(self, |c| {
            let ended = sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $3
                 WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL
                   AND used_at IS NULL AND expires_at > $3",
            )
            .bind(session_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *c)
            .await
            .store()?;
            Ok(ended.rows_affected() > 0)
        })
    }

    async fn end_all_sessions(&self, user_id: &str, now: i64) -> StoreResult<u64> {
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            let ended = sqlx::query(
                // Through the user's sessions: tokens have no index by user. The sessions are
                // read first, as an array, and the tokens by family from it: as `IN (...)`, a
                // join, it was planned (on tables analysed nearly empty) as a walk of all of
                // `refresh_tokens_by_family` filtered per session (the query-plan test).
                "UPDATE refresh_tokens SET revoked_at = $2
                 WHERE family_id = ANY(ARRAY(SELECT id FROM sessions WHERE user_id = $1))
                   AND revoked_at IS NULL AND used_at IS NULL AND expires_at > $2",
            )
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .store()?;
            forget_devices(&mut tx, user_id).await.store()?;
            tx.commit().await.store()?;
            Ok(ended.rows_affected())
        })
    }

    async fn remember_device(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<()> {
        on_connection!(self, |c| {
            sqlx::query(
            "INSERT INTO remembered_devices (token_hash, user_id, created_at, expires_at)
                 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND NOT disabled)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *c)
        .await
        .store()?;
            Ok(())
        })
    }

    async fn use_remembered_device(
        &self,
        token_hash: &str,
        user_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        on_connection!(self, |c| {
            let used = sqlx::query(
                "UPDATE remembered_devices SET last_used_at = $3
                 WHERE token_hash = $1 AND user_id = $2 AND expires_at > $3",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .execute(&mut *c)
            .await
            .store()?;
            Ok(used.rows_affected() == 1)
        })
    }

    async fn continue_session(&self, token: &NewRefreshToken, now: i64) -> StoreResult<bool> {
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            if !super::tokens::continue_family(&mut tx, token, now)
                .await
                .store()?
            {
                return Ok(false);
            }
            tx.commit().await.store()?;
            Ok(true)
        })
    }
}
