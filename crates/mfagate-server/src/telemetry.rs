//! Logging: level from `RUST_LOG` (default `info`), text or JSON lines on standard error.
//! Colours only when standard error is a terminal, so a log file holds plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// The server's logging: `info` unless `RUST_LOG` says otherwise. The WebAuthn library logs
/// some refusals of what a client sent at `error`, which a client can repeat at will; mfagate
/// logs each refusal itself (`mfagate_core::webauthn`, at `info`, with the library's reason), so
/// the library's own lines are off by default (`RUST_LOG=webauthn_rs_core=debug` shows them).
pub fn init(format: LogFormat) {
    init_with_default(format, "info,sqlx=warn,webauthn_rs_core=off");
}

/// Logging with another default level (the command line uses `warn`, so that audit lines do not
/// mix with a command's answer on the user's terminal).
pub fn init_with_default(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A subscriber set already (tests set one per binary) is fine.
    let _ = result;
}
