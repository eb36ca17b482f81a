//! A fixed set of read-only SQLite connections, lent out one per query.
//!
//! Why not `sqlx::SqlitePool`: a pooled connection is pinged (a round trip to its SQLite
//! thread) every time it goes back to the pool, from a task spawned for that, so each query
//! cost two round trips and a task. A local file connection does not go stale, so here it is
//! simply handed back.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct Readers {
    /// One permit per idle connection in `idle`.
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<SqliteConnection>>>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

/// A connection on loan; it goes back when dropped.
pub struct Reader {
    connection: Option<SqliteConnection>,
    idle: Arc<Mutex<Vec<SqliteConnection>>>,
    _permit: OwnedSemaphorePermit,
}

impl Readers {
    pub async fn open(options: &SqliteConnectOptions, count: usize) -> Result<Self, sqlx::Error> {
        // Read-only: a bug in a read path cannot write. The writer created the file already.
        // 8 MiB of page cache each (SQLite's default is 2 MiB), for the upper levels of the
        // indexes of a large database.
        let options = options
            .clone()
            .read_only(true)
            .create_if_missing(false)
            .pragma("cache_size", "-8192");
        let mut idle = Vec::with_capacity(count);
        for _ in 0..count {
            idle.push(options.connect().await?);
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(count)),
            idle: Arc::new(Mutex::new(idle)),
        })
    }

    /// Waits for a free connection. `None` once the readers are closed.
    pub async fn get(&self) -> Option<Reader> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        // A permit guarantees an idle connection; the lock is held only to pop it.
        let connection = self.idle.lock().ok()?.pop()?;
        Some(Reader {
            connection: Some(connection),
            idle: self.idle.clone(),
            _permit: permit,
        })
    }

    /// Refuses further loans (callers then hear the database is unavailable) and closes the
    /// idle connections; one still on loan closes when the last handle is dropped.
    pub async fn close(&self) {
        self.permits.close();
        let connections: Vec<SqliteConnection> = match self.idle.lock() {
            Ok(mut idle) => idle.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for connection in connections {
            let _ = connection.close().await;
        }
    }
}

impl Deref for Reader {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.connection.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.connection.as_mut().expect("present until dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let (Some(connection), Ok(mut idle)) = (self.connection.take(), self.idle.lock()) {
            idle.push(connection);
        }
        // The permit is released after this, so the connection is back before anyone may
        // take it.
    }
}
