//! Fixed windows that count attempts, claimed before the work they guard.

use async_trait::async_trait;

use super::*;

/// One fixed window of a limit: at most `limit` claims under `key` per `window_seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLimit {
    /// A fixed-size keyed hash (see `throttle`), never the raw name or address.
    pub key: String,
    pub limit: u32,
    pub window_seconds: i64,
}

/// The answer to a claim on one or more windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// One unit is counted in every window.
    Granted,
    /// A window is full for `retry_after` more seconds; nothing was counted.
    Refused { retry_after: i64 },
}

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Claims one unit in every window iff each has room (a finished window starts over), all
    /// or nothing: of any number of concurrent callers at most `limit` are granted per window.
    async fn claim_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<Claim>;
    /// Hands back one claimed unit in each of these windows that is still current: for limits
    /// that count failures, once the attempt turned out right.
    async fn release_windows(&self, windows: &[WindowLimit], now: i64) -> StoreResult<()>;
    /// Counts one request in a window that every server on this database shares (the per-IP
    /// request limit), iff it has room. Where one process owns the database (SQLite) that
    /// process's own count is already the deployment's, and this grants without a write.
    async fn claim_request_window(&self, window: &WindowLimit, now: i64) -> StoreResult<Claim>;
}
