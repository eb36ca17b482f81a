//! Implementations of `mfagate_core::Store`. One per database, each with its own migrations; no
//! `if sqlite` inside a query.

pub mod postgres;
pub mod sqlite;
mod sqlite_readers;
mod sqlite_statements;
mod sqlite_writer;

pub use postgres::{PgPoolSettings, PgStore};
pub use sqlite::SqliteStore;

use std::sync::Arc;

use mfagate_core::{Store, StoreError};

/// Opens the store named by a database URL (`sqlite://PATH` or `postgres://...`) and applies
/// pending migrations.
pub async fn open(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(database_url, PgPoolSettings::default()).await
}

/// `open`, with PostgreSQL pool settings.
pub async fn open_with(
    database_url: &str,
    pool: PgPoolSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    if database_url.starts_with("sqlite:") {
        let store = SqliteStore::connect_with(database_url, pool.sqlite_full_sync).await?;
        store.migrate().await?;
        return Ok(Arc::new(store));
    }
    if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        let store = PgStore::connect(database_url, pool).await?;
        store.migrate().await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::Other(format!(
        "the database URL '{}' names no database mfagate knows: use sqlite://PATH (relative), \
         sqlite:///PATH (absolute) or postgres://USER:PASSWORD@HOST:PORT/DB",
        redact_url(database_url)
    )))
}

/// The URL without credentials, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_string(),
    }
}
