//! The one place that reads the wall clock. Everything else takes the time as a parameter (the
//! core's flows through `Context::now`, the store from its callers), and the edge reads it from
//! the `Clock` it was given: `SystemClock` in production, a `MovableClock` in tests, which move
//! it forward instead of sleeping until a token or challenge expires. `clippy.toml` refuses
//! `SystemTime::now` anywhere else.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds, now.
pub trait Clock: std::fmt::Debug + Send + Sync {
    fn now(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the one read of the wall clock")]
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The wall clock plus an offset that only grows: `advance` moves it forward for every holder
/// of a clone at once.
#[derive(Debug, Clone, Default)]
pub struct MovableClock {
    offset: Arc<AtomicI64>,
}

impl MovableClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock `seconds` forward.
    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds.max(0), Ordering::SeqCst);
    }
}

impl Clock for MovableClock {
    fn now(&self) -> i64 {
        SystemClock.now() + self.offset.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_movable_clock_moves_every_clone_forward_and_never_back() {
        let clock = MovableClock::new();
        let other = clock.clone();
        let before = SystemClock.now();
        clock.advance(3600);
        assert!(other.now() >= before + 3600);
        clock.advance(-100_000);
        assert!(other.now() >= before + 3600);
    }
}
