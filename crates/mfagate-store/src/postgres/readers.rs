//! Connections of the store's own for the reads on every request's path, handed back without
//! a round trip.
//!
//! sqlx's pool pings every connection as it comes back (a `Sync` message and its answer, one
//! round trip), and there is no setting to turn that off. For a protected call, whose only
//! statement is the read of its user, that doubled the round trips to PostgreSQL (`strace`
//! of the server during the benchmark's protected calls: one bare `Sync` after every query).
//! These connections are taken out of the pool once (so they do not count against its size)
//! and put back after each read with nothing sent.
//!
//! Only single statements outside a transaction run here, so a connection never comes back
//! holding a lock. A read that fails, or whose future is dropped half-way, drops its
//! connection instead of putting it back (it may hold an unread answer); a later read takes a
//! fresh one from the pool, with the pool's timeout and reconnection.

use std::sync::{Mutex, PoisonError};

use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{SqlResult, StoreError};

/// How many at most: more reads at once than PostgreSQL has cores to run them gain nothing.
const READERS: usize = 8;

#[derive(Debug)]
pub(super) struct Readers {
    idle: Mutex<Vec<PgConnection>>,
    free: Semaphore,
}

impl Default for Readers {
    fn default() -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(READERS)),
            free: Semaphore::new(READERS),
        }
    }
}

impl Readers {
    /// Runs `query` (one statement) on a connection of its own.
    pub(super) async fn fetch_optional(
        &self,
        pool: &PgPool,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<Option<PgRow>, StoreError> {
        let (permit, mut connection) = self.lease(pool).await?;
        let row = query.fetch_optional(&mut connection).await.store()?;
        self.hand_back(permit, connection);
        Ok(row)
    }

    /// As `fetch_optional`, every row.
    pub(super) async fn fetch_all(
        &self,
        pool: &PgPool,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<Vec<PgRow>, StoreError> {
        let (permit, mut connection) = self.lease(pool).await?;
        let rows = query.fetch_all(&mut connection).await.store()?;
        self.hand_back(permit, connection);
        Ok(rows)
    }

    /// A free connection, waiting for one as long as the pool would; an idle one, or a fresh
    /// one taken out of the pool.
    async fn lease(
        &self,
        pool: &PgPool,
    ) -> Result<(SemaphorePermit<'_>, PgConnection), StoreError> {
        let waited =
            tokio::time::timeout(pool.options().get_acquire_timeout(), self.free.acquire());
        let Ok(Ok(permit)) = waited.await else {
            return Err(StoreError::Unavailable(
                "every read connection stayed busy for the pool's acquire timeout".to_string(),
            ));
        };
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let connection = match idle {
            Some(connection) => connection,
            None => pool.acquire().await.store()?.detach(),
        };
        Ok((permit, connection))
    }

    fn hand_back(&self, permit: SemaphorePermit<'_>, connection: PgConnection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connection);
        drop(permit);
    }
}
