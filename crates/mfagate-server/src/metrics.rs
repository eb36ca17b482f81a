//! `MFAGATE_METRICS_LISTEN`: the Prometheus text format at `GET /metrics`, on an address of its
//! own (so it can stay private while the API is public). The counters are the `metrics` facade's,
//! counted where things happen (`mfagate_core::metrics`, the library's request layer, the SQLite
//! writer); this module installs the recorder that keeps them and serves it.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Seconds, for the duration histograms: 1 ms to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

struct Installed {
    handle: PrometheusHandle,
    started: Instant,
}

static RECORDER: OnceLock<Result<Installed, String>> = OnceLock::new();

/// The process's recorder, installed on first use (a process has one global recorder; a test
/// that starts several servers shares it).
fn recorder() -> Result<&'static Installed, String> {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|builder| builder.install_recorder())
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
            metrics::gauge!("mfagate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Ok(Installed {
                handle,
                started: Instant::now(),
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The text a scrape gets.
fn render(installed: &Installed) -> String {
    metrics::gauge!("mfagate_uptime_seconds").set(installed.started.elapsed().as_secs_f64());
    installed.handle.run_upkeep();
    installed.handle.render()
}

/// Binds the metrics address and installs the recorder; serve it with [`serve`].
pub async fn bind(address: &str) -> Result<TcpListener, String> {
    recorder()?;
    TcpListener::bind(address).await.map_err(|e| {
        format!(
            "cannot listen for metrics on {address} (MFAGATE_METRICS_LISTEN): {e}; choose a free address or leave the setting out"
        )
    })
}

/// Serves `GET /metrics` until the process ends.
pub async fn serve(listener: TcpListener) {
    let Ok(installed) = recorder() else {
        return;
    };
    let app = Router::new().route(
        "/metrics",
        get(move || async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                render(installed),
            )
        }),
    );
    let address: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?address, "serving metrics at /metrics");
    if let Err(error) = axum::serve(listener, app).await {
        tracing::warn!(%error, "the metrics listener stopped");
    }
}
