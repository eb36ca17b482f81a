//! Server settings: defaults, then a TOML file (`--config`), then `MFAGATE_*` environment
//! variables, which win. Every value is checked here, once, with a message that says what to
//! write instead; unknown `MFAGATE_` names are reported so typos do not pass silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mfagate::core::client_ip;
use mfagate::core::config::{JwtAlgorithm, Method, MfaMode, WebauthnSettings};
use mfagate::core::password::Argon2Params;
use mfagate::core::rate::Rate;
use mfagate::core::totp::Algorithm;
use mfagate::{Config, GateOptions, SecretBytes};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the config file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("setting {name} {problem}")]
    Invalid { name: String, problem: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A string that may hold credentials (the SMTP URL); `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How long a client may take and how many connections it may hold, so that idle or slow
/// clients cannot exhaust the server's file descriptors or tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Seconds to send a request's headers, from the connection's start or the end of the
    /// previous answer: so also how long a keep-alive connection may sit idle.
    pub header_timeout_seconds: u64,
    /// Seconds to send a request's body.
    pub body_timeout_seconds: u64,
    /// Open connections at most; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout_seconds: 10,
            body_timeout_seconds: 30,
            max_connections: 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    /// Where `GET /metrics` is served (Prometheus text format); off when unset.
    pub metrics_listen: Option<String>,
    pub database_url: String,
    pub secret_key: Option<SecretBytes>,
    pub encryption_key: Option<SecretBytes>,
    pub encryption_keys_old: Vec<SecretBytes>,
    pub config: Config,
    pub gate: GateOptions,
    pub log_format: LogFormat,
    pub cleanup_interval_seconds: u64,
    /// Unset: mail is written to the log (development only: the log then shows codes and keys).
    pub smtp_url: Option<Redacted>,
    /// Lets the log mailer stand in for SMTP in `required` mode (refused otherwise).
    pub allow_log_mailer: bool,
    pub email_from: String,
    pub smtp_timeout_seconds: u64,
    /// A directory with `<kind>.subject`, `<kind>.txt` and `<kind>.html` overrides.
    pub email_templates: Option<PathBuf>,
    /// PostgreSQL pool size per instance.
    pub database_max_connections: u32,
    /// SQLite `synchronous=FULL` (default) rather than `NORMAL`.
    pub sqlite_full_sync: bool,
    /// The connection limits: see `startup::serve_connections`.
    pub http: HttpLimits,
    /// Names that were set but mean nothing to this version.
    pub unknown: Vec<String>,
}

/// Every name this version understands (without the `MFAGATE_` prefix, lower case).
const KNOWN: &[&str] = &[
    "listen",
    "metrics_listen",
    "database_url",
    "secret_key",
    "encryption_key",
    "encryption_keys_old",
    "mfa_mode",
    "mfa_methods",
    "totp_issuer",
    "totp_digits",
    "totp_period",
    "totp_algorithm",
    "smtp_url",
    "email_verification",
    "email_code_digits",
    "jwt_algorithm",
    "jwt_issuer",
    "access_ttl",
    "refresh_ttl",
    "refresh_cookie",
    "ui",
    "setup_token_ttl",
    "password_min_length",
    "mfa_max_attempts",
    "mfa_challenge_ttl",
    "mfa_max_challenges",
    "mfa_max_factors",
    "mfa_user_failures",
    "recovery_code_count",
    "login_throttle",
    "login_account_throttle",
    "reset_mails_per_hour",
    "reauth_max_age",
    "remember_device_ttl",
    "security_emails",
    "hash_queue_per_ip",
    "hash_queue_max",
    "http_header_timeout",
    "http_body_timeout",
    "max_connections",
    "ip_throttle",
    "trusted_proxies",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "log_format",
    "cleanup_interval",
    "api_prefix",
    "email_from",
    "smtp_timeout",
    "email_templates",
    "product_name",
    "link_base_url",
    "verification_ttl",
    "invitation_ttl",
    "password_reset_ttl",
    "email_resend_interval",
    "database_max_connections",
    "argon2_profile",
    "sqlite_synchronous",
    "allow_log_mailer",
    "audit_retention_days",
    "webauthn_rp_id",
    "webauthn_rp_name",
    "webauthn_origins",
];

/// Raw values by name, each remembering where it came from for error messages.
struct Raw {
    values: BTreeMap<String, (String, String)>,
}

impl Raw {
    fn take(&mut self, name: &str) -> Option<(String, String)> {
        self.values.remove(name)
    }

    fn string(&mut self, name: &str, default: &str) -> String {
        self.take(name)
            .map_or_else(|| default.to_string(), |(v, _)| v)
    }

    fn parsed<T>(
        &mut self,
        name: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, SettingsError> {
        match self.take(name) {
            None => Ok(default),
            Some((value, source)) => {
                parse(value.trim()).map_err(|problem| SettingsError::Invalid {
                    name: source,
                    problem: format!("= '{}' {problem}", shown(name, &value)),
                })
            }
        }
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, SettingsError> {
        self.parsed(name, default, |v| {
            v.parse().map_err(|_| "is not a whole number".to_string())
        })
    }

    fn secret(&mut self, name: &str) -> Result<Option<SecretBytes>, SettingsError> {
        self.parsed(name, None, |v| SecretBytes::parse(v).map(Some))
    }
}

/// Secrets never appear in messages.
fn shown(name: &str, value: &str) -> String {
    if name.contains("key") || name == "smtp_url" {
        "<redacted>".into()
    } else {
        value.to_string()
    }
}

fn toml_to_string(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items
            .iter()
            .map(toml_to_string)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// `HOST:PORT`, where HOST is a name, an IPv4 address or a bracketed IPv6 address. Checked here
/// so that `8080` or `localhost` is reported as a format problem, not as a busy port.
fn parse_listen(text: &str) -> Result<String, String> {
    let wanted = "is not HOST:PORT (e.g. 127.0.0.1:8080, or 0.0.0.0:8080 for every interface)";
    let (host, port) = text.rsplit_once(':').ok_or_else(|| wanted.to_string())?;
    let host_ok =
        !host.is_empty() && (host.starts_with('[') && host.ends_with(']') || !host.contains(':'));
    match port.parse::<u16>() {
        Ok(_) if host_ok => Ok(text.to_string()),
        _ => Err(wanted.into()),
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("is not true or false (accepted: true, false, yes, no, on, off, 1, 0)".into()),
    }
}

impl Settings {
    /// Reads the optional file and the process environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, SettingsError> {
        let file = match config_file {
            Some(path) => Some((
                path.to_path_buf(),
                std::fs::read_to_string(path).map_err(|source| SettingsError::File {
                    path: path.to_path_buf(),
                    source,
                })?,
            )),
            None => None,
        };
        Self::from_sources(
            file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
            std::env::vars(),
        )
    }

    pub fn from_sources(
        file: Option<(&Path, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut values = BTreeMap::new();
        if let Some((path, text)) = file {
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| SettingsError::Toml {
                        path: path.to_path_buf(),
                        message: e.message().to_string(),
                    })?;
            for (key, value) in table {
                let key = key.to_lowercase();
                values.insert(
                    key.clone(),
                    (
                        toml_to_string(&value),
                        format!("'{key}' in {}", path.display()),
                    ),
                );
            }
        }
        for (name, value) in env {
            if let Some(key) = name.strip_prefix("MFAGATE_") {
                values.insert(key.to_lowercase(), (value, name.clone()));
            }
        }
        let unknown: Vec<String> = values
            .iter()
            .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
            .map(|(_, (_, source))| source.clone())
            .collect();
        let mut raw = Raw { values };
        Self::from_raw(&mut raw, unknown)
    }

    fn from_raw(raw: &mut Raw, unknown: Vec<String>) -> Result<Self, SettingsError> {
        let defaults = Config::default();
        let gate_defaults = GateOptions::default();
        let mode = raw.parsed("mfa_mode", defaults.mode, |v| {
            MfaMode::parse(v).ok_or_else(|| "is not one of: disabled, optional, required".into())
        })?;
        let methods = raw.parsed("mfa_methods", defaults.methods.clone(), |v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|m| {
                    Method::parse_setting(m)
                        .ok_or_else(|| format!("names '{m}'; methods are totp, email and webauthn"))
                })
                .collect()
        })?;
        let algorithm = raw.parsed("totp_algorithm", defaults.totp.algorithm, |v| {
            Algorithm::parse(v).ok_or_else(|| "is not one of: SHA1, SHA256, SHA512".into())
        })?;
        let rate = |v: &str| Rate::parse(v);
        // A named profile first; the three numbers, when set, refine it.
        let profile = raw.parsed("argon2_profile", defaults.argon2, |v| {
            Argon2Params::profile(v)
                .ok_or_else(|| "is not one of: owasp, low-cost (load tests only)".into())
        })?;
        let argon2 = Argon2Params {
            memory_kib: raw.number("argon2_memory_kib", profile.memory_kib)?,
            iterations: raw.number("argon2_iterations", profile.iterations)?,
            parallelism: raw.number("argon2_parallelism", profile.parallelism)?,
        };
        let product_name = raw.string("product_name", &defaults.product_name);
        let webauthn = WebauthnSettings {
            rp_id: raw.string("webauthn_rp_id", &defaults.webauthn.rp_id),
            rp_name: raw.string("webauthn_rp_name", &product_name),
            origins: raw.parsed("webauthn_origins", defaults.webauthn.origins.clone(), |v| {
                Ok(v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect())
            })?,
        };
        // Checked here, before the rest, so the message names the settings to change.
        if methods.contains(&Method::Webauthn) {
            webauthn
                .parsed_origins()
                .map_err(|problem| SettingsError::Invalid {
                    name: "for passkeys:".into(),
                    problem: format!("{problem} (or leave webauthn out of MFAGATE_MFA_METHODS)"),
                })?;
        }
        let config = Config {
            jwt_algorithm: raw.parsed("jwt_algorithm", defaults.jwt_algorithm, |v| {
                JwtAlgorithm::parse(v).ok_or_else(|| "is not one of: HS256, EdDSA".into())
            })?,
            mode,
            methods,
            jwt_issuer: raw.string("jwt_issuer", &defaults.jwt_issuer),
            totp_issuer: raw.string("totp_issuer", &defaults.totp_issuer),
            totp: mfagate::core::totp::TotpParams {
                algorithm,
                digits: raw.number("totp_digits", defaults.totp.digits)?,
                period: raw.number("totp_period", defaults.totp.period)?,
            },
            access_ttl: raw.number("access_ttl", defaults.access_ttl)?,
            refresh_ttl: raw.number("refresh_ttl", defaults.refresh_ttl)?,
            setup_token_ttl: raw.number("setup_token_ttl", defaults.setup_token_ttl)?,
            activation_ttl: defaults.activation_ttl,
            challenge_ttl: raw.number("mfa_challenge_ttl", defaults.challenge_ttl)?,
            max_attempts: raw.number("mfa_max_attempts", defaults.max_attempts)?,
            max_challenges: raw.number("mfa_max_challenges", defaults.max_challenges)?,
            max_factors: raw.number("mfa_max_factors", defaults.max_factors)?,
            user_failures: raw.parsed("mfa_user_failures", defaults.user_failures, rate)?,
            login_throttle: raw.parsed("login_throttle", defaults.login_throttle, rate)?,
            login_account_throttle: raw.parsed(
                "login_account_throttle",
                defaults.login_account_throttle,
                rate,
            )?,
            reset_mails_per_hour: raw
                .number("reset_mails_per_hour", defaults.reset_mails_per_hour)?,
            reauth_max_age: raw.number("reauth_max_age", defaults.reauth_max_age)?,
            remember_device_ttl: raw.number("remember_device_ttl", defaults.remember_device_ttl)?,
            security_emails: raw.parsed("security_emails", defaults.security_emails, parse_bool)?,
            audit_retention_days: raw
                .number("audit_retention_days", defaults.audit_retention_days)?,
            hash_queue_per_ip: raw.number("hash_queue_per_ip", defaults.hash_queue_per_ip)?,
            hash_queue_max: raw.number("hash_queue_max", defaults.hash_queue_max)?,
            recovery_code_count: raw.number("recovery_code_count", defaults.recovery_code_count)?,
            password_min_length: raw.number("password_min_length", defaults.password_min_length)?,
            argon2,
            email_verification: raw.parsed("email_verification", false, |v| {
                match v.to_ascii_lowercase().as_str() {
                    "none" => Ok(false),
                    "mandatory" => Ok(true),
                    _ => Err("is not one of: none, mandatory".into()),
                }
            })?,
            email_code_digits: raw.number("email_code_digits", defaults.email_code_digits)?,
            email_resend_interval: raw
                .number("email_resend_interval", defaults.email_resend_interval)?,
            email_max_sends: defaults.email_max_sends,
            verification_ttl: raw.number("verification_ttl", defaults.verification_ttl)?,
            invitation_ttl: raw.number("invitation_ttl", defaults.invitation_ttl)?,
            password_reset_ttl: raw.number("password_reset_ttl", defaults.password_reset_ttl)?,
            product_name,
            webauthn,
            link_base_url: raw.string("link_base_url", &defaults.link_base_url),
        };
        config
            .validate()
            .map_err(|problem| SettingsError::Invalid {
                name: "check".into(),
                problem: problem.to_string(),
            })?;
        let gate = GateOptions {
            prefix: raw.parsed("api_prefix", gate_defaults.prefix, |v| {
                if v.starts_with('/') {
                    Ok(v.to_string())
                } else {
                    Err("must start with '/'".into())
                }
            })?,
            refresh_cookie: raw.parsed("refresh_cookie", false, parse_bool)?,
            ui: raw.parsed("ui", gate_defaults.ui, parse_bool)?,
            trusted_proxies: raw.parsed("trusted_proxies", Vec::new(), client_ip::parse_list)?,
            ip_throttle: raw.parsed("ip_throttle", gate_defaults.ip_throttle, rate)?,
            clock: gate_defaults.clock.clone(),
        };
        let encryption_keys_old = raw.parsed("encryption_keys_old", Vec::new(), |v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(SecretBytes::parse)
                .collect()
        })?;

        Ok(Self {
            listen: raw.parsed("listen", "127.0.0.1:8080".to_string(), parse_listen)?,
            metrics_listen: raw.parsed("metrics_listen", None, |v| parse_listen(v).map(Some))?,
            database_url: raw.string("database_url", "sqlite://mfagate.db"),
            secret_key: raw.secret("secret_key")?,
            encryption_key: raw.secret("encryption_key")?,
            encryption_keys_old,
            config,
            gate,
            log_format: raw.parsed("log_format", LogFormat::Text, |v| match v {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("is not one of: text, json".into()),
            })?,
            cleanup_interval_seconds: raw.number("cleanup_interval", 60)?,
            smtp_url: raw
                .take("smtp_url")
                .map(|(v, _)| Redacted(v))
                .filter(|r| !r.0.trim().is_empty()),
            allow_log_mailer: raw.parsed("allow_log_mailer", false, parse_bool)?,
            email_from: raw.string("email_from", "mfagate <noreply@localhost>"),
            smtp_timeout_seconds: raw.number("smtp_timeout", 5)?,
            database_max_connections: raw.number("database_max_connections", 10)?,
            sqlite_full_sync: raw.parsed("sqlite_synchronous", true, |v| {
                match v.to_ascii_lowercase().as_str() {
                    "full" => Ok(true),
                    "normal" => Ok(false),
                    _ => Err("is not one of: full, normal".into()),
                }
            })?,
            email_templates: raw.take("email_templates").map(|(v, _)| PathBuf::from(v)),
            http: {
                let limits = HttpLimits::default();
                HttpLimits {
                    header_timeout_seconds: raw
                        .number("http_header_timeout", limits.header_timeout_seconds)?
                        .max(1),
                    body_timeout_seconds: raw
                        .number("http_body_timeout", limits.body_timeout_seconds)?
                        .max(1),
                    max_connections: raw
                        .number("max_connections", limits.max_connections)?
                        .max(1),
                }
            },
            unknown,
        })
    }

    /// A server on a random port over a fresh SQLite file in `dir`, with the cheapest argon2
    /// parameters (tests only) and no IP throttle.
    pub fn for_tests(dir: &Path) -> Self {
        let mut settings = Self::from_sources(None, std::iter::empty())
            .unwrap_or_else(|e| panic!("defaults are valid: {e}"));
        settings.listen = "127.0.0.1:0".into();
        settings.database_url = format!("sqlite://{}", dir.join("mfagate.db").display());
        settings.config.argon2 = Argon2Params::insecure_fast();
        settings.gate.ip_throttle = None;
        // Every test client is 127.0.0.1: the fair-queue share would otherwise shed their
        // concurrent hashes (the test of the queue sets its own).
        settings.config.hash_queue_per_ip = 1024;
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://mfagate.db");
        assert_eq!(s.config.mode, MfaMode::Optional);
        assert_eq!(s.config.access_ttl, 900);
        assert_eq!(s.config.max_attempts, 5);
        assert_eq!(s.gate.prefix, "/auth");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let file = "mfa_mode = \"required\"\naccess_ttl = 600\nrefresh_cookie = true\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\n";
        let s = Settings::from_sources(
            Some((Path::new("x.toml"), file)),
            env(&[("MFAGATE_ACCESS_TTL", "120")]),
        )
        .unwrap();
        assert_eq!(s.config.mode, MfaMode::Required);
        assert_eq!(s.config.access_ttl, 120);
        assert!(s.gate.refresh_cookie);
        assert_eq!(s.gate.trusted_proxies.len(), 2);
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_secrets() {
        let error =
            Settings::from_sources(None, env(&[("MFAGATE_ACCESS_TTL", "soon")])).unwrap_err();
        assert!(error.to_string().contains("MFAGATE_ACCESS_TTL"), "{error}");
        let error =
            Settings::from_sources(None, env(&[("MFAGATE_SECRET_KEY", "tooshort")])).unwrap_err();
        assert!(!error.to_string().contains("tooshort"), "{error}");
        let error =
            Settings::from_sources(None, env(&[("MFAGATE_MFA_MODE", "sometimes")])).unwrap_err();
        assert!(
            error.to_string().contains("disabled, optional, required"),
            "{error}"
        );
    }

    #[test]
    fn passkey_settings_are_checked_at_start_and_say_what_to_set() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert!(s.config.methods.contains(&Method::Webauthn));
        assert_eq!(s.config.webauthn.rp_id, "localhost");
        assert_eq!(s.config.webauthn.origins, ["http://localhost:8080"]);
        let named = Settings::from_sources(
            None,
            env(&[
                ("MFAGATE_PRODUCT_NAME", "Acme"),
                ("MFAGATE_WEBAUTHN_RP_ID", "example.com"),
                (
                    "MFAGATE_WEBAUTHN_ORIGINS",
                    "https://example.com, https://app.example.com",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(named.config.webauthn.rp_name, "Acme");
        assert_eq!(named.config.webauthn.origins.len(), 2);
        let error = Settings::from_sources(None, env(&[("MFAGATE_WEBAUTHN_RP_ID", "example.com")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("MFAGATE_WEBAUTHN_ORIGINS") && error.contains("http://localhost:8080"),
            "{error}"
        );
        // Without passkeys among the methods, their settings are not in the way.
        Settings::from_sources(
            None,
            env(&[
                ("MFAGATE_WEBAUTHN_RP_ID", "example.com"),
                ("MFAGATE_MFA_METHODS", "totp,email"),
            ]),
        )
        .unwrap();
    }

    #[test]
    fn a_listen_address_needs_host_and_port() {
        for good in [
            "127.0.0.1:8080",
            "0.0.0.0:1",
            "localhost:3000",
            "[::1]:8080",
        ] {
            let s = Settings::from_sources(None, env(&[("MFAGATE_LISTEN", good)])).unwrap();
            assert_eq!(s.listen, good);
        }
        for bad in [
            "8080",
            ":8080",
            "localhost",
            "127.0.0.1:http",
            "::1:8080",
            "1.2.3.4:70000",
        ] {
            let error = Settings::from_sources(None, env(&[("MFAGATE_LISTEN", bad)])).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("MFAGATE_LISTEN"), "{message}");
            assert!(message.contains("HOST:PORT"), "{message}");
        }
    }

    #[test]
    fn a_bad_boolean_lists_what_is_accepted() {
        let error =
            Settings::from_sources(None, env(&[("MFAGATE_REFRESH_COOKIE", "maybe")])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("MFAGATE_REFRESH_COOKIE"), "{message}");
        assert!(message.contains("true, false, yes, no"), "{message}");
        let s = Settings::from_sources(None, env(&[("MFAGATE_REFRESH_COOKIE", "yes")])).unwrap();
        assert!(s.gate.refresh_cookie);
    }

    #[test]
    fn unknown_names_are_reported() {
        let s = Settings::from_sources(None, env(&[("MFAGATE_ACESS_TTL", "1")])).unwrap();
        assert_eq!(s.unknown, vec!["MFAGATE_ACESS_TTL".to_string()]);
    }
}
