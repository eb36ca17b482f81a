//! Refresh tokens: sessions that rotate, and die whole when a used token comes back.

use super::*;

/// Stores the first refresh token of a new session, and the session's row (where and how it
/// began). The session first: a token's family is a session (its foreign key).
pub(super) fn insert_token(
    c: &rusqlite::Connection,
    token: &NewRefreshToken,
) -> rusqlite::Result<()> {
    execute(
        c,
        "INSERT INTO sessions (id, user_id, amr, ip, user_agent, created_at, last_used_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
        params![
            token.family_id,
            token.user_id,
            token.amr,
            token.ip,
            token.user_agent,
            token.created_at,
            token.expires_at
        ],
    )?;
    insert_token_row(c, token)
}

/// Stores a later refresh token of a session (a rotation's successor, a reauthentication's
/// token): the session records its use and its new expiry.
pub(super) fn insert_successor(
    c: &rusqlite::Connection,
    token: &NewRefreshToken,
) -> rusqlite::Result<()> {
    insert_token_row(c, token)?;
    execute(
        c,
        "UPDATE sessions SET last_used_at = ?2, expires_at = ?3 WHERE id = ?1",
        params![token.family_id, token.created_at, token.expires_at],
    )
    .map(drop)
}

fn insert_token_row(c: &rusqlite::Connection, token: &NewRefreshToken) -> rusqlite::Result<()> {
    execute(
        c,
        "INSERT INTO refresh_tokens (id, token_hash, user_id, family_id, amr, auth_time, created_at, expires_at)
         VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            token.token_hash,
            token.user_id,
            token.family_id,
            token.amr,
            token.auth_time,
            token.created_at,
            token.expires_at,
            token.id
        ],
    )
    .map(drop)
}

/// Continues a live session of an active user with `token` (a reauthentication): the
/// family's live token is used up, `token` joins the family, the session takes its `amr`.
/// False when the session is over or the user disabled; nothing changed then.
pub(super) fn continue_family(
    c: &rusqlite::Connection,
    token: &NewRefreshToken,
    now: i64,
) -> rusqlite::Result<bool> {
    let used = execute(
        c,
        "UPDATE refresh_tokens SET used_at = ?3
         WHERE family_id = ?1 AND user_id = ?2 AND used_at IS NULL AND revoked_at IS NULL
           AND expires_at > ?3
           AND EXISTS (SELECT 1 FROM users WHERE id = ?2 AND disabled = 0)",
        params![token.family_id, token.user_id, now],
    )?;
    if used == 0 {
        return Ok(false);
    }
    insert_successor(c, token)?;
    execute(
        c,
        "UPDATE sessions SET amr = ?2 WHERE id = ?1",
        params![token.family_id, token.amr],
    )?;
    Ok(true)
}

pub(super) fn revoke_family(
    c: &rusqlite::Connection,
    family_id: &str,
    now: i64,
) -> rusqlite::Result<()> {
    execute(
        c,
        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
        params![family_id, now],
    )
    .map(drop)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |c| insert_token(c, &token)).await
    }

    async fn rotate_refresh_token(
        &self,
        token: &PresentedToken,
        successor: &RefreshSuccessor,
        now: i64,
    ) -> StoreResult<RefreshOutcome> {
        let (token, successor) = (token.clone(), successor.clone());
        self.write(move |c| {
            // Found by the id the token names, and only with the hash of the whole token.
            let rotated = query_opt(
                c,
                "UPDATE refresh_tokens SET used_at = ?2
                 WHERE id = ?1 AND token_hash = ?3 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?2
                   AND EXISTS (SELECT 1 FROM users u WHERE u.id = refresh_tokens.user_id AND u.disabled = 0)
                 RETURNING user_id, family_id, amr, COALESCE(auth_time, created_at) AS auth_time",
                params![token.id, now, token.token_hash],
                |row| {
                    Ok(NewRefreshToken {
                        id: successor.id.clone(),
                        token_hash: successor.token_hash.clone(),
                        user_id: row.get("user_id")?,
                        family_id: row.get("family_id")?,
                        amr: row.get("amr")?,
                        auth_time: row.get("auth_time")?,
                        created_at: successor.created_at,
                        expires_at: successor.expires_at,
                        ip: None,
                        user_agent: None,
                    })
                },
            )?;
            if let Some(child) = rotated {
                // In the same job: a reuse that revokes the family after this revokes the
                // successor too.
                insert_successor(c, &child)?;
                return Ok(RefreshOutcome::Rotated {
                    user_id: child.user_id,
                    family_id: child.family_id,
                    amr: child.amr,
                    auth_time: child.auth_time,
                });
            }
            let known = query_opt(
                c,
                "SELECT user_id, family_id, used_at FROM refresh_tokens WHERE id = ?1 AND token_hash = ?2",
                [&token.id, &token.token_hash],
                |row| <(String, String, Option<i64>)>::try_from(row),
            )?;
            let Some((user_id, family_id, Some(_used_at))) = known else {
                // Unknown, or live but refused above (revoked, expired, user disabled).
                return Ok(RefreshOutcome::Invalid);
            };
            // A used token presented again: someone holds a copy. Revoke the whole family.
            revoke_family(c, &family_id, now)?;
            Ok(RefreshOutcome::Reused { user_id, family_id })
        })
        .await
    }

    async fn revoke_refresh_family(
        &self,
        token: &PresentedToken,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let token = token.clone();
        self.write(move |c| {
            let row = query_opt(
                c,
                "SELECT user_id, family_id FROM refresh_tokens WHERE id = ?1 AND token_hash = ?2",
                [&token.id, &token.token_hash],
                |row| <(String, String)>::try_from(row),
            )?;
            let Some((user_id, family_id)) = row else {
                return Ok(None);
            };
            revoke_family(c, &family_id, now)?;
            Ok(Some(user_id))
        })
        .await
    }
}
