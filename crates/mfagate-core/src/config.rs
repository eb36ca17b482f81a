//! What the domain needs to know about a deployment. The server builds this from its settings;
//! a host app using the library builds it in code, starting from `Config::default()`.

pub use crate::factors::Method;
use crate::password::Argon2Params;
use crate::rate::Rate;
use crate::totp::TotpParams;
pub use crate::webauthn::WebauthnSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaMode {
    /// Second factors are ignored; `/auth/mfa/*` answers `403 mfa_disabled`.
    Disabled,
    /// Users choose to enrol; those who did are challenged.
    Optional,
    /// Every user must pass a second factor; those without one enrol first (setup token).
    Required,
}

impl MfaMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "disabled" => Some(Self::Disabled),
            "optional" => Some(Self::Optional),
            "required" => Some(Self::Required),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// How access tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a key derived from the secret: only mfagate (and holders of the secret)
    /// can verify.
    Hs256,
    /// Ed25519: anyone can verify with the keys published at `/.well-known/jwks.json`.
    EdDsa,
}

impl JwtAlgorithm {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "HS256" => Some(Self::Hs256),
            "EDDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub jwt_algorithm: JwtAlgorithm,
    pub mode: MfaMode,
    /// The methods the server offers (`MFAGATE_MFA_METHODS`).
    pub methods: Vec<Method>,
    /// `iss` of access tokens.
    pub jwt_issuer: String,
    /// Issuer shown in authenticator apps.
    pub totp_issuer: String,
    pub totp: TotpParams,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    pub setup_token_ttl: i64,
    pub activation_ttl: i64,
    pub challenge_ttl: i64,
    pub max_attempts: u32,
    pub max_challenges: u32,
    /// Verified factors a user may hold (`MFAGATE_MFA_MAX_FACTORS`).
    pub max_factors: u32,
    pub user_failures: Option<Rate>,
    /// Failed logins per login name and client IP (the tight limit).
    pub login_throttle: Option<Rate>,
    /// Failed logins per account from every IP (the loose limit, bounding a distributed guess).
    pub login_account_throttle: Option<Rate>,
    /// Password-reset mails per address: at most one a minute, and this many an hour.
    pub reset_mails_per_hour: u32,
    /// How recent an authentication must be for the calls that need one (seconds).
    pub reauth_max_age: i64,
    /// How long a remembered device skips the second factor (seconds).
    pub remember_device_ttl: i64,
    /// Security e-mails: a factor added or removed, recovery codes, password, MFA reset.
    pub security_emails: bool,
    /// Days audit events are kept; 0 keeps them forever.
    pub audit_retention_days: u32,
    /// Password hashes one client IP may have queued or running at once; past it, `429`.
    pub hash_queue_per_ip: usize,
    /// Password hashes queued or running in all; past it, `503` with `Retry-After`.
    pub hash_queue_max: usize,
    pub recovery_code_count: usize,
    pub password_min_length: usize,
    pub argon2: Argon2Params,
    /// Users must verify their e-mail address before they can log in.
    pub email_verification: bool,
    pub email_code_digits: u32,
    /// Minimum seconds between two e-mailed codes for one challenge.
    pub email_resend_interval: i64,
    pub email_max_sends: u32,
    pub verification_ttl: i64,
    pub invitation_ttl: i64,
    pub password_reset_ttl: i64,
    /// Named in e-mails.
    pub product_name: String,
    /// Links in e-mails are `{link_base_url}/verify-email?key=...` and so on.
    pub link_base_url: String,
    /// Where passkeys are bound (`MFAGATE_WEBAUTHN_*`).
    pub webauthn: WebauthnSettings,
}

/// Passwords longer than this are refused: argon2 cost grows with input, and no human needs more.
pub const PASSWORD_MAX_BYTES: usize = 1024;

impl Default for Config {
    fn default() -> Self {
        Self {
            jwt_algorithm: JwtAlgorithm::Hs256,
            mode: MfaMode::Optional,
            methods: vec![Method::Totp, Method::Email, Method::Webauthn],
            jwt_issuer: "mfagate".into(),
            totp_issuer: "mfagate".into(),
            totp: TotpParams::default(),
            access_ttl: 900,
            refresh_ttl: 1_209_600,
            setup_token_ttl: 900,
            activation_ttl: 600,
            challenge_ttl: 300,
            max_attempts: 5,
            max_challenges: 3,
            max_factors: 10,
            user_failures: Some(Rate {
                limit: 10,
                window_seconds: 900,
            }),
            login_throttle: Some(Rate {
                limit: 10,
                window_seconds: 300,
            }),
            login_account_throttle: Some(Rate {
                limit: 100,
                window_seconds: 3600,
            }),
            reset_mails_per_hour: 5,
            reauth_max_age: 300,
            remember_device_ttl: 30 * 24 * 3600,
            security_emails: true,
            audit_retention_days: 400,
            hash_queue_per_ip: 4,
            hash_queue_max: 256,
            recovery_code_count: 10,
            password_min_length: 8,
            argon2: Argon2Params::default(),
            email_verification: false,
            email_code_digits: 7,
            email_resend_interval: 30,
            email_max_sends: 5,
            verification_ttl: 3 * 24 * 3600,
            invitation_ttl: 7 * 24 * 3600,
            password_reset_ttl: 3600,
            product_name: "mfagate".into(),
            link_base_url: "http://127.0.0.1:8080".into(),
            webauthn: WebauthnSettings::default(),
        }
    }
}

impl Config {
    pub fn allows(&self, method: Method) -> bool {
        self.mode != MfaMode::Disabled && self.methods.contains(&method)
    }

    /// Checks the values that could make the server misbehave, once at start-up.
    pub fn validate(&self) -> Result<(), String> {
        if !(6..=8).contains(&self.totp.digits) {
            return Err("TOTP digits must be 6, 7 or 8".into());
        }
        if self.totp.period == 0 {
            return Err("TOTP period must be at least 1 second".into());
        }
        for (name, value) in [
            ("access_ttl", self.access_ttl),
            ("refresh_ttl", self.refresh_ttl),
            ("setup_token_ttl", self.setup_token_ttl),
            ("mfa_challenge_ttl", self.challenge_ttl),
        ] {
            if value <= 0 {
                return Err(format!("{name} must be a positive number of seconds"));
            }
        }
        if self.max_attempts == 0 || self.max_challenges == 0 || self.max_factors == 0 {
            return Err(
                "mfa_max_attempts, mfa_max_challenges and mfa_max_factors must be at least 1"
                    .into(),
            );
        }
        if !(4..=10).contains(&self.email_code_digits) {
            return Err("email_code_digits must be between 4 and 10".into());
        }
        if self.reauth_max_age <= 0 {
            return Err("reauth_max_age must be a positive number of seconds".into());
        }
        if self.remember_device_ttl <= 0 {
            return Err("remember_device_ttl must be a positive number of seconds".into());
        }
        if self.hash_queue_per_ip == 0 || self.hash_queue_max == 0 {
            return Err("hash_queue_per_ip and hash_queue_max must be at least 1".into());
        }
        if self.recovery_code_count == 0 || self.recovery_code_count > 100 {
            return Err("recovery_code_count must be between 1 and 100".into());
        }
        if self.methods.contains(&Method::Webauthn) {
            self.webauthn.parsed_origins()?;
        }
        self.argon2.validate()
    }
}
