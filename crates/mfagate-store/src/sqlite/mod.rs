//! SQLite store: one file, WAL journal, full sync on commit (a committed recovery-code use or
//! accepted TOTP step survives a crash or power loss). SQLite runs one writer at a time, so each
//! conditional `UPDATE ... WHERE` below is atomic against every other connection.
//!
//! Statements run through rusqlite: writes as jobs of the group-committing writer
//! (`sqlite_writer`), reads on lent read-only connections (`sqlite_readers`), migrations on a
//! connection of their own at start (`migrate`).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use mfagate_core::store::*;
use mfagate_core::StoreError;

use crate::migrations::Steps;

use rusqlite::params;

/// Read connections: enough for both cores to be busy with reads while others wait on SQLite.
const READERS: usize = 4;

use crate::sqlite::readers::Readers;
use crate::sqlite::statements::{execute, query_all, query_opt};
use crate::sqlite::writer::{GroupWriter, WriterOptions};

pub(crate) const MIGRATIONS: Steps = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "email",
        include_str!("../../migrations/sqlite/0002_email.sql"),
    ),
    (
        3,
        "signing keys",
        include_str!("../../migrations/sqlite/0003_signing_keys.sql"),
    ),
    (
        4,
        "credential ends",
        include_str!("../../migrations/sqlite/0004_credential_ends.sql"),
    ),
    (
        5,
        "sealing keys",
        include_str!("../../migrations/sqlite/0005_sealing_keys.sql"),
    ),
    (
        6,
        "scale",
        include_str!("../../migrations/sqlite/0006_scale.sql"),
    ),
    (
        7,
        "factors",
        include_str!("../../migrations/sqlite/0007_factors.sql"),
    ),
    (
        8,
        "passkeys",
        include_str!("../../migrations/sqlite/0008_passkeys.sql"),
    ),
    (
        9,
        "sessions",
        include_str!("../../migrations/sqlite/0009_sessions.sql"),
    ),
    (
        10,
        "remembered_devices",
        include_str!("../../migrations/sqlite/0010_remembered_devices.sql"),
    ),
    (
        11,
        "factor kinds",
        include_str!("../../migrations/sqlite/0011_factor_kinds.sql"),
    ),
    (
        12,
        "challenge tokens",
        include_str!("../../migrations/sqlite/0012_challenge_tokens.sql"),
    ),
    (
        13,
        "refresh token ids",
        include_str!("../../migrations/sqlite/0013_refresh_token_ids.sql"),
    ),
    (
        14,
        "tokens through sessions",
        include_str!("../../migrations/sqlite/0014_tokens_through_sessions.sql"),
    ),
];

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers run in parallel (WAL lets them).
    readers: Readers,
    /// One connection for every write: SQLite allows one writer at a time, and queueing writers
    /// here is far cheaper than letting them collide on the database lock and sleep in SQLite's
    /// busy handler. Writes that queue up while a commit syncs share the next commit.
    writer: GroupWriter,
    /// The database file, for the migrations, which run on a connection of their own with
    /// their own transactions, outside the writer's batches.
    path: PathBuf,
}

/// The columns `user_from_row` reads, as a literal so that each statement is one constant.
/// `factor_kinds` is kept on the user's row by triggers on `factors` (migration 0011), so that
/// reading a user reads no factor.
macro_rules! user_columns {
    () => {
        "id, username, email, password_hash, email_verified, is_admin, disabled, preferred_method, email_otp, created_at, credential_epoch, factor_kinds"
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
        preferred_method: preferred(&row.get::<_, String>("preferred_method")?),
        email_otp: row.get("email_otp")?,
        // Bit 0 TOTP, bit 1 passkey: which kinds of verified factor the user has.
        has_totp: row.get::<_, i64>("factor_kinds")? & 1 != 0,
        has_webauthn: row.get::<_, i64>("factor_kinds")? & 2 != 0,
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
            path: path.to_path_buf(),
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
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || migrate::migrate(&path, MIGRATIONS))
            .await
            .map_err(|e| StoreError::Other(format!("applying migrations: {e}")))?
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

// ----- statements that several writes run; each function runs inside the caller's job -----

// ----- imports: ?1 a JSON array of rows, each an array of the columns in order -----

mod admin;
mod audit;
mod challenges;
mod email;
mod factors;
mod import;
mod keys;
mod maintenance;
pub(crate) mod migrate;
pub(crate) mod readers;
mod recovery_codes;
mod sessions;
pub(crate) mod statements;
mod throttle;
mod tokens;
mod users;
pub(crate) mod writer;

use factors::*;
use import::*;
use recovery_codes::*;
use sessions::forget_devices;
use throttle::*;
use tokens::*;

/// A stored preference; one this version does not know reads as none.
fn preferred(stored: &str) -> Option<mfagate_core::Method> {
    mfagate_core::factors::parse_preference(stored).flatten()
}
