//! The flows of mfagate: register, log in, pass a second factor, enrol TOTP, rotate tokens.
//!
//! `Gatekeeper` is what the HTTP handlers call: one method per operation, taking validated input
//! and a `Context` (the time and client address), returning domain values or a core `Error`.
//! It holds no per-request state in memory: every fact that counts lives in the store.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::account::{EmailAddress, Registration, Username};
use crate::audit;
use crate::config::JwtAlgorithm;
use crate::config::{Config, MfaMode};
use crate::email::{self, LogMailer, Mailer, MessageKind, Templates};
use crate::error::{Error, Result};
use crate::factors::{policy, FactorKind, Method};
use crate::jwt::{EdKey, EdKeyRing, Expiring, HsSigner};
use crate::password;
use crate::qr;
use crate::rate::Rate;
use crate::recovery_codes;
use crate::sealing::Sealer;
use crate::secret::{generate_token, hash_token, new_id, SecretBytes};
use crate::store::{
    AccountChange, AttemptClaim, AuditRecord, Challenge, ChallengeCreated, Claim, Completion,
    EmailReservation, Factor, FactorClaim, KeyPurpose, NewChallenge, NewRefreshToken, NewUser,
    RefreshOutcome, RefreshSuccessor, Store, StoredSigningKey, TotpEnabled, TotpEnrolment, User,
    WindowLimit,
};
use crate::throttle::ThrottleKeys;
use crate::totp;

mod email_flows;
mod factors;

pub use factors::{FactorEnrolment, FactorVerifiedOutcome, FactorView};

pub use email_flows::INVITED_PASSWORD_MARKER;

/// The keys a deployment runs with. `signing` is the root secret; purpose keys derive from it.
#[derive(Debug, Clone)]
pub struct Keys {
    pub signing: SecretBytes,
    /// Seals secrets at rest; newest first is `sealing`, older ones still open.
    pub sealing: SecretBytes,
    pub sealing_old: Vec<SecretBytes>,
}

impl Keys {
    /// Everything derived from one root secret (the usual case).
    pub fn from_secret(
        secret: SecretBytes,
        encryption_key: Option<SecretBytes>,
        old: Vec<SecretBytes>,
    ) -> Self {
        let sealing = encryption_key.unwrap_or_else(|| secret.derive("sealing v1"));
        Self {
            signing: secret,
            sealing,
            sealing_old: old,
        }
    }
}

/// When and from where a request came.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub now: i64,
    pub ip: Option<IpAddr>,
}

#[derive(Clone, Serialize)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}
crate::debug_showing!(TokenPair {
    token_type,
    expires_in
});

#[derive(Clone, Serialize)]
pub struct ChallengeIssued {
    pub ephemeral_token: String,
    pub methods: Vec<Method>,
    pub expires_in: i64,
    /// Present when e-mail is the preferred or only method: whether login sent the first code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_sent: Option<bool>,
}
crate::debug_showing!(ChallengeIssued {
    methods,
    expires_in,
    email_sent
});

#[derive(Clone, Serialize)]
pub struct SetupIssued {
    pub setup_token: String,
    pub expires_in: i64,
}
crate::debug_showing!(SetupIssued { expires_in });

/// What a correct password leads to.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    Tokens(TokenPair),
    Challenge(ChallengeIssued),
    SetupRequired(SetupIssued),
}

/// What registration leads to.
#[derive(Debug, Clone)]
pub enum RegisterOutcome {
    LoggedIn(LoginOutcome),
    /// Verification is mandatory: a key was mailed (`sent` is false if the mail server failed;
    /// the user can ask again at resend-verification).
    VerificationSent {
        sent: bool,
    },
}

/// Claims of an access token (RFC 7519, `amr` per RFC 8176).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub iss: String,
    pub amr: Vec<String>,
    /// When the user last proved who they are (OpenID Connect's `auth_time`): the login that
    /// began this session. Refreshing keeps it.
    #[serde(default)]
    pub auth_time: i64,
}

impl Expiring for AccessClaims {
    fn expires_at(&self) -> i64 {
        self.exp
    }
}

impl AccessClaims {
    /// Whether the token was issued after a second factor.
    pub fn has_second_factor(&self) -> bool {
        self.amr.iter().any(|m| m == "mfa")
    }

    /// A second factor proved within the last `max_age` seconds.
    pub fn recent_second_factor(&self, now: i64, max_age: i64) -> bool {
        self.has_second_factor() && now - self.auth_time <= max_age
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ActivationClaims {
    sub: String,
    iat: i64,
    exp: i64,
    /// The new TOTP secret, sealed: the token carries the pending enrolment, so nothing is
    /// stored until the user proves their app has the secret.
    secret: String,
    /// The user's credential epoch when the enrolment began: a password reset, MFA reset or
    /// disable moves it on, and the enrolment then dies.
    #[serde(default)]
    epoch: i64,
}

impl Expiring for ActivationClaims {
    fn expires_at(&self) -> i64 {
        self.exp
    }
}

/// Who calls the TOTP activation endpoints: a logged-in user, or (in `required` mode) a user
/// holding a setup token, who completes their first login by enrolling.
#[derive(Debug, Clone)]
pub enum Enroller {
    Access(AccessClaims),
    /// `token_hash` is the setup token's, spent by the enrolment.
    Setup {
        user_id: String,
        token_hash: String,
    },
}

impl Enroller {
    pub fn user_id(&self) -> &str {
        match self {
            Self::Access(claims) => &claims.sub,
            Self::Setup { user_id, .. } => user_id,
        }
    }
}

#[derive(Clone, Serialize)]
pub struct TotpEnrollment {
    pub secret: String,
    pub totp_url: String,
    pub activation_token: String,
    pub qr_code_svg: String,
    pub qr_code_data_uri: String,
}
crate::debug_showing!(TotpEnrollment {});

#[derive(Clone)]
pub struct TotpActivated {
    pub recovery_codes: Vec<String>,
    /// A new session with the factor in its `amr`: enrolment ends every session that began
    /// without a second factor (the caller's too), and with a setup token it completes a login.
    pub tokens: TokenPair,
}
crate::debug_showing!(TotpActivated {});

#[derive(Debug, Clone)]
pub struct MfaStatus {
    pub mfa_enabled: bool,
    pub methods: Vec<Method>,
    pub preferred_method: String,
    pub created_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub recovery_codes_remaining: usize,
}

/// The name the first TOTP factor gets when it is enrolled through `totp/activate`.
pub const FIRST_TOTP_NAME: &str = "Authenticator";

pub struct Gatekeeper {
    store: Arc<dyn Store>,
    config: Config,
    access_signer: HsSigner,
    /// With `JwtAlgorithm::EdDsa`: the Ed25519 keys from the store, shared by all instances.
    ed_keys: Option<std::sync::RwLock<EdKeyRing>>,
    /// When the Ed25519 keys were last read from the store (reloads are rate-limited).
    keys_loaded_at: std::sync::atomic::AtomicI64,
    activation_signer: HsSigner,
    sealer: Sealer,
    /// Verified against when the username is unknown, so that case costs a full hash too.
    dummy_hash: String,
    /// Keys the hashes of e-mailed codes.
    email_code_key: SecretBytes,
    mailer: Arc<dyn Mailer>,
    templates: Templates,
    audit_writer: audit::AuditWriter,
    hasher: password::Hasher,
    throttle_keys: ThrottleKeys,
}

impl std::fmt::Debug for Gatekeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatekeeper")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const ACCESS_TOKEN_TYPE: &str = "JWT";
const ACTIVATION_TOKEN_TYPE: &str = "mfagate-totp-activation+jwt";
/// Longest username or e-mail worth looking up.
const LOGIN_MAX_CHARS: usize = 320;

fn signing_key_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// Refuses to start with keys that cannot open what the database holds. Without this, a
/// restart with another key (a new `openssl rand`, a mistyped variable, a lost key file) serves
/// password logins and then fails every TOTP code, recovery code and EdDSA signature with an
/// internal error. Each sealing key the database has been used with is recorded by its id (which
/// derives from the key, so it is a key check value and reveals nothing); the current key is
/// recorded once it passes.
async fn check_sealing_keys(store: &dyn Store, sealer: &Sealer, now: i64) -> Result<()> {
    let recorded = store.sealing_key_ids().await?;
    let missing: Vec<&String> = recorded.iter().filter(|id| !sealer.has_key(id)).collect();
    if !missing.is_empty() {
        let missing = missing
            .iter()
            .map(|id| id.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let configured = sealer.key_ids().join(", ");
        return Err(Error::KeyMismatch(format!(
            "this database was set up with the sealing key of id {missing}, and holds data \
             sealed with it that the configured keys ({configured}) cannot open. Start with the secret key the database was created \
             with (the server keeps it in the key file beside a SQLite database, or takes \
             MFAGATE_SECRET_KEY / MFAGATE_ENCRYPTION_KEY); to change keys, keep the old one in \
             MFAGATE_ENCRYPTION_KEYS_OLD"
        )));
    }
    if !recorded.iter().any(|id| id == sealer.current_key_id()) {
        store
            .record_sealing_key(sealer.current_key_id(), now)
            .await?;
    }
    Ok(())
}

/// What a user holds, as the pure rules of `factors::policy` need it.
fn holdings(user: &User, recovery_codes: bool) -> policy::Holdings {
    policy::Holdings {
        totp: user.has_totp,
        recovery_codes,
        email_verified: user.email_verified,
        email_otp: user.email_otp,
        prefers_email: user.preferred_method == Method::Email.as_str(),
    }
}

/// The audit detail of a second factor that answered a challenge: its `amr`, and the factor.
fn claim_detail(method: Method, claim: &FactorClaim) -> String {
    match claim {
        FactorClaim::TotpStep { factor_id, .. } => format!("{} factor {factor_id}", method.amr()),
        _ => method.amr().to_string(),
    }
}

/// `wanted`, or if one of `factors` has that name (case-insensitively), `wanted` with the
/// first number from 2 that makes it free.
fn free_name(wanted: &str, factors: &[Factor]) -> String {
    let taken = |name: &str| {
        factors
            .iter()
            .any(|f| crate::factors::name_key(&f.name) == crate::factors::name_key(name))
    };
    if !taken(wanted) {
        return wanted.to_string();
    }
    (2..)
        .map(|n| format!("{wanted} {n}"))
        .find(|name| !taken(name))
        .unwrap_or_else(|| wanted.to_string())
}

/// Rows the clean-up deletes per transaction: small enough that a write queued behind a batch
/// waits a few milliseconds, large enough that a backlog of a million rows goes in minutes.
pub const CLEANUP_BATCH: u32 = 100;

fn stored_signing_key(key: &EdKey, sealer: &Sealer) -> Result<StoredSigningKey> {
    let seed = key
        .seed()
        .ok_or_else(|| Error::Internal("a verify-only key cannot be stored".into()))?;
    Ok(StoredSigningKey {
        kid: key.kid.clone(),
        private_sealed: sealer.seal(&seed, &signing_key_context(&key.kid)),
        public_key: key.public_key_b64(),
        created_at: key.created_at,
        retired_at: key.retired_at,
    })
}

async fn load_key_ring(store: &dyn Store, sealer: &Sealer) -> Result<EdKeyRing> {
    let mut keys = Vec::new();
    for stored in store.signing_keys().await? {
        let seed = sealer.open(&stored.private_sealed, &signing_key_context(&stored.kid))?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| Error::Internal(format!("signing key {} is not 32 bytes", stored.kid)))?;
        keys.push(EdKey::from_seed(
            &seed,
            stored.created_at,
            stored.retired_at,
        ));
    }
    Ok(EdKeyRing::new(keys))
}

/// The associated data TOTP secrets are sealed with (see `sealing`); public for tools that seed
/// users directly, such as the benchmark.
pub fn totp_context(user_id: &str) -> String {
    format!("totp:{user_id}")
}

/// The associated data recovery codes are sealed with; public for the same tools.
pub fn recovery_context(user_id: &str) -> String {
    format!("recovery:{user_id}")
}

fn activation_context(user_id: &str) -> String {
    format!("activation:{user_id}")
}

fn seconds_until(at: i64, now: i64) -> u64 {
    u64::try_from((at - now).max(1)).unwrap_or(1)
}

impl Gatekeeper {
    /// Builds the service; computes one password hash (the timing decoy) with the configured cost.
    ///
    /// With EdDSA, loads the signing keys from the store, creating the first one (stamped
    /// `now`) if there is none yet.
    pub async fn new(store: Arc<dyn Store>, config: Config, keys: Keys, now: i64) -> Result<Self> {
        config.validate().map_err(Error::Internal)?;
        let dummy_hash = password::hash_password(generate_token(), config.argon2).await?;
        let sealer = Sealer::new(&keys.sealing, &keys.sealing_old);
        check_sealing_keys(&*store, &sealer, now).await?;
        let ed_keys = match config.jwt_algorithm {
            JwtAlgorithm::Hs256 => None,
            JwtAlgorithm::EdDsa => {
                if store.signing_keys().await?.is_empty() {
                    let first = EdKey::generate(now);
                    store
                        .add_first_signing_key(&stored_signing_key(&first, &sealer)?)
                        .await?;
                }
                Some(std::sync::RwLock::new(
                    load_key_ring(&*store, &sealer).await?,
                ))
            }
        };
        Ok(Self {
            audit_writer: audit::AuditWriter::spawn(store.clone()),
            hasher: password::Hasher::with_queue(
                config.argon2,
                config.hash_queue_per_ip,
                config.hash_queue_max,
            ),
            throttle_keys: ThrottleKeys::new(keys.signing.derive("throttle keys")),
            ed_keys,
            keys_loaded_at: std::sync::atomic::AtomicI64::new(now),
            access_signer: HsSigner::new(
                keys.signing.derive("access token hs256"),
                ACCESS_TOKEN_TYPE,
            ),
            activation_signer: HsSigner::new(
                keys.signing.derive("totp activation token"),
                ACTIVATION_TOKEN_TYPE,
            ),
            sealer,
            email_code_key: keys.signing.derive("email code hash"),
            store,
            config,
            dummy_hash,
            mailer: Arc::new(LogMailer),
            templates: Templates::default(),
        })
    }

    /// Sends mail through `mailer` (the default writes mail to the log).
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    pub fn with_templates(mut self, templates: Templates) -> Self {
        self.templates = templates;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn audit(
        &self,
        event: &'static str,
        user_id: Option<&str>,
        ctx: &Context,
        detail: Option<String>,
    ) {
        tracing::info!(
            target: "mfagate::audit",
            event,
            user_id = user_id.unwrap_or("-"),
            ip = %ctx.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
            detail = detail.as_deref().unwrap_or(""),
        );
        let record = AuditRecord {
            at: ctx.now,
            user_id: user_id.map(str::to_string),
            event,
            ip: ctx.ip.map(|ip| ip.to_string()),
            detail,
        };
        self.audit_writer.record(record).await;
    }

    /// Waits until every audit event so far is in the database (at shutdown, and in tests).
    pub async fn flush_audit(&self) {
        self.audit_writer.flush().await;
    }

    // ----- accounts -----

    /// Registers a user. The outcome is a token pair, or in `required` mode a setup token.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
        ctx: &Context,
    ) -> Result<(User, RegisterOutcome)> {
        let user = self
            .create_user(username, email, password, false, ctx)
            .await?;
        self.audit(audit::USER_REGISTERED, Some(&user.id), ctx, None)
            .await;
        if self.config.email_verification {
            let sent = self
                .send_key_mail(&user, KeyPurpose::Verification, ctx)
                .await
                .is_ok();
            return Ok((user, RegisterOutcome::VerificationSent { sent }));
        }
        let outcome = if self.config.mode == MfaMode::Required {
            LoginOutcome::SetupRequired(self.issue_setup_token(&user.id, ctx).await?)
        } else {
            LoginOutcome::Tokens(self.issue_tokens(&user.id, &["pwd"], ctx.now).await?)
        };
        Ok((user, RegisterOutcome::LoggedIn(outcome)))
    }

    /// Creates a user directly (command line, tests, host apps seeding users).
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
        is_admin: bool,
        ctx: &Context,
    ) -> Result<User> {
        let registration =
            Registration::parse(username, email, password, self.config.password_min_length)?;
        let password_hash = self
            .hasher
            .hash(registration.password.clone(), ctx.ip)
            .await?;
        let user = self
            .store
            .create_user(&NewUser {
                id: new_id(),
                username: registration.username.as_str().to_string(),
                email: registration.email.as_str().to_string(),
                password_hash,
                is_admin,
                created_at: ctx.now,
            })
            .await?;
        if is_admin {
            self.audit(
                audit::USER_CREATED,
                Some(&user.id),
                ctx,
                Some("admin".into()),
            )
            .await;
        }
        Ok(user)
    }

    pub async fn login(&self, login: &str, password: &str, ctx: &Context) -> Result<LoginOutcome> {
        // NUL can be in no stored name (and PostgreSQL refuses it in text): such a login is
        // simply unknown.
        let login = login.trim().to_lowercase().replace('\0', "\u{fffd}");
        let user = if login.chars().count() > LOGIN_MAX_CHARS || login.contains('\u{fffd}') {
            None
        } else {
            self.store.user_by_login(&login).await?
        };
        let windows = self.login_windows(&login, user.as_ref(), ctx);
        // A disabled account is checked against the decoy: same time, and a failure like any.
        let active = user.as_ref().filter(|u| !u.disabled);
        let matched = self
            .attempt_password(&windows, active, password, ctx)
            .await?;
        let user = match user {
            Some(user) if matched => user,
            user => {
                let detail = if user.is_none() {
                    Some("unknown user".to_string())
                } else {
                    None
                };
                self.audit(
                    audit::LOGIN_FAILED,
                    user.as_ref().map(|u| u.id.as_str()),
                    ctx,
                    detail,
                )
                .await;
                return Err(Error::InvalidCredentials);
            }
        };
        if self.config.email_verification && !user.email_verified {
            return Err(Error::EmailNotVerified);
        }
        self.after_password(&user, ctx).await
    }

    /// Counts one request from `ip` in the per-IP request window (`rate`), which every
    /// instance on the database shares: N instances behind a balancer allow the limit once,
    /// not N times. The caller refuses first from its own memory, which costs no write.
    pub async fn claim_ip_request(&self, rate: Rate, ip: IpAddr, now: i64) -> Result<()> {
        let window = self
            .throttle_keys
            .window(rate, "request-ip", &[&ip.to_string()]);
        match self.store.claim_request_window(&window, now).await? {
            Claim::Granted => Ok(()),
            Claim::Refused { retry_after } => Err(Error::Throttled {
                retry_after: seconds_until(now + retry_after, now),
            }),
        }
    }

    /// The windows a password attempt for `name` (as typed, lowercased) is counted in: the
    /// tight one per name and client IP, and the loose one per account from every IP.
    ///
    /// The tight one is keyed by the name as typed, known or not, so a user's username and
    /// address fill different windows and a 429 on one says nothing about the other; only the
    /// loose per-account window links them, and only past its own limit.
    fn login_windows(&self, name: &str, user: Option<&User>, ctx: &Context) -> Vec<WindowLimit> {
        let ip = ctx.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let mut windows = Vec::new();
        if let Some(rate) = self.config.login_throttle {
            windows.push(self.throttle_keys.window(rate, "login-ip", &[name, &ip]));
        }
        if let Some(rate) = self.config.login_account_throttle {
            let account = match user {
                Some(user) => ["user", user.id.as_str()],
                None => ["name", name],
            };
            windows.push(self.throttle_keys.window(rate, "login-account", &account));
        }
        windows
    }

    /// One password attempt for `user` (None: unknown), counted in `windows` before any hash
    /// is computed, so of a burst at most the limit is ever checked. The windows count
    /// failures: a right password hands its claim back, and so does an attempt the hash queue
    /// refused (it was never checked).
    async fn attempt_password(
        &self,
        windows: &[WindowLimit],
        user: Option<&User>,
        password: &str,
        ctx: &Context,
    ) -> Result<bool> {
        let user_id = user.map(|u| u.id.as_str());
        if !windows.is_empty() {
            if let Claim::Refused { retry_after } =
                self.store.claim_windows(windows, ctx.now).await?
            {
                self.audit(audit::LOGIN_THROTTLED, user_id, ctx, None).await;
                return Err(Error::Throttled {
                    retry_after: seconds_until(ctx.now + retry_after, ctx.now),
                });
            }
        }
        let checked = self.check_password(user, password, ctx).await;
        if !matches!(checked, Ok(false)) && !windows.is_empty() {
            self.store.release_windows(windows, ctx.now).await?;
        }
        checked
    }

    /// One full argon2 verification, whoever asks: an unknown user and one without a password
    /// yet (a pending invitation) are checked against the decoy hash, so the time tells
    /// nothing.
    async fn check_password(
        &self,
        user: Option<&User>,
        password: &str,
        ctx: &Context,
    ) -> Result<bool> {
        let stored = user
            .map(|u| u.password_hash.as_str())
            .filter(|hash| password::is_password_hash(hash));
        let hash = stored.unwrap_or(&self.dummy_hash).to_string();
        // Over-long passwords still cost one hash (of nothing), so their answer takes as long.
        let typed = if password.len() <= crate::config::PASSWORD_MAX_BYTES {
            password
        } else {
            ""
        };
        let verified = self.hasher.verify(typed.to_string(), hash, ctx.ip).await?;
        Ok(verified && stored.is_some() && password.len() <= crate::config::PASSWORD_MAX_BYTES)
    }

    /// What a user who proved their password gets: tokens, a challenge, or a setup token.
    pub async fn after_password(&self, user: &User, ctx: &Context) -> Result<LoginOutcome> {
        if self.config.mode == MfaMode::Disabled {
            self.audit(audit::LOGIN_OK, Some(&user.id), ctx, None).await;
            return Ok(LoginOutcome::Tokens(
                self.issue_tokens(&user.id, &["pwd"], ctx.now).await?,
            ));
        }
        let methods = self.verify_methods(user).await?;
        if !methods.is_empty() {
            return Ok(LoginOutcome::Challenge(
                self.issue_challenge(user, methods, ctx).await?,
            ));
        }
        if self.config.mode == MfaMode::Required {
            return Ok(LoginOutcome::SetupRequired(
                self.issue_setup_token(&user.id, ctx).await?,
            ));
        }
        self.audit(audit::LOGIN_OK, Some(&user.id), ctx, None).await;
        Ok(LoginOutcome::Tokens(
            self.issue_tokens(&user.id, &["pwd"], ctx.now).await?,
        ))
    }

    /// What `mfa/verify` accepts for this user, preferred first.
    async fn verify_methods(&self, user: &User) -> Result<Vec<Method>> {
        let recovery_codes = user.has_totp
            && self.config.allows(Method::Totp)
            && self.store.count_unused_recovery_codes(&user.id).await? > 0;
        Ok(policy::challenge_methods(
            &self.config,
            &holdings(user, recovery_codes),
        ))
    }

    async fn issue_challenge(
        &self,
        user: &User,
        methods: Vec<Method>,
        ctx: &Context,
    ) -> Result<ChallengeIssued> {
        let token = generate_token();
        let expires_at = ctx.now + self.config.challenge_ttl;
        let challenge_id = new_id();
        let created = self
            .store
            .create_challenge(
                &NewChallenge {
                    id: challenge_id.clone(),
                    user_id: user.id.clone(),
                    token_hash: hash_token(&token),
                    created_at: ctx.now,
                    expires_at,
                },
                self.config.max_challenges,
                self.config.max_attempts,
                ctx.now,
            )
            .await?;
        if let ChallengeCreated::TooMany { earliest_expiry } = created {
            return Err(Error::TooManyChallenges {
                retry_after: seconds_until(earliest_expiry, ctx.now),
            });
        }
        self.audit(
            audit::CHALLENGE_ISSUED,
            Some(&user.id),
            ctx,
            Some(
                methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        )
        .await;
        // E-mail preferred or alone: the user needs the code now. A mail failure does not fail
        // the login; the client sees `email_sent: false` and can ask again.
        let email_sent = if methods.first() == Some(&Method::Email) {
            Some(
                self.send_email_code(&challenge_id, expires_at, user, ctx)
                    .await
                    .is_ok(),
            )
        } else {
            None
        };
        Ok(ChallengeIssued {
            ephemeral_token: token,
            methods,
            expires_in: self.config.challenge_ttl,
            email_sent,
        })
    }

    async fn issue_setup_token(&self, user_id: &str, ctx: &Context) -> Result<SetupIssued> {
        let token = generate_token();
        self.store
            .create_setup_token(
                &hash_token(&token),
                user_id,
                ctx.now + self.config.setup_token_ttl,
            )
            .await?;
        self.audit(audit::SETUP_TOKEN_ISSUED, Some(user_id), ctx, None)
            .await;
        Ok(SetupIssued {
            setup_token: token,
            expires_in: self.config.setup_token_ttl,
        })
    }

    /// A new session (refresh family) for a user who just authenticated.
    async fn issue_tokens(&self, user_id: &str, amr: &[&str], now: i64) -> Result<TokenPair> {
        let (refresh, record) = self.new_refresh_token(user_id, amr, now);
        self.store.insert_refresh_token(&record).await?;
        self.token_pair(user_id, amr, now, refresh, now)
    }

    /// The first refresh token of a new session begun by an authentication at `now`, and the
    /// row that stores its hash.
    fn new_refresh_token(
        &self,
        user_id: &str,
        amr: &[&str],
        now: i64,
    ) -> (String, NewRefreshToken) {
        let refresh = generate_token();
        let record = NewRefreshToken {
            token_hash: hash_token(&refresh),
            user_id: user_id.to_string(),
            family_id: new_id(),
            amr: amr.join(" "),
            auth_time: now,
            created_at: now,
            expires_at: now + self.config.refresh_ttl,
        };
        (refresh, record)
    }

    /// Signs the access token that goes with a stored refresh token.
    fn token_pair(
        &self,
        user_id: &str,
        amr: &[&str],
        auth_time: i64,
        refresh: String,
        now: i64,
    ) -> Result<TokenPair> {
        let claims = AccessClaims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.config.access_ttl,
            jti: new_id(),
            iss: self.config.jwt_issuer.clone(),
            amr: amr.iter().map(|m| m.to_string()).collect(),
            auth_time,
        };
        let signed = match &self.ed_keys {
            Some(ring) => ring
                .read()
                .map_err(|_| Error::Internal("signing key lock poisoned".into()))?
                .sign(&claims),
            None => self.access_signer.sign(&claims),
        };
        let access =
            signed.map_err(|e| Error::Internal(format!("signing an access token: {e}")))?;
        Ok(TokenPair {
            access,
            refresh,
            token_type: "Bearer",
            expires_in: self.config.access_ttl,
        })
    }

    // ----- second factor at login -----

    pub async fn verify_second_factor(
        &self,
        ephemeral_token: &str,
        code: &str,
        ctx: &Context,
    ) -> Result<TokenPair> {
        if self.config.mode == MfaMode::Disabled {
            return Err(Error::MfaDisabled);
        }
        let max = self.config.max_attempts;
        let challenge = self
            .store
            .challenge_by_token(&hash_token(ephemeral_token))
            .await?
            .filter(|c| !c.spent && c.expires_at > ctx.now)
            .ok_or(Error::InvalidToken)?;
        let user_id = challenge.user_id.clone();
        // The attempt is claimed before the code is looked at: of any burst, at most `max`
        // codes per challenge (and the user's window) are ever checked.
        let user_window = self.user_failure_window(&user_id);
        let failures = match self
            .store
            .claim_challenge_attempt(&challenge.id, max, user_window.as_ref(), ctx.now)
            .await?
        {
            AttemptClaim::Claimed { failures } => failures,
            AttemptClaim::ChallengeGone => return Err(Error::InvalidToken),
            AttemptClaim::ChallengeDead { expires_at } => {
                return Err(Error::TooManyAttempts {
                    retry_after: seconds_until(expires_at, ctx.now),
                })
            }
            AttemptClaim::UserThrottled { retry_after } => {
                self.audit(audit::SECOND_FACTOR_THROTTLED, Some(&user_id), ctx, None)
                    .await;
                return Err(Error::Throttled {
                    retry_after: seconds_until(ctx.now + retry_after, ctx.now),
                });
            }
        };
        if let Some((method, claim)) = self
            .identify_second_factor(&user_id, code, Some(&challenge), ctx.now)
            .await?
        {
            let amr = ["pwd", "mfa", method.amr()];
            let detail = claim_detail(method, &claim);
            let (refresh, record) = self.new_refresh_token(&user_id, &amr, ctx.now);
            match self
                .store
                // The user's window counts failures: a right code hands its claim back.
                .complete_challenge(&challenge.id, claim, &record, user_window.as_ref(), ctx.now)
                .await?
            {
                Completion::Completed => {
                    self.audit(audit::SECOND_FACTOR_OK, Some(&user_id), ctx, Some(detail))
                        .await;
                    if method == Method::RecoveryCode {
                        self.audit(audit::RECOVERY_CODE_USED, Some(&user_id), ctx, None)
                            .await;
                    }
                    return self.token_pair(&user_id, &amr, ctx.now, refresh, ctx.now);
                }
                // Spent by another right answer, or ended by a password reset or a disable.
                Completion::ChallengeGone => return Err(Error::InvalidToken),
                // Replayed step or code used meanwhile: a wrong code, like any other.
                Completion::FactorRefused => {}
            }
        }
        self.audit(audit::SECOND_FACTOR_FAILED, Some(&user_id), ctx, None)
            .await;
        Err(Error::InvalidCode {
            attempts_remaining: Some(max.saturating_sub(failures)),
        })
    }

    /// The user's window of failed second-factor attempts, across all of their challenges.
    fn user_failure_window(&self, user_id: &str) -> Option<WindowLimit> {
        self.config
            .user_failures
            .map(|rate| self.throttle_keys.window(rate, "mfa-user", &[user_id]))
    }

    /// Checks a TOTP or recovery code and, if right, uses it up atomically. `None` for a wrong,
    /// replayed or already used code.
    async fn check_second_factor(
        &self,
        user_id: &str,
        code: &str,
        challenge: Option<&Challenge>,
        now: i64,
    ) -> Result<Option<Method>> {
        let Some((method, claim)) = self
            .identify_second_factor(user_id, code, challenge, now)
            .await?
        else {
            return Ok(None);
        };
        let claimed = match claim {
            FactorClaim::TotpStep { factor_id, step } => {
                self.store
                    .accept_totp_step(user_id, &factor_id, step, now)
                    .await?
            }
            FactorClaim::RecoveryCode(code_id) => {
                self.store
                    .consume_recovery_code(user_id, code_id, now)
                    .await?
            }
            FactorClaim::EmailCode => true,
        };
        Ok(claimed.then_some(method))
    }

    /// Which factor `code` proves, and what must be claimed for it to count; claims nothing.
    async fn identify_second_factor(
        &self,
        user_id: &str,
        code: &str,
        challenge: Option<&Challenge>,
        now: i64,
    ) -> Result<Option<(Method, FactorClaim)>> {
        // An e-mailed code is bound to its challenge: spending the challenge uses it up.
        if let Some(challenge) = challenge {
            if let Some(stored_hash) = challenge.email_code_hash.as_deref() {
                let typed = totp::normalize_code(code);
                let shaped = typed.len() == self.config.email_code_digits as usize
                    && typed.bytes().all(|b| b.is_ascii_digit());
                let hash = email::code_hash(&self.email_code_key, &challenge.id, &typed);
                if shaped
                    && crate::secret::constant_time_eq(hash.as_bytes(), stored_hash.as_bytes())
                {
                    return Ok(Some((Method::Email, FactorClaim::EmailCode)));
                }
            }
        }
        let factors = self.store.factors(user_id).await?;
        if factors.is_empty() {
            return Ok(None);
        }
        if totp::looks_like_code(code, &self.config.totp) {
            return self.match_totp(user_id, &factors, code, now);
        }
        let typed = recovery_codes::normalize(code);
        if typed.is_empty() {
            return Ok(None);
        }
        let mut matched = None;
        // Every unused code is opened and compared, so timing does not tell which one matched.
        for stored in self.store.unused_recovery_codes(user_id).await? {
            let plain = self
                .sealer
                .open(&stored.code_sealed, &recovery_context(user_id))?;
            if recovery_codes::matches(&typed, &String::from_utf8_lossy(&plain)) {
                matched = Some(stored.id);
            }
        }
        Ok(matched.map(|code_id| (Method::RecoveryCode, FactorClaim::RecoveryCode(code_id))))
    }

    /// The first TOTP factor of the user for which `code` is right at a step later than the
    /// factor's last, with that step to claim. Replay protection is per factor: a step used by
    /// one factor is still open to another.
    fn match_totp(
        &self,
        user_id: &str,
        factors: &[Factor],
        code: &str,
        now: i64,
    ) -> Result<Option<(Method, FactorClaim)>> {
        for factor in factors.iter().filter(|f| f.kind == FactorKind::Totp) {
            let Some(sealed) = &factor.secret_sealed else {
                continue;
            };
            let secret = self.sealer.open(sealed, &totp_context(user_id))?;
            let Some(step) = totp::matching_step(&secret, code, now, &self.config.totp) else {
                continue;
            };
            // Cheap early refusal of a replay; the claim itself is atomic in the store.
            if factor.last_step.is_some_and(|last| step <= last) {
                continue;
            }
            return Ok(Some((
                Method::Totp,
                FactorClaim::TotpStep {
                    factor_id: factor.id.clone(),
                    step,
                },
            )));
        }
        Ok(None)
    }

    /// A code demanded by a management call (deactivate, regenerate): it is claimed against
    /// the user's failure window before it is checked, so a stolen access token cannot
    /// brute-force the factor, not even with a burst.
    async fn require_second_factor(
        &self,
        user_id: &str,
        code: &str,
        ctx: &Context,
    ) -> Result<Method> {
        let window = self.user_failure_window(user_id);
        if let Some(window) = &window {
            if let Claim::Refused { retry_after } = self
                .store
                .claim_windows(std::slice::from_ref(window), ctx.now)
                .await?
            {
                self.audit(audit::SECOND_FACTOR_THROTTLED, Some(user_id), ctx, None)
                    .await;
                return Err(Error::Throttled {
                    retry_after: seconds_until(ctx.now + retry_after, ctx.now),
                });
            }
        }
        match self
            .check_second_factor(user_id, code, None, ctx.now)
            .await?
        {
            Some(factor) => {
                if let Some(window) = &window {
                    self.store
                        .release_windows(std::slice::from_ref(window), ctx.now)
                        .await?;
                }
                if factor == Method::RecoveryCode {
                    self.audit(audit::RECOVERY_CODE_USED, Some(user_id), ctx, None)
                        .await;
                }
                Ok(factor)
            }
            None => {
                self.audit(audit::SECOND_FACTOR_FAILED, Some(user_id), ctx, None)
                    .await;
                Err(Error::InvalidCode {
                    attempts_remaining: None,
                })
            }
        }
    }

    // ----- tokens -----

    pub async fn refresh(&self, refresh_token: &str, ctx: &Context) -> Result<TokenPair> {
        let refresh = generate_token();
        let successor = RefreshSuccessor {
            token_hash: hash_token(&refresh),
            created_at: ctx.now,
            expires_at: ctx.now + self.config.refresh_ttl,
        };
        match self
            .store
            .rotate_refresh_token(&hash_token(refresh_token), &successor, ctx.now)
            .await?
        {
            RefreshOutcome::Rotated {
                user_id,
                amr,
                auth_time,
                ..
            } => {
                let amr: Vec<&str> = amr.split(' ').filter(|m| !m.is_empty()).collect();
                self.token_pair(&user_id, &amr, auth_time, refresh, ctx.now)
            }
            RefreshOutcome::Reused { user_id, family_id } => {
                self.audit(
                    audit::REFRESH_REUSE_DETECTED,
                    Some(&user_id),
                    ctx,
                    Some(format!("family {family_id} revoked")),
                )
                .await;
                Err(Error::InvalidToken)
            }
            RefreshOutcome::Invalid => Err(Error::InvalidToken),
        }
    }

    pub async fn logout(&self, refresh_token: &str, ctx: &Context) -> Result<()> {
        let user_id = self
            .store
            .revoke_refresh_family(&hash_token(refresh_token), ctx.now)
            .await?
            .ok_or(Error::InvalidToken)?;
        self.audit(audit::LOGOUT, Some(&user_id), ctx, None).await;
        Ok(())
    }

    /// Verifies an access token: signature, type, expiry and issuer.
    pub async fn authenticate(&self, token: &str, now: i64) -> Result<AccessClaims> {
        let verified = match &self.ed_keys {
            None => self.access_signer.verify(token, now),
            Some(_) => match self.verify_ed(token, now) {
                // A key another instance (or `mfagate keys rotate`) added since we last looked.
                Err(crate::jwt::JwtError::UnknownKey) if self.may_reload_keys(now) => {
                    self.reload_signing_keys(now).await?;
                    self.verify_ed(token, now)
                }
                other => other,
            },
        };
        let claims: AccessClaims = verified.map_err(|reason| {
            tracing::debug!(%reason, "access token refused");
            Error::NotAuthenticated
        })?;
        if claims.iss != self.config.jwt_issuer {
            tracing::debug!("access token refused: another issuer");
            return Err(Error::NotAuthenticated);
        }
        Ok(claims)
    }

    fn verify_ed(&self, token: &str, now: i64) -> Result<AccessClaims, crate::jwt::JwtError> {
        match &self.ed_keys {
            Some(ring) => ring
                .read()
                .map_err(|_| crate::jwt::JwtError::UnknownKey)?
                .verify(token, now),
            None => Err(crate::jwt::JwtError::UnknownKey),
        }
    }

    /// At most one reload every few seconds, so forged `kid`s cannot hammer the database.
    fn may_reload_keys(&self, now: i64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.keys_loaded_at.load(Ordering::Relaxed);
        now - last >= 5
            && self
                .keys_loaded_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Re-reads the Ed25519 keys (new ones from a rotation, retirements). A no-op under HS256.
    pub async fn reload_signing_keys(&self, now: i64) -> Result<()> {
        let Some(ring) = &self.ed_keys else {
            return Ok(());
        };
        let fresh = load_key_ring(&*self.store, &self.sealer).await?;
        self.keys_loaded_at
            .store(now, std::sync::atomic::Ordering::Relaxed);
        *ring
            .write()
            .map_err(|_| Error::Internal("signing key lock poisoned".into()))? = fresh;
        Ok(())
    }

    /// Adds a new Ed25519 key that signs from now on; the old ones stay published until their
    /// tokens expire. Returns the new key id.
    pub async fn rotate_signing_key(&self, now: i64) -> Result<String> {
        if self.ed_keys.is_none() {
            return Err(Error::InvalidMethod(
                "key rotation applies to MFAGATE_JWT_ALGORITHM=EdDSA; under HS256 change MFAGATE_SECRET_KEY".into(),
            ));
        }
        let key = EdKey::generate(now);
        self.store
            .add_signing_key(&stored_signing_key(&key, &self.sealer)?, now)
            .await?;
        self.reload_signing_keys(now).await?;
        Ok(key.kid)
    }

    /// The public keys that verify access tokens (`{"keys": []}` under HS256).
    pub fn jwks(&self, now: i64) -> serde_json::Value {
        match self.ed_keys.as_ref().and_then(|ring| ring.read().ok()) {
            Some(ring) => ring.jwks(now, self.config.access_ttl),
            None => serde_json::json!({ "keys": [] }),
        }
    }

    /// For the two TOTP activation calls: an access token, or in `required` mode a setup token.
    pub async fn authenticate_enroller(&self, token: &str, now: i64) -> Result<Enroller> {
        if let Ok(claims) = self.authenticate(token, now).await {
            return Ok(Enroller::Access(claims));
        }
        if self.config.mode == MfaMode::Required {
            let token_hash = hash_token(token);
            if let Some(user_id) = self.store.setup_token_user(&token_hash, now).await? {
                return Ok(Enroller::Setup {
                    user_id,
                    token_hash,
                });
            }
        }
        Err(Error::NotAuthenticated)
    }

    pub async fn user(&self, user_id: &str) -> Result<User> {
        self.store
            .user_by_id(user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(Error::NotAuthenticated)
    }

    /// Whether a user has any second factor switched on.
    pub fn mfa_enabled(&self, user: &User) -> bool {
        policy::mfa_enabled(&self.config, &holdings(user, false))
    }

    /// The methods a user switched on (`totp`, `email`), and their verified factors.
    async fn enabled_methods(&self, user: &User) -> Result<(Vec<Method>, Vec<Factor>)> {
        let factors = self.store.factors(&user.id).await?;
        let mut methods = Vec::new();
        if factors.iter().any(|f| f.kind == FactorKind::Totp) {
            methods.push(Method::Totp);
        }
        if user.email_otp && self.config.allows(Method::Email) {
            methods.push(Method::Email);
        }
        Ok((methods, factors))
    }

    // ----- TOTP enrolment and management -----

    /// A fresh set of recovery codes: in plain text for the user, sealed for the store.
    fn new_recovery_codes(&self, user_id: &str) -> (Vec<String>, Vec<String>) {
        let codes = recovery_codes::generate_set(self.config.recovery_code_count);
        let sealed = codes
            .iter()
            .map(|c| self.sealer.seal(c.as_bytes(), &recovery_context(user_id)))
            .collect();
        (codes, sealed)
    }

    /// An enrolment with a setup token completes that user's login: audited as one.
    async fn audit_enrolment_login(&self, enroller: &Enroller, ctx: &Context) {
        if let Enroller::Setup { user_id, .. } = enroller {
            self.audit(
                audit::LOGIN_OK,
                Some(user_id),
                ctx,
                Some("enrolment completed login".into()),
            )
            .await;
        }
    }

    pub async fn begin_totp(&self, enroller: &Enroller, ctx: &Context) -> Result<TotpEnrollment> {
        let user = self.user(enroller.user_id()).await?;
        if user.has_totp {
            return Err(Error::TotpAlreadyEnabled);
        }
        let secret = totp::generate_secret();
        let claims = ActivationClaims {
            sub: user.id.clone(),
            iat: ctx.now,
            exp: ctx.now + self.config.activation_ttl,
            secret: self.sealer.seal(&secret, &activation_context(&user.id)),
            epoch: user.credential_epoch,
        };
        let activation_token = self
            .activation_signer
            .sign(&claims)
            .map_err(|e| Error::Internal(format!("signing an activation token: {e}")))?;
        let totp_url = totp::key_uri(
            &self.config.totp_issuer,
            &user.username,
            &secret,
            &self.config.totp,
        );
        Ok(TotpEnrollment {
            secret: totp::encode_secret(&secret),
            qr_code_svg: qr::svg(&totp_url)?,
            qr_code_data_uri: qr::png_data_uri(&totp_url)?,
            totp_url,
            activation_token,
        })
    }

    pub async fn activate_totp(
        &self,
        enroller: &Enroller,
        activation_token: &str,
        code: &str,
        ctx: &Context,
    ) -> Result<TotpActivated> {
        let user_id = enroller.user_id();
        let factors = self.store.factors(user_id).await?;
        if factors.iter().any(|f| f.kind == FactorKind::Totp) {
            return Err(Error::TotpAlreadyEnabled);
        }
        let claims: ActivationClaims = self
            .activation_signer
            .verify(activation_token, ctx.now)
            .map_err(|_| Error::InvalidActivationToken)?;
        if claims.sub != user_id {
            return Err(Error::InvalidActivationToken);
        }
        let secret = self
            .sealer
            .open(&claims.secret, &activation_context(user_id))
            .map_err(|_| Error::InvalidActivationToken)?;
        let step = totp::matching_step(&secret, code, ctx.now, &self.config.totp).ok_or(
            Error::InvalidCode {
                attempts_remaining: None,
            },
        )?;
        let (codes, sealed_codes) = self.new_recovery_codes(user_id);
        let sealed_secret = self.sealer.seal(&secret, &totp_context(user_id));
        let amr = ["pwd", "mfa", "otp"];
        let (refresh, record) = self.new_refresh_token(user_id, &amr, ctx.now);
        let factor_id = new_id();
        let enrolment = TotpEnrolment {
            user_id: user_id.to_string(),
            factor_id: factor_id.clone(),
            name: free_name(FIRST_TOTP_NAME, &factors),
            max_factors: self.config.max_factors,
            epoch: claims.epoch,
            setup_token_hash: match enroller {
                Enroller::Setup { token_hash, .. } => Some(token_hash.clone()),
                Enroller::Access(_) => None,
            },
            secret_sealed: sealed_secret,
            accepted_step: step,
            recovery_codes_sealed: sealed_codes,
            refresh: record,
        };
        match self.store.enable_totp(&enrolment, ctx.now).await? {
            TotpEnabled::Enabled => {}
            TotpEnabled::AlreadyEnabled => return Err(Error::TotpAlreadyEnabled),
            TotpEnabled::NoRoom => return Err(Error::TooManyFactors),
            // A password reset, MFA reset or disable came in between: the enrolment died.
            TotpEnabled::Ended => {
                return Err(match enroller {
                    Enroller::Setup { .. } => Error::NotAuthenticated,
                    Enroller::Access(_) => Error::InvalidActivationToken,
                })
            }
        }
        self.audit(
            audit::TOTP_ENABLED,
            Some(user_id),
            ctx,
            Some(format!("factor {factor_id}")),
        )
        .await;
        self.audit_enrolment_login(enroller, ctx).await;
        Ok(TotpActivated {
            recovery_codes: codes,
            tokens: self.token_pair(user_id, &amr, ctx.now, refresh, ctx.now)?,
        })
    }

    pub async fn deactivate_totp(&self, user_id: &str, code: &str, ctx: &Context) -> Result<()> {
        if self.config.mode == MfaMode::Required {
            return Err(Error::MfaEnforced);
        }
        let user = self.user(user_id).await?;
        if !user.has_totp {
            return Err(Error::TotpNotEnabled);
        }
        self.require_second_factor(user_id, code, ctx).await?;
        // E-mailed codes, if on, become the preferred method.
        let fallback = policy::fallback_method(&self.config, &holdings(&user, false));
        let removed = self
            .store
            .remove_totp_factors(user_id, fallback.map(Method::as_str))
            .await?;
        if removed.is_empty() {
            return Err(Error::TotpNotEnabled);
        }
        self.audit(
            audit::TOTP_DISABLED,
            Some(user_id),
            ctx,
            Some(format!("factors {}", removed.join(","))),
        )
        .await;
        Ok(())
    }

    pub async fn status(&self, user_id: &str) -> Result<MfaStatus> {
        let user = self.user(user_id).await?;
        let (methods, factors) = self.enabled_methods(&user).await?;
        // `created_at` and `last_used_at` describe the oldest TOTP factor (v1's one device).
        let device = factors.iter().find(|f| f.kind == FactorKind::Totp);
        let remaining = if !factors.is_empty() {
            usize::try_from(self.store.count_unused_recovery_codes(user_id).await?).unwrap_or(0)
        } else {
            0
        };
        Ok(MfaStatus {
            mfa_enabled: !methods.is_empty(),
            methods,
            preferred_method: user.preferred_method,
            created_at: device.map(|d| d.created_at),
            last_used_at: device.and_then(|d| d.last_used_at),
            recovery_codes_remaining: remaining,
        })
    }

    /// The unused codes, to a token that shows a second factor (a token from a password alone,
    /// perhaps stolen, must not turn into a permanent second factor).
    pub async fn recovery_codes(&self, claims: &AccessClaims) -> Result<Vec<String>> {
        let user_id = claims.sub.as_str();
        self.user(user_id).await?;
        if self.store.factors(user_id).await?.is_empty() {
            return Err(Error::TotpNotEnabled);
        }
        if !claims.has_second_factor() {
            return Err(Error::MfaRequired);
        }
        self.store
            .unused_recovery_codes(user_id)
            .await?
            .iter()
            .map(|stored| {
                let plain = self
                    .sealer
                    .open(&stored.code_sealed, &recovery_context(user_id))?;
                Ok(String::from_utf8_lossy(&plain).into_owned())
            })
            .collect()
    }

    pub async fn regenerate_recovery_codes(
        &self,
        user_id: &str,
        code: &str,
        ctx: &Context,
    ) -> Result<Vec<String>> {
        self.user(user_id).await?;
        if self.store.factors(user_id).await?.is_empty() {
            return Err(Error::TotpNotEnabled);
        }
        self.require_second_factor(user_id, code, ctx).await?;
        let (codes, sealed) = self.new_recovery_codes(user_id);
        if !self.store.replace_recovery_codes(user_id, &sealed).await? {
            // Disabled, or the last factor went while the codes were made.
            return Err(Error::TotpNotEnabled);
        }
        self.audit(audit::RECOVERY_CODES_REGENERATED, Some(user_id), ctx, None)
            .await;
        Ok(codes)
    }

    pub async fn set_preferred_method(
        &self,
        caller: &AccessClaims,
        method: &str,
        ctx: &Context,
    ) -> Result<String> {
        let user_id = caller.sub.as_str();
        let user = self.user(user_id).await?;
        let has_totp = user.has_totp;
        let chosen = match method {
            "totp" if has_totp => "totp",
            "totp" => {
                return Err(Error::InvalidMethod(
                    "TOTP is not enabled: activate it first with /auth/mfa/totp/activate".into(),
                ))
            }
            "email" if !self.config.allows(Method::Email) => {
                return Err(Error::InvalidMethod(
                    "e-mailed codes are not offered by this server (MFAGATE_MFA_METHODS)".into(),
                ))
            }
            "email" if !user.email_verified => {
                return Err(Error::InvalidMethod(
                    "verify your e-mail address first (/auth/register/resend-verification)".into(),
                ))
            }
            "email" => {
                if !user.email_otp {
                    self.store.set_email_otp(user_id, true).await?;
                    self.audit(audit::EMAIL_OTP_ENABLED, Some(user_id), ctx, None)
                        .await;
                }
                "email"
            }
            "none" if self.config.mode != MfaMode::Optional => {
                return Err(Error::InvalidMethod(
                    "'none' is allowed only when MFA is optional".into(),
                ))
            }
            "none" if has_totp => {
                return Err(Error::InvalidMethod(
                    "TOTP is enabled: switch it off with /auth/mfa/totp/deactivate".into(),
                ))
            }
            "none" => {
                // Switching a factor off needs proof of it: a recent login that used a second
                // factor (e-mailed codes have no code to give outside a login).
                if user.email_otp
                    && !caller.recent_second_factor(ctx.now, self.config.reauth_max_age)
                {
                    return Err(Error::ReauthenticationRequired {
                        max_age: self.config.reauth_max_age,
                    });
                }
                if user.email_otp {
                    self.store.set_email_otp(user_id, false).await?;
                    self.audit(audit::EMAIL_OTP_DISABLED, Some(user_id), ctx, None)
                        .await;
                }
                "none"
            }
            _ => {
                return Err(Error::InvalidMethod(
                    "method must be one of: totp, email, none".into(),
                ))
            }
        };
        self.store.set_preferred_method(user_id, chosen).await?;
        self.audit(
            audit::PREFERRED_METHOD_CHANGED,
            Some(user_id),
            ctx,
            Some(chosen.into()),
        )
        .await;
        Ok(chosen.to_string())
    }

    // ----- administration -----

    async fn user_by_name(&self, username: &str) -> Result<User> {
        if username.contains('\0') {
            return Err(Error::NotFound(format!("no user named '{username}'")));
        }
        self.store
            .user_by_login(&username.trim().to_lowercase())
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user named '{username}'")))
    }

    /// For a user who lost both device and recovery codes: removes TOTP and every recovery code,
    /// and ends every session. The user logs in with a password next (and enrols again in
    /// `required` mode).
    pub async fn admin_reset_mfa(&self, username: &str, ctx: &Context) -> Result<User> {
        let user = self.user_by_name(username).await?;
        self.reset_mfa(&user, "via command line", ctx).await?;
        Ok(user)
    }

    /// Second factors off, and every credential of the user ended, in one transaction.
    async fn reset_mfa(&self, user: &User, how: &str, ctx: &Context) -> Result<()> {
        self.store
            .change_account(&user.id, &AccountChange::ResetMfa, None, ctx.now)
            .await?;
        self.audit(
            audit::ADMIN_RESET_MFA,
            Some(&user.id),
            ctx,
            Some(how.into()),
        )
        .await;
        Ok(())
    }

    /// Grants or withdraws administrator rights. The flag says whether anything changed: a
    /// repeat is answered as such and not audited again.
    pub async fn admin_set_admin(
        &self,
        username: &str,
        is_admin: bool,
        ctx: &Context,
    ) -> Result<(User, bool)> {
        let user = self.user_by_name(username).await?;
        let changed = self.store.set_admin(&user.id, is_admin).await?;
        if changed {
            let event = if is_admin {
                audit::ADMIN_GRANTED
            } else {
                audit::ADMIN_REVOKED
            };
            self.audit(event, Some(&user.id), ctx, None).await;
        }
        Ok((user, changed))
    }

    /// Deletes expired and spent rows, and audit events past their retention, in bounded
    /// batches; run periodically.
    pub async fn clean_up(&self, now: i64) -> Result<u64> {
        let audit_before = (self.config.audit_retention_days > 0)
            .then(|| now - i64::from(self.config.audit_retention_days) * 86_400);
        let mut deleted = 0;
        loop {
            let began = std::time::Instant::now();
            let gone = self
                .store
                .delete_expired(now, audit_before, CLEANUP_BATCH)
                .await?;
            deleted += gone;
            // Fewer than one batch in all: no kind filled its batch, so what is left is less
            // than a batch per kind, for the next round. (Waiting for a pass that finds nothing
            // could last for ever under load, and this round holds up the signing-key reload.)
            if gone < u64::from(CLEANUP_BATCH) {
                return Ok(deleted);
            }
            // A backlog (a million expired rows after a quiet month) is worked off at a third
            // of the writer's time at most: the writes of logins and refreshes queued behind a
            // batch wait for one batch, then have the writer to themselves twice as long.
            tokio::time::sleep(began.elapsed() * 2).await;
        }
    }
}
