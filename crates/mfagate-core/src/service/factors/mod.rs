//! Several factors per user: list them, enrol one (begin, then verify with a first proof),
//! rename and remove them. `totp/activate` and `totp/deactivate` (in `mod.rs`) keep their v1
//! behaviour on the same rows: the first TOTP factor, and every TOTP factor.

pub mod totp;
mod webauthn;

use serde::Serialize;

use super::{totp_context, Context, Enroller, Gatekeeper, TokenPair};
use crate::audit;
use crate::config::MfaMode;
use crate::error::{Error, Result};
use crate::factors::{self, policy, FactorKind, Method};
use crate::qr;
use crate::secret::new_id;
use crate::store::{
    Factor, FactorBegun, FactorRemoved, FactorRenamed, FactorVerification, FactorVerified,
    NewFactor,
};

use super::passkeys::Proof;

/// Enrolments a user may have in progress at once (each is a row until it expires).
pub const MAX_PENDING_FACTORS: u32 = 10;

/// A factor as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorView {
    pub id: String,
    pub kind: FactorKind,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub verified: bool,
}

impl From<&Factor> for FactorView {
    fn from(factor: &Factor) -> Self {
        Self {
            id: factor.id.clone(),
            kind: factor.kind,
            name: factor.name.clone(),
            created_at: factor.created_at,
            last_used_at: factor.last_used_at,
            verified: factor.verified,
        }
    }
}

/// What the user needs to set up a new TOTP factor in their app.
#[derive(Clone, Serialize)]
pub struct TotpSetup {
    pub secret: String,
    pub totp_url: String,
    pub qr_code_svg: String,
    pub qr_code_data_uri: String,
}

crate::debug_showing!(TotpSetup {});

/// A begun enrolment: the pending factor, and what the device needs.
#[derive(Debug, Clone)]
pub struct FactorEnrolment {
    pub factor: FactorView,
    pub totp: Option<TotpSetup>,
    /// A passkey: the `PublicKeyCredentialCreationOptionsJSON` for the browser.
    pub webauthn_options: Option<serde_json::Value>,
}

/// A verified enrolment.
#[derive(Clone)]
pub struct FactorVerifiedOutcome {
    pub factor: FactorView,
    /// Present when this was the user's first factor: the recovery codes made with it.
    pub recovery_codes: Option<Vec<String>>,
    /// A new session with the factor in its `amr` (enrolment ends every session that began
    /// without a second factor; with a setup token it completes the login).
    pub tokens: TokenPair,
}

crate::debug_showing!(FactorVerifiedOutcome { factor });

pub(super) fn not_found() -> Error {
    Error::NotFound(
        "no such factor: it is unknown, expired, or another user's; list yours at GET /auth/mfa/factors"
            .into(),
    )
}

fn name_taken(name: &str) -> Error {
    Error::AlreadyExists(format!(
        "you already have a factor named '{name}'; choose another name"
    ))
}

impl Gatekeeper {
    /// The user's verified factors, oldest first.
    pub async fn list_factors(&self, user_id: &str) -> Result<Vec<FactorView>> {
        self.user(user_id).await?;
        Ok(self
            .store
            .factors(user_id)
            .await?
            .iter()
            .map(FactorView::from)
            .collect())
    }

    /// The step-up rule for calls that change the factors of a user who has one (API.md,
    /// "Recent authentication"): a token from an authentication within `reauth_max_age` that
    /// used a second factor. Without a factor there is nothing to protect yet; a setup token
    /// is a login in progress.
    pub(in crate::service) fn require_recent(
        &self,
        caller: Option<&super::AccessClaims>,
        has_factor: bool,
        now: i64,
    ) -> Result<()> {
        let Some(claims) = caller else {
            return Ok(());
        };
        let max_age = self.config.reauth_max_age;
        if !has_factor || claims.recent_second_factor(now, max_age) {
            return Ok(());
        }
        Err(Error::ReauthenticationRequired { max_age })
    }

    /// Begins enrolling a factor of `kind` named `name`: it stays pending (unlisted) until
    /// verified, for `activation_ttl` seconds.
    pub async fn begin_factor(
        &self,
        enroller: &Enroller,
        kind: &str,
        name: &str,
        ctx: &Context,
    ) -> Result<FactorEnrolment> {
        let user = self.user(enroller.user_id()).await?;
        let kind = FactorKind::parse(kind)
            .filter(|k| self.config.allows(k.method()))
            .ok_or_else(|| {
                Error::InvalidMethod(format!(
                    "kind must be one this server offers (MFAGATE_MFA_METHODS): {}",
                    self.config
                        .methods
                        .iter()
                        .filter(|m| **m != Method::Email)
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let name =
            factors::parse_name(name).map_err(|problem| Error::validation("name", problem))?;
        let existing = self.store.factors(&user.id).await?;
        let caller = match enroller {
            Enroller::Access(claims) => Some(claims),
            Enroller::Setup { .. } => None,
        };
        self.require_recent(caller, !existing.is_empty(), ctx.now)?;
        if existing.len() >= self.config.max_factors as usize {
            return Err(Error::TooManyFactors);
        }
        let id = new_id();
        let mut webauthn_options = None;
        let (secret_sealed, setup) = match kind {
            FactorKind::Totp => {
                let secret = crate::totp::generate_secret();
                let totp_url = crate::totp::key_uri(
                    &self.config.totp_issuer,
                    &user.username,
                    &secret,
                    &self.config.totp,
                );
                let images = qr::images(&totp_url)?;
                let setup = TotpSetup {
                    secret: crate::totp::encode_secret(&secret),
                    qr_code_svg: images.svg,
                    qr_code_data_uri: images.png_data_uri,
                    totp_url,
                };
                (
                    Some(self.sealer.seal(&secret, &totp_context(&user.id))),
                    Some(setup),
                )
            }
            FactorKind::Webauthn => {
                let (options, sealed) = self.begin_passkey(&user, &existing)?;
                webauthn_options = Some(options);
                (Some(sealed), None)
            }
        };
        let factor = NewFactor {
            id: id.clone(),
            user_id: user.id.clone(),
            kind,
            name: name.clone(),
            secret_sealed,
            created_at: ctx.now,
            expires_at: ctx.now + self.config.activation_ttl,
        };
        let setup_token = match enroller {
            Enroller::Setup { token_hash, .. } => Some(token_hash.as_str()),
            Enroller::Access(_) => None,
        };
        match self
            .store
            .begin_factor(
                &factor,
                self.config.max_factors,
                MAX_PENDING_FACTORS,
                setup_token,
                ctx.now,
            )
            .await?
        {
            FactorBegun::Begun => {}
            FactorBegun::NameTaken => return Err(name_taken(&name)),
            FactorBegun::TooMany => return Err(Error::TooManyFactors),
            FactorBegun::Ended => return Err(Error::NotAuthenticated),
        }
        Ok(FactorEnrolment {
            factor: FactorView {
                id,
                kind,
                name,
                created_at: ctx.now,
                last_used_at: None,
                verified: false,
            },
            totp: setup,
            webauthn_options,
        })
    }

    /// Verifies a pending factor with its first proof: a TOTP code (whose step then counts as
    /// used by this factor), or a passkey's registration.
    pub async fn verify_factor(
        &self,
        enroller: &Enroller,
        factor_id: &str,
        proof: &Proof,
        ctx: &Context,
    ) -> Result<FactorVerifiedOutcome> {
        let user_id = enroller.user_id();
        let user = self.user(user_id).await?;
        let pending = self
            .store
            .pending_factor(user_id, factor_id, ctx.now)
            .await?
            .ok_or_else(not_found)?;
        let (step, passkey) = match (pending.kind, proof) {
            (FactorKind::Totp, Proof::Code(code)) => {
                let sealed = pending.secret_sealed.as_deref().ok_or_else(|| {
                    Error::Internal(format!("TOTP factor {factor_id} has no secret"))
                })?;
                let secret = self.sealer.open(sealed, &totp_context(user_id))?;
                let step = crate::totp::matching_step(&secret, code, ctx.now, &self.config.totp)
                    .ok_or(Error::InvalidCode {
                        attempts_remaining: None,
                    })?;
                (Some(step), None)
            }
            (FactorKind::Webauthn, Proof::Credential(credential)) => {
                let passkey = self
                    .finish_passkey(user_id, factor_id, credential, ctx.now)
                    .await?;
                (None, Some(passkey))
            }
            (FactorKind::Totp, Proof::Credential(_)) => {
                return Err(Error::validation(
                    "code",
                    "a TOTP factor is verified with a code from the app",
                ))
            }
            (FactorKind::Webauthn, Proof::Code(_)) => {
                return Err(Error::validation(
                    "credential",
                    "a passkey is verified with the credential the browser returned",
                ))
            }
        };
        let (codes, sealed_codes) = self.new_recovery_codes(user_id);
        let amr = ["pwd", "mfa", pending.kind.method().amr()];
        let (refresh, record) = self.new_refresh_token(user_id, &amr, ctx);
        let verification = FactorVerification {
            user_id: user_id.to_string(),
            factor_id: factor_id.to_string(),
            accepted_step: step,
            passkey,
            recovery_codes_sealed: sealed_codes,
            setup_token_hash: match enroller {
                Enroller::Setup { token_hash, .. } => Some(token_hash.clone()),
                Enroller::Access(_) => None,
            },
            refresh: record.clone(),
            max_factors: self.config.max_factors,
        };
        let first = match self.store.verify_factor(&verification, ctx.now).await? {
            FactorVerified::Verified { first } => first,
            FactorVerified::TooMany => return Err(Error::TooManyFactors),
            FactorVerified::CredentialTaken => {
                return Err(Error::InvalidCredential {
                    attempts_remaining: None,
                })
            }
            FactorVerified::Gone => {
                return Err(match enroller {
                    Enroller::Setup { .. } => Error::NotAuthenticated,
                    Enroller::Access(_) => not_found(),
                })
            }
        };
        self.audit(
            audit::FACTOR_ADDED,
            Some(user_id),
            ctx,
            Some(format!("factor {factor_id} ({})", pending.kind.as_str())),
        )
        .await;
        self.audit_enrolment_login(enroller, ctx).await;
        let label = super::notices::factor_label(&pending.name, pending.kind);
        self.notify(super::notices::Notice::FactorAdded(label), &user, ctx)
            .await;
        Ok(FactorVerifiedOutcome {
            factor: FactorView {
                verified: true,
                ..FactorView::from(&pending)
            },
            recovery_codes: first.then_some(codes),
            tokens: self.token_pair(&record, &amr, refresh, ctx.now)?,
        })
    }

    pub async fn rename_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        name: &str,
        ctx: &Context,
    ) -> Result<FactorView> {
        self.user(user_id).await?;
        let name =
            factors::parse_name(name).map_err(|problem| Error::validation("name", problem))?;
        let renamed = match self.store.rename_factor(user_id, factor_id, &name).await? {
            FactorRenamed::Renamed(factor) => factor,
            FactorRenamed::NameTaken => return Err(name_taken(&name)),
            FactorRenamed::NotFound => return Err(not_found()),
        };
        self.audit(
            audit::FACTOR_RENAMED,
            Some(user_id),
            ctx,
            Some(format!("factor {factor_id}")),
        )
        .await;
        Ok(FactorView::from(&renamed))
    }

    /// Removes one factor; with the last go the recovery codes. In `required` mode the last
    /// factor stays (`mfa_enforced`).
    pub async fn remove_factor(
        &self,
        caller: &super::AccessClaims,
        factor_id: &str,
        ctx: &Context,
    ) -> Result<()> {
        let user_id = caller.sub.as_str();
        let user = self.user(user_id).await?;
        let factors = self.store.factors(user_id).await?;
        let factor = factors
            .iter()
            .find(|f| f.id == factor_id)
            .ok_or_else(not_found)?;
        self.require_recent(Some(caller), true, ctx.now)?;
        let fallback = policy::fallback_method(&self.config, &super::holdings(&user, false));
        let keep_last = self.config.mode == MfaMode::Required;
        match self
            .store
            .remove_factor(user_id, factor_id, keep_last, fallback)
            .await?
        {
            FactorRemoved::Removed { .. } => {}
            FactorRemoved::LastKept => return Err(Error::MfaEnforced),
            FactorRemoved::NotFound => return Err(not_found()),
        }
        self.audit(
            audit::FACTOR_REMOVED,
            Some(user_id),
            ctx,
            Some(format!("factor {factor_id} ({})", factor.kind.as_str())),
        )
        .await;
        let label = super::notices::factor_label(&factor.name, factor.kind);
        self.notify(super::notices::Notice::FactorRemoved(label), &user, ctx)
            .await;
        Ok(())
    }
}
