//! Refresh tokens: sessions that rotate, and die whole when a used token comes back.

use super::*;

/// See the SQLite store's `insert_token`: a new session's first token, and the session; and
/// the hand-back of `hand_back` (a login's claimed windows, when it succeeds).
///
/// One statement, so one round trip: on PostgreSQL a login's cost is mostly its round trips
/// (each one a pair of context switches between the server and a backend), not the statements'
/// work. The steps touch different tables, so their order within the statement does not matter.
pub(super) async fn insert_token(
    c: &mut sqlx::PgConnection,
    token: &NewRefreshToken,
    hand_back: &[WindowLimit],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "WITH session AS (
           INSERT INTO sessions (id, user_id, amr, ip, user_agent, created_at, last_used_at, expires_at)
           VALUES ($3, $2, $4, $9, $10, $6, $6, $7)
         ), handed_back AS (",
        hand_back_windows!("$11", "$12"),
        ")
         INSERT INTO refresh_tokens (token_hash, user_id, family_id, amr, auth_time, created_at, expires_at, id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(&token.token_hash)
    .bind(&token.user_id)
    .bind(&token.family_id)
    .bind(&token.amr)
    .bind(token.auth_time)
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(&token.id)
    .bind(&token.ip)
    .bind(&token.user_agent)
    .bind(hand_back_keys(hand_back))
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// See the SQLite store's `insert_successor`: a later token of a session.
pub(super) async fn insert_successor(
    c: &mut sqlx::PgConnection,
    token: &NewRefreshToken,
) -> Result<(), sqlx::Error> {
    insert_token_row(c, token).await?;
    sqlx::query("UPDATE sessions SET last_used_at = $2, expires_at = $3 WHERE id = $1")
        .bind(&token.family_id)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *c)
        .await?;
    Ok(())
}

async fn insert_token_row(
    c: &mut sqlx::PgConnection,
    token: &NewRefreshToken,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, amr, auth_time, created_at, expires_at, id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&token.token_hash)
    .bind(&token.user_id)
    .bind(&token.family_id)
    .bind(&token.amr)
    .bind(token.auth_time)
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(&token.id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// See the SQLite store's `continue_family`. The UPDATE's row locks order it against a
/// concurrent rotation or revocation of the same tokens.
pub(super) async fn continue_family(
    c: &mut sqlx::PgConnection,
    token: &NewRefreshToken,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let used = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $3
         WHERE family_id = $1 AND user_id = $2 AND used_at IS NULL AND revoked_at IS NULL
           AND expires_at > $3
           AND EXISTS (SELECT 1 FROM users WHERE id = $2 AND NOT disabled)",
    )
    .bind(&token.family_id)
    .bind(&token.user_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    if used.rows_affected() == 0 {
        return Ok(false);
    }
    insert_successor(c, token).await?;
    sqlx::query("UPDATE sessions SET amr = $2 WHERE id = $1")
        .bind(&token.family_id)
        .bind(&token.amr)
        .execute(&mut *c)
        .await?;
    Ok(true)
}

/// `TokenStore::rotate_refresh_token` on `c` (a connection of the store's own, which the caller
/// hands back).
async fn rotate_on(
    c: &mut sqlx::PgConnection,
    token: &PresentedToken,
    successor: &RefreshSuccessor,
    now: i64,
) -> StoreResult<RefreshOutcome> {
    // One statement, so one round trip and no transaction around it: the token is used (its row
    // lock makes a concurrent rotation of it wait and then find it used), its successor stored
    // in its family, and the session's last use and end moved, all or none. (`OFFSET 0` keeps
    // the user's check a lookup by key: see `spend_challenge!`.)
    let rotated = sqlx::query(
        "WITH rotated AS (
           UPDATE refresh_tokens SET used_at = $2
           WHERE id = $1 AND token_hash = $3 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
             AND EXISTS (SELECT 1 FROM users u WHERE u.id = refresh_tokens.user_id AND NOT u.disabled OFFSET 0)
           RETURNING user_id, family_id, amr, COALESCE(auth_time, created_at) AS auth_time
         ), successor AS (
           INSERT INTO refresh_tokens (token_hash, user_id, family_id, amr, auth_time, created_at, expires_at, id)
           SELECT $4, user_id, family_id, amr, auth_time, $5, $6, $7 FROM rotated
         ), session AS (
           UPDATE sessions SET last_used_at = $5, expires_at = $6
           WHERE id = (SELECT family_id FROM rotated)
         )
         SELECT user_id, family_id, amr, auth_time FROM rotated",
    )
    .bind(&token.id)
    .bind(now)
    .bind(&token.token_hash)
    .bind(&successor.token_hash)
    .bind(successor.created_at)
    .bind(successor.expires_at)
    .bind(&successor.id)
    .fetch_optional(&mut *c)
    .await
    .store()?;
    if let Some(row) = rotated {
        return Ok(RefreshOutcome::Rotated {
            user_id: row.try_get("user_id").store()?,
            family_id: row.try_get("family_id").store()?,
            amr: row.try_get("amr").store()?,
            auth_time: row.try_get("auth_time").store()?,
        });
    }
    // Not rotated: either no such token (or a live one refused for its user or its age), or a
    // used one presented again, which means someone holds a copy: revoke the whole family.
    let Some((user_id, family_id, Some(_used_at))) = token_of(c, token).await? else {
        return Ok(RefreshOutcome::Invalid);
    };
    revoke_family(c, &family_id, now).await?;
    Ok(RefreshOutcome::Reused { user_id, family_id })
}

/// The user, family and use time of the presented token, if its id and hash match a row.
async fn token_of(
    c: &mut sqlx::PgConnection,
    token: &PresentedToken,
) -> StoreResult<Option<(String, String, Option<i64>)>> {
    sqlx::query_as(
        "SELECT user_id, family_id, used_at FROM refresh_tokens WHERE id = $1 AND token_hash = $2",
    )
    .bind(&token.id)
    .bind(&token.token_hash)
    .fetch_optional(&mut *c)
    .await
    .store()
}

/// Revokes every live token of the family (a logout, or a used token presented again).
async fn revoke_family(c: &mut sqlx::PgConnection, family_id: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .bind(now)
    .execute(&mut *c)
    .await
    .store()?;
    Ok(())
}

#[async_trait]
impl TokenStore for PgStore {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        on_connection!(self, |c| {
            insert_token(c, token, &[], token.created_at).await.store()
        })
    }

    async fn rotate_refresh_token(
        &self,
        token: &PresentedToken,
        successor: &RefreshSuccessor,
        now: i64,
    ) -> StoreResult<RefreshOutcome> {
        on_connection!(self, |c| rotate_on(c, token, successor, now).await)
    }

    async fn revoke_refresh_family(
        &self,
        token: &PresentedToken,
        now: i64,
    ) -> StoreResult<Option<String>> {
        on_connection!(self, |c| {
            let Some((user_id, family_id, _)) = token_of(c, token).await? else {
                return Ok(None);
            };
            revoke_family(c, &family_id, now).await?;
            Ok(Some(user_id))
        })
    }
}
