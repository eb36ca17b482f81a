//! Accounts: creation, lookups, and the changes that end a user's credentials.

use super::*;

/// Removes every factor of the user (pending ones too) and the recovery codes.
pub(super) fn remove_second_factors(
    c: &rusqlite::Connection,
    user_id: &str,
) -> rusqlite::Result<()> {
    execute(c, "DELETE FROM factors WHERE user_id = ?1", [user_id])?;
    execute(
        c,
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        [user_id],
    )
    .map(drop)
}

/// Ends every credential of a user but the second factors themselves: live challenges, setup
/// tokens, remembered devices, pending enrolments (the epoch moves on), refresh tokens,
/// invitation and reset keys.
pub(super) fn end_credentials(
    c: &rusqlite::Connection,
    user_id: &str,
    now: i64,
) -> rusqlite::Result<()> {
    execute(
        c,
        "UPDATE users SET credential_epoch = credential_epoch + 1 WHERE id = ?1",
        [user_id],
    )?;
    execute(
        c,
        "UPDATE challenges SET spent_at = ?2 WHERE user_id = ?1 AND spent_at IS NULL AND expires_at > ?2",
        params![user_id, now],
    )?;
    execute(c, "DELETE FROM setup_tokens WHERE user_id = ?1", [user_id])?;
    forget_devices(c, user_id)?;
    execute(
        c,
        "DELETE FROM factors WHERE user_id = ?1 AND verified_at IS NULL",
        [user_id],
    )?;
    execute(
        c,
        // A user's tokens are found through their sessions (no index of tokens by user).
        "UPDATE refresh_tokens SET revoked_at = ?2
         WHERE family_id IN (SELECT id FROM sessions WHERE user_id = ?1) AND revoked_at IS NULL",
        params![user_id, now],
    )?;
    execute(
        c,
        "UPDATE email_keys SET used_at = ?2
         WHERE user_id = ?1 AND used_at IS NULL AND purpose IN ('invite', 'reset')",
        params![user_id, now],
    )
    .map(drop)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &NewUser) -> StoreResult<User> {
        let new = user.clone();
        // One statement: the cross-check (a username may not be another user's e-mail) and the
        // insert happen under SQLite's single writer lock.
        let inserted = self
            .write(move |c| {
                execute(
                    c,
                    "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, is_admin, created_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
                     WHERE NOT EXISTS (SELECT 1 FROM users WHERE username_lower IN (?3, ?5) OR email_lower IN (?3, ?5))",
                    params![
                        new.id,
                        new.username,
                        new.username.to_lowercase(),
                        new.email,
                        new.email.to_lowercase(),
                        new.password_hash,
                        new.is_admin,
                        new.created_at
                    ],
                )
            })
            .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(
                "a user with this username or e-mail already exists".into(),
            ));
        }
        self.user_by_id(&user.id)
            .await?
            .ok_or_else(|| StoreError::Other("user vanished after insert".into()))
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1"),
                    [id],
                    user_from_row,
                )
            })
            .await
    }

    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        let login = login.to_lowercase();
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    concat!(
                        "SELECT ",
                        user_columns!(),
                        " FROM users WHERE username_lower = ?1 OR email_lower = ?1 LIMIT 1"
                    ),
                    [&login],
                    user_from_row,
                )
            })
            .await
    }

    async fn login_candidate(&self, login: &str) -> StoreResult<Option<LoginCandidate>> {
        let login = login.to_lowercase();
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    concat!(
                        "SELECT ",
                        user_columns!(),
                        ", EXISTS (SELECT 1 FROM recovery_codes r WHERE r.user_id = users.id AND r.used_at IS NULL) AS has_unused_recovery_codes
                         FROM users WHERE username_lower = ?1 OR email_lower = ?1 LIMIT 1"
                    ),
                    [&login],
                    |row| {
                        Ok(LoginCandidate {
                            user: user_from_row(row)?,
                            has_unused_recovery_codes: row.get("has_unused_recovery_codes")?,
                        })
                    },
                )
            })
            .await
    }

    async fn change_account(
        &self,
        user_id: &str,
        change: &AccountChange,
        key: Option<(&str, KeyPurpose)>,
        now: i64,
    ) -> StoreResult<bool> {
        let (user_id, change) = (user_id.to_owned(), change.clone());
        let key = key.map(|(hash, purpose)| (hash.to_owned(), purpose));
        self.write(move |c| {
            if let Some((key_hash, purpose)) = key {
                let used = execute(
                    c,
                    "UPDATE email_keys SET used_at = ?3
                     WHERE key_hash = ?1 AND purpose = ?2 AND user_id = ?4 AND used_at IS NULL AND expires_at > ?3",
                    params![key_hash, purpose.as_str(), now, user_id],
                )?;
                if used != 1 {
                    return Ok(false);
                }
            }
            match change {
                AccountChange::SetPassword { hash, verify_email } => {
                    execute(
                        c,
                        "UPDATE users SET password_hash = ?2,
                           email_verified = CASE WHEN ?3 THEN 1 ELSE email_verified END
                         WHERE id = ?1",
                        params![user_id, hash, verify_email],
                    )?;
                }
                AccountChange::ResetMfa => {
                    remove_second_factors(c, &user_id)?;
                    execute(
                        c,
                        "UPDATE users SET email_otp = 0, preferred_method = 'none' WHERE id = ?1",
                        [&user_id],
                    )?;
                }
                AccountChange::Disable => {
                    execute(c, "UPDATE users SET disabled = 1 WHERE id = ?1", [&user_id])?;
                }
            }
            end_credentials(c, &user_id, now)?;
            Ok(true)
        })
        .await
    }

    async fn set_admin(&self, user_id: &str, is_admin: bool) -> StoreResult<bool> {
        let user_id = user_id.to_owned();
        let changed = self
            .write(move |c| {
                execute(
                    c,
                    "UPDATE users SET is_admin = ?2 WHERE id = ?1 AND is_admin <> ?2",
                    params![user_id, is_admin],
                )
            })
            .await?;
        Ok(changed == 1)
    }

    async fn choose_method(
        &self,
        user_id: &str,
        method: Option<mfagate_core::Method>,
        email_otp: Option<bool>,
    ) -> StoreResult<bool> {
        let method = mfagate_core::factors::preference_name(method);
        let user_id = user_id.to_owned();
        let changed = self
            .write(move |c| {
                execute(
                    c,
                    "UPDATE users SET preferred_method = ?2, email_otp = COALESCE(?3, email_otp)
                     WHERE id = ?1
                       AND (?2 NOT IN ('totp', 'webauthn') OR EXISTS (SELECT 1 FROM factors
                            WHERE user_id = ?1 AND kind = ?2 AND verified_at IS NOT NULL))",
                    params![user_id, method, email_otp],
                )
            })
            .await?;
        Ok(changed == 1)
    }
}
