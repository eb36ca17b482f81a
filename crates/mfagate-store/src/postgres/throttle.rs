//! Throttle windows: claims counted in a window under its row lock, all or none in a transaction.

use super::*;

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

/// Hands back one claimed unit of each of `windows` that is still current at `now`.
///
/// Two keys per statement, named one by one (`key IN ($1, $2)`; a lone key is named twice), and
/// `window_end + 0`, which no index serves: with `key = ANY($1) AND window_end > $2` the planner
/// chose a sequential scan or the `window_end` index whenever its statistics said the table was
/// small or empty (as after a clean-up emptied it, until autovacuum analyses it again), and
/// every live window passes `window_end > now`: each login read every window of the
/// deployment. Now the primary key is the only way in.
pub(super) async fn release_in_windows(
    connection: &mut sqlx::PgConnection,
    windows: &[WindowLimit],
    now: i64,
) -> sqlx::Result<()> {
    for pair in windows.chunks(2) {
        let (first, second) = match pair {
            [one] => (one.key.as_str(), one.key.as_str()),
            [one, two, ..] => (one.key.as_str(), two.key.as_str()),
            [] => continue,
        };
        sqlx::query(
            "UPDATE throttle_windows SET count = count - 1
             WHERE key IN ($1, $2) AND count > 0 AND window_end + 0 > $3",
        )
        .bind(first)
        .bind(second)
        .bind(now)
        .execute(&mut *connection)
        .await?;
    }
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
        let mut connection = self.pool.acquire().await.store()?;
        release_in_windows(&mut connection, windows, now)
            .await
            .store()
    }
}
