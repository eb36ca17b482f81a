//! Rates written `N/SECONDS` (or `off`), and the in-process per-IP counter.
//!
//! Per-account counters (failed logins, failed second factors) live in the store so they hold
//! across instances. The per-IP counter here is the cheap first refusal: it turns a flood away
//! from one process with no database work; what it lets through is then counted in the window
//! every instance shares (`Gatekeeper::claim_ip_request`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub window_seconds: i64,
}

impl Rate {
    /// `None` for `off`.
    pub fn parse(text: &str) -> Result<Option<Rate>, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let problem = || format!("'{text}' is not a rate: write N/SECONDS, e.g. 10/300, or off");
        let (limit, window) = text.split_once('/').ok_or_else(problem)?;
        let limit: u32 = limit.trim().parse().map_err(|_| problem())?;
        let window_seconds: i64 = window.trim().parse().map_err(|_| problem())?;
        if limit == 0 || window_seconds <= 0 {
            return Err(problem());
        }
        Ok(Some(Rate {
            limit,
            window_seconds,
        }))
    }
}

/// A fixed-window counter as the store reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub count: u32,
    pub window_start: i64,
}

impl WindowCount {
    /// Seconds until this window ends (at least 1, as `Retry-After` needs).
    pub fn retry_after(&self, rate: &Rate, now: i64) -> u64 {
        u64::try_from((self.window_start + rate.window_seconds - now).max(1)).unwrap_or(1)
    }

    pub fn is_current(&self, rate: &Rate, now: i64) -> bool {
        now < self.window_start + rate.window_seconds
    }
}

/// Counts requests per client IP in fixed windows, in this process's memory.
pub struct IpRateCounter {
    rate: Rate,
    windows: Mutex<HashMap<IpAddr, WindowCount>>,
}

impl IpRateCounter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request; `Err(retry_after)` once the IP is past its limit in this window.
    pub fn hit(&self, ip: IpAddr, now: i64) -> Result<(), u64> {
        let mut windows = match self.windows.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Keep memory bounded: forget finished windows now and then.
        if windows.len() > 100_000 {
            let rate = self.rate;
            windows.retain(|_, w| w.is_current(&rate, now));
        }
        let entry = windows.entry(ip).or_insert(WindowCount {
            count: 0,
            window_start: now,
        });
        if !entry.is_current(&self.rate, now) {
            *entry = WindowCount {
                count: 0,
                window_start: now,
            };
        }
        entry.count = entry.count.saturating_add(1);
        if entry.count > self.rate.limit {
            return Err(entry.retry_after(&self.rate, now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_bad_ones_say_how_to_write_them() {
        assert_eq!(
            Rate::parse("10/300").unwrap(),
            Some(Rate {
                limit: 10,
                window_seconds: 300
            })
        );
        assert_eq!(Rate::parse("OFF").unwrap(), None);
        assert!(Rate::parse("ten").unwrap_err().contains("N/SECONDS"));
        assert!(Rate::parse("0/10").is_err());
    }

    #[test]
    fn the_ip_counter_refuses_past_the_limit_until_the_window_ends() {
        let counter = IpRateCounter::new(Rate {
            limit: 2,
            window_seconds: 60,
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(counter.hit(ip, 1000).is_ok());
        assert!(counter.hit(ip, 1001).is_ok());
        assert_eq!(counter.hit(ip, 1010), Err(50));
        assert!(counter.hit("10.0.0.2".parse().unwrap(), 1010).is_ok());
        assert!(counter.hit(ip, 1060).is_ok());
    }
}
