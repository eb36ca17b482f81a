//! Accounts: creation, lookups, and the changes that end a user's credentials.

use super::*;

/// Advisory lock keys (arbitrary, fixed): one for user creation, one for the clean-up.
pub(super) const USERS_LOCK: i64 = 0x6d66_6167_0001;

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, user: &NewUser) -> StoreResult<User> {
        let username_lower = user.username.to_lowercase();
        let email_lower = user.email.to_lowercase();
        // The cross-check (a username may not be another user's e-mail) reads other rows, so
        // concurrent creations are serialised by an advisory lock held until commit.
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(USERS_LOCK)
                .execute(&mut *tx)
                .await
                .store()?;
            // The new row comes back as stored (its defaults too): no read after the commit.
            let inserted = sqlx::query(concat!(
                "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, is_admin, created_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8
                 WHERE NOT EXISTS (SELECT 1 FROM users WHERE username_lower IN ($3, $5) OR email_lower IN ($3, $5))
                 RETURNING ",
                user_columns!()
            ))
            .bind(&user.id)
            .bind(&user.username)
            .bind(&username_lower)
            .bind(&user.email)
            .bind(&email_lower)
            .bind(&user.password_hash)
            .bind(user.is_admin)
            .bind(user.created_at)
            .fetch_optional(&mut *tx)
            .await
            .store()?;
            let Some(inserted) = inserted else {
                return Err(StoreError::Conflict(
                    "a user with this username or e-mail already exists".into(),
                ));
            };
            tx.commit().await.store()?;
            user_from_row(&inserted)
        })
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let query = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id);
        let row = on_connection!(self, |c| query.fetch_optional(c).await.store())?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        on_connection!(self, |c| {
            let login = login.to_lowercase();
            let row = sqlx::query(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE username_lower = $1 OR email_lower = $1 LIMIT 1"
            ))
            .bind(&login)
            .fetch_optional(&mut *c)
            .await
            .store()?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    async fn login_candidate(&self, login: &str) -> StoreResult<Option<LoginCandidate>> {
        let login = login.to_lowercase();
        let query = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", EXISTS (SELECT 1 FROM recovery_codes r WHERE r.user_id = users.id AND r.used_at IS NULL) AS has_unused_recovery_codes
             FROM users WHERE username_lower = $1 OR email_lower = $1 LIMIT 1"
        ))
        .bind(&login);
        let row = on_connection!(self, |c| query.fetch_optional(c).await.store())?;
        row.map(|row| {
            Ok(LoginCandidate {
                user: user_from_row(&row)?,
                has_unused_recovery_codes: row.try_get("has_unused_recovery_codes").store()?,
            })
        })
        .transpose()
    }

    async fn change_account(
        &self,
        user_id: &str,
        change: &AccountChange,
        key: Option<(&str, KeyPurpose)>,
        now: i64,
    ) -> StoreResult<bool> {
        on_connection!(self, |c| {
            // Dropping the transaction before commit undoes every step.
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            if let Some((key_hash, purpose)) = key {
                let used = sqlx::query(
                "UPDATE email_keys SET used_at = $3
                     WHERE key_hash = $1 AND purpose = $2 AND user_id = $4 AND used_at IS NULL AND expires_at > $3",
            )
            .bind(key_hash)
            .bind(purpose.as_str())
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .store()?;
                if used.rows_affected() != 1 {
                    return Ok(false);
                }
            }
            // The user's row first: it is the lock that orders this against an enrolment.
            match change {
                AccountChange::SetPassword { hash, verify_email } => {
                    sqlx::query(
                    "UPDATE users SET password_hash = $2, email_verified = email_verified OR $3,
                           credential_epoch = credential_epoch + 1
                         WHERE id = $1",
                )
                .bind(user_id)
                .bind(hash)
                .bind(verify_email)
                .execute(&mut *tx)
                .await
                .store()?;
                }
                AccountChange::ResetMfa => {
                    sqlx::query(
                        "UPDATE users SET email_otp = FALSE, preferred_method = 'none',
                           credential_epoch = credential_epoch + 1
                         WHERE id = $1",
                    )
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .store()?;
                    for statement in [
                        "DELETE FROM factors WHERE user_id = $1",
                        "DELETE FROM recovery_codes WHERE user_id = $1",
                    ] {
                        sqlx::query(statement)
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await
                            .store()?;
                    }
                }
                AccountChange::Disable => {
                    sqlx::query(
                    "UPDATE users SET disabled = TRUE, credential_epoch = credential_epoch + 1 WHERE id = $1",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .store()?;
                }
            }
            for statement in [
            "UPDATE challenges SET spent_at = $2 WHERE user_id = $1 AND spent_at IS NULL AND expires_at > $2",
            "DELETE FROM setup_tokens WHERE user_id = $1 AND $2 = $2",
            "DELETE FROM remembered_devices WHERE user_id = $1 AND $2 = $2",
            // Pending enrolments die with the rest.
            "DELETE FROM factors WHERE user_id = $1 AND verified_at IS NULL AND $2 = $2",
            // A user's tokens are found through their sessions (no index of tokens by user),
            // read first as an array (as `IN (...)` it could walk a whole index, see sessions.rs).
            "UPDATE refresh_tokens SET revoked_at = $2
                  WHERE family_id = ANY(ARRAY(SELECT id FROM sessions WHERE user_id = $1)) AND revoked_at IS NULL",
            "UPDATE email_keys SET used_at = $2
                  WHERE user_id = $1 AND used_at IS NULL AND purpose IN ('invite', 'reset')",
        ] {
            sqlx::query(statement)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .store()?;
        }
            tx.commit().await.store()?;
            Ok(true)
        })
    }

    async fn set_admin(&self, user_id: &str, is_admin: bool) -> StoreResult<bool> {
        on_connection!(self, |c| {
            let changed =
                sqlx::query("UPDATE users SET is_admin = $2 WHERE id = $1 AND is_admin <> $2")
                    .bind(user_id)
                    .bind(is_admin)
                    .execute(&mut *c)
                    .await
                    .store()?;
            Ok(changed.rows_affected() == 1)
        })
    }

    async fn choose_method(
        &self,
        user_id: &str,
        method: Option<mfagate_core::Method>,
        email_otp: Option<bool>,
    ) -> StoreResult<bool> {
        on_connection!(self, |c| {
            let method = mfagate_core::factors::preference_name(method);
            let changed = sqlx::query(
                "UPDATE users SET preferred_method = $2, email_otp = COALESCE($3, email_otp)
                 WHERE id = $1
                   AND ($2 NOT IN ('totp', 'webauthn') OR EXISTS (SELECT 1 FROM factors
                        WHERE user_id = $1 AND kind = $2 AND verified_at IS NOT NULL))",
            )
            .bind(user_id)
            .bind(method)
            .bind(email_otp)
            .execute(&mut *c)
            .await
            .store()?;
            Ok(changed.rows_affected() == 1)
        })
    }
}
