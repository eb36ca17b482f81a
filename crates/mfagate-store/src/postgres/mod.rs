//! PostgreSQL store, for several mfagate instances on one database. Every guarantee holds across
//! instances: each one-time rule is a single conditional `UPDATE ... WHERE ... RETURNING` (row
//! locks make concurrent ones wait and re-check), and the two checks that count rows (live
//! challenges per user, the username/e-mail cross-check) run in a transaction that first locks
//! the user row or takes an advisory lock.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mfagate_core::store::*;
use mfagate_core::StoreError;
use sqlx::migrate::Migrator;

use crate::migrations::{EmbeddedMigrations, Steps};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

pub(crate) const MIGRATIONS: Steps = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "credential ends",
        include_str!("../../migrations/postgres/0002_credential_ends.sql"),
    ),
    (
        3,
        "sealing keys",
        include_str!("../../migrations/postgres/0003_sealing_keys.sql"),
    ),
    (
        4,
        "scale",
        include_str!("../../migrations/postgres/0004_scale.sql"),
    ),
    (
        5,
        "shared request windows",
        include_str!("../../migrations/postgres/0005_request_windows.sql"),
    ),
    (
        6,
        "factors",
        include_str!("../../migrations/postgres/0006_factors.sql"),
    ),
    (
        7,
        "passkeys",
        include_str!("../../migrations/postgres/0007_passkeys.sql"),
    ),
    (
        8,
        "sessions",
        include_str!("../../migrations/postgres/0008_sessions.sql"),
    ),
    (
        9,
        "remembered_devices",
        include_str!("../../migrations/postgres/0009_remembered_devices.sql"),
    ),
    (
        10,
        "factor kinds",
        include_str!("../../migrations/postgres/0010_factor_kinds.sql"),
    ),
    (
        11,
        "challenge tokens",
        include_str!("../../migrations/postgres/0011_challenge_tokens.sql"),
    ),
    (
        12,
        "refresh token ids",
        include_str!("../../migrations/postgres/0012_refresh_token_ids.sql"),
    ),
    (
        13,
        "tokens through sessions",
        include_str!("../../migrations/postgres/0013_tokens_through_sessions.sql"),
    ),
    (
        14,
        "pending factors index",
        include_str!("../../migrations/postgres/0014_pending_factors_index.sql"),
    ),
    (
        15,
        "clean-up only time indexes",
        include_str!("../../migrations/postgres/0015_cleanup_only_time_indexes.sql"),
    ),
];

#[derive(Debug, Clone)]
pub struct PgStore {
    /// Opens the connections, runs the migrations and the benchmark's import.
    pool: PgPool,
    /// Every other statement runs on these (`own_connections.rs`).
    own: std::sync::Arc<own_connections::OwnConnections>,
    /// Whether the first clean-up has looked at the database's settings (`warn_about_settings`).
    settings_checked: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Connection settings; the defaults suit one instance on a small machine.
#[derive(Debug, Clone, Copy)]
pub struct PgPoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// SQLite only: fsync on every commit (`synchronous=FULL`, the default) or not (`NORMAL`).
    pub sqlite_full_sync: bool,
}

impl Default for PgPoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            sqlite_full_sync: true,
        }
    }
}

fn map_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => crate::conflict(&format!(
            "{} {}",
            db.table().unwrap_or_default(),
            db.constraint().unwrap_or_default()
        )),
        // Class 08 (connection exception) and 57P0x (shutdown, crash, not yet accepting
        // connections): the database is away, not the query wrong.
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Other(error.to_string()),
    }
}

trait SqlResult<T> {
    fn store(self) -> Result<T, StoreError>;
}

impl<T> SqlResult<T> for Result<T, sqlx::Error> {
    fn store(self) -> Result<T, StoreError> {
        self.map_err(map_error)
    }
}

/// The columns `user_from_row` reads, as a literal so that each statement is one constant
/// (no text made per request). `factor_kinds` is kept on the user's row by a trigger on
/// `factors` (migration 0010), so that reading a user reads no factor.
macro_rules! user_columns {
    () => {
        "id, username, email, password_hash, email_verified, is_admin, disabled, preferred_method, email_otp, created_at, credential_epoch, factor_kinds"
    };
}

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id").store()?,
        username: row.try_get("username").store()?,
        email: row.try_get("email").store()?,
        password_hash: row.try_get("password_hash").store()?,
        email_verified: row.try_get("email_verified").store()?,
        is_admin: row.try_get("is_admin").store()?,
        disabled: row.try_get("disabled").store()?,
        preferred_method: preferred(&row.try_get::<String, _>("preferred_method").store()?),
        email_otp: row.try_get("email_otp").store()?,
        // One read of the user's factors gives both flags (bit 0 TOTP, bit 1 passkey).
        has_totp: row.try_get::<i32, _>("factor_kinds").store()? & 1 != 0,
        has_webauthn: row.try_get::<i32, _>("factor_kinds").store()? & 2 != 0,
        credential_epoch: row.try_get("credential_epoch").store()?,
        created_at: row.try_get("created_at").store()?,
    })
}

/// Connects once and says plainly why that fails: which host and port refused, which database
/// or role is missing, what to do.
async fn probe(options: &PgConnectOptions) -> Result<(), StoreError> {
    use sqlx::ConnectOptions;
    let place = format!("{}:{}", options.get_host(), options.get_port());
    let database = options.get_database().unwrap_or(options.get_username());
    let user = options.get_username();
    let error = match options.connect().await {
        Ok(connection) => {
            let _ = sqlx::Connection::close(connection).await;
            return Ok(());
        }
        Err(error) => error,
    };
    let message = match &error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "cannot connect to PostgreSQL at {place}: connection refused; is PostgreSQL running there? \
             Check the host and port in MFAGATE_DATABASE_URL"
        ),
        sqlx::Error::Io(io) => format!("cannot connect to PostgreSQL at {place}: {io}"),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("3D000") => format!(
                "PostgreSQL at {place} has no database '{database}'; create it \
                 (createdb -h {} -p {} -U {user} {database}) or fix MFAGATE_DATABASE_URL",
                options.get_host(),
                options.get_port()
            ),
            Some("28000") => format!(
                "PostgreSQL at {place} refused the role '{user}' ({}); create it or fix the user in MFAGATE_DATABASE_URL",
                db.message()
            ),
            Some("28P01") => format!(
                "PostgreSQL at {place} refused the password of role '{user}'; fix it in MFAGATE_DATABASE_URL"
            ),
            _ => format!(
                "PostgreSQL at {place} refused the connection to database '{database}' as '{user}': {}",
                db.message()
            ),
        },
        sqlx::Error::Tls(tls) => format!("cannot connect to PostgreSQL at {place}: TLS: {tls}"),
        other => format!("cannot connect to PostgreSQL at {place}: {other}"),
    };
    Err(StoreError::Unavailable(message))
}

impl PgStore {
    /// Claims one unit in one window of `table`, in one statement (its row lock makes the check
    /// and the count one step, across instances too); no transaction.
    async fn claim_one(
        &self,
        table: WindowTable,
        window: &WindowLimit,
        now: i64,
    ) -> StoreResult<Claim> {
        on_connection!(self, |c| {
            Ok(
                if claim_in_window(c, table, window, now)
                    .await
                    .store()?
                    .is_some()
                {
                    Claim::Granted
                } else {
                    Claim::Refused {
                        retry_after: window_retry_after(c, table, &window.key, now)
                            .await
                            .store()?,
                    }
                },
            )
        })
    }

    /// `postgres://user:pass@host:port/db`. The pool connects lazily and reconnects by itself
    /// after the database restarts; until it answers, calls fail as `Unavailable` (503).
    pub async fn connect(url: &str, settings: PgPoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?
            .application_name("mfagate");
        // One plain connection first: the pool would retry a refused port or a missing database
        // until its timeout and then say only that it timed out.
        probe(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            // No ping before each query (a round trip of its own): sqlx pings a connection as it
            // comes back to the pool and drops it if broken, and a query on a connection that
            // broke meanwhile fails as `Unavailable` like any other during an outage.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL at {}: {e}",
                    crate::redact_url(url)
                ))
            })?;
        Ok(Self {
            pool,
            own: std::sync::Arc::new(own_connections::OwnConnections::new(
                settings.max_connections,
            )),
            settings_checked: std::sync::Arc::default(),
        })
    }

    /// Applies pending migrations under PostgreSQL's advisory lock, so instances starting
    /// together apply each migration once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator::new(EmbeddedMigrations(MIGRATIONS))
            .await
            .map_err(|e| StoreError::Other(format!("loading migrations: {e}")))?;
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("applying migrations: {e}")))
    }

    /// Says in the log what in the database's settings will hurt the clean-up's work, and what
    /// to do; once, at the first clean-up (so in the server, not in one-off commands). With
    /// autovacuum off, the rows the clean-up deletes stay behind as dead rows, and every table
    /// and index it deletes from (sessions, refresh tokens, codes, challenges, audit) grows and
    /// slows until someone runs `VACUUM`.
    async fn warn_about_settings(&self) {
        if self
            .settings_checked
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if matches!(self.setting("autovacuum").await.as_deref(), Ok("off")) {
            tracing::warn!(
                "PostgreSQL's autovacuum is off: the rows mfagate's clean-up deletes are never \
                 reclaimed, and its tables and indexes grow and slow down. Turn it on \
                 (autovacuum = on in postgresql.conf) or run VACUUM on this database regularly"
            );
        }
    }

    async fn setting(&self, name: &str) -> Result<String, StoreError> {
        on_connection!(self, |c| {
            sqlx::query_scalar("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(&mut *c)
                .await
                .store()
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

mod admin;
mod audit;
mod challenges;
mod email;
mod factors;
mod import;
mod keys;
mod maintenance;
pub use maintenance::CLEANUP_PLANNER_SETTINGS;
mod own_connections;
pub use own_connections::CONNECTION_SETTINGS;
mod recovery_codes;
mod sessions;
mod throttle;
mod tokens;
mod users;

use factors::*;
use own_connections::on_connection;
use recovery_codes::*;
use throttle::*;
use tokens::*;

/// A stored preference; one this version does not know reads as none.
fn preferred(stored: &str) -> Option<mfagate_core::Method> {
    mfagate_core::factors::parse_preference(stored).flatten()
}
