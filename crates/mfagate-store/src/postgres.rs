//! PostgreSQL store, for several mfagate instances on one database. Every guarantee holds across
//! instances: each one-time rule is a single conditional `UPDATE ... WHERE ... RETURNING` (row
//! locks make concurrent ones wait and re-check), and the two checks that count rows (live
//! challenges per user, the username/e-mail cross-check) run in a transaction that first locks
//! the user row or takes an advisory lock.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mfagate_core::store::*;
use mfagate_core::StoreError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "credential ends",
        include_str!("../migrations/postgres/0002_credential_ends.sql"),
    ),
    (
        3,
        "sealing keys",
        include_str!("../migrations/postgres/0003_sealing_keys.sql"),
    ),
    (
        4,
        "scale",
        include_str!("../migrations/postgres/0004_scale.sql"),
    ),
    (
        5,
        "shared request windows",
        include_str!("../migrations/postgres/0005_request_windows.sql"),
    ),
    (
        6,
        "factors",
        include_str!("../migrations/postgres/0006_factors.sql"),
    ),
];

mod factors;

/// The clean-up, batch by batch: $1 the time bound, $2 the batch size.
// `= ANY(ARRAY(...))` makes a TID (or key) lookup of exactly the batch, and `ORDER BY` the
// column walks its index: without it the planner takes a sequential scan with a LIMIT, which
// re-reads every row the passes before deleted (dead until vacuumed), so each pass of a large
// backlog gets slower (measured at a million accounts: 300 rows/s instead of thousands).
const CLEANUP: &[&str] = &[
    "DELETE FROM challenges WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM challenges WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))",
    "DELETE FROM challenges WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM challenges WHERE spent_at IS NOT NULL AND spent_at <= $1 ORDER BY spent_at LIMIT $2))",
    "DELETE FROM setup_tokens WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM setup_tokens WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))",
    "DELETE FROM refresh_tokens WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM refresh_tokens WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))",
    "DELETE FROM throttle_windows WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM throttle_windows WHERE window_end <= $1 ORDER BY window_end LIMIT $2))",
    "DELETE FROM email_keys WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM email_keys WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))",
    "DELETE FROM request_windows WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM request_windows WHERE window_end <= $1 ORDER BY window_end LIMIT $2))",
    "DELETE FROM recovery_codes WHERE id = ANY(ARRAY(
     SELECT id FROM recovery_codes WHERE used_at IS NOT NULL AND used_at <= $1 ORDER BY used_at LIMIT $2))",
    "DELETE FROM factors WHERE ctid = ANY(ARRAY(
     SELECT ctid FROM factors WHERE verified_at IS NULL AND pending_expires_at <= $1
     ORDER BY pending_expires_at LIMIT $2))",
];

const CLEANUP_AUDIT: &str = "DELETE FROM audit_events WHERE id = ANY(ARRAY(
     SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2))";

/// Advisory lock keys (arbitrary, fixed): one for user creation, one for the clean-up.
const USERS_LOCK: i64 = 0x6d66_6167_0001;
const CLEANUP_LOCK: i64 = 0x6d66_6167_0002;
const SIGNING_KEYS_LOCK: i64 = 0x6d66_6167_0003;

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
pub struct PgStore {
    pool: PgPool,
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

/// The TOTP flag is a scalar subquery with `LIMIT 1`, not `EXISTS`: PostgreSQL may run an
/// `EXISTS` as a hashed subplan, reading all of `factors` to answer a page of 100 users
/// (6.7 ms at 30,000 users against 0.7 ms for 100 index probes); a scalar subquery is always
/// probed per row through the index.
const USER_COLUMNS: &str = "id, username, email, password_hash, email_verified, is_admin, disabled, preferred_method, email_otp, created_at, credential_epoch,
    (SELECT TRUE FROM factors f
     WHERE f.user_id = users.id AND f.kind = 'totp' AND f.verified_at IS NOT NULL LIMIT 1) IS NOT NULL AS has_totp";

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id").store()?,
        username: row.try_get("username").store()?,
        email: row.try_get("email").store()?,
        password_hash: row.try_get("password_hash").store()?,
        email_verified: row.try_get("email_verified").store()?,
        is_admin: row.try_get("is_admin").store()?,
        disabled: row.try_get("disabled").store()?,
        preferred_method: row.try_get("preferred_method").store()?,
        email_otp: row.try_get("email_otp").store()?,
        has_totp: row.try_get("has_totp").store()?,
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
        let mut c = self.pool.acquire().await.store()?;
        if claim_in_window(&mut c, table, window, now)
            .await
            .store()?
            .is_some()
        {
            return Ok(Claim::Granted);
        }
        let retry_after = window_retry_after(&mut c, table, &window.key, now)
            .await
            .store()?;
        Ok(Claim::Refused { retry_after })
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
        Ok(Self { pool })
    }

    /// Applies pending migrations under PostgreSQL's advisory lock, so instances starting
    /// together apply each migration once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator::new(EmbeddedMigrations)
            .await
            .map_err(|e| StoreError::Other(format!("loading migrations: {e}")))?;
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("applying migrations: {e}")))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, user: &NewUser) -> StoreResult<User> {
        let username_lower = user.username.to_lowercase();
        let email_lower = user.email.to_lowercase();
        // The cross-check (a username may not be another user's e-mail) reads other rows, so
        // concurrent creations are serialised by an advisory lock held until commit.
        let mut tx = self.pool.begin().await.store()?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(USERS_LOCK)
            .execute(&mut *tx)
            .await
            .store()?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash, is_admin, created_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE NOT EXISTS (SELECT 1 FROM users WHERE username_lower IN ($3, $5) OR email_lower IN ($3, $5))",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&username_lower)
        .bind(&user.email)
        .bind(&email_lower)
        .bind(&user.password_hash)
        .bind(user.is_admin)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await
        .store()?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "a user with this username or e-mail already exists".into(),
            ));
        }
        tx.commit().await.store()?;
        self.user_by_id(&user.id)
            .await?
            .ok_or_else(|| StoreError::Other("user vanished after insert".into()))
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .store()?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        let login = login.to_lowercase();
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username_lower = $1 OR email_lower = $1 LIMIT 1"
        ))
        .bind(&login)
        .fetch_optional(&self.pool)
        .await
        .store()?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn change_account(
        &self,
        user_id: &str,
        change: &AccountChange,
        key: Option<(&str, KeyPurpose)>,
        now: i64,
    ) -> StoreResult<bool> {
        // Dropping the transaction before commit undoes every step.
        let mut tx = self.pool.begin().await.store()?;
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
            // Pending enrolments die with the rest.
            "DELETE FROM factors WHERE user_id = $1 AND verified_at IS NULL AND $2 = $2",
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
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
    }

    async fn set_admin(&self, user_id: &str, is_admin: bool) -> StoreResult<bool> {
        let changed =
            sqlx::query("UPDATE users SET is_admin = $2 WHERE id = $1 AND is_admin <> $2")
                .bind(user_id)
                .bind(is_admin)
                .execute(&self.pool)
                .await
                .store()?;
        Ok(changed.rows_affected() == 1)
    }

    async fn set_preferred_method(&self, user_id: &str, method: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET preferred_method = $2 WHERE id = $1")
            .bind(user_id)
            .bind(method)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(())
    }
}

#[async_trait]
impl MfaStore for PgStore {
    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<StoredRecoveryCode>> {
        let rows = sqlx::query("SELECT id, code_sealed FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .store()?;
        rows.iter()
            .map(|row| {
                Ok(StoredRecoveryCode {
                    id: row.try_get("id").store()?,
                    code_sealed: row.try_get("code_sealed").store()?,
                })
            })
            .collect()
    }

    async fn count_unused_recovery_codes(&self, user_id: &str) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await
        .store()?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_id: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let used = sqlx::query("UPDATE recovery_codes SET used_at = $3 WHERE id = $2 AND user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .bind(code_id)
            .bind(now)
            .execute(&self.pool)
            .await
            .store()?;
        if used.rows_affected() != 1 {
            return Ok(false);
        }
        touch_totp_device(&self.pool, user_id, now).await.store()?;
        Ok(true)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes_sealed: &[String],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.store()?;
        // Only while the user is active and still holds a factor (the row lock orders this
        // against a removal of the last factor, which locks it too).
        let enrolled: Option<bool> = sqlx::query_scalar(
            "SELECT NOT disabled
               AND EXISTS (SELECT 1 FROM factors WHERE user_id = $1 AND verified_at IS NOT NULL)
             FROM users WHERE id = $1 FOR UPDATE",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .store()?;
        if enrolled != Some(true) {
            return Ok(false);
        }
        replace_codes(&mut tx, user_id, codes_sealed)
            .await
            .store()?;
        tx.commit().await.store()?;
        Ok(true)
    }
}

/// A recovery code counts as a use of the user's oldest TOTP factor (v1's one device, whose
/// `last_used_at` `mfa/status` shows).
async fn touch_totp_device<'c, E>(c: E, user_id: &str, now: i64) -> Result<(), sqlx::Error>
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

async fn insert_token(
    c: &mut sqlx::PgConnection,
    token: &NewRefreshToken,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, amr, auth_time, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token.token_hash)
    .bind(&token.user_id)
    .bind(&token.family_id)
    .bind(&token.amr)
    .bind(token.auth_time)
    .bind(token.created_at)
    .bind(token.expires_at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The statements that claim one unit in a window of `$table` and read when a window ends.
macro_rules! window_statements {
    ($table:literal) => {
        (
            concat!(
                "INSERT INTO ",
                $table,
                " AS w (key, window_start, window_end, count) VALUES ($1, $2, $2 + $3, 1)
                 ON CONFLICT (key) DO UPDATE SET
                   count = CASE WHEN w.window_end <= $2 THEN 1 ELSE w.count + 1 END,
                   window_start = CASE WHEN w.window_end <= $2 THEN $2 ELSE w.window_start END,
                   window_end = CASE WHEN w.window_end <= $2 THEN $2 + $3 ELSE w.window_end END
                 WHERE w.window_end <= $2 OR w.count < $4
                 RETURNING count"
            ),
            concat!("SELECT window_end FROM ", $table, " WHERE key = $1"),
        )
    };
}

/// Where a window is counted: `throttle_windows` for limits on failures (logged: a crash must
/// not hand an attacker fresh attempts), `request_windows` for the per-IP request limit
/// (UNLOGGED: no WAL and no fsync per request; a crash only restarts the windows).
#[derive(Clone, Copy)]
enum WindowTable {
    Throttle,
    Request,
}

impl WindowTable {
    /// (claim, window end)
    fn statements(self) -> (&'static str, &'static str) {
        match self {
            WindowTable::Throttle => window_statements!("throttle_windows"),
            WindowTable::Request => window_statements!("request_windows"),
        }
    }
}

/// Claims one unit in a window (starting it over when it has ended) iff it has room; `None`
/// when it is full. The conflicting row stays locked until the transaction ends.
async fn claim_in_window(
    c: &mut sqlx::PgConnection,
    table: WindowTable,
    window: &WindowLimit,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(table.statements().0)
        .bind(&window.key)
        .bind(now)
        .bind(window.window_seconds)
        .bind(i64::from(window.limit))
        .fetch_optional(&mut *c)
        .await
}

/// Hands back one claimed unit of a window that is still current.
async fn release_in_window(
    c: &mut sqlx::PgConnection,
    key: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE throttle_windows SET count = count - 1
         WHERE key = $1 AND count > 0 AND window_end > $2",
    )
    .bind(key)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Seconds until a full window ends.
async fn window_retry_after(
    c: &mut sqlx::PgConnection,
    table: WindowTable,
    key: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let end: Option<i64> = sqlx::query_scalar(table.statements().1)
        .bind(key)
        .fetch_optional(&mut *c)
        .await?;
    Ok(end.map_or(1, |end| (end - now).max(1)))
}

/// The user's recovery codes become `codes_sealed`, and only those.
async fn replace_codes(
    c: &mut sqlx::PgConnection,
    user_id: &str,
    codes_sealed: &[String],
) -> Result<(), sqlx::Error> {
    // One statement, one round trip for the whole set: the DELETE in the CTE sees only the old
    // codes (both run on one snapshot), the INSERT keeps the codes' order in their ids.
    sqlx::query(
        "WITH gone AS (DELETE FROM recovery_codes WHERE user_id = $1)
         INSERT INTO recovery_codes (user_id, code_sealed)
         SELECT $1, code FROM UNNEST($2::text[]) WITH ORDINALITY AS c (code, n) ORDER BY n",
    )
    .bind(user_id)
    .bind(codes_sealed)
    .execute(&mut *c)
    .await?;
    Ok(())
}

#[async_trait]
impl ChallengeStore for PgStore {
    async fn create_challenge(
        &self,
        challenge: &NewChallenge,
        max_live: u32,
        max_failures: u32,
        now: i64,
    ) -> StoreResult<ChallengeCreated> {
        // Counting live challenges and inserting must not interleave with another instance doing
        // the same for this user: the user's row lock serialises them.
        let mut tx = self.pool.begin().await.store()?;
        sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .bind(&challenge.user_id)
            .execute(&mut *tx)
            .await
            .store()?;
        let inserted = sqlx::query(
            "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
             SELECT $1, $2, $3, $4, $5
             WHERE (SELECT COUNT(*) FROM challenges
                    WHERE user_id = $2 AND expires_at > $4 AND spent_at IS NULL AND failures < $7) < $6",
        )
        .bind(&challenge.id)
        .bind(&challenge.user_id)
        .bind(&challenge.token_hash)
        .bind(now)
        .bind(challenge.expires_at)
        .bind(i64::from(max_live))
        .bind(i64::from(max_failures))
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()?;
        if inserted.rows_affected() == 1 {
            return Ok(ChallengeCreated::Created);
        }
        let earliest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(expires_at) FROM challenges
             WHERE user_id = $1 AND expires_at > $2 AND spent_at IS NULL AND failures < $3",
        )
        .bind(&challenge.user_id)
        .bind(now)
        .bind(i64::from(max_failures))
        .fetch_one(&self.pool)
        .await
        .store()?;
        Ok(ChallengeCreated::TooMany {
            earliest_expiry: earliest.unwrap_or(now + 1),
        })
    }

    async fn challenge_by_token(&self, token_hash: &str) -> StoreResult<Option<Challenge>> {
        let row = sqlx::query("SELECT id, user_id, expires_at, failures, spent_at, email_code_hash FROM challenges WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .store()?;
        row.map(|row| {
            let failures: i64 = row.try_get("failures").store()?;
            let spent_at: Option<i64> = row.try_get("spent_at").store()?;
            Ok(Challenge {
                id: row.try_get("id").store()?,
                user_id: row.try_get("user_id").store()?,
                expires_at: row.try_get("expires_at").store()?,
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                spent: spent_at.is_some(),
                email_code_hash: row.try_get("email_code_hash").store()?,
            })
        })
        .transpose()
    }

    async fn claim_challenge_attempt(
        &self,
        challenge_id: &str,
        max_failures: u32,
        user_window: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<AttemptClaim> {
        let mut tx = self.pool.begin().await.store()?;
        // The challenge's row lock makes concurrent claims wait and re-check the count.
        let failures: Option<i64> = sqlx::query_scalar(
            "UPDATE challenges SET failures = failures + 1
             WHERE id = $1 AND spent_at IS NULL AND expires_at > $3 AND failures < $2
             RETURNING failures",
        )
        .bind(challenge_id)
        .bind(i64::from(max_failures))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .store()?;
        let Some(failures) = failures else {
            let row = sqlx::query("SELECT expires_at, spent_at FROM challenges WHERE id = $1")
                .bind(challenge_id)
                .fetch_optional(&mut *tx)
                .await
                .store()?;
            let Some(row) = row else {
                return Ok(AttemptClaim::ChallengeGone);
            };
            let expires_at: i64 = row.try_get("expires_at").store()?;
            let spent_at: Option<i64> = row.try_get("spent_at").store()?;
            if spent_at.is_some() || expires_at <= now {
                return Ok(AttemptClaim::ChallengeGone);
            }
            return Ok(AttemptClaim::ChallengeDead { expires_at });
        };
        if let Some(window) = user_window {
            if claim_in_window(&mut tx, WindowTable::Throttle, window, now)
                .await
                .store()?
                .is_none()
            {
                let retry_after =
                    window_retry_after(&mut tx, WindowTable::Throttle, &window.key, now)
                        .await
                        .store()?;
                // Rolled back: the challenge's attempt is not counted either.
                return Ok(AttemptClaim::UserThrottled { retry_after });
            }
        }
        tx.commit().await.store()?;
        Ok(AttemptClaim::Claimed {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
        })
    }

    async fn complete_challenge(
        &self,
        challenge_id: &str,
        claim: FactorClaim,
        refresh: &NewRefreshToken,
        release: Option<&WindowLimit>,
        now: i64,
    ) -> StoreResult<Completion> {
        // Dropping the transaction before commit rolls every step back. The attempt was claimed
        // before the code was checked, so the attempt count is not looked at here.
        let mut tx = self.pool.begin().await.store()?;
        let spent: Option<String> = sqlx::query_scalar(
            "UPDATE challenges SET spent_at = $2
             WHERE id = $1 AND spent_at IS NULL AND expires_at > $2
               AND EXISTS (SELECT 1 FROM users u WHERE u.id = challenges.user_id AND NOT u.disabled)
             RETURNING user_id",
        )
        .bind(challenge_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .store()?;
        let Some(user_id) = spent else {
            return Ok(Completion::ChallengeGone);
        };
        let claimed = match claim {
            FactorClaim::TotpStep { factor_id, step } => {
                factors::accept_step(&mut tx, &user_id, &factor_id, step, now)
                    .await
                    .store()?
            }
            FactorClaim::RecoveryCode(code_id) => {
                let used = sqlx::query(
                    "UPDATE recovery_codes SET used_at = $3
                     WHERE id = $2 AND user_id = $1 AND used_at IS NULL",
                )
                .bind(&user_id)
                .bind(code_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .store()?
                .rows_affected()
                    == 1;
                if used {
                    touch_totp_device(&mut *tx, &user_id, now).await.store()?;
                }
                used
            }
            FactorClaim::EmailCode => true,
        };
        if !claimed {
            return Ok(Completion::FactorRefused);
        }
        insert_token(&mut tx, refresh).await.store()?;
        if let Some(window) = release {
            release_in_window(&mut tx, &window.key, now).await.store()?;
        }
        tx.commit().await.store()?;
        Ok(Completion::Completed)
    }

    async fn create_setup_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO setup_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(())
    }

    async fn setup_token_user(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT user_id FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .store()
    }
}

#[async_trait]
impl EmailStore for PgStore {
    async fn set_email_verified(&self, user_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET email_verified = TRUE WHERE id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(())
    }

    async fn set_email_otp(&self, user_id: &str, enabled: bool) -> StoreResult<()> {
        // Switching e-mail codes off also drops them as the preferred method.
        sqlx::query(
            "UPDATE users SET email_otp = $2,
               preferred_method = CASE WHEN $2 THEN 'email'
                                       WHEN preferred_method = 'email' THEN 'none'
                                       ELSE preferred_method END
             WHERE id = $1",
        )
        .bind(user_id)
        .bind(enabled)
        .execute(&self.pool)
        .await
        .store()?;
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
        // Every SET expression reads the old row, so the previous code is what gets kept aside.
        let reserved = sqlx::query(
            "UPDATE challenges SET
               email_prev_hash = email_code_hash, email_prev_sent_at = email_sent_at,
               email_code_hash = $2, email_sent_at = $3, email_sends = email_sends + 1
             WHERE id = $1 AND spent_at IS NULL AND expires_at > $3 AND failures < $6
               AND email_sends < $5 AND (email_sent_at IS NULL OR email_sent_at + $4 <= $3)",
        )
        .bind(challenge_id)
        .bind(code_hash)
        .bind(now)
        .bind(min_interval)
        .bind(i64::from(max_sends))
        .bind(i64::from(max_failures))
        .execute(&self.pool)
        .await
        .store()?;
        if reserved.rows_affected() == 1 {
            return Ok(EmailReservation::Reserved);
        }
        let row = sqlx::query(
            "SELECT expires_at, failures, spent_at, email_sent_at, email_sends FROM challenges WHERE id = $1",
        )
        .bind(challenge_id)
        .fetch_optional(&self.pool)
        .await
        .store()?;
        let Some(row) = row else {
            return Ok(EmailReservation::NotLive);
        };
        let expires_at: i64 = row.try_get("expires_at").store()?;
        let failures: i64 = row.try_get("failures").store()?;
        let spent_at: Option<i64> = row.try_get("spent_at").store()?;
        let sent_at: Option<i64> = row.try_get("email_sent_at").store()?;
        let sends: i64 = row.try_get("email_sends").store()?;
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
        sqlx::query(
            "UPDATE challenges SET
               email_code_hash = email_prev_hash, email_sent_at = email_prev_sent_at,
               email_sends = email_sends - 1, email_prev_hash = NULL, email_prev_sent_at = NULL
             WHERE id = $1 AND email_code_hash = $2",
        )
        .bind(challenge_id)
        .bind(code_hash)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(())
    }

    async fn create_email_key(
        &self,
        key_hash: &str,
        user_id: &str,
        purpose: KeyPurpose,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO email_keys (key_hash, user_id, purpose, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(key_hash)
            .bind(user_id)
            .bind(purpose.as_str())
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(())
    }

    async fn email_key_user(
        &self,
        key_hash: &str,
        purpose: KeyPurpose,
        now: i64,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT user_id FROM email_keys
             WHERE key_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(key_hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .store()
    }

    async fn consume_email_key(
        &self,
        key_hash: &str,
        purpose: KeyPurpose,
        now: i64,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "UPDATE email_keys SET used_at = $3
             WHERE key_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
             RETURNING user_id",
        )
        .bind(key_hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .store()
    }
}

#[async_trait]
impl AdminStore for PgStore {
    async fn list_users(&self, limit: u32, start: &UserPageStart) -> StoreResult<Vec<User>> {
        let sql = match start {
            UserPageStart::After { .. } => format!(
                "SELECT {USER_COLUMNS} FROM users WHERE (created_at, id) > ($2, $3)
                 ORDER BY created_at, id LIMIT $1"
            ),
            UserPageStart::Offset(_) => format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
            ),
        };
        let query = sqlx::query(&sql).bind(i64::from(limit));
        let query = match start {
            UserPageStart::After { created_at, id } => query.bind(*created_at).bind(id.clone()),
            UserPageStart::Offset(offset) => query.bind(i64::from(*offset)),
        };
        let rows = query.fetch_all(&self.pool).await.store()?;
        rows.iter().map(user_from_row).collect()
    }

    async fn enable_user(&self, user_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET disabled = FALSE WHERE id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .store()?;
        Ok(())
    }
}

fn signing_key_from_row(row: &PgRow) -> Result<StoredSigningKey, StoreError> {
    Ok(StoredSigningKey {
        kid: row.try_get("kid").store()?,
        private_sealed: row.try_get("private_sealed").store()?,
        public_key: row.try_get("public_key").store()?,
        created_at: row.try_get("created_at").store()?,
        retired_at: row.try_get("retired_at").store()?,
    })
}

#[async_trait]
impl ImportStore for PgStore {
    async fn import_accounts(&self, accounts: &[ImportedAccount]) -> StoreResult<()> {
        // One statement per table with the rows as arrays (UNNEST): a few round trips per
        // batch rather than one per row.
        let users = accounts.iter().map(|a| &a.user);
        let ids: Vec<&str> = users.clone().map(|u| u.id.as_str()).collect();
        let names: Vec<&str> = users.clone().map(|u| u.username.as_str()).collect();
        let names_lower: Vec<String> = users.clone().map(|u| u.username.to_lowercase()).collect();
        let emails: Vec<&str> = users.clone().map(|u| u.email.as_str()).collect();
        let emails_lower: Vec<String> = users.clone().map(|u| u.email.to_lowercase()).collect();
        let hashes: Vec<&str> = users.clone().map(|u| u.password_hash.as_str()).collect();
        let verified: Vec<bool> = accounts.iter().map(|a| a.email_verified).collect();
        let admins: Vec<bool> = users.clone().map(|u| u.is_admin).collect();
        let methods: Vec<&str> = accounts
            .iter()
            .map(|a| a.preferred_method.as_str())
            .collect();
        let email_otp: Vec<bool> = accounts.iter().map(|a| a.email_otp).collect();
        let created: Vec<i64> = users.map(|u| u.created_at).collect();

        let mut tx = self.pool.begin().await.store()?;
        sqlx::query(
            "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash,
                                email_verified, is_admin, preferred_method, email_otp, created_at)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                                  $6::TEXT[], $7::BOOLEAN[], $8::BOOLEAN[], $9::TEXT[],
                                  $10::BOOLEAN[], $11::BIGINT[])",
        )
        .bind(&ids)
        .bind(&names)
        .bind(&names_lower)
        .bind(&emails)
        .bind(&emails_lower)
        .bind(&hashes)
        .bind(&verified)
        .bind(&admins)
        .bind(&methods)
        .bind(&email_otp)
        .bind(&created)
        .execute(&mut *tx)
        .await
        .store()?;

        let devices: Vec<(&str, &TotpDevice)> = accounts
            .iter()
            .filter_map(|a| a.totp.as_ref().map(|t| (a.user.id.as_str(), t)))
            .collect();
        sqlx::query(
            "INSERT INTO factors (id, user_id, kind, name, name_lower, secret_sealed, created_at,
                                  last_used_at, last_step, verified_at)
             SELECT replace(gen_random_uuid()::text, '-', ''), u, 'totp', 'Authenticator',
                    'authenticator', s, c, l, st, c
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[])
                  AS d (u, s, c, l, st)",
        )
        .bind(devices.iter().map(|d| d.0).collect::<Vec<_>>())
        .bind(
            devices
                .iter()
                .map(|d| d.1.secret_sealed.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(devices.iter().map(|d| d.1.created_at).collect::<Vec<_>>())
        .bind(devices.iter().map(|d| d.1.last_used_at).collect::<Vec<_>>())
        .bind(devices.iter().map(|d| d.1.last_step).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let codes: Vec<(&str, &str, Option<i64>)> = accounts
            .iter()
            .flat_map(|a| {
                a.recovery_codes
                    .iter()
                    .map(move |(code, used)| (a.user.id.as_str(), code.as_str(), *used))
            })
            .collect();
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_sealed, used_at)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[])",
        )
        .bind(codes.iter().map(|c| c.0).collect::<Vec<_>>())
        .bind(codes.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(codes.iter().map(|c| c.2).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let tokens: Vec<&NewRefreshToken> = accounts.iter().flat_map(|a| &a.sessions).collect();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family_id, amr, auth_time, created_at, expires_at)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[],
                                  $6::BIGINT[], $7::BIGINT[])",
        )
        .bind(tokens.iter().map(|t| t.token_hash.as_str()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.user_id.as_str()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.family_id.as_str()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.amr.as_str()).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.auth_time).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.created_at).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.expires_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let keys: Vec<(&str, &str, &'static str, i64)> = accounts
            .iter()
            .flat_map(|a| {
                a.email_keys.iter().map(move |(hash, purpose, expires)| {
                    (
                        hash.as_str(),
                        a.user.id.as_str(),
                        purpose.as_str(),
                        *expires,
                    )
                })
            })
            .collect();
        sqlx::query(
            "INSERT INTO email_keys (key_hash, user_id, purpose, expires_at)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[])",
        )
        .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.3).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let challenges: Vec<&NewChallenge> = accounts.iter().flat_map(|a| &a.challenges).collect();
        sqlx::query(
            "INSERT INTO challenges (id, user_id, token_hash, created_at, expires_at)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[])",
        )
        .bind(challenges.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())
        .bind(
            challenges
                .iter()
                .map(|c| c.user_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            challenges
                .iter()
                .map(|c| c.token_hash.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(challenges.iter().map(|c| c.created_at).collect::<Vec<_>>())
        .bind(challenges.iter().map(|c| c.expires_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .store()?;

        let events: Vec<&AuditRecord> = accounts.iter().flat_map(|a| &a.audit).collect();
        sqlx::query(
            "INSERT INTO audit_events (at, user_id, event, ip, detail)
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[])",
        )
        .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.user_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.event).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.ip.as_deref()).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.detail.as_deref())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let rows = sqlx::query(
            "SELECT kid, private_sealed, public_key, created_at, retired_at FROM signing_keys
             ORDER BY created_at DESC, kid",
        )
        .fetch_all(&self.pool)
        .await
        .store()?;
        rows.iter().map(signing_key_from_row).collect()
    }

    async fn add_signing_key(&self, key: &StoredSigningKey, now: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.store()?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SIGNING_KEYS_LOCK)
            .execute(&mut *tx)
            .await
            .store()?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await
            .store()?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_sealed, public_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.kid)
        .bind(&key.private_sealed)
        .bind(&key.public_key)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()
    }

    async fn sealing_key_ids(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT key_id FROM sealing_keys ORDER BY recorded_at, key_id")
            .fetch_all(&self.pool)
            .await
            .store()?;
        rows.iter()
            .map(|row| row.try_get("key_id").store())
            .collect()
    }

    async fn record_sealing_key(&self, key_id: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sealing_keys (key_id, recorded_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(key_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(())
    }

    async fn add_first_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.store()?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SIGNING_KEYS_LOCK)
            .execute(&mut *tx)
            .await
            .store()?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_sealed, public_key, created_at)
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
        )
        .bind(&key.kid)
        .bind(&key.private_sealed)
        .bind(&key.public_key)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .store()?;
        tx.commit().await.store()
    }
}

#[async_trait]
impl TokenStore for PgStore {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        let mut c = self.pool.acquire().await.store()?;
        insert_token(&mut c, token).await.store()
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        successor: &RefreshSuccessor,
        now: i64,
    ) -> StoreResult<RefreshOutcome> {
        let mut tx = self.pool.begin().await.store()?;
        let rotated = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2
             WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
               AND EXISTS (SELECT 1 FROM users u WHERE u.id = refresh_tokens.user_id AND NOT u.disabled)
             RETURNING user_id, family_id, amr, COALESCE(auth_time, created_at) AS auth_time",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .store()?;
        if let Some(row) = rotated {
            let child = NewRefreshToken {
                token_hash: successor.token_hash.clone(),
                user_id: row.try_get("user_id").store()?,
                family_id: row.try_get("family_id").store()?,
                amr: row.try_get("amr").store()?,
                auth_time: row.try_get("auth_time").store()?,
                created_at: successor.created_at,
                expires_at: successor.expires_at,
            };
            // In the same transaction: a reuse that revokes the family waits on the parent's
            // row lock, and its revocation then sees the successor too.
            insert_token(&mut tx, &child).await.store()?;
            tx.commit().await.store()?;
            return Ok(RefreshOutcome::Rotated {
                user_id: child.user_id,
                family_id: child.family_id,
                amr: child.amr,
                auth_time: child.auth_time,
            });
        }
        drop(tx);
        let known = sqlx::query(
            "SELECT user_id, family_id, used_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .store()?;
        let Some(row) = known else {
            return Ok(RefreshOutcome::Invalid);
        };
        let used_at: Option<i64> = row.try_get("used_at").store()?;
        if used_at.is_none() {
            return Ok(RefreshOutcome::Invalid);
        }
        let user_id: String = row.try_get("user_id").store()?;
        let family_id: String = row.try_get("family_id").store()?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(&family_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(RefreshOutcome::Reused { user_id, family_id })
    }

    async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let row =
            sqlx::query("SELECT user_id, family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .store()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let family_id: String = row.try_get("family_id").store()?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(&family_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(Some(row.try_get("user_id").store()?))
    }
}

#[async_trait]
impl ThrottleStore for PgStore {
    async fn claim_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<Claim> {
        // Rows are locked in key order, so two claims on the same windows cannot deadlock.
        if let [window] = windows {
            // One window: the statement's own row lock makes it atomic, no transaction needed
            // (two round trips and a commit saved on every password attempt).
            return self.claim_one(WindowTable::Throttle, window, now).await;
        }
        let mut ordered: Vec<&WindowLimit> = windows.iter().collect();
        ordered.sort_by(|a, b| a.key.cmp(&b.key));
        let mut tx = self.pool.begin().await.store()?;
        for window in ordered {
            if claim_in_window(&mut tx, WindowTable::Throttle, window, now)
                .await
                .store()?
                .is_none()
            {
                let retry_after =
                    window_retry_after(&mut tx, WindowTable::Throttle, &window.key, now)
                        .await
                        .store()?;
                // Rolled back: none of the windows is counted.
                return Ok(Claim::Refused { retry_after });
            }
        }
        tx.commit().await.store()?;
        Ok(Claim::Granted)
    }

    async fn claim_request_window(&self, window: &WindowLimit, now: i64) -> StoreResult<Claim> {
        // Shared by every instance on the database; see `WindowTable::Request`.
        self.claim_one(WindowTable::Request, window, now).await
    }

    async fn release_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<()> {
        let keys: Vec<&str> = windows.iter().map(|w| w.key.as_str()).collect();
        sqlx::query(
            "UPDATE throttle_windows SET count = count - 1
             WHERE key = ANY($1) AND count > 0 AND window_end > $2",
        )
        .bind(&keys)
        .bind(now)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(())
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn record_audit_batch(&self, records: &[AuditRecord]) -> StoreResult<()> {
        // One statement over arrays: one round trip and one commit however many events.
        let at: Vec<i64> = records.iter().map(|r| r.at).collect();
        let user_id: Vec<Option<&str>> = records.iter().map(|r| r.user_id.as_deref()).collect();
        let event: Vec<&str> = records.iter().map(|r| r.event).collect();
        let ip: Vec<Option<&str>> = records.iter().map(|r| r.ip.as_deref()).collect();
        let detail: Vec<Option<&str>> = records.iter().map(|r| r.detail.as_deref()).collect();
        sqlx::query(
            "INSERT INTO audit_events (at, user_id, event, ip, detail)
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])",
        )
        .bind(&at)
        .bind(&user_id)
        .bind(&event)
        .bind(&ip)
        .bind(&detail)
        .execute(&self.pool)
        .await
        .store()?;
        Ok(())
    }

    async fn recent_audit_events(
        &self,
        user_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<StoredAuditEvent>> {
        // Two statements, not `$1 IS NULL OR user_id = $1`: that form cannot use the index.
        let query = match user_id {
            Some(user_id) => sqlx::query(
                "SELECT at, user_id, event, ip, detail FROM audit_events
                 WHERE user_id = $2 ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit))
            .bind(user_id.to_string()),
            None => sqlx::query(
                "SELECT at, user_id, event, ip, detail FROM audit_events ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit)),
        };
        let rows = query.fetch_all(&self.pool).await.store()?;
        rows.iter()
            .map(|row| {
                Ok(StoredAuditEvent {
                    at: row.try_get("at").store()?,
                    user_id: row.try_get("user_id").store()?,
                    event: row.try_get("event").store()?,
                    ip: row.try_get("ip").store()?,
                    detail: row.try_get("detail").store()?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl MaintenanceStore for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.store()?;
        Ok(())
    }

    async fn delete_expired(
        &self,
        now: i64,
        audit_before: Option<i64>,
        batch: u32,
    ) -> StoreResult<u64> {
        let batch = i64::from(batch.max(1));
        let mut statements: Vec<(&'static str, i64)> =
            CLEANUP.iter().map(|statement| (*statement, now)).collect();
        if let Some(before) = audit_before {
            statements.push((CLEANUP_AUDIT, before));
        }
        let mut deleted = 0;
        for (statement, bound) in statements {
            // A short transaction per batch; one instance at a time: another that holds the
            // lock is doing this pass, so this one stops.
            let mut tx = self.pool.begin().await.store()?;
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(CLEANUP_LOCK)
                .fetch_one(&mut *tx)
                .await
                .store()?;
            if !locked {
                return Ok(deleted);
            }
            deleted += sqlx::query(statement)
                .bind(bound)
                .bind(batch)
                .execute(&mut *tx)
                .await
                .store()?
                .rows_affected();
            tx.commit().await.store()?;
        }
        Ok(deleted)
    }
}
