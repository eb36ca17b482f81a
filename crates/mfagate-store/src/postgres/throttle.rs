//! Throttle windows: claims counted in a window under its row lock, all or none in a transaction.

use super::*;

/// The claim of one unit in a window of `$table` (`$1` its key, `$2` now, `$3` its length in
/// seconds, `$4` its limit) for each row of `$rows`: the window, started over when it has ended,
/// counts the claim iff it has room, and returns its count then. Its row stays locked until the
/// transaction ends, whether it counted or not.
macro_rules! claim_window {
    ($table:literal, $rows:literal) => {
        concat!(
            "INSERT INTO ",
            $table,
            " AS w (key, window_start, window_end, count) ",
            $rows,
            "
             ON CONFLICT (key) DO UPDATE SET
               count = CASE WHEN w.window_end <= $2 THEN 1 ELSE w.count + 1 END,
               window_start = CASE WHEN w.window_end <= $2 THEN $2 ELSE w.window_start END,
               window_end = CASE WHEN w.window_end <= $2 THEN $2 + $3 ELSE w.window_end END
             WHERE w.window_end <= $2 OR w.count < $4
             RETURNING count"
        )
    };
}
pub(super) use claim_window;

/// The statements that claim one unit in a window of `$table` and read when a window ends.
macro_rules! window_statements {
    ($table:literal) => {
        (
            claim_window!($table, "VALUES ($1, $2, $2 + $3, 1)"),
            concat!("SELECT window_end FROM ", $table, " WHERE key = $1"),
        )
    };
}

/// Where a window is counted: `throttle_windows` for limits on failures (logged: a crash must
/// not hand an attacker fresh attempts), `request_windows` for the per-IP request limit
/// (UNLOGGED: no WAL and no fsync per request; a crash only restarts the windows).
#[derive(Clone, Copy)]
pub(super) enum WindowTable {
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
pub(super) async fn claim_in_window(
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

/// The hand-back of one claimed unit of each window named in the text array `$keys` that is
/// still current at `$now` (placeholders given as literals, so that it can also be a step of a
/// larger statement; see `insert_token`).
///
/// An upsert, so that each window is found through the primary key as the conflict's arbiter,
/// whatever the planner's statistics say. An `UPDATE ... WHERE key ...` was planned as a
/// sequential scan whenever the statistics said the table was empty (as they do after the
/// clean-up emptied it, until autovacuum analyses it again), and every login then read every
/// window of the deployment (`auto_explain` during the benchmark's logins showed it). A window
/// the clean-up removed meanwhile comes back as an ended one (count 0, ended at 0), which the
/// next claim starts over and the clean-up removes.
macro_rules! hand_back_windows {
    ($keys:literal, $now:literal) => {
        concat!(
            "INSERT INTO throttle_windows AS w (key, window_start, window_end, count)
             SELECT key, 0, 0, 0 FROM unnest(",
            $keys,
            "::text[]) AS k(key)
             ON CONFLICT (key) DO UPDATE SET count = w.count - 1
             WHERE w.count > 0 AND w.window_end > ",
            $now
        )
    };
}
pub(super) use hand_back_windows;

/// The keys of `windows` as `hand_back_windows!` takes them: each once (an upsert may not touch
/// one row twice), in key order, the order claims lock windows in.
pub(super) fn hand_back_keys(windows: &[WindowLimit]) -> Vec<&str> {
    let mut keys: Vec<&str> = windows.iter().map(|w| w.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Hands back one claimed unit of each of `windows` that is still current at `now`.
pub(super) async fn release_in_windows(
    connection: &mut sqlx::PgConnection,
    windows: &[WindowLimit],
    now: i64,
) -> sqlx::Result<()> {
    let keys = hand_back_keys(windows);
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(hand_back_windows!("$1", "$2"))
        .bind(&keys)
        .bind(now)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Seconds until a full window ends.
pub(super) async fn window_retry_after(
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
        on_connection!(self, |c| {
            let mut tx = sqlx::Connection::begin(&mut *c).await.store()?;
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
        })
    }

    async fn claim_request_window(&self, window: &WindowLimit, now: i64) -> StoreResult<Claim> {
        // Shared by every instance on the database; see `WindowTable::Request`.
        self.claim_one(WindowTable::Request, window, now).await
    }

    async fn release_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<()> {
        on_connection!(self, |c| release_in_windows(c, windows, now).await.store())
    }
}
