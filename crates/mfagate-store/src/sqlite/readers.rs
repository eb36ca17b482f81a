//! A fixed set of read-only SQLite connections, lent out one per read.
//!
//! A read runs on the calling task's own thread: it is an index lookup of a few pages, mostly
//! in SQLite's or the OS's cache, that takes microseconds, less than the two thread wake-ups a
//! hand-over to another thread costs (what sqlx's SQLite connections do: its thread and the
//! wake-ups were a tenth of the machine's CPU during logins). Every read statement of the store
//! uses an index (the query-plan test says so), so none scans a table while a worker waits.
//!
//! WAL lets readers run beside the writer and each other; each sees the last commit made
//! before its statement began.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mfagate_core::StoreError;
use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::sqlite::statements::{map_error, open};

#[derive(Clone)]
pub struct Readers {
    /// One permit per idle connection in `idle`.
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the SQLite store is closed; restart mfagate".into())
}

impl Readers {
    /// Opens `count` read-only connections to the file the writer has opened (and switched to
    /// WAL) already.
    pub fn open(path: &Path, count: usize) -> Result<Self, StoreError> {
        let mut idle = Vec::with_capacity(count);
        for _ in 0..count {
            let connection = open(path, true).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot open the SQLite database {} for reading: {e}",
                    path.display()
                ))
            })?;
            // A reader waits for a lock only in the rare moments SQLite rebuilds the WAL index;
            // it does so on a request's thread, so briefly.
            connection
                .busy_timeout(Duration::from_secs(1))
                .map_err(map_error)?;
            // 8 MiB of page cache each (SQLite's default is 2 MiB), for the upper levels of the
            // indexes of a large database. (Read transactions do not pay for a large cache as
            // the writer's commits do.)
            connection
                .execute_batch("PRAGMA cache_size = -8192")
                .map_err(map_error)?;
            connection.set_prepared_statement_cache_capacity(64);
            idle.push(connection);
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(count)),
            idle: Arc::new(Mutex::new(idle)),
        })
    }

    /// Runs `read` on a free connection, waiting while all are lent out.
    pub async fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.map_err(|_| closed())?;
        // A permit guarantees an idle connection; the lock is held only to take and return it.
        let lent = Lent {
            connection: self.idle.lock().map_err(|_| closed())?.pop(),
            idle: &self.idle,
        };
        let connection = lent.connection.as_ref().ok_or_else(closed)?;
        read(connection).map_err(map_error)
        // `lent` goes back first, then the permit: the connection is back before anyone may
        // take it, also when `read` panics.
    }
}

/// A connection on loan; it goes back when dropped.
struct Lent<'r> {
    connection: Option<Connection>,
    idle: &'r Mutex<Vec<Connection>>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let (Some(connection), Ok(mut idle)) = (self.connection.take(), self.idle.lock()) {
            idle.push(connection);
        }
    }
}

impl Readers {
    /// Refuses further reads (callers then hear the database is unavailable) and closes the
    /// idle connections.
    pub fn close(&self) {
        self.permits.close();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}
