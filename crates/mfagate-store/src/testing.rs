//! For tests of code built on the stores (this crate's contract suite, the server's HTTP
//! suite): a PostgreSQL database created for one test and dropped, with its connections, when
//! the value is dropped; a database migrated only as far as an earlier release left it; plain
//! SQL on either database, for what no intent does (a test's own rows, deleting a user).

// Database names are made here (a fixed prefix and hex), never taken from input; the SQL the
// helpers below run is a test's own.
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, Row};

use crate::migrations::{EmbeddedMigrations, Steps};
use crate::sqlite::SqliteStore;

/// The steps before the one named `name`.
fn steps_before(steps: Steps, name: &str) -> Result<Steps, String> {
    let at = steps
        .iter()
        .position(|(_, step, _)| *step == name)
        .ok_or_else(|| format!("no migration named {name:?}"))?;
    Ok(steps.get(..at).unwrap_or_default())
}

fn sqlite_path(url: &str) -> Option<&std::path::Path> {
    SqliteStore::database_path(url)
}

/// A connection of a test's own to the store's SQLite file, opened as the store opens its own
/// (waiting for the store's writer rather than failing while it holds the write lock).
fn sqlite_connection(path: &std::path::Path) -> Result<rusqlite::Connection, String> {
    crate::sqlite::statements::open(path, false).map_err(|e| e.to_string())
}

/// Applies the migrations before the one named `name` to the database of `url`, as the release
/// before that migration left it; `open` applies the rest (an upgrade test's starting point).
pub async fn migrate_before(url: &str, name: &str) -> Result<(), String> {
    if let Some(path) = sqlite_path(url) {
        let steps = steps_before(crate::sqlite::MIGRATIONS, name)?;
        let path = path.to_path_buf();
        return tokio::task::spawn_blocking(move || {
            // Makes the file, as the store's writer does before it migrates.
            drop(rusqlite::Connection::open(&path).map_err(|e| e.to_string())?);
            crate::sqlite::migrate::migrate(&path, steps).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    let steps = steps_before(crate::postgres::MIGRATIONS, name)?;
    let pool = sqlx::PgPool::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let migrator = sqlx::migrate::Migrator::new(EmbeddedMigrations(steps))
        .await
        .map_err(|e| e.to_string())?;
    let applied = migrator.run(&pool).await.map_err(|e| e.to_string());
    pool.close().await;
    applied
}

/// Runs `sql` (statements separated by `;`) on the database of `url`, with foreign keys
/// enforced as the stores enforce them.
pub async fn execute(url: &str, sql: &str) -> Result<(), String> {
    if let Some(path) = sqlite_path(url) {
        let connection = sqlite_connection(path)?;
        return connection
            .execute_batch(&format!("PRAGMA foreign_keys = ON; {sql}"))
            .map_err(|e| e.to_string());
    }
    let mut connection = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut connection)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The one integer `sql` selects on the database of `url` (a count).
pub async fn select_integer(url: &str, sql: &str) -> Result<i64, String> {
    if let Some(path) = sqlite_path(url) {
        let connection = sqlite_connection(path)?;
        return connection
            .query_row(sql, [], |row| row.get(0))
            .map_err(|e| e.to_string());
    }
    let mut connection = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let row = sqlx::query(AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut connection)
        .await
        .map_err(|e| e.to_string())?;
    row.try_get::<i64, _>(0).map_err(|e| e.to_string())
}

#[derive(Debug)]
pub struct TempPgDatabase {
    /// The new database's URL.
    pub url: String,
    admin_url: String,
    name: String,
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let base = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    format!("{base}/{name}{query}")
}

impl TempPgDatabase {
    /// Creates a database with a fresh name on the server of `admin_url`.
    pub async fn create(admin_url: &str) -> Result<Self, sqlx::Error> {
        let name = format!("mfagate_test_{}", mfagate_core::secret::new_id());
        let mut conn = PgConnection::connect(admin_url).await?;
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        Ok(Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_string(),
            name,
        })
    }
}

impl Drop for TempPgDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async: a short-lived runtime on its own thread does the clean-up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                conn.execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await
                .ok()
            })
        })
        .join();
    }
}
