//! Throttle windows: claims counted in all of several windows or none.

use super::*;

/// Windows as one JSON array, so that a claim or release on any number of them is one
/// statement that counts in all of them or in none.
pub(super) fn windows_json(windows: &[WindowLimit]) -> String {
    serde_json::Value::Array(
        windows
            .iter()
            .map(|w| {
                serde_json::json!({"key": w.key, "seconds": w.window_seconds, "limit": w.limit})
            })
            .collect(),
    )
    .to_string()
}

/// Counts one unit in every window of ?1 (a `windows_json` array) iff none of them is full at
/// ?2, starting over those that have ended. SQLite runs the `SELECT` to the end before it
/// inserts (it reads the table it writes to), so the check sees no window counted by this
/// statement: all or nothing. Changes as many rows as there are windows, or none.
pub(super) const CLAIM_WINDOWS: &str = "
    INSERT INTO throttle_windows (key, window_start, window_end, count)
    SELECT w.value ->> 'key', ?2, ?2 + (w.value ->> 'seconds'), 1 FROM json_each(?1) AS w
    WHERE NOT EXISTS (
        SELECT 1 FROM json_each(?1) AS v JOIN throttle_windows AS t ON t.key = v.value ->> 'key'
        WHERE t.window_end > ?2 AND t.count >= v.value ->> 'limit')
    ON CONFLICT (key) DO UPDATE SET
      count = CASE WHEN window_end <= ?2 THEN 1 ELSE count + 1 END,
      window_start = CASE WHEN window_end <= ?2 THEN ?2 ELSE window_start END,
      window_end = CASE WHEN window_end <= ?2 THEN excluded.window_end ELSE window_end END";

/// Counts one unit in every window iff none is full; `Some(retry_after)` (until the last full
/// window ends) when refused, with nothing counted.
pub(super) fn claim_in_windows(
    c: &rusqlite::Connection,
    windows: &str,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    if execute(c, CLAIM_WINDOWS, params![windows, now])? > 0 {
        return Ok(None);
    }
    full_windows_retry_after(c, windows, now).map(Some)
}

/// Seconds until the last of the full windows of ?1 ends (1 if none is full).
pub(super) fn full_windows_retry_after(
    c: &rusqlite::Connection,
    windows: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    let end: Option<i64> = query_opt(
        c,
        "SELECT MAX(t.window_end) FROM json_each(?1) AS v
         JOIN throttle_windows AS t ON t.key = v.value ->> 'key'
         WHERE t.window_end > ?2 AND t.count >= v.value ->> 'limit'",
        params![windows, now],
        |row| row.get(0),
    )?
    .flatten();
    Ok(end.map_or(1, |end| (end - now).max(1)))
}

pub(super) fn keys_json<'a>(keys: impl Iterator<Item = &'a str>) -> String {
    serde_json::Value::Array(keys.map(serde_json::Value::from).collect()).to_string()
}

/// Hands back one claimed unit of each window of `keys` (a JSON array of keys) that is still
/// current at `now`.
pub(super) fn release_in_windows(
    c: &rusqlite::Connection,
    keys: &str,
    now: i64,
) -> rusqlite::Result<()> {
    execute(
        c,
        "UPDATE throttle_windows SET count = count - 1
         WHERE key IN (SELECT value FROM json_each(?1)) AND count > 0 AND window_end > ?2",
        params![keys, now],
    )
    .map(drop)
}

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn claim_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<Claim> {
        let windows = windows_json(windows);
        // One statement checks every window and counts in all of them, or in none.
        self.write(move |c| {
            Ok(match claim_in_windows(c, &windows, now)? {
                None => Claim::Granted,
                Some(retry_after) => Claim::Refused { retry_after },
            })
        })
        .await
    }

    async fn claim_request_window(&self, _window: &WindowLimit, _now: i64) -> StoreResult<Claim> {
        // One server process owns a SQLite file (several instances need PostgreSQL), so the
        // caller's in-memory count is the deployment's: no write on the single writer per
        // request.
        Ok(Claim::Granted)
    }

    async fn release_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<()> {
        let keys = keys_json(windows.iter().map(|w| w.key.as_str()));
        self.write(move |c| release_in_windows(c, &keys, now))
            .await?;
        Ok(())
    }
}
