//! Sessions on SQLite (see `SessionStore`).

use super::*;

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get("id")?,
        amr: row.get("amr")?,
        ip: row.get("ip")?,
        user_agent: row.get("user_agent")?,
        created_at: row.get("created_at")?,
        last_used_at: row.get("last_used_at")?,
        expires_at: row.get("expires_at")?,
    })
}

/// Forgets every remembered device of the user (inside the caller's job).
pub(super) fn forget_devices(c: &rusqlite::Connection, user_id: &str) -> rusqlite::Result<()> {
    execute(
        c,
        "DELETE FROM remembered_devices WHERE user_id = ?1",
        [user_id],
    )
    .map(drop)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn live_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>> {
        self.readers
            .read(|c| {
                query_all(
                    c,
                    "SELECT id, amr, ip, user_agent, created_at, last_used_at, expires_at
                     FROM sessions s
                     WHERE s.user_id = ?1 AND s.expires_at > ?2
                       AND EXISTS (SELECT 1 FROM refresh_tokens t
                                   WHERE t.family_id = s.id AND t.used_at IS NULL
                                     AND t.revoked_at IS NULL AND t.expires_at > ?2)
                     ORDER BY s.created_at DESC, s.id",
                    params![user_id, now],
                    session_from_row,
                )
            })
            .await
    }

    async fn end_session(&self, user_id: &str, session_id: &str, now: i64) -> StoreResult<bool> {
        let (user_id, session_id) = (user_id.to_owned(), session_id.to_owned());
        let ended = self
            .write(move |c| {
                execute(
                    c,
                    "UPDATE refresh_tokens SET revoked_at = ?3
                     WHERE family_id = ?1 AND user_id = ?2 AND revoked_at IS NULL
                       AND used_at IS NULL AND expires_at > ?3",
                    params![session_id, user_id, now],
                )
            })
            .await?;
        Ok(ended > 0)
    }

    async fn end_all_sessions(&self, user_id: &str, now: i64) -> StoreResult<u64> {
        let user_id = user_id.to_owned();
        let ended = self
            .write(move |c| {
                let ended = execute(
                    c,
                    // Through the user's sessions: tokens have no index by user.
                    "UPDATE refresh_tokens SET revoked_at = ?2
                     WHERE family_id IN (SELECT id FROM sessions WHERE user_id = ?1)
                       AND revoked_at IS NULL AND used_at IS NULL AND expires_at > ?2",
                    params![user_id, now],
                )?;
                forget_devices(c, &user_id)?;
                Ok(ended)
            })
            .await?;
        Ok(ended as u64)
    }

    async fn remember_device(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<()> {
        let (token_hash, user_id) = (token_hash.to_owned(), user_id.to_owned());
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO remembered_devices (token_hash, user_id, created_at, expires_at)
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2 AND disabled = 0)",
                params![token_hash, user_id, now, expires_at],
            )
        })
        .await?;
        Ok(())
    }

    async fn use_remembered_device(
        &self,
        token_hash: &str,
        user_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let (token_hash, user_id) = (token_hash.to_owned(), user_id.to_owned());
        let used = self
            .write(move |c| {
                execute(
                    c,
                    "UPDATE remembered_devices SET last_used_at = ?3
                     WHERE token_hash = ?1 AND user_id = ?2 AND expires_at > ?3",
                    params![token_hash, user_id, now],
                )
            })
            .await?;
        Ok(used == 1)
    }

    async fn continue_session(&self, token: &NewRefreshToken, now: i64) -> StoreResult<bool> {
        let token = token.clone();
        self.write(move |c| continue_family(c, &token, now)).await
    }
}
