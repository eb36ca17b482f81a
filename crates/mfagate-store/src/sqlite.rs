//! SQLite store: one file, WAL journal, full sync on commit (a committed recovery-code use or
//! accepted TOTP step survives a crash or power loss). SQLite runs one writer at a time, so each
//! conditional `UPDATE ... WHERE` below is atomic against every other connection.
//!
//! Statements run through rusqlite: writes as jobs of the group-committing writer
//! (`sqlite_writer`), reads on lent read-only connections (`sqlite_readers`). sqlx only applies
//! the migrations.

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mfagate_core::store::*;
use mfagate_core::StoreError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use rusqlite::params;

/// Read connections: enough for both cores to be busy with reads while others wait on SQLite.
const READERS: usize = 4;

use crate::sqlite_readers::Readers;
use crate::sqlite_statements::{execute, query_all, query_opt};
use crate::sqlite_writer::{GroupWriter, WriterOptions};

mod factors;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "email",
        include_str!("../migrations/sqlite/0002_email.sql"),
    ),
    (
        3,
        "signing keys",
        include_str!("../migrations/sqlite/0003_signing_keys.sql"),
    ),
    (
        4,
        "credential ends",
        include_str!("../migrations/sqlite/0004_credential_ends.sql"),
    ),
    (
        5,
        "sealing keys",
        include_str!("../migrations/sqlite/0005_sealing_keys.sql"),
    ),
    (
        6,
        "scale",
        include_str!("../migrations/sqlite/0006_scale.sql"),
    ),
    (
        7,
        "factors",
        include_str!("../migrations/sqlite/0007_factors.sql"),
    ),
];

/// The migrations compiled into the binary, so a release needs no files beside it.
#[derive(Debug)]
struct EmbeddedMigrations;

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send + 's>>
    {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers run in parallel (WAL lets them).
    readers: Readers,
    /// One connection for every write: SQLite allows one writer at a time, and queueing writers
    /// here is far cheaper than letting them collide on the database lock and sleep in SQLite's
    /// busy handler. Writes that queue up while a commit syncs share the next commit.
    writer: GroupWriter,
    /// For the migrations (sqlx's migrator), which manage their own transactions outside the
    /// writer's batches.
    options: SqliteConnectOptions,
}

/// The columns `user_from_row` reads, as a literal so that each statement is one constant.
macro_rules! user_columns {
    () => {
        "id, username, email, password_hash, email_verified, is_admin, disabled, preferred_method, email_otp, created_at, credential_epoch,
         EXISTS (SELECT 1 FROM factors f
                 WHERE f.user_id = users.id AND f.kind = 'totp' AND f.verified_at IS NOT NULL) AS has_totp"
    };
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get("id")?,
        username: row.get("username")?,
        email: row.get("email")?,
        password_hash: row.get("password_hash")?,
        email_verified: row.get("email_verified")?,
        is_admin: row.get("is_admin")?,
        disabled: row.get("disabled")?,
        preferred_method: row.get("preferred_method")?,
        email_otp: row.get("email_otp")?,
        has_totp: row.get("has_totp")?,
        credential_epoch: row.get("credential_epoch")?,
        created_at: row.get("created_at")?,
    })
}

/// Creates a missing database file readable by its owner only (it holds password hashes,
/// addresses and audit IPs). SQLite gives the `-wal` and `-shm` files it creates beside it the
/// same permissions.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

impl SqliteStore {
    /// `sqlite://PATH` (relative to the working directory) or `sqlite:///abs/path`; the file is
    /// created when missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, true).await
    }

    /// `full_sync: false` trades the last commits on power loss (never on a process crash or
    /// kill: WAL keeps those) for far fewer fsyncs; see `MFAGATE_SQLITE_SYNCHRONOUS`.
    pub async fn connect_with(url: &str, full_sync: bool) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL '{url}': {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if full_sync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(path) = Self::database_path(url) {
            // A mistyped path must not quietly become a new empty database (and, in the server,
            // a new key): the directory has to exist.
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !parent.is_dir() {
                    return Err(StoreError::Unavailable(format!(
                        "the directory {} for the SQLite database {} does not exist; create it, \
                         or correct the path (sqlite://relative/path or sqlite:///absolute/path)",
                        parent.display(),
                        path.display()
                    )));
                }
            }
            create_private(path).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the SQLite database {}: {e}",
                    path.display()
                ))
            })?;
        }
        let path = Self::database_path(url).ok_or_else(|| {
            StoreError::Unavailable(format!(
                "'{url}' names no database file; use sqlite://relative/path or sqlite:///absolute/path"
            ))
        })?;
        // The writer first: it switches the file to WAL.
        let writer = GroupWriter::start(WriterOptions {
            path: path.to_path_buf(),
            full_sync,
        })
        .await?;
        let readers = Readers::open(path, READERS)?;
        Ok(Self {
            readers,
            writer,
            options,
        })
    }

    /// The database file a `sqlite://` URL names (for placing the key file beside it).
    pub fn database_path(url: &str) -> Option<&Path> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next()?;
        (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator::new(EmbeddedMigrations)
            .await
            .map_err(|e| StoreError::Other(format!("loading migrations: {e}")))?;
        let mut connection =
            self.options.connect().await.map_err(|e| {
                StoreError::Unavailable(format!("opening SQLite for migrations: {e}"))
            })?;
        let applied = migrator
            .run(&mut connection)
            .await
            .map_err(|e| StoreError::Other(format!("applying migrations: {e}")));
        let _ = connection.close().await;
        applied
    }

    /// Runs `job` on the writer connection, in the next group commit (see `sqlite_writer`).
    async fn write<T, F>(&self, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.writer.write(job).await
    }

    pub async fn close(&self) {
        self.readers.close();
        self.writer.stop().await;
    }
}

// ----- the clean-up: ?1 the time bound, ?2 the batch size -----

const CLEANUP: &[&str] = &[
    "DELETE FROM challenges WHERE rowid IN
     (SELECT rowid FROM challenges WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    "DELETE FROM challenges WHERE rowid IN
     (SELECT rowid FROM challenges WHERE spent_at IS NOT NULL AND spent_at <= ?1 ORDER BY spent_at LIMIT ?2)",
    "DELETE FROM setup_tokens WHERE rowid IN
     (SELECT rowid FROM setup_tokens WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    "DELETE FROM refresh_tokens WHERE rowid IN
     (SELECT rowid FROM refresh_tokens WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    "DELETE FROM throttle_windows WHERE rowid IN
     (SELECT rowid FROM throttle_windows WHERE window_end <= ?1 ORDER BY window_end LIMIT ?2)",
    "DELETE FROM email_keys WHERE rowid IN
     (SELECT rowid FROM email_keys WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    "DELETE FROM recovery_codes WHERE id IN
     (SELECT id FROM recovery_codes WHERE used_at IS NOT NULL AND used_at <= ?1 ORDER BY used_at LIMIT ?2)",
    "DELETE FROM factors WHERE rowid IN
     (SELECT rowid FROM factors WHERE verified_at IS NULL AND pending_expires_at <= ?1
      ORDER BY pending_expires_at LIMIT ?2)",
];

const CLEANUP_AUDIT: &str = "DELETE FROM audit_events WHERE id IN
     (SELECT id FROM audit_events WHERE at < ?1 ORDER BY at LIMIT ?2)";

// ----- statements that several writes run; each function runs inside the caller's job -----

/// Completes a login (see `ChallengeStore::complete_challenge`). Everything here runs in one job
/// on the one writer, so nothing comes between the checks and the changes: the challenge is live
/// and its user active, then the factor is claimed (a TOTP step later than the last, a recovery
/// code unused), and only then are the challenge spent and the refresh token stored.
fn complete_login(
    c: &rusqlite::Connection,
    challenge_id: &str,
    claim: FactorClaim,
    refresh: &NewRefreshToken,
    release: Option<&str>,
    now: i64,
) -> rusqlite::Result<Completion> {
    let live = query_opt(
        c,
        "SELECT 1 FROM challenges
         WHERE id = ?1 AND user_id = ?2 AND spent_at IS NULL AND expires_at > ?3
           AND EXISTS (SELECT 1 FROM users WHERE id = ?2 AND disabled = 0)",
        params![challenge_id, refresh.user_id, now],
        |_| Ok(()),
    )?;
    if live.is_none() {
        return Ok(Completion::ChallengeGone);
    }
    let user = refresh.user_id.as_str();
    let factor_claimed = match claim {
        FactorClaim::TotpStep { factor_id, step } => {
            factors::accept_step(c, user, &factor_id, step, now)?
        }
        FactorClaim::RecoveryCode(code_id) => {
            let used = execute(
                c,
                "UPDATE recovery_codes SET used_at = ?3 WHERE id = ?2 AND user_id = ?1 AND used_at IS NULL",
                params![user, code_id, now],
            )?;
            if used == 1 {
                touch_totp_device(c, user, now)?;
            }
            used
        }
        // The code was checked against the challenge's own hash; spending the challenge below
        // is what makes it single-use.
        FactorClaim::EmailCode => 1,
    };
    if factor_claimed != 1 {
        return Ok(Completion::FactorRefused);
    }
    execute(
        c,
        "UPDATE challenges SET spent_at = ?2 WHERE id = ?1",
        params![challenge_id, now],
    )?;
    insert_token(c, refresh)?;
    // The login's throttle claim goes back with the login, in the same transaction.
    if let Some(keys) = release {
        release_in_windows(c, keys, now)?;
    }
    Ok(Completion::Completed)
}

/// A recovery code counts as a use of the user's oldest TOTP factor (v1's one device, whose
/// `last_used_at` `mfa/status` shows).
fn touch_totp_device(c: &rusqlite::Connection, user_id: &str, now: i64) -> rusqlite::Result<()> {
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

/// The user's recovery codes become `codes_sealed`, and only those.
fn replace_codes(
    c: &rusqlite::Connection,
    user_id: &str,
    codes_sealed: &[String],
) -> rusqlite::Result<()> {
    execute(
        c,
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        [user_id],
    )?;
    execute(
        c,
        "INSERT INTO recovery_codes (user_id, code_sealed)
         SELECT ?1, value FROM json_each(?2) ORDER BY key",
        params![
            user_id,
            serde_json::Value::from(codes_sealed.to_vec()).to_string()
        ],
    )
    .map(drop)
}

/// Removes every factor of the user (pending ones too) and the recovery codes.
fn remove_second_factors(c: &rusqlite::Connection, user_id: &str) -> rusqlite::Result<()> {
    execute(c, "DELETE FROM factors WHERE user_id = ?1", [user_id])?;
    execute(
        c,
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        [user_id],
    )
    .map(drop)
}

/// Ends every credential of a user but the second factors themselves: live challenges, setup
/// tokens, pending enrolments (the epoch moves on), refresh tokens, invitation and reset keys.
fn end_credentials(c: &rusqlite::Connection, user_id: &str, now: i64) -> rusqlite::Result<()> {
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
    execute(
        c,
        "DELETE FROM factors WHERE user_id = ?1 AND verified_at IS NULL",
        [user_id],
    )?;
    execute(
        c,
        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
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

/// Windows as one JSON array, so that a claim or release on any number of them is one
/// statement that counts in all of them or in none.
fn windows_json(windows: &[WindowLimit]) -> String {
    serde_json::Value::Array(
        windows
            .iter()
            .map(|w| {
                serde_json::json!({"key": w.key, "seconds": w.window_seconds, "limit": w.limit})
            })
            .collect(),
    )
    .to_string()
}

/// Counts one unit in every window of ?1 (a `windows_json` array) iff none of them is full at
/// ?2, starting over those that have ended. SQLite runs the `SELECT` to the end before it
/// inserts (it reads the table it writes to), so the check sees no window counted by this
/// statement: all or nothing. Changes as many rows as there are windows, or none.
const CLAIM_WINDOWS: &str = "
    INSERT INTO throttle_windows (key, window_start, window_end, count)
    SELECT w.value ->> 'key', ?2, ?2 + (w.value ->> 'seconds'), 1 FROM json_each(?1) AS w
    WHERE NOT EXISTS (
        SELECT 1 FROM json_each(?1) AS v JOIN throttle_windows AS t ON t.key = v.value ->> 'key'
        WHERE t.window_end > ?2 AND t.count >= v.value ->> 'limit')
    ON CONFLICT (key) DO UPDATE SET
      count = CASE WHEN window_end <= ?2 THEN 1 ELSE count + 1 END,
      window_start = CASE WHEN window_end <= ?2 THEN ?2 ELSE window_start END,
      window_end = CASE WHEN window_end <= ?2 THEN excluded.window_end ELSE window_end END";

/// Counts one unit in every window iff none is full; `Some(retry_after)` (until the last full
/// window ends) when refused, with nothing counted.
fn claim_in_windows(
    c: &rusqlite::Connection,
    windows: &str,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    if execute(c, CLAIM_WINDOWS, params![windows, now])? > 0 {
        return Ok(None);
    }
    full_windows_retry_after(c, windows, now).map(Some)
}

/// Seconds until the last of the full windows of ?1 ends (1 if none is full).
fn full_windows_retry_after(
    c: &rusqlite::Connection,
    windows: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    let end: Option<i64> = query_opt(
        c,
        "SELECT MAX(t.window_end) FROM json_each(?1) AS v
         JOIN throttle_windows AS t ON t.key = v.value ->> 'key'
         WHERE t.window_end > ?2 AND t.count >= v.value ->> 'limit'",
        params![windows, now],
        |row| row.get(0),
    )?
    .flatten();
    Ok(end.map_or(1, |end| (end - now).max(1)))
}

fn keys_json<'a>(keys: impl Iterator<Item = &'a str>) -> String {
    serde_json::Value::Array(keys.map(serde_json::Value::from).collect()).to_string()
}

/// Hands back one claimed unit of each window of `keys` (a JSON array of keys) that is still
/// current at `now`.
fn release_in_windows(c: &rusqlite::Connection, keys: &str, now: i64) -> rusqlite::Result<()> {
    execute(
        c,
        "UPDATE throttle_windows SET count = count - 1
         WHERE key IN (SELECT value FROM json_each(?1)) AND count > 0 AND window_end > ?2",
        params![keys, now],
    )
    .map(drop)
}

fn insert_token(c: &rusqlite::Connection, token: &NewRefreshToken) -> rusqlite::Result<()> {
    execute(
        c,
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, amr, auth_time, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            token.token_hash,
            token.user_id,
            token.family_id,
            token.amr,
            token.auth_time,
            token.created_at,
            token.expires_at
        ],
    )
    .map(drop)
}

fn revoke_family(c: &rusqlite::Connection, family_id: &str, now: i64) -> rusqlite::Result<()> {
    execute(
        c,
        "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
        params![family_id, now],
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

    async fn set_preferred_method(&self, user_id: &str, method: &str) -> StoreResult<()> {
        let (user_id, method) = (user_id.to_owned(), method.to_owned());
        self.write(move |c| {
            execute(
                c,
                "UPDATE users SET preferred_method = ?2 WHERE id = ?1",
                params![user_id, method],
            )
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl MfaStore for SqliteStore {
    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<StoredRecoveryCode>> {
        self.readers
            .read(|c| {
                query_all(
                    c,
                    "SELECT id, code_sealed FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL ORDER BY id",
                    [user_id],
                    |row| {
                        Ok(StoredRecoveryCode {
                            id: row.get("id")?,
                            code_sealed: row.get("code_sealed")?,
                        })
                    },
                )
            })
            .await
    }

    async fn count_unused_recovery_codes(&self, user_id: &str) -> StoreResult<u64> {
        let count: Option<i64> = self
            .readers
            .read(|c| {
                query_opt(
                    c,
                    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
                    [user_id],
                    |row| row.get(0),
                )
            })
            .await?;
        Ok(count.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_id: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let user_id = user_id.to_owned();
        self.write(move |c| {
            let used = execute(
                c,
                "UPDATE recovery_codes SET used_at = ?3 WHERE id = ?2 AND user_id = ?1 AND used_at IS NULL",
                params![user_id, code_id, now],
            )?;
            if used != 1 {
                return Ok(false);
            }
            touch_totp_device(c, &user_id, now)?;
            Ok(true)
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes_sealed: &[String],
    ) -> StoreResult<bool> {
        let (user_id, codes) = (user_id.to_owned(), codes_sealed.to_vec());
        self.write(move |c| {
            // Only while the user is active and still holds a factor: codes made just as the
            // last factor went would otherwise outlive it.
            let enrolled = query_opt(
                c,
                "SELECT 1 FROM users WHERE id = ?1 AND disabled = 0
                   AND EXISTS (SELECT 1 FROM factors WHERE user_id = ?1 AND verified_at IS NOT NULL)",
                [&user_id],
                |_| Ok(()),
            )?;
            if enrolled.is_none() {
                return Ok(false);
            }
            replace_codes(c, &user_id, &codes)?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl ChallengeStore for SqliteStore {
    async fn create_challenge(
        &self,
        challenge: &NewChallenge,
        max_live: u32,
        max_failures: u32,
        now: i64,
    ) -> StoreResult<ChallengeCreated> {
        let new = challenge.clone();
        let inserted = self.write(move |c| execute(c, "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
                 SELECT ?1, ?2, ?3, ?4, ?5
                 WHERE (SELECT COUNT(*) FROM challenges
                        WHERE user_id = ?2 AND expires_at > ?4 AND spent_at IS NULL AND failures < ?7) < ?6", params![new.id, new.user_id, new.token_hash, now, new.expires_at, i64::from(max_live), i64::from(max_failures)]))
            .await?;
        if inserted == 1 {
            return Ok(ChallengeCreated::Created);
        }
        let earliest: Option<i64> = self
            .readers
            .read(|c| {
                query_opt(
                    c,
                    "SELECT MIN(expires_at) FROM challenges
                     WHERE user_id = ?1 AND expires_at > ?2 AND spent_at IS NULL AND failures < ?3",
                    params![challenge.user_id, now, i64::from(max_failures)],
                    |row| row.get(0),
                )
            })
            .await?
            .flatten();
        Ok(ChallengeCreated::TooMany {
            earliest_expiry: earliest.unwrap_or(now + 1),
        })
    }

    async fn challenge_by_token(&self, token_hash: &str) -> StoreResult<Option<Challenge>> {
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    "SELECT id, user_id, expires_at, failures, spent_at, email_code_hash FROM challenges WHERE token_hash = ?1",
                    [token_hash],
                    |row| {
                        let failures: i64 = row.get("failures")?;
                        let spent_at: Option<i64> = row.get("spent_at")?;
                        Ok(Challenge {
                            id: row.get("id")?,
                            user_id: row.get("user_id")?,
                            expires_at: row.get("expires_at")?,
                            failures: u32::try_from(failures).unwrap_or(u32::MAX),
                            spent: spent_at.is_some(),
                            email_code_hash: row.get("email_code_hash")?,
                        })
                    },
                )
            })
            .await
    }

    async fn claim_challenge_attempt(
        &self,
        challenge_id: &str,
        max_failures: u32,
        user_window: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<AttemptClaim> {
        let (id, window) = (challenge_id.to_owned(), user_window.cloned());
        let windows = window
            .as_ref()
            .map(|w| windows_json(std::slice::from_ref(w)));
        // The challenge is counted only if it is live with room and the user's window has room,
        // and the window is counted only if the challenge was. A refusal then reads why.
        self.write(move |c| {
            let counted: Option<i64> = query_opt(
                c,
                "UPDATE challenges SET failures = failures + 1
                 WHERE id = ?1 AND spent_at IS NULL AND expires_at > ?2 AND failures < ?3
                   AND NOT EXISTS (SELECT 1 FROM throttle_windows
                                   WHERE key = ?4 AND window_end > ?2 AND count >= ?5)
                 RETURNING failures",
                params![
                    id,
                    now,
                    i64::from(max_failures),
                    window.as_ref().map(|w| w.key.as_str()),
                    window.as_ref().map_or(0, |w| i64::from(w.limit))
                ],
                |row| row.get(0),
            )?;
            if let Some(failures) = counted {
                if let Some(windows) = &windows {
                    // The statement above saw room and nothing else runs on the writer in
                    // between, so this is granted; were it ever refused, the attempt fails
                    // closed (counted against the challenge, never checked).
                    if let Some(retry_after) = claim_in_windows(c, windows, now)? {
                        return Ok(AttemptClaim::UserThrottled { retry_after });
                    }
                }
                return Ok(AttemptClaim::Claimed {
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                });
            }
            let row = query_opt(
                c,
                "SELECT expires_at, failures, spent_at FROM challenges WHERE id = ?1",
                [&id],
                |row| <(i64, i64, Option<i64>)>::try_from(row),
            )?;
            let Some((expires_at, failures, spent_at)) = row else {
                return Ok(AttemptClaim::ChallengeGone);
            };
            if spent_at.is_some() || expires_at <= now {
                return Ok(AttemptClaim::ChallengeGone);
            }
            if failures >= i64::from(max_failures) {
                return Ok(AttemptClaim::ChallengeDead { expires_at });
            }
            // Live with room, so the user's window was full; nothing ran between.
            let retry_after = match &windows {
                Some(windows) => full_windows_retry_after(c, windows, now)?,
                None => 1,
            };
            Ok(AttemptClaim::UserThrottled { retry_after })
        })
        .await
    }

    async fn complete_challenge(
        &self,
        challenge_id: &str,
        claim: FactorClaim,
        refresh: &NewRefreshToken,
        release: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<Completion> {
        let (challenge_id, refresh) = (challenge_id.to_owned(), refresh.clone());
        let release = release.map(|w| keys_json(std::iter::once(w.key.as_str())));
        self.write(move |c| {
            complete_login(c, &challenge_id, claim, &refresh, release.as_deref(), now)
        })
        .await
    }

    async fn create_setup_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (token_hash, user_id) = (token_hash.to_owned(), user_id.to_owned());
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO setup_tokens (token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
                params![token_hash, user_id, expires_at],
            )
        })
        .await?;
        Ok(())
    }

    async fn setup_token_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
        self.readers
            .read(|c| {
                query_opt(
                    c,
                    "SELECT user_id FROM setup_tokens WHERE token_hash = ?1 AND expires_at > ?2",
                    params![token_hash, now],
                    |row| row.get(0),
                )
            })
            .await
    }
}

#[async_trait]
impl EmailStore for SqliteStore {
    async fn set_email_verified(&self, user_id: &str) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        self.write(move |c| {
            execute(
                c,
                "UPDATE users SET email_verified = 1 WHERE id = ?1",
                params![user_id],
            )
        })
        .await?;
        Ok(())
    }

    async fn set_email_otp(&self, user_id: &str, enabled: bool) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        // Switching e-mail codes off also drops them as the preferred method.
        self.write(move |c| {
            execute(
                c,
                "UPDATE users SET email_otp = ?2,
               preferred_method = CASE WHEN ?2 THEN 'email'
                                       WHEN preferred_method = 'email' THEN 'none'
                                       ELSE preferred_method END
             WHERE id = ?1",
                params![user_id, enabled],
            )
        })
        .await?;
        Ok(())
    }

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

    async fn consume_email_key(
        &self,
        key_hash: &str,
        purpose: KeyPurpose,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let key_hash = key_hash.to_owned();
        self.write(move |c| {
            query_opt(
                c,
                "UPDATE email_keys SET used_at = ?3
                 WHERE key_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3
                 RETURNING user_id",
                params![key_hash, purpose.as_str(), now],
                |row| row.get(0),
            )
        })
        .await
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn list_users(&self, limit: u32, start: &UserPageStart) -> StoreResult<Vec<User>> {
        let limit = i64::from(limit);
        self.readers
            .read(|c| match start {
                UserPageStart::After { created_at, id } => query_all(
                    c,
                    concat!(
                        "SELECT ",
                        user_columns!(),
                        " FROM users WHERE (created_at, id) > (?2, ?3) ORDER BY created_at, id LIMIT ?1"
                    ),
                    params![limit, created_at, id],
                    user_from_row,
                ),
                UserPageStart::Offset(offset) => query_all(
                    c,
                    concat!(
                        "SELECT ",
                        user_columns!(),
                        " FROM users ORDER BY created_at, id LIMIT ?1 OFFSET ?2"
                    ),
                    params![limit, i64::from(*offset)],
                    user_from_row,
                ),
            })
            .await
    }

    async fn enable_user(&self, user_id: &str) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        self.write(move |c| {
            execute(
                c,
                "UPDATE users SET disabled = 0 WHERE id = ?1",
                params![user_id],
            )
        })
        .await?;
        Ok(())
    }
}

fn signing_key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSigningKey> {
    Ok(StoredSigningKey {
        kid: row.get("kid")?,
        private_sealed: row.get("private_sealed")?,
        public_key: row.get("public_key")?,
        created_at: row.get("created_at")?,
        retired_at: row.get("retired_at")?,
    })
}

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import_accounts(&self, accounts: &[ImportedAccount]) -> StoreResult<()> {
        use serde_json::json;
        // Each table's rows go in as one JSON array read by `json_each`: one prepared statement
        // per table for any batch size.
        let mut users = Vec::new();
        let mut devices = Vec::new();
        let mut codes = Vec::new();
        let mut tokens = Vec::new();
        let mut keys = Vec::new();
        let mut challenges = Vec::new();
        for a in accounts {
            let u = &a.user;
            users.push(json!([
                u.id,
                u.username,
                u.username.to_lowercase(),
                u.email,
                u.email.to_lowercase(),
                u.password_hash,
                a.email_verified,
                u.is_admin,
                a.preferred_method,
                a.email_otp,
                u.created_at
            ]));
            if let Some(t) = &a.totp {
                devices.push(json!([
                    mfagate_core::secret::new_id(),
                    u.id,
                    t.secret_sealed,
                    t.created_at,
                    t.last_used_at,
                    t.last_step
                ]));
            }
            for (code, used_at) in &a.recovery_codes {
                codes.push(json!([u.id, code, used_at]));
            }
            for t in &a.sessions {
                tokens.push(json!([
                    t.token_hash,
                    t.user_id,
                    t.family_id,
                    t.amr,
                    t.auth_time,
                    t.created_at,
                    t.expires_at
                ]));
            }
            for (hash, purpose, expires_at) in &a.email_keys {
                keys.push(json!([hash, u.id, purpose.as_str(), expires_at]));
            }
            for c in &a.challenges {
                challenges.push(json!([
                    c.id,
                    c.user_id,
                    c.token_hash,
                    c.created_at,
                    c.expires_at
                ]));
            }
        }
        let batches: Vec<(&'static str, String)> = [
            (IMPORT_USERS, users),
            (IMPORT_DEVICES, devices),
            (IMPORT_CODES, codes),
            (IMPORT_TOKENS, tokens),
            (IMPORT_KEYS, keys),
            (IMPORT_CHALLENGES, challenges),
        ]
        .into_iter()
        .map(|(sql, rows)| (sql, serde_json::Value::Array(rows).to_string()))
        .chain(std::iter::once((
            IMPORT_EVENTS,
            audit_rows(accounts.iter().flat_map(|a| &a.audit)).to_string(),
        )))
        .collect();
        // One job: its statements run in the writer's transaction, so all or nothing.
        self.write(move |c| {
            for (sql, rows) in &batches {
                execute(c, sql, [rows])?;
            }
            Ok(())
        })
        .await
    }
}

// ----- imports: ?1 a JSON array of rows, each an array of the columns in order -----

const IMPORT_USERS: &str = "INSERT INTO users (id, username, username_lower, email, email_lower,
        password_hash, email_verified, is_admin, preferred_method, email_otp, created_at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
            value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10
     FROM json_each(?1) ORDER BY key";
const IMPORT_DEVICES: &str = "INSERT INTO factors (id, user_id, kind, name, name_lower,
        secret_sealed, created_at, last_used_at, last_step, verified_at)
     SELECT value ->> 0, value ->> 1, 'totp', 'Authenticator', 'authenticator',
            value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 3
     FROM json_each(?1) ORDER BY key";
const IMPORT_CODES: &str = "INSERT INTO recovery_codes (user_id, code_sealed, used_at)
     SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?1) ORDER BY key";
const IMPORT_TOKENS: &str = "INSERT INTO refresh_tokens (token_hash, user_id, family_id, amr, auth_time, created_at, expires_at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
     FROM json_each(?1) ORDER BY key";
const IMPORT_KEYS: &str = "INSERT INTO email_keys (key_hash, user_id, purpose, expires_at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?1) ORDER BY key";
const IMPORT_CHALLENGES: &str =
    "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
     FROM json_each(?1) ORDER BY key";
/// Audit events as the JSON rows `IMPORT_EVENTS` reads.
fn audit_rows<'a>(records: impl Iterator<Item = &'a AuditRecord>) -> serde_json::Value {
    serde_json::Value::Array(
        records
            .map(|r| serde_json::json!([r.at, r.user_id, r.event, r.ip, r.detail]))
            .collect(),
    )
}

/// Also the statement of every audit batch the server writes.
const IMPORT_EVENTS: &str = "INSERT INTO audit_events (at, user_id, event, ip, detail)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
     FROM json_each(?1) ORDER BY key";

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.readers
            .read(|c| {
                query_all(
                    c,
                    "SELECT kid, private_sealed, public_key, created_at, retired_at FROM signing_keys
                     ORDER BY created_at DESC, kid",
                    [],
                    signing_key_from_row,
                )
            })
            .await
    }

    async fn add_signing_key(&self, key: &StoredSigningKey, now: i64) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |c| {
            execute(
                c,
                "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                [now],
            )?;
            execute(
                c,
                "INSERT INTO signing_keys (kid, private_sealed, public_key, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![key.kid, key.private_sealed, key.public_key, key.created_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn sealing_key_ids(&self) -> StoreResult<Vec<String>> {
        self.readers
            .read(|c| {
                query_all(
                    c,
                    "SELECT key_id FROM sealing_keys ORDER BY recorded_at, key_id",
                    [],
                    |row| row.get(0),
                )
            })
            .await
    }

    async fn record_sealing_key(&self, key_id: &str, now: i64) -> StoreResult<()> {
        let key_id = key_id.to_string();
        self.write(move |c| {
            execute(
                c,
                "INSERT OR IGNORE INTO sealing_keys (key_id, recorded_at) VALUES (?1, ?2)",
                params![key_id, now],
            )
        })
        .await?;
        Ok(())
    }

    async fn add_first_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO signing_keys (kid, private_sealed, public_key, created_at)
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
                params![key.kid, key.private_sealed, key.public_key, key.created_at],
            )
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |c| insert_token(c, &token)).await
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        successor: &RefreshSuccessor,
        now: i64,
    ) -> StoreResult<RefreshOutcome> {
        let (token_hash, successor) = (token_hash.to_owned(), successor.clone());
        self.write(move |c| {
            let rotated = query_opt(
                c,
                "UPDATE refresh_tokens SET used_at = ?2
                 WHERE token_hash = ?1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?2
                   AND EXISTS (SELECT 1 FROM users u WHERE u.id = refresh_tokens.user_id AND u.disabled = 0)
                 RETURNING user_id, family_id, amr, COALESCE(auth_time, created_at) AS auth_time",
                params![token_hash, now],
                |row| {
                    Ok(NewRefreshToken {
                        token_hash: successor.token_hash.clone(),
                        user_id: row.get("user_id")?,
                        family_id: row.get("family_id")?,
                        amr: row.get("amr")?,
                        auth_time: row.get("auth_time")?,
                        created_at: successor.created_at,
                        expires_at: successor.expires_at,
                    })
                },
            )?;
            if let Some(child) = rotated {
                // In the same job: a reuse that revokes the family after this revokes the
                // successor too.
                insert_token(c, &child)?;
                return Ok(RefreshOutcome::Rotated {
                    user_id: child.user_id,
                    family_id: child.family_id,
                    amr: child.amr,
                    auth_time: child.auth_time,
                });
            }
            let known = query_opt(
                c,
                "SELECT user_id, family_id, used_at FROM refresh_tokens WHERE token_hash = ?1",
                [&token_hash],
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
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let token_hash = token_hash.to_owned();
        self.write(move |c| {
            let row = query_opt(
                c,
                "SELECT user_id, family_id FROM refresh_tokens WHERE token_hash = ?1",
                [&token_hash],
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

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn claim_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<Claim> {
        let windows = windows_json(windows);
        // One statement checks every window and counts in all of them, or in none.
        self.write(move |c| {
            Ok(match claim_in_windows(c, &windows, now)? {
                None => Claim::Granted,
                Some(retry_after) => Claim::Refused { retry_after },
            })
        })
        .await
    }

    async fn claim_request_window(&self, _window: &WindowLimit, _now: i64) -> StoreResult<Claim> {
        // One server process owns a SQLite file (several instances need PostgreSQL), so the
        // caller's in-memory count is the deployment's: no write on the single writer per
        // request.
        Ok(Claim::Granted)
    }

    async fn release_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<()> {
        let keys = keys_json(windows.iter().map(|w| w.key.as_str()));
        self.write(move |c| release_in_windows(c, &keys, now))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit_batch(&self, records: &[AuditRecord]) -> StoreResult<()> {
        // The whole batch as one JSON array in one statement: one cached statement for every
        // batch size.
        let rows = audit_rows(records.iter()).to_string();
        self.write(move |c| execute(c, IMPORT_EVENTS, [rows]))
            .await?;
        Ok(())
    }

    async fn recent_audit_events(
        &self,
        user_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredAuditEvent>> {
        let limit = i64::from(limit);
        let event = |row: &rusqlite::Row<'_>| {
            Ok(StoredAuditEvent {
                at: row.get("at")?,
                user_id: row.get("user_id")?,
                event: row.get("event")?,
                ip: row.get("ip")?,
                detail: row.get("detail")?,
            })
        };
        // Two statements, not `?1 IS NULL OR user_id = ?1`: that form cannot use the index.
        self.readers
            .read(|c| match user_id {
                Some(user_id) => query_all(
                    c,
                    "SELECT at, user_id, event, ip, detail FROM audit_events
                     WHERE user_id = ?2 ORDER BY id DESC LIMIT ?1",
                    params![limit, user_id],
                    event,
                ),
                None => query_all(
                    c,
                    "SELECT at, user_id, event, ip, detail FROM audit_events ORDER BY id DESC LIMIT ?1",
                    [limit],
                    event,
                ),
            })
            .await
    }
}

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.readers
            .read(|c| query_opt(c, "SELECT 1", [], |_| Ok(())))
            .await?;
        Ok(())
    }

    async fn delete_expired(
        &self,
        now: i64,
        audit_before: Option<i64>,
        batch: u32,
    ) -> StoreResult<u64> {
        let batch = i64::from(batch.max(1));
        let mut deleted: u64 = 0;
        let mut statements: Vec<(&'static str, i64)> =
            CLEANUP.iter().map(|statement| (*statement, now)).collect();
        if let Some(before) = audit_before {
            statements.push((CLEANUP_AUDIT, before));
        }
        // Each batch is a job of its own: writes queued behind the clean-up wait for one batch
        // at most, never for the whole backlog.
        for (statement, bound) in statements {
            let changed = self
                .write(move |c| execute(c, statement, params![bound, batch]))
                .await?;
            deleted += changed as u64;
        }
        Ok(deleted)
    }
}
