//! Building and running the server: open the store (creating and migrating it), find or make
//! the secret key, bind, serve until told to stop.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mfagate::core::email::{LogMailer, Mailer, Templates};
use mfagate::core::{Gatekeeper, Keys, Store};
use mfagate::mail::SmtpMailer;
use mfagate::{MfaGate, SecretBytes};
use mfagate_store::SqliteStore;
use tokio::net::TcpListener;

use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The store's messages name the database and what to do; no prefix of ours.
    #[error("{}", store_message(.0))]
    Store(#[from] mfagate::core::StoreError),
    #[error("secret key: {0}")]
    Key(String),
    #[error("cannot listen on {address}: {source}{}", bind_hint(.source))]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Core(#[from] mfagate::core::Error),
    #[error("e-mail: {0}")]
    Mail(String),
    #[error("metrics: {0}")]
    Metrics(String),
}

fn store_message(error: &mfagate::core::StoreError) -> String {
    use mfagate::core::StoreError;
    match error {
        StoreError::Unavailable(message) | StoreError::Other(message) => message.clone(),
        StoreError::Conflict(message) => format!("database conflict: {message}"),
    }
}

fn bind_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another program is using that port: stop it, or set MFAGATE_LISTEN to another HOST:PORT"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: set MFAGATE_LISTEN to a higher port"
        }
        _ => "; set MFAGATE_LISTEN to an address of this machine, as HOST:PORT",
    }
}

/// Where the generated key lives: beside the SQLite file, named after it.
pub fn key_file_path(database_url: &str) -> Option<PathBuf> {
    SqliteStore::database_path(database_url).map(|db| db.with_extension("key"))
}

/// The root secret: configured, or read from (or generated into) the key file beside SQLite.
fn load_or_create_secret(settings: &Settings) -> Result<SecretBytes, StartupError> {
    if let Some(secret) = &settings.secret_key {
        return Ok(secret.clone());
    }
    let Some(path) = key_file_path(&settings.database_url) else {
        return Err(StartupError::Key(
            "MFAGATE_SECRET_KEY is required for this database (32+ bytes as hex or base64; `openssl rand -hex 32` makes one)".into(),
        ));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => SecretBytes::parse(&text).map_err(|problem| {
            StartupError::Key(format!("the key file {} {problem}", path.display()))
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => write_new_key(&path),
        Err(error) => Err(StartupError::Key(format!(
            "cannot read {}: {error}",
            path.display()
        ))),
    }
}

fn write_new_key(path: &Path) -> Result<SecretBytes, StartupError> {
    let secret = SecretBytes::generate(32);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| StartupError::Key(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(format!("{}\n", secret.to_hex()).as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| StartupError::Key(format!("cannot write {}: {e}", path.display())))?;
    tracing::warn!(
        path = %path.display(),
        "generated a new secret key (mode 0600); back it up with the database: without it, tokens and sealed TOTP secrets cannot be read"
    );
    Ok(secret)
}

/// Opens (creating and migrating) the store the settings name.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartupError> {
    Ok(mfagate_store::open_with(
        &settings.database_url,
        mfagate_store::PgPoolSettings {
            max_connections: settings.database_max_connections.max(1),
            sqlite_full_sync: settings.sqlite_full_sync,
            ..Default::default()
        },
    )
    .await?)
}

pub fn keys(settings: &Settings) -> Result<Keys, StartupError> {
    let secret = load_or_create_secret(settings)?;
    Ok(Keys::from_secret(
        secret,
        settings.encryption_key.clone(),
        settings.encryption_keys_old.clone(),
    ))
}

/// The domain service alone, for the command line.
pub async fn gatekeeper(settings: &Settings) -> Result<Gatekeeper, StartupError> {
    let store = open_store(settings).await?;
    let keys = keys(settings)?;
    let templates = match &settings.email_templates {
        Some(dir) => Templates::from_dir(dir).map_err(StartupError::Mail)?,
        None => Templates::default(),
    };
    Ok(Gatekeeper::new(
        store,
        settings.config.clone(),
        keys,
        mfagate::gate::unix_now(),
    )
    .await?
    .with_mailer(mailer(settings)?)
    .with_templates(templates))
}

/// The mailer the settings ask for: SMTP, or the log when no SMTP URL is set.
pub fn mailer(settings: &Settings) -> Result<Arc<dyn Mailer>, StartupError> {
    match &settings.smtp_url {
        Some(url) => Ok(Arc::new(
            SmtpMailer::new(
                &url.0,
                &settings.email_from,
                Duration::from_secs(settings.smtp_timeout_seconds.max(1)),
            )
            .map_err(StartupError::Mail)?,
        )),
        None => Ok(Arc::new(LogMailer)),
    }
}

pub struct Application {
    listener: TcpListener,
    /// `MFAGATE_METRICS_LISTEN`, bound.
    metrics: Option<TcpListener>,
    gate: MfaGate,
    cleanup_interval: Duration,
    http: crate::settings::HttpLimits,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        for name in &settings.unknown {
            tracing::warn!(%name, "unknown setting ignored; check its spelling against the README");
        }
        if settings.smtp_url.is_none()
            && settings.config.mode == mfagate::core::MfaMode::Required
            && !settings.allow_log_mailer
        {
            return Err(StartupError::Mail(
                "MFAGATE_MFA_MODE=required needs mail that is delivered, and MFAGATE_SMTP_URL is unset: \
                 set it to your relay; to try required mode with codes and keys written to the log \
                 (development only), set MFAGATE_ALLOW_LOG_MAILER=true"
                    .into(),
            ));
        }
        let gate = MfaGate::from_gatekeeper(gatekeeper(&settings).await?, settings.gate.clone());
        let listener = TcpListener::bind(&settings.listen)
            .await
            .map_err(|source| StartupError::Bind {
                address: settings.listen.clone(),
                source,
            })?;
        let metrics = match &settings.metrics_listen {
            Some(address) => Some(
                crate::metrics::bind(address)
                    .await
                    .map_err(StartupError::Metrics)?,
            ),
            None => None,
        };
        crate::connections::raise_open_files_limit(settings.http.max_connections);
        if settings.smtp_url.is_none() {
            tracing::warn!("MFAGATE_SMTP_URL is unset: e-mails are written to this log instead of sent, codes and keys included; this is for development only: set MFAGATE_SMTP_URL to deliver them");
        }
        Ok(Self {
            listener,
            metrics,
            gate,
            cleanup_interval: Duration::from_secs(settings.cleanup_interval_seconds.max(1)),
            http: settings.http,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `GET /metrics` is served, when `MFAGATE_METRICS_LISTEN` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn gate(&self) -> &MfaGate {
        &self.gate
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let metrics = self
            .metrics
            .map(|listener| tokio::spawn(crate::metrics::serve(listener)));
        let gate = self.gate.clone();
        let interval = self.cleanup_interval;
        let cleanup = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                let now = mfagate::gate::unix_now();
                // Learn keys that another instance or `mfagate keys rotate` added.
                if let Err(error) = gate.gatekeeper().reload_signing_keys(now).await {
                    tracing::warn!(%error, "could not reload the signing keys; will retry");
                }
                match gate.gatekeeper().clean_up(now).await {
                    Ok(0) => {}
                    Ok(rows) => tracing::debug!(
                        rows,
                        "deleted expired challenges, tokens and throttle windows"
                    ),
                    Err(error) => tracing::warn!(%error, "periodic clean-up failed; it will retry"),
                }
            }
        });
        // A body that does not arrive in time fails to read, and the connection closes.
        let app =
            mfagate::app(&self.gate).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                Duration::from_secs(self.http.body_timeout_seconds),
            ));
        let result = crate::connections::serve(self.listener, app, self.http, shutdown).await;
        cleanup.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        self.gate.gatekeeper().flush_audit().await;
        result
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
