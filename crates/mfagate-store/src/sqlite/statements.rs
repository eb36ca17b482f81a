//! What every SQLite connection of the store shares: opening the file, running a statement
//! (prepared once, timed, reported), and what a SQLite error means to the store's callers.
//!
//! The store talks to SQLite through rusqlite on the calling thread: the writer on its own
//! thread (`sqlite_writer`), reads on the request's (`sqlite_readers`), migrations at start
//! (`migrate`). sqlx serves PostgreSQL only.

use std::path::Path;
use std::time::{Duration, Instant};

use mfagate_core::StoreError;
use rusqlite::{CachedStatement, Connection, OpenFlags, OptionalExtension, Params, Row};

/// A connection to the existing file, waiting out another process's lock (the CLI) for up to
/// 10 s. `read_only` for the readers: a bug in a read path cannot write.
pub(crate) fn open(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let access = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let connection = Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    Ok(connection)
}

/// A SQLite error as the store reports it: a unique key taken is a conflict; a database that is
/// busy, full or unreadable is unavailable (the caller may try again later); anything else is a
/// fault. SQLite's messages name tables and columns, never values.
pub(crate) fn map_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    use rusqlite::ErrorCode;
    match &error {
        // "UNIQUE constraint failed: users.username_lower"
        rusqlite::Error::SqliteFailure(failure, message)
            if matches!(
                failure.extended_code,
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            crate::conflict(message.as_deref().unwrap_or_default())
        }
        // Said so that an operator knows what to do; writes resume by themselves once there
        // is room again (the soak's full-disk faults check it).
        rusqlite::Error::SqliteFailure(failure, _) if failure.code == ErrorCode::DiskFull => {
            StoreError::Unavailable(
                "SQLite: the disk holding the database is full; free space there and writes \
                 resume by themselves (reads go on meanwhile)"
                    .into(),
            )
        }
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::CannotOpen
                    | ErrorCode::ReadOnly
            ) =>
        {
            StoreError::Unavailable(format!("SQLite: {error}"))
        }
        _ => StoreError::Other(format!("SQLite: {error}")),
    }
}

/// Statements are prepared once per connection and kept (SQLite re-prepares one by itself after
/// a schema change). Each run is reported at debug level to target `mfagate_store::sql` with its
/// time (`RUST_LOG=mfagate_store::sql=debug`); the query-plan test reads them from there.
fn prepare<'c>(c: &'c Connection, sql: &str) -> rusqlite::Result<CachedStatement<'c>> {
    c.prepare_cached(sql)
}

fn report(sql: &str, started: Instant) {
    tracing::debug!(
        target: "mfagate_store::sql",
        statement = sql,
        elapsed_us = started.elapsed().as_micros() as u64,
    );
}

/// Runs one statement; answers how many rows it changed.
pub(crate) fn execute(c: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
    let started = Instant::now();
    let changed = prepare(c, sql)?.execute(params);
    report(sql, started);
    changed
}

/// Whether a `SELECT 1 ...` finds a row.
pub(crate) fn exists(c: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<bool> {
    Ok(query_opt(c, sql, params, |_| Ok(()))?.is_some())
}

/// Runs one statement that answers at most one row (a `SELECT`, or a write with `RETURNING`).
pub(crate) fn query_opt<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let started = Instant::now();
    let row = prepare(c, sql)?.query_row(params, map).optional();
    report(sql, started);
    row
}

/// Runs one statement and maps every row it answers.
pub(crate) fn query_all<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let started = Instant::now();
    let mut statement = prepare(c, sql)?;
    let rows = statement
        .query_map(params, |row| map(row))?
        .collect::<rusqlite::Result<Vec<T>>>();
    report(sql, started);
    rows
}

#[cfg(test)]
mod tests {
    /// The build's SQLite gives each connection a page cache of its own, without a global lock,
    /// and keeps no memory statistics (`.cargo/config.toml` says why). A build without those
    /// flags (a `LIBSQLITE3_FLAGS` set elsewhere, a changed config) is slower, not wrong: this
    /// test is what notices.
    #[test]
    fn compiled_without_the_shared_page_cache() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let mut statement = connection.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "SQLite was built with ENABLE_MEMORY_MANAGEMENT: {options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "SQLite was built with memory statistics: {options:?}"
        );
    }
}
