//! The processes under test: the release `mfagate` server on a fresh database, and the bare axum
//! server that gives the HTTP ceiling. Both are children of the benchmark and stopped by it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct ServerProcess {
    child: Child,
    pub base: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

impl ServerProcess {
    pub async fn spawn(
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
        port: u16,
    ) -> Result<Self, String> {
        let mut command = Command::new(program);
        // The benchmark's own settings are not the server's (it would warn of each as unknown).
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MFAGATE_BENCH_") {
                command.env_remove(name);
            }
        }
        let child = command
            .args(args)
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let mut server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        // A server migrates its database before it listens: on a cached seed of a million
        // accounts made before a schema change, that takes a while (13 s for migration 11).
        for _ in 0..(5 * 60 * 20) {
            if let Ok(response) = client.get(format!("{}/healthz", server.base)).send().await {
                if response.status().is_success() {
                    return Ok(server);
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before it answered /healthz; its log is above",
                    program.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "{} did not answer /healthz within 5 minutes",
            program.display()
        ))
    }

    fn status_field(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Resident memory now, MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status_field("VmRSS:")
    }

    /// The highest resident memory so far, MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_field("VmHWM:")
    }
}

/// The server binary beside this one (release, or debug for a debug build of this one, as the
/// soak in CI runs); built first if it is missing.
pub fn mfagate_binary() -> Result<PathBuf, String> {
    let here = std::env::current_exe().map_err(|e| e.to_string())?;
    let binary = here.with_file_name("mfagate");
    // Under `cargo run` the server is rebuilt when stale (a no-op when it is not): a binary
    // older than its migrations would measure the wrong code, or not start.
    if std::env::var_os("CARGO").is_some() || !binary.exists() {
        let profile: &[&str] = if cfg!(debug_assertions) {
            &[]
        } else {
            &["--release"]
        };
        eprintln!("building the server (cargo build {profile:?} -p mfagate-server) ...");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .arg("build")
            .args(profile)
            .args(["-p", "mfagate-server", "--bin", "mfagate"])
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() || !binary.exists() {
            return Err("building the server failed".into());
        }
    }
    Ok(binary)
}

/// The ceiling: a bare axum server answering a constant JSON body, run by this same binary.
pub async fn run_bare_server(port: u16) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route(
            "/ceiling",
            get(|| async { axum::Json(serde_json::json!({"id": "0123456789abcdef", "username": "bench", "email_verified": false})) }),
        );
    if let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        let _ = axum::serve(listener, app).await;
    }
}
