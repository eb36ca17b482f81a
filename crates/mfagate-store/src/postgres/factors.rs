//! Factors on PostgreSQL (see `FactorStore`). Every intent that changes a user's factors runs
//! in a transaction that first locks the user's row: the counts and name checks it makes then
//! hold until it commits, on every instance, and it is ordered against a password reset, MFA
//! reset or disable, which change the same row first.

use async_trait::async_trait;
use mfagate_core::factors::{name_key, preference_name, FactorKind, Method};
use mfagate_core::store::{
    Factor, FactorBegun, FactorRemoved, FactorRenamed, FactorStore, FactorVerification,
    FactorVerified, NewFactor, NewRefreshToken, StoreResult, TotpEnabled, TotpEnrolment,
};
use mfagate_core::StoreError;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{insert_token, on_connection, replace_codes, PgStore, SqlResult};
use crate::Prefer;

/// The columns `factor_from_row` reads, as a literal (see `user_columns!`).
macro_rules! factor_columns {
    () => {
        "id, user_id, kind, name, secret_sealed, credential_id, sign_count, last_step, created_at, last_used_at, verified_at"
    };
}

/// `factor_columns!` of `factors f`, for a join (`challenge_and_factors`).
macro_rules! qualified_factor_columns {
    () => {
        "f.id, f.user_id, f.kind, f.name, f.secret_sealed, f.credential_id, f.sign_count, f.last_step, f.created_at, f.last_used_at, f.verified_at"
    };
}
pub(super) use qualified_factor_columns;

pub(super) fn factor_from_row(row: &PgRow) -> Result<Factor, StoreError> {
    let kind: String = row.try_get("kind").store()?;
    let kind = FactorKind::parse(&kind)
        .ok_or_else(|| StoreError::Other(format!("unknown factor kind '{kind}'")))?;
    Ok(Factor {
        id: row.try_get("id").store()?,
        user_id: row.try_get("user_id").store()?,
        kind,
        name: row.try_get("name").store()?,
        secret_sealed: row.try_get("secret_sealed").store()?,
        credential_id: row.try_get("credential_id").store()?,
        sign_count: row
            .try_get::<Option<i64>, _>("sign_count")
            .store()?
            .unwrap_or(0),
        last_step: row.try_get("last_step").store()?,
        created_at: row.try_get("created_at").store()?,
        last_used_at: row.try_get("last_used_at").store()?,
        verified: row
            .try_get::<Option<i64>, _>("verified_at")
            .store()?
            .is_some(),
    })
}

/// Locks the user's row; whether the user exists and is active (and, with `epoch`, still in
/// that credential epoch).
async fn lock_active_user(
    c: &mut PgConnection,
    user_id: &str,
    epoch: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let active: Option<bool> = sqlx::query_scalar(
        "SELECT (NOT disabled AND ($2::BIGINT IS NULL OR credential_epoch = $2)) FROM users
         WHERE id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .bind(epoch)
    .fetch_optional(&mut *c)
    .await?;
    Ok(active == Some(true))
}

async fn verified_count(c: &mut PgConnection, user_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM factors WHERE user_id = $1 AND verified_at IS NOT NULL",
    )
    .bind(user_id)
    .fetch_one(&mut *c)
    .await
}

async fn has_totp(c: &mut PgConnection, user_id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM factors WHERE user_id = $1 AND kind = 'totp' AND verified_at IS NOT NULL LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(&mut *c)
    .await?;
    Ok(found.is_some())
}

async fn name_taken(
    c: &mut PgConnection,
    user_id: &str,
    name_lower: &str,
    except: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM factors
         WHERE user_id = $1 AND name_lower = $2 AND id <> $3 AND verified_at IS NOT NULL",
    )
    .bind(user_id)
    .bind(name_lower)
    .bind(except)
    .fetch_optional(&mut *c)
    .await?;
    Ok(found.is_some())
}

/// Removes a pending enrolment of the user under this name (the user began again).
async fn drop_pending_named(
    c: &mut PgConnection,
    user_id: &str,
    name_lower: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM factors WHERE user_id = $1 AND name_lower = $2 AND verified_at IS NULL",
    )
    .bind(user_id)
    .bind(name_lower)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Spends a live setup token of the user; false when there is none.
async fn spend_setup_token(
    c: &mut PgConnection,
    token_hash: &str,
    user_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let spent = sqlx::query(
        "DELETE FROM setup_tokens WHERE token_hash = $1 AND user_id = $2 AND expires_at > $3",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(spent.rows_affected() == 1)
}

/// See the SQLite store's `finish_enrolment`.
async fn finish_enrolment(
    c: &mut PgConnection,
    user_id: &str,
    codes: Option<&[String]>,
    prefer: Prefer,
    refresh: &NewRefreshToken,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM setup_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *c)
        .await?;
    // A device remembered before this factor existed would skip it.
    super::sessions::forget_devices(c, user_id).await?;
    if let Some(codes) = codes {
        replace_codes(c, user_id, codes).await?;
    }
    let preference = match prefer {
        Prefer::Totp => Some("UPDATE users SET preferred_method = 'totp' WHERE id = $1"),
        Prefer::WebauthnIfNone => Some(
            "UPDATE users SET preferred_method = 'webauthn' WHERE id = $1 AND preferred_method = 'none'",
        ),
        Prefer::Unchanged => None,
    };
    if let Some(statement) = preference {
        sqlx::query(statement)
            .bind(user_id)
            .execute(&mut *c)
            .await?;
    }
    // Sessions that began without a second factor would outlive its enrolment. (The sessions
    // as an array, then their tokens by family: see `end_all_sessions` in sessions.rs.)
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2
         WHERE family_id = ANY(ARRAY(SELECT id FROM sessions WHERE user_id = $1))
           AND revoked_at IS NULL AND ' ' || amr || ' ' NOT LIKE '% mfa %'",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    insert_token(c, refresh, &[], now).await
}

/// See the SQLite store's `after_removal` (and its `FALL_BACK`).
async fn after_removal(
    c: &mut PgConnection,
    user_id: &str,
    fallback: Option<Method>,
) -> Result<bool, sqlx::Error> {
    super::sessions::forget_devices(c, user_id).await?;
    let last = verified_count(c, user_id).await? == 0;
    if last {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *c)
            .await?;
    }
    sqlx::query(
        "UPDATE users SET preferred_method = $2
         WHERE id = $1 AND preferred_method IN ('totp', 'webauthn')
           AND NOT EXISTS (SELECT 1 FROM factors f WHERE f.user_id = $1
                           AND f.kind = users.preferred_method AND f.verified_at IS NOT NULL)",
    )
    .bind(user_id)
    .bind(preference_name(fallback))
    .execute(&mut *c)
    .await?;
    Ok(last)
}

/// Whether the user has this verified factor.
async fn has_factor(
    c: &mut PgConnection,
    user_id: &str,
    factor_id: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM factors WHERE id = $1 AND user_id = $2 AND verified_at IS NOT NULL",
    )
    .bind(factor_id)
    .bind(user_id)
    .fetch_optional(&mut *c)
    .await?;
    Ok(found.is_some())
}

/// Records `step` as used by the user's TOTP factor iff it is later than the factor's last: one
/// conditional statement (a concurrent one waits on the row lock and re-checks).
/// Accepts TOTP step `$step` of the user's (`$user`) verified TOTP factor `$factor` iff it is
/// later than every step accepted before (the factor's row lock makes a concurrent use of the
/// same step wait and then find it taken).
macro_rules! accept_step_sql {
    ($user:literal, $factor:literal, $step:literal, $now:literal) => {
        concat!(
            "UPDATE factors SET last_step = ",
            $step,
            ", last_used_at = ",
            $now,
            " WHERE id = ",
            $factor,
            " AND user_id = ",
            $user,
            " AND kind = 'totp' AND verified_at IS NOT NULL
               AND (last_step IS NULL OR last_step < ",
            $step,
            ")"
        )
    };
}
pub(super) use accept_step_sql;

pub(super) async fn accept_step(
    c: &mut PgConnection,
    user_id: &str,
    factor_id: &str,
    step: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(accept_step_sql!("$1", "$2", "$3", "$4"))
        .bind(user_id)
        .bind(factor_id)
        .bind(step)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(updated.rows_affected() == 1)
}

#[async_trait]
impl FactorStore for PgStore {
    async fn factors(&self, user_id: &str) -> StoreResult<Vec<Factor>> {
        on_connection!(self, |c| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                factor_columns!(),
                " FROM factors
                 WHERE user_id = $1 AND verified_at IS NOT NULL ORDER BY seq"
            ))
            .bind(user_id)
            .fetch_all(&mut *c)
            .await
            .store()?;
            rows.iter().map(factor_from_row).collect()
        })
    }

    async fn pending_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        now: i64,
    ) -> StoreResult<Option<Factor>> {
        on_connection!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                factor_columns!(),
                " FROM factors
                 WHERE id = $1 AND user_id = $2 AND verified_at IS NULL AND pending_expires_at > $3"
            ))
            .bind(factor_id)
            .bind(user_id)
            .bind(now)
            .fetch_optional(&mut *c)
            .await
            .store()?;
            row.as_ref().map(factor_from_row).transpose()
        })
    }

    async fn begin_factor(
        &self,
        factor: &NewFactor,
        max_factors: u32,
        max_pending: u32,
        setup_token_hash: Option<&str>,
        now: i64,
    ) -> StoreResult<FactorBegun> {
        on_connection!(self, |c| {
            let f = factor;
            let name_lower = name_key(&f.name);
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            if !lock_active_user(&mut tx, &f.user_id, None).await.store()? {
                return Ok(FactorBegun::Ended);
            }
            if let Some(setup) = setup_token_hash {
                let live: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND user_id = $2 AND expires_at > $3",
            )
            .bind(setup)
            .bind(&f.user_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .store()?;
                if live.is_none() {
                    return Ok(FactorBegun::Ended);
                }
            }
            // Verified factors are capped, and so are enrolments in progress (each a row until it
            // expires): one under the same name is replaced below and does not count.
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM factors
                 WHERE user_id = $1 AND verified_at IS NULL AND pending_expires_at > $2
                   AND name_lower <> $3",
            )
            .bind(&f.user_id)
            .bind(now)
            .bind(&name_lower)
            .fetch_one(&mut *tx)
            .await
            .store()?;
            if verified_count(&mut tx, &f.user_id).await.store()? >= i64::from(max_factors)
                || pending >= i64::from(max_pending)
            {
                return Ok(FactorBegun::TooMany);
            }
            if name_taken(&mut tx, &f.user_id, &name_lower, &f.id)
                .await
                .store()?
            {
                return Ok(FactorBegun::NameTaken);
            }
            drop_pending_named(&mut tx, &f.user_id, &name_lower)
                .await
                .store()?;
            sqlx::query(
            "INSERT INTO factors (id, user_id, kind, name, name_lower, secret_sealed, created_at, pending_expires_at, seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                         (SELECT COALESCE(MAX(seq), 0) + 1 FROM factors WHERE user_id = $2))",
        )
        .bind(&f.id)
        .bind(&f.user_id)
        .bind(f.kind.as_str())
        .bind(&f.name)
        .bind(&name_lower)
        .bind(&f.secret_sealed)
        .bind(f.created_at)
        .bind(f.expires_at)
        .execute(&mut *tx)
        .await
        .store()?;
            tx.commit().await.store()?;
            Ok(FactorBegun::Begun)
        })
    }

    async fn verify_factor(
        &self,
        verification: &FactorVerification,
        now: i64,
    ) -> StoreResult<FactorVerified> {
        on_connection!(self, |c| {
            let v = verification;
            let user = v.user_id.as_str();
            // Dropping the transaction before commit undoes every step.
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            if !lock_active_user(&mut tx, user, None).await.store()? {
                return Ok(FactorVerified::Gone);
            }
            if let Some(setup) = &v.setup_token_hash {
                if !spend_setup_token(&mut tx, setup, user, now).await.store()? {
                    return Ok(FactorVerified::Gone);
                }
            }
            let count = verified_count(&mut tx, user).await.store()?;
            if count >= i64::from(v.max_factors) {
                return Ok(FactorVerified::TooMany);
            }
            let had_totp = has_totp(&mut tx, user).await.store()?;
            let kind: Option<String> = sqlx::query_scalar(
                "UPDATE factors SET verified_at = $3, pending_expires_at = NULL, last_step = $4
                 WHERE id = $1 AND user_id = $2 AND verified_at IS NULL AND pending_expires_at > $3
                 RETURNING kind",
            )
            .bind(&v.factor_id)
            .bind(user)
            .bind(now)
            .bind(v.accepted_step)
            .fetch_optional(&mut *tx)
            .await
            .store()?;
            let Some(kind) = kind else {
                return Ok(FactorVerified::Gone);
            };
            if let Some(passkey) = &v.passkey {
                // The unique index on credential_id decides between concurrent enrolments of one
                // credential; the loser's transaction is dropped, undoing everything.
                let stored = sqlx::query(
                "UPDATE factors SET secret_sealed = $2, credential_id = $3, transports = $4, sign_count = $5
                     WHERE id = $1",
            )
            .bind(&v.factor_id)
            .bind(&passkey.record_sealed)
            .bind(&passkey.credential_id)
            .bind(&passkey.transports)
            .bind(passkey.sign_count)
            .execute(&mut *tx)
            .await;
                match stored {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Ok(FactorVerified::CredentialTaken)
                    }
                    Err(e) => return Err(e).store(),
                }
            }
            let first = count == 0;
            let first_totp = kind == FactorKind::Totp.as_str() && !had_totp;
            let codes = first.then_some(v.recovery_codes_sealed.as_slice());
            finish_enrolment(
                &mut tx,
                user,
                codes,
                Prefer::after_enrolment(&kind, first_totp),
                &v.refresh,
                now,
            )
            .await
            .store()?;
            tx.commit().await.store()?;
            Ok(FactorVerified::Verified { first })
        })
    }

    async fn enable_totp(&self, enrolment: &TotpEnrolment, now: i64) -> StoreResult<TotpEnabled> {
        on_connection!(self, |c| {
            let e = enrolment;
            let user = e.user_id.as_str();
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            // The user's row lock orders this against a concurrent password reset, MFA reset or
            // disable, each of which moves the epoch on under the same lock.
            if !lock_active_user(&mut tx, user, Some(e.epoch))
                .await
                .store()?
            {
                return Ok(TotpEnabled::Ended);
            }
            if has_totp(&mut tx, user).await.store()? {
                return Ok(TotpEnabled::AlreadyEnabled);
            }
            if let Some(setup) = &e.setup_token_hash {
                if !spend_setup_token(&mut tx, setup, user, now).await.store()? {
                    return Ok(TotpEnabled::Ended);
                }
            }
            let name_lower = name_key(&e.name);
            if verified_count(&mut tx, user).await.store()? >= i64::from(e.max_factors)
                || name_taken(&mut tx, user, &name_lower, &e.factor_id)
                    .await
                    .store()?
            {
                return Ok(TotpEnabled::NoRoom);
            }
            drop_pending_named(&mut tx, user, &name_lower)
                .await
                .store()?;
            sqlx::query(
            "INSERT INTO factors (id, user_id, kind, name, name_lower, secret_sealed, last_step, created_at, verified_at, seq)
                 VALUES ($1, $2, 'totp', $3, $4, $5, $6, $7, $7,
                         (SELECT COALESCE(MAX(seq), 0) + 1 FROM factors WHERE user_id = $2))",
        )
        .bind(&e.factor_id)
        .bind(user)
        .bind(&e.name)
        .bind(&name_lower)
        .bind(&e.secret_sealed)
        .bind(e.accepted_step)
        .bind(now)
        .execute(&mut *tx)
        .await
        .store()?;
            // v1's activation always hands out a fresh set of codes.
            finish_enrolment(
                &mut tx,
                user,
                Some(&e.recovery_codes_sealed),
                Prefer::Totp,
                &e.refresh,
                now,
            )
            .await
            .store()?;
            tx.commit().await.store()?;
            Ok(TotpEnabled::Enabled)
        })
    }

    async fn accept_totp_step(
        &self,
        user_id: &str,
        factor_id: &str,
        step: i64,
        now: i64,
    ) -> StoreResult<bool> {
        on_connection!(self, |c| {
            accept_step(c, user_id, factor_id, step, now).await.store()
        })
    }

    async fn take_enrolment_state(
        &self,
        user_id: &str,
        factor_id: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        on_connection!(self, |c| {
            // The row lock of the UPDATE makes a concurrent caller wait and then see NULL.
            let taken: Option<Option<String>> = sqlx::query_scalar(
                "UPDATE factors f SET secret_sealed = NULL
                 FROM (SELECT id, secret_sealed FROM factors WHERE id = $1 FOR UPDATE) old
                 WHERE f.id = old.id AND f.user_id = $2 AND f.kind = 'webauthn'
                   AND f.verified_at IS NULL AND f.pending_expires_at > $3
                   AND f.secret_sealed IS NOT NULL
                 RETURNING old.secret_sealed",
            )
            .bind(factor_id)
            .bind(user_id)
            .bind(now)
            .fetch_optional(&mut *c)
            .await
            .store()?;
            Ok(taken.flatten())
        })
    }

    async fn passkey_by_credential(&self, credential_id: &str) -> StoreResult<Option<Factor>> {
        on_connection!(self, |c| {
            let row = sqlx::query(concat!(
                "SELECT ",
                factor_columns!(),
                " FROM factors
                 WHERE credential_id = $1 AND kind = 'webauthn' AND verified_at IS NOT NULL"
            ))
            .bind(credential_id)
            .fetch_optional(&mut *c)
            .await
            .store()?;
            row.as_ref().map(factor_from_row).transpose()
        })
    }

    async fn accept_sign_count(
        &self,
        user_id: &str,
        factor_id: &str,
        count: u32,
        now: i64,
    ) -> StoreResult<bool> {
        on_connection!(self, |c| {
            accept_count(c, user_id, factor_id, count, now, true)
                .await
                .store()
        })
    }

    async fn rename_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        name: &str,
    ) -> StoreResult<FactorRenamed> {
        on_connection!(self, |c| {
            let name_lower = name_key(name);
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            if !lock_active_user(&mut tx, user_id, None).await.store()?
                || !has_factor(&mut tx, user_id, factor_id).await.store()?
            {
                return Ok(FactorRenamed::NotFound);
            }
            if name_taken(&mut tx, user_id, &name_lower, factor_id)
                .await
                .store()?
            {
                return Ok(FactorRenamed::NameTaken);
            }
            drop_pending_named(&mut tx, user_id, &name_lower)
                .await
                .store()?;
            let row = sqlx::query(concat!(
                "UPDATE factors SET name = $3, name_lower = $4 WHERE id = $1 AND user_id = $2
                 RETURNING ",
                factor_columns!()
            ))
            .bind(factor_id)
            .bind(user_id)
            .bind(name)
            .bind(&name_lower)
            .fetch_optional(&mut *tx)
            .await
            .store()?;
            let renamed = row.as_ref().map(factor_from_row).transpose()?;
            tx.commit().await.store()?;
            Ok(renamed.map_or(FactorRenamed::NotFound, FactorRenamed::Renamed))
        })
    }

    async fn remove_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        keep_last: bool,
        fallback: Option<Method>,
    ) -> StoreResult<FactorRemoved> {
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            lock_active_user(&mut tx, user_id, None).await.store()?;
            if !has_factor(&mut tx, user_id, factor_id).await.store()? {
                return Ok(FactorRemoved::NotFound);
            }
            if keep_last && verified_count(&mut tx, user_id).await.store()? <= 1 {
                return Ok(FactorRemoved::LastKept);
            }
            sqlx::query("DELETE FROM factors WHERE id = $1 AND user_id = $2")
                .bind(factor_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .store()?;
            let last = after_removal(&mut tx, user_id, fallback).await.store()?;
            tx.commit().await.store()?;
            Ok(FactorRemoved::Removed { last })
        })
    }

    async fn remove_totp_factors(
        &self,
        user_id: &str,
        fallback: Option<Method>,
    ) -> StoreResult<Vec<String>> {
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
            lock_active_user(&mut tx, user_id, None).await.store()?;
            let removed: Vec<(String, Option<i64>)> = sqlx::query_as(
            "DELETE FROM factors WHERE user_id = $1 AND kind = 'totp' RETURNING id, verified_at",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await
        .store()?;
            after_removal(&mut tx, user_id, fallback).await.store()?;
            tx.commit().await.store()?;
            Ok(removed
                .into_iter()
                .filter_map(|(id, verified)| verified.map(|_| id))
                .collect())
        })
    }
}

/// Records `count` as the passkey's signature counter iff it grew (or both are zero: a key that
/// keeps no counter); with `active_only`, only for an active user. One conditional statement:
/// a concurrent one waits on the row lock and re-checks.
pub(super) async fn accept_count(
    c: &mut PgConnection,
    user_id: &str,
    factor_id: &str,
    count: u32,
    now: i64,
    active_only: bool,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE factors SET sign_count = $3, last_used_at = $4
         WHERE id = $2 AND user_id = $1 AND kind = 'webauthn' AND verified_at IS NOT NULL
           AND (COALESCE(sign_count, 0) < $3 OR ($3 = 0 AND COALESCE(sign_count, 0) = 0))
           AND (NOT $5 OR EXISTS (SELECT 1 FROM users WHERE id = $1 AND NOT disabled))",
    )
    .bind(user_id)
    .bind(factor_id)
    .bind(i64::from(count))
    .bind(now)
    .bind(active_only)
    .execute(&mut *c)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A recovery code counts as a use of the user's oldest TOTP factor (v1's one device, whose
/// `last_used_at` `mfa/status` shows).
pub(super) async fn touch_totp_device<'c, E>(
    c: E,
    user_id: &str,
    now: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::PgExecutor<'c>,
{
    sqlx::query(
        "UPDATE factors SET last_used_at = $2
         WHERE id = (SELECT id FROM factors
                     WHERE user_id = $1 AND kind = 'totp' AND verified_at IS NOT NULL
                     ORDER BY seq LIMIT 1)",
    )
    .bind(user_id)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}
