//! The flows of mfagate: register, log in, pass a second factor, enrol and manage factors,
//! rotate tokens.
//!
//! `Gatekeeper` is what the HTTP handlers call: one method per operation, taking validated input
//! and a `Context` (the time and client address), returning domain values or a core `Error`.
//! It holds no per-request state in memory: every fact that counts lives in the store. This
//! file builds it; each capability is a file of its own: `accounts`, `login`, `second_factor`,
//! `tokens` (access tokens, signing keys, refresh sessions), `factors` (with one file per kind),
//! `passkeys` (passkeys at a challenge and without a password),
//! `recovery_codes`, `methods` (status and preferred method), `email` (mailed codes and
//! verification), `passwords`, `admin` (administrators and the clean-up).

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::account::check_new_password;

use crate::account::{EmailAddress, Registration, Username};
use crate::audit;
use crate::config::JwtAlgorithm;
use crate::config::{Config, MfaMode};
use crate::email::{LogMailer, Mailer, MessageKind, Templates};
use crate::error::{Error, Result};
use crate::factors::{policy, FactorKind, Method};
use crate::jwt::{EdKey, EdKeyRing, Expiring, HsSigner};
use crate::password;
use crate::rate::Rate;
use crate::sealing::Sealer;
use crate::secret::{
    generate_token, hash_token, new_id, new_ordered_id, token_matches, token_row, NamedToken,
    SecretBytes,
};
use crate::store::{
    AccountChange, AttemptClaim, AuditRecord, Challenge, ChallengeCreated, Claim, Completion,
    EmailReservation, Factor, FactorClaim, KeyPurpose, LoginCandidate, NewChallenge,
    NewRefreshToken, NewUser, PresentedToken, RefreshOutcome, RefreshSuccessor, Store,
    StoredSigningKey, TotpEnabled, TotpEnrolment, User, UserPageStart, WindowLimit,
};
use crate::throttle::ThrottleKeys;

mod accounts;
mod admin;
mod email;
mod factors;
mod login;
mod methods;
mod notices;
mod passkeys;
mod passwords;
mod recovery_codes;
mod second_factor;
mod sessions;
mod tokens;

pub use accounts::*;
pub use admin::*;
pub use factors::totp::*;
pub use factors::*;
pub use login::*;
pub use methods::*;
pub use passkeys::*;
pub use passwords::*;
pub use sessions::*;
pub use tokens::*;

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
    /// The client's `User-Agent`, shown in its sessions.
    pub user_agent: UserAgent,
}

/// The most bytes of a `User-Agent` kept.
const USER_AGENT_MAX: usize = 200;

/// A client's `User-Agent`, cut to 200 bytes at a character boundary and kept inline, so that
/// a `Context` stays `Copy`.
#[derive(Clone, Copy)]
pub struct UserAgent {
    bytes: [u8; USER_AGENT_MAX],
    len: usize,
}

impl UserAgent {
    pub fn new(text: &str) -> Self {
        let mut end = text.len().min(USER_AGENT_MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; USER_AGENT_MAX];
        let kept = text.as_bytes().get(..end).unwrap_or_default();
        if let Some(slot) = bytes.get_mut(..kept.len()) {
            slot.copy_from_slice(kept);
        }
        Self {
            bytes,
            len: kept.len(),
        }
    }

    /// The text, or `None` when the client sent none.
    pub fn as_str(&self) -> Option<&str> {
        let text = std::str::from_utf8(self.bytes.get(..self.len)?).ok()?;
        (!text.is_empty()).then_some(text)
    }
}

impl Default for UserAgent {
    fn default() -> Self {
        Self::new("")
    }
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

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
    /// The passkey relying party, when `webauthn` is among the methods.
    relying_party: Option<crate::webauthn::RelyingParty>,
    /// Security e-mails being sent (see `notices`), awaited by `flush_audit`.
    notices_in_flight: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Gatekeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatekeeper")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
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
        webauthn: user.has_webauthn,
        recovery_codes,
        email_verified: user.email_verified,
        email_otp: user.email_otp,
        prefers_email: user.preferred_method == Some(Method::Email),
        prefers_webauthn: user.preferred_method == Some(Method::Webauthn),
    }
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
        let relying_party = if config.methods.contains(&Method::Webauthn) {
            Some(crate::webauthn::RelyingParty::new(&config.webauthn).map_err(Error::Internal)?)
        } else {
            None
        };
        Ok(Self {
            relying_party,
            notices_in_flight: std::sync::Mutex::new(Vec::new()),
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
        crate::metrics::audit_event(event);
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
    /// Also waits for the security e-mails under way (each bounded by the mailer's timeout),
    /// so a command that exits right after its action still sends them.
    pub async fn flush_audit(&self) {
        let sending: Vec<_> = self
            .notices_in_flight
            .lock()
            .map(|mut handles| std::mem::take(&mut *handles))
            .unwrap_or_default();
        for handle in sending {
            let _ = handle.await;
        }
        self.audit_writer.flush().await;
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
}

#[cfg(test)]
mod user_agent_tests {
    use super::UserAgent;

    #[test]
    fn a_user_agent_is_kept_whole_or_cut_at_a_character_boundary() {
        assert_eq!(UserAgent::new("curl/8.5").as_str(), Some("curl/8.5"));
        assert_eq!(UserAgent::new("").as_str(), None);
        assert_eq!(UserAgent::default().as_str(), None);
        // 199 ASCII bytes, then a 3-byte character across the 200-byte limit: it is left out.
        let long = format!("{}€tail", "a".repeat(199));
        let cut = UserAgent::new(&long);
        assert_eq!(cut.as_str(), Some("a".repeat(199).as_str()));
        let exact = "é".repeat(100);
        assert_eq!(UserAgent::new(&exact).as_str(), Some(exact.as_str()));
        assert_eq!(format!("{:?}", UserAgent::new("x")), "Some(\"x\")");
    }
}
