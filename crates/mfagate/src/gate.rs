//! `MfaGate`: the shared state of the router and extractors. Cheap to clone.

use mfagate_core::clock::{Clock, SystemClock};
use std::sync::Arc;

use mfagate_core::client_ip::IpNet;
use mfagate_core::rate::{IpRateCounter, Rate};
use mfagate_core::{Config, Context, Gatekeeper, Keys, Store};

use crate::error::ApiError;
use crate::extract::ClientAddr;

/// HTTP-side options; the domain's are in [`Config`].
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Where the API is mounted; `/auth` by default.
    pub prefix: String,
    /// Send refresh tokens as an HttpOnly cookie instead of in the body.
    pub refresh_cookie: bool,
    /// Serve the account portal at `/ui/` ([`crate::app`] only; `MFAGATE_UI`).
    pub ui: bool,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Requests per client IP over the sensitive endpoints; `None` switches it off.
    pub ip_throttle: Option<Rate>,
    /// Where the gate reads the time (the wall clock; tests move a `MovableClock`).
    pub clock: Arc<dyn Clock>,
}

impl Default for GateOptions {
    fn default() -> Self {
        Self {
            prefix: "/auth".into(),
            refresh_cookie: false,
            ui: true,
            trusted_proxies: Vec::new(),
            ip_throttle: Some(Rate {
                limit: 300,
                window_seconds: 60,
            }),
            clock: Arc::new(SystemClock),
        }
    }
}

struct Inner {
    gatekeeper: Gatekeeper,
    options: GateOptions,
    ip_counter: Option<IpRateCounter>,
}

#[derive(Clone)]
pub struct MfaGate(Arc<Inner>);

impl std::fmt::Debug for MfaGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaGate")
            .field("options", &self.0.options)
            .finish_non_exhaustive()
    }
}

/// The wall clock (for callers outside a gate, such as the command line); a gate reads the
/// clock of its options, [`MfaGate::now`].
pub fn unix_now() -> i64 {
    SystemClock.now()
}

impl MfaGate {
    /// A gate whose mail goes to the log (see [`MfaGate::from_gatekeeper`] to send it).
    pub async fn new(
        store: Arc<dyn Store>,
        config: Config,
        keys: Keys,
        options: GateOptions,
    ) -> Result<Self, mfagate_core::Error> {
        Ok(Self::from_gatekeeper(
            Gatekeeper::new(store, config, keys, options.clock.now()).await?,
            options,
        ))
    }

    /// A gate over a configured service, e.g. one built with
    /// `Gatekeeper::new(..).await?.with_mailer(Arc::new(SmtpMailer::new(..)?))`.
    pub fn from_gatekeeper(gatekeeper: Gatekeeper, options: GateOptions) -> Self {
        let ip_counter = options.ip_throttle.map(IpRateCounter::new);
        Self(Arc::new(Inner {
            gatekeeper,
            options,
            ip_counter,
        }))
    }

    /// The time by the gate's clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.0.options.clock.now()
    }

    pub fn gatekeeper(&self) -> &Gatekeeper {
        &self.0.gatekeeper
    }

    pub fn options(&self) -> &GateOptions {
        &self.0.options
    }

    pub fn config(&self) -> &Config {
        self.0.gatekeeper.config()
    }

    pub(crate) fn context(&self, client: ClientAddr) -> Context {
        Context {
            now: self.now(),
            ip: client.0,
            user_agent: client.1,
        }
    }

    /// Counts a request against the caller's per-IP budget (login, second factor, and the
    /// e-mail-sending endpoints): first in this process's memory, which refuses a flood at no
    /// cost, then in the window all instances share (on PostgreSQL; on SQLite the one process's
    /// count is the deployment's and no write is made).
    pub(crate) async fn count_ip(&self, client: ClientAddr) -> Result<(), ApiError> {
        let (Some(counter), Some(rate), Some(ip)) =
            (&self.0.ip_counter, self.0.options.ip_throttle, client.0)
        else {
            return Ok(());
        };
        let now = self.now();
        let counted = match counter.hit(ip, now) {
            Ok(()) => self
                .0
                .gatekeeper
                .claim_ip_request(rate, ip, now)
                .await
                .map_err(ApiError::from),
            Err(retry_after) => Err(ApiError::throttled(retry_after)),
        };
        if counted.as_ref().is_err_and(|e| e.code() == "throttled") {
            mfagate_core::metrics::throttled("ip");
        }
        counted
    }
}
