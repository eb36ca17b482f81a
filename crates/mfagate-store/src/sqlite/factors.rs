//! Factors on SQLite (see `FactorStore`). Each write is one job on the one writer, so its
//! checks and its changes run with nothing in between: every check comes first, then every
//! change (a job that returns early has changed nothing).

use async_trait::async_trait;
use mfagate_core::factors::{preference_name, FactorKind, Method};
use mfagate_core::store::{
    Factor, FactorBegun, FactorRemoved, FactorRenamed, FactorStore, FactorVerification,
    FactorVerified, NewFactor, NewRefreshToken, StoreResult, TotpEnabled, TotpEnrolment,
};
use rusqlite::params;

use super::{insert_token, replace_codes, SqliteStore};
use crate::sqlite::statements::{execute, exists, query_all, query_opt};
use crate::Prefer;

/// The columns `factor_from_row` reads.
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

pub(super) fn factor_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Factor> {
    let kind: String = row.get("kind")?;
    let kind = FactorKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown factor kind '{kind}'").into(),
        )
    })?;
    Ok(Factor {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        kind,
        name: row.get("name")?,
        secret_sealed: row.get("secret_sealed")?,
        credential_id: row.get("credential_id")?,
        sign_count: row.get::<_, Option<i64>>("sign_count")?.unwrap_or(0),
        last_step: row.get("last_step")?,
        created_at: row.get("created_at")?,
        last_used_at: row.get("last_used_at")?,
        verified: row.get::<_, Option<i64>>("verified_at")?.is_some(),
    })
}

fn verified_count(c: &rusqlite::Connection, user_id: &str) -> rusqlite::Result<i64> {
    Ok(query_opt(
        c,
        "SELECT COUNT(*) FROM factors WHERE user_id = ?1 AND verified_at IS NOT NULL",
        [user_id],
        |row| row.get(0),
    )?
    .unwrap_or(0))
}

fn has_totp(c: &rusqlite::Connection, user_id: &str) -> rusqlite::Result<bool> {
    exists(
        c,
        "SELECT 1 FROM factors WHERE user_id = ?1 AND kind = 'totp' AND verified_at IS NOT NULL LIMIT 1",
        [user_id],
    )
}

/// Whether the user has this verified factor.
fn has_factor(c: &rusqlite::Connection, user_id: &str, factor_id: &str) -> rusqlite::Result<bool> {
    exists(
        c,
        "SELECT 1 FROM factors WHERE id = ?1 AND user_id = ?2 AND verified_at IS NOT NULL",
        params![factor_id, user_id],
    )
}

fn is_active(c: &rusqlite::Connection, user_id: &str) -> rusqlite::Result<bool> {
    exists(
        c,
        "SELECT 1 FROM users WHERE id = ?1 AND disabled = 0",
        [user_id],
    )
}

/// Whether a verified factor of the user other than `except` has this name.
fn name_taken(
    c: &rusqlite::Connection,
    user_id: &str,
    name_lower: &str,
    except: &str,
) -> rusqlite::Result<bool> {
    exists(
        c,
        "SELECT 1 FROM factors
         WHERE user_id = ?1 AND name_lower = ?2 AND id <> ?3 AND verified_at IS NOT NULL",
        params![user_id, name_lower, except],
    )
}

fn setup_token_live(
    c: &rusqlite::Connection,
    token_hash: &str,
    user_id: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    exists(
        c,
        "SELECT 1 FROM setup_tokens WHERE token_hash = ?1 AND user_id = ?2 AND expires_at > ?3",
        params![token_hash, user_id, now],
    )
}

/// The changes that end every enrolment: the setup tokens of the login it completes go, the
/// recovery codes are stored (`codes`, for a first factor), the preferred method follows
/// `prefer`, sessions without a second factor end, and the new session's first token is
/// stored.
fn finish_enrolment(
    c: &rusqlite::Connection,
    user_id: &str,
    codes: Option<&[String]>,
    prefer: Prefer,
    refresh: &NewRefreshToken,
    now: i64,
) -> rusqlite::Result<()> {
    execute(c, "DELETE FROM setup_tokens WHERE user_id = ?1", [user_id])?;
    // A device remembered before this factor existed would skip it.
    super::forget_devices(c, user_id)?;
    if let Some(codes) = codes {
        replace_codes(c, user_id, codes)?;
    }
    match prefer {
        Prefer::Totp => {
            execute(
                c,
                "UPDATE users SET preferred_method = 'totp' WHERE id = ?1",
                [user_id],
            )?;
        }
        Prefer::WebauthnIfNone => {
            execute(
                c,
                "UPDATE users SET preferred_method = 'webauthn' WHERE id = ?1 AND preferred_method = 'none'",
                [user_id],
            )?;
        }
        Prefer::Unchanged => {}
    }
    // Sessions that began without a second factor would outlive its enrolment.
    execute(
        c,
        "UPDATE refresh_tokens SET revoked_at = ?2
         WHERE family_id IN (SELECT id FROM sessions WHERE user_id = ?1)
           AND revoked_at IS NULL AND ' ' || amr || ' ' NOT LIKE '% mfa %'",
        params![user_id, now],
    )?;
    insert_token(c, refresh)
}

/// A preference for a factor kind (`totp`, `webauthn`) of which the user holds none any more
/// falls back to `?2`. The kind names are the methods' names.
const FALL_BACK: &str = "UPDATE users SET preferred_method = ?2
     WHERE id = ?1 AND preferred_method IN ('totp', 'webauthn')
       AND NOT EXISTS (SELECT 1 FROM factors f WHERE f.user_id = ?1
                       AND f.kind = users.preferred_method AND f.verified_at IS NOT NULL)";

/// After factors went: remembered devices are forgotten, the recovery codes go with the last
/// factor, and a preference for a kind no longer held falls back to `fallback` (or `none`).
/// Whether no factor is left.
fn after_removal(
    c: &rusqlite::Connection,
    user_id: &str,
    fallback: Option<Method>,
) -> rusqlite::Result<bool> {
    super::forget_devices(c, user_id)?;
    let last = verified_count(c, user_id)? == 0;
    if last {
        execute(
            c,
            "DELETE FROM recovery_codes WHERE user_id = ?1",
            [user_id],
        )?;
    }
    execute(c, FALL_BACK, params![user_id, preference_name(fallback)])?;
    Ok(last)
}

#[async_trait]
impl FactorStore for SqliteStore {
    async fn factors(&self, user_id: &str) -> StoreResult<Vec<Factor>> {
        self.readers
            .read(|c| {
                query_all(
                    c,
                    concat!(
                        "SELECT ",
                        factor_columns!(),
                        " FROM factors WHERE user_id = ?1 AND verified_at IS NOT NULL ORDER BY seq"
                    ),
                    [user_id],
                    factor_from_row,
                )
            })
            .await
    }

    async fn pending_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        now: i64,
    ) -> StoreResult<Option<Factor>> {
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    concat!(
                        "SELECT ",
                        factor_columns!(),
                        " FROM factors WHERE id = ?1 AND user_id = ?2 AND verified_at IS NULL AND pending_expires_at > ?3"
                    ),
                    params![factor_id, user_id, now],
                    factor_from_row,
                )
            })
            .await
    }

    async fn begin_factor(
        &self,
        factor: &NewFactor,
        max_factors: u32,
        max_pending: u32,
        setup_token_hash: Option<&str>,
        now: i64,
    ) -> StoreResult<FactorBegun> {
        let (f, setup) = (factor.clone(), setup_token_hash.map(str::to_owned));
        self.write(move |c| {
            let name_lower = mfagate_core::factors::name_key(&f.name);
            if let Some(setup) = &setup {
                if !setup_token_live(c, setup, &f.user_id, now)? {
                    return Ok(FactorBegun::Ended);
                }
            }
            if !is_active(c, &f.user_id)? {
                return Ok(FactorBegun::Ended);
            }
            // Verified factors are capped, and so are enrolments in progress (each a row until
            // it expires): one under the same name is replaced below and does not count.
            let pending: i64 = query_opt(
                c,
                "SELECT COUNT(*) FROM factors
                 WHERE user_id = ?1 AND verified_at IS NULL AND pending_expires_at > ?2
                   AND name_lower <> ?3",
                params![f.user_id, now, name_lower],
                |row| row.get(0),
            )?
            .unwrap_or(0);
            if verified_count(c, &f.user_id)? >= i64::from(max_factors)
                || pending >= i64::from(max_pending)
            {
                return Ok(FactorBegun::TooMany);
            }
            if name_taken(c, &f.user_id, &name_lower, &f.id)? {
                return Ok(FactorBegun::NameTaken);
            }
            // The user began again under the same name: the earlier attempt gives way.
            execute(
                c,
                "DELETE FROM factors WHERE user_id = ?1 AND name_lower = ?2 AND verified_at IS NULL",
                params![f.user_id, name_lower],
            )?;
            execute(
                c,
                "INSERT INTO factors (id, user_id, kind, name, name_lower, secret_sealed, created_at, pending_expires_at, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,
                         (SELECT COALESCE(MAX(seq), 0) + 1 FROM factors WHERE user_id = ?2))",
                params![
                    f.id,
                    f.user_id,
                    f.kind.as_str(),
                    f.name,
                    name_lower,
                    f.secret_sealed,
                    f.created_at,
                    f.expires_at
                ],
            )?;
            Ok(FactorBegun::Begun)
        })
        .await
    }

    async fn verify_factor(
        &self,
        verification: &FactorVerification,
        now: i64,
    ) -> StoreResult<FactorVerified> {
        let v = verification.clone();
        self.write(move |c| {
            let user = v.user_id.as_str();
            if let Some(setup) = &v.setup_token_hash {
                if !setup_token_live(c, setup, user, now)? {
                    return Ok(FactorVerified::Gone);
                }
            }
            let pending: Option<String> = query_opt(
                c,
                "SELECT kind FROM factors
                 WHERE id = ?1 AND user_id = ?2 AND verified_at IS NULL AND pending_expires_at > ?3",
                params![v.factor_id, user, now],
                |row| row.get(0),
            )?;
            let Some(kind) = pending else {
                return Ok(FactorVerified::Gone);
            };
            if !is_active(c, user)? {
                return Ok(FactorVerified::Gone);
            }
            let count = verified_count(c, user)?;
            if count >= i64::from(v.max_factors) {
                return Ok(FactorVerified::TooMany);
            }
            if let Some(passkey) = &v.passkey {
                if exists(
                    c,
                    "SELECT 1 FROM factors WHERE credential_id = ?1",
                    [&passkey.credential_id],
                )? {
                    return Ok(FactorVerified::CredentialTaken);
                }
            }
            let first_totp = kind == FactorKind::Totp.as_str() && !has_totp(c, user)?;
            execute(
                c,
                "UPDATE factors SET verified_at = ?2, pending_expires_at = NULL, last_step = ?3
                 WHERE id = ?1",
                params![v.factor_id, now, v.accepted_step],
            )?;
            if let Some(passkey) = &v.passkey {
                execute(
                    c,
                    "UPDATE factors SET secret_sealed = ?2, credential_id = ?3, transports = ?4, sign_count = ?5
                     WHERE id = ?1",
                    params![
                        v.factor_id,
                        passkey.record_sealed,
                        passkey.credential_id,
                        passkey.transports,
                        passkey.sign_count
                    ],
                )?;
            }
            let first = count == 0;
            let codes = first.then_some(v.recovery_codes_sealed.as_slice());
            finish_enrolment(c, user, codes, Prefer::after_enrolment(&kind, first_totp), &v.refresh, now)?;
            Ok(FactorVerified::Verified { first })
        })
        .await
    }

    async fn enable_totp(&self, enrolment: &TotpEnrolment, now: i64) -> StoreResult<TotpEnabled> {
        let e = enrolment.clone();
        self.write(move |c| {
            let user = e.user_id.as_str();
            if has_totp(c, user)? {
                return Ok(TotpEnabled::AlreadyEnabled);
            }
            let current = exists(
                c,
                "SELECT 1 FROM users WHERE id = ?1 AND disabled = 0 AND credential_epoch = ?2",
                params![user, e.epoch],
            )?;
            if !current {
                return Ok(TotpEnabled::Ended);
            }
            if let Some(setup) = &e.setup_token_hash {
                if !setup_token_live(c, setup, user, now)? {
                    return Ok(TotpEnabled::Ended);
                }
            }
            let name_lower = mfagate_core::factors::name_key(&e.name);
            if verified_count(c, user)? >= i64::from(e.max_factors)
                || name_taken(c, user, &name_lower, &e.factor_id)?
            {
                return Ok(TotpEnabled::NoRoom);
            }
            execute(
                c,
                "DELETE FROM factors WHERE user_id = ?1 AND name_lower = ?2 AND verified_at IS NULL",
                params![user, name_lower],
            )?;
            execute(
                c,
                "INSERT INTO factors (id, user_id, kind, name, name_lower, secret_sealed, last_step, created_at, verified_at, seq)
                 VALUES (?1, ?2, 'totp', ?3, ?4, ?5, ?6, ?7, ?7,
                         (SELECT COALESCE(MAX(seq), 0) + 1 FROM factors WHERE user_id = ?2))",
                params![
                    e.factor_id,
                    user,
                    e.name,
                    name_lower,
                    e.secret_sealed,
                    e.accepted_step,
                    now
                ],
            )?;
            // v1's activation always hands out a fresh set of codes.
            finish_enrolment(
                c,
                user,
                Some(&e.recovery_codes_sealed),
                Prefer::Totp,
                &e.refresh,
                now,
            )?;
            Ok(TotpEnabled::Enabled)
        })
        .await
    }

    async fn accept_totp_step(
        &self,
        user_id: &str,
        factor_id: &str,
        step: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let (user_id, factor_id) = (user_id.to_owned(), factor_id.to_owned());
        let accepted = self
            .write(move |c| accept_step(c, &user_id, &factor_id, step, now))
            .await?;
        Ok(accepted == 1)
    }

    async fn take_enrolment_state(
        &self,
        user_id: &str,
        factor_id: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let (user_id, factor_id) = (user_id.to_owned(), factor_id.to_owned());
        // One job on the one writer: the read and the clearing have nothing in between.
        // (SQLite's RETURNING gives the new value, so the old one is read first.)
        self.write(move |c| {
            let state: Option<String> = query_opt(
                c,
                "SELECT secret_sealed FROM factors
                 WHERE id = ?1 AND user_id = ?2 AND kind = 'webauthn' AND verified_at IS NULL
                   AND pending_expires_at > ?3 AND secret_sealed IS NOT NULL",
                params![factor_id, user_id, now],
                |row| row.get(0),
            )?;
            if state.is_some() {
                execute(
                    c,
                    "UPDATE factors SET secret_sealed = NULL WHERE id = ?1",
                    [&factor_id],
                )?;
            }
            Ok(state)
        })
        .await
    }

    async fn passkey_by_credential(&self, credential_id: &str) -> StoreResult<Option<Factor>> {
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    concat!(
                        "SELECT ",
                        factor_columns!(),
                        " FROM factors WHERE credential_id = ?1 AND kind = 'webauthn' AND verified_at IS NOT NULL"
                    ),
                    [credential_id],
                    factor_from_row,
                )
            })
            .await
    }

    async fn accept_sign_count(
        &self,
        user_id: &str,
        factor_id: &str,
        count: u32,
        now: i64,
    ) -> StoreResult<bool> {
        let (user_id, factor_id) = (user_id.to_owned(), factor_id.to_owned());
        let accepted = self
            .write(move |c| {
                if !is_active(c, &user_id)? {
                    return Ok(0);
                }
                accept_count(c, &user_id, &factor_id, count, now)
            })
            .await?;
        Ok(accepted == 1)
    }

    async fn rename_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        name: &str,
    ) -> StoreResult<FactorRenamed> {
        let (user_id, factor_id, name) =
            (user_id.to_owned(), factor_id.to_owned(), name.to_owned());
        self.write(move |c| {
            let name_lower = mfagate_core::factors::name_key(&name);
            if !has_factor(c, &user_id, &factor_id)? {
                return Ok(FactorRenamed::NotFound);
            }
            if name_taken(c, &user_id, &name_lower, &factor_id)? {
                return Ok(FactorRenamed::NameTaken);
            }
            execute(
                c,
                "DELETE FROM factors WHERE user_id = ?1 AND name_lower = ?2 AND verified_at IS NULL",
                params![user_id, name_lower],
            )?;
            let renamed = query_opt(
                c,
                concat!(
                    "UPDATE factors SET name = ?3, name_lower = ?4 WHERE id = ?1 AND user_id = ?2 RETURNING ",
                    factor_columns!()
                ),
                params![factor_id, user_id, name, name_lower],
                factor_from_row,
            )?;
            Ok(renamed.map_or(FactorRenamed::NotFound, FactorRenamed::Renamed))
        })
        .await
    }

    async fn remove_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        keep_last: bool,
        fallback: Option<Method>,
    ) -> StoreResult<FactorRemoved> {
        let (user_id, factor_id) = (user_id.to_owned(), factor_id.to_owned());
        self.write(move |c| {
            if !has_factor(c, &user_id, &factor_id)? {
                return Ok(FactorRemoved::NotFound);
            }
            if keep_last && verified_count(c, &user_id)? <= 1 {
                return Ok(FactorRemoved::LastKept);
            }
            execute(
                c,
                "DELETE FROM factors WHERE id = ?1 AND user_id = ?2",
                params![factor_id, user_id],
            )?;
            let last = after_removal(c, &user_id, fallback)?;
            Ok(FactorRemoved::Removed { last })
        })
        .await
    }

    async fn remove_totp_factors(
        &self,
        user_id: &str,
        fallback: Option<Method>,
    ) -> StoreResult<Vec<String>> {
        let user_id = user_id.to_owned();
        self.write(move |c| {
            let removed: Vec<String> = query_all(
                c,
                "DELETE FROM factors WHERE user_id = ?1 AND kind = 'totp' RETURNING id, verified_at",
                [&user_id],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<i64>>(1)?)),
            )?
            .into_iter()
            .filter_map(|(id, verified)| verified.map(|_| id))
            .collect();
            after_removal(c, &user_id, fallback)?;
            Ok(removed)
        })
        .await
    }
}

/// Records `step` as used by the user's TOTP factor iff it is later than the factor's last.
pub(super) fn accept_step(
    c: &rusqlite::Connection,
    user_id: &str,
    factor_id: &str,
    step: i64,
    now: i64,
) -> rusqlite::Result<usize> {
    execute(
        c,
        "UPDATE factors SET last_step = ?3, last_used_at = ?4
         WHERE id = ?2 AND user_id = ?1 AND kind = 'totp' AND verified_at IS NOT NULL
           AND (last_step IS NULL OR last_step < ?3)",
        params![user_id, factor_id, step, now],
    )
}

/// Records `count` as the passkey's signature counter iff it grew (or both are zero: a key that
/// keeps no counter). The clone guard: one conditional statement, so of concurrent uses of one
/// counter value at most one passes.
pub(super) fn accept_count(
    c: &rusqlite::Connection,
    user_id: &str,
    factor_id: &str,
    count: u32,
    now: i64,
) -> rusqlite::Result<usize> {
    execute(
        c,
        "UPDATE factors SET sign_count = ?3, last_used_at = ?4
         WHERE id = ?2 AND user_id = ?1 AND kind = 'webauthn' AND verified_at IS NOT NULL
           AND (COALESCE(sign_count, 0) < ?3 OR (?3 = 0 AND COALESCE(sign_count, 0) = 0))",
        params![user_id, factor_id, i64::from(count), now],
    )
}

/// A recovery code counts as a use of the user's oldest TOTP factor (v1's one device, whose
/// `last_used_at` `mfa/status` shows).
pub(super) fn touch_totp_device(
    c: &rusqlite::Connection,
    user_id: &str,
    now: i64,
) -> rusqlite::Result<()> {
    execute(
        c,
        "UPDATE factors SET last_used_at = ?2
         WHERE id = (SELECT id FROM factors
                     WHERE user_id = ?1 AND kind = 'totp' AND verified_at IS NOT NULL
                     ORDER BY seq LIMIT 1)",
        params![user_id, now],
    )
    .map(drop)
}
