//! The store's connections to PostgreSQL, handed back without a round trip. Every statement of
//! the store runs on one of these (`on_connection!`); the pool of sqlx only opens them, runs the
//! migrations and the benchmark's import.
//!
//! sqlx's pool pings every connection as it comes back (a `Sync` message and its answer, one
//! round trip), and there is no setting to turn that off. For a protected call, whose only
//! statement is the read of its user, that doubled the round trips to PostgreSQL (`strace`
//! of the server during the benchmark's protected calls: one bare `Sync` after every query),
//! and a login flow, which checks a connection out five times, paid five.
//!
//! These connections are taken out of the pool (so they do not count against its size) when
//! first needed, and put back after each use with nothing sent, unless a transaction was
//! dropped without its commit: its `ROLLBACK` is sent then (sqlx queues it), so that a
//! connection never waits idle holding a lock. A use that fails for any reason but a refusal
//! of the database's own (a unique key), or whose future is dropped half-way, drops its
//! connection instead (it may be broken, or hold an unread answer); a later use takes a fresh
//! one from the pool, with the pool's timeout and reconnection. Like the pool's own, a
//! connection older than the pool's maximum lifetime (sqlx's default: 30 minutes) is closed
//! as it comes back instead of being kept, so a backend's memory and a balancer's choice do
//! not last for ever.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use sqlx::postgres::PgConnection;
use sqlx::{Connection, PgPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{SqlResult, StoreError};

/// Runs `$work`, an expression (usually a block) that uses `$c: &mut PgConnection` and may
/// return early with `?` or `return`, on one of the store's own connections, and hands the
/// connection back as `OwnConnections::hand_back` says. Its value is `$work`'s `Result`.
///
/// A macro, not a function taking a closure: the work borrows the caller's arguments and runs
/// inside `async_trait`'s `Send` futures. A helper would have to box the work's future (as
/// sqlx's `Connection::transaction` does) and tie the lifetimes of its borrows to the
/// connection's by hand. Never lease a second connection inside `$work`: with every
/// connection lent out, that would wait for itself.
macro_rules! on_connection {
    ($store:expr, |$c:ident| $work:expr) => {{
        let store = &$store;
        let mut lease = store.own.lease(&store.pool).await?;
        let outcome: Result<_, mfagate_core::StoreError> = async {
            let $c: &mut sqlx::PgConnection = &mut lease.connection;
            $work
        }
        .await;
        store.own.hand_back(&store.pool, lease, &outcome).await;
        outcome
    }};
}
pub(super) use on_connection;

/// What every connection of the store is set to, as it opens: to plan as the query-plan tests
/// check.
///
/// Sequential scans are priced out on it (`enable_seqscan = off`): every statement of the store
/// is written for an index, and the query-plan tests prove one serves each (they explain with
/// the same setting). Left to its statistics, PostgreSQL planned a login's count of live
/// challenges as a sequential scan whenever the table had been analysed empty (a new
/// deployment; the clean-up just emptied it), and the connection kept that plan while the
/// table grew: every login read every challenge until autovacuum analysed the table again,
/// never when it is off. With the setting a table's size never decides a per-user statement's
/// cost. A statement with no index to use still scans (the setting only adds a cost), as the
/// tiny key tables do.
///
/// And every statement is planned generically (`plan_cache_mode = force_generic_plan`): once
/// per connection, for any values. With the values in hand PostgreSQL misjudged the store's
/// statements that name a row or a user *and* ask for a live one (`expires_at > now`): once
/// `now` passes every expiry its last ANALYZE saw, which for a challenge is minutes later, it
/// estimates that no row passes and takes the small expiry index over the primary key or the
/// user's index, reading every live row of every user. A login at a million accounts read a
/// hundred pages of `challenges` that way (#11). A generic plan prices `expires_at > $2` as a
/// third of the table, so the key's index usually wins; the query-plan tests explain these
/// plans. Not always: on a table analysed nearly empty after a mass delete, even generic plans
/// preferred the expiry index, so the clean-up's time indexes are now built on `expires_at + 0`
/// (PostgreSQL migration 15), which no per-request statement names. Planning once also saves
/// the planner's time on every call.
///
/// And no statement is compiled to machine code (`jit = off`). PostgreSQL compiles a plan whose
/// estimated cost passes `jit_above_cost` (100,000), on every execution, for tens of
/// milliseconds. A scan priced out by `enable_seqscan = off` costs ten billion, so the tiny
/// key tables' statements passed it. And the clean-up's walk of a time index with its estimated
/// third of the table passed it at a million accounts: 25 ms of compiling for each pass over
/// an empty `factors_pending`, which made the clean-up of a million accounts' backlog take
/// minutes longer (#11, eleventh session). The store's statements each touch a few rows, where
/// compiling never pays.
pub const CONNECTION_SETTINGS: &str =
    "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan; SET jit = off";

/// A fresh connection out of the pool, with `CONNECTION_SETTINGS`.
async fn open(pool: &PgPool) -> Result<PgConnection, StoreError> {
    let mut connection = pool.acquire().await.store()?.detach();
    sqlx::raw_sql(CONNECTION_SETTINGS)
        .execute(&mut connection)
        .await
        .store()?;
    Ok(connection)
}

#[derive(Debug)]
pub(super) struct OwnConnections {
    /// Idle connections, each with when it was opened.
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    free: std::sync::Arc<Semaphore>,
}

/// A connection lent by `OwnConnections::lease`; give it back with `hand_back`.
pub(super) struct Lease {
    pub(super) connection: PgConnection,
    opened: Instant,
    _permit: OwnedSemaphorePermit,
}

impl OwnConnections {
    /// At most `size` connections.
    pub(super) fn new(size: u32) -> Self {
        let size = usize::try_from(size.max(1)).unwrap_or(1);
        Self {
            idle: Mutex::new(Vec::with_capacity(size)),
            free: std::sync::Arc::new(Semaphore::new(size)),
        }
    }

    /// A free connection, waiting for one as long as the pool would: an idle one, or a fresh
    /// one taken out of the pool.
    pub(super) async fn lease(&self, pool: &PgPool) -> Result<Lease, StoreError> {
        let waited = tokio::time::timeout(
            pool.options().get_acquire_timeout(),
            std::sync::Arc::clone(&self.free).acquire_owned(),
        );
        let Ok(Ok(permit)) = waited.await else {
            return Err(StoreError::Unavailable(
                "every database connection stayed busy for the pool's acquire timeout".to_string(),
            ));
        };
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (connection, opened) = match idle {
            Some(idle) => idle,
            None => (open(pool).await?, Instant::now()),
        };
        Ok(Lease {
            connection,
            opened,
            _permit: permit,
        })
    }

    /// Puts a connection back after a use that succeeded or that the database refused (a
    /// unique key: the connection is sound), and drops it after any other failure. A
    /// transaction dropped without its commit left a `ROLLBACK` queued, which is sent now; if
    /// that fails the connection goes.
    pub(super) async fn hand_back<T>(
        &self,
        pool: &PgPool,
        mut lease: Lease,
        outcome: &Result<T, StoreError>,
    ) {
        if matches!(
            outcome,
            Err(StoreError::Unavailable(_) | StoreError::Other(_))
        ) {
            return;
        }
        let retired = pool
            .options()
            .get_max_lifetime()
            .is_some_and(|lifetime| lease.opened.elapsed() >= lifetime);
        if retired {
            let _ = lease.connection.close().await;
            return;
        }
        if lease.connection.should_flush() && lease.connection.flush().await.is_err() {
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((lease.connection, lease.opened));
    }
}
