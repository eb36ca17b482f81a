//! TOTP factors through the v1 calls: `totp/activate` enrols the first, `totp/deactivate` removes them all; and who may enrol (an access token, or a setup token).

use crate::qr;
use crate::service::*;
use crate::totp;

#[derive(Debug, Serialize, Deserialize)]
pub(in crate::service) struct ActivationClaims {
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The name the first TOTP factor gets when it is enrolled through `totp/activate`.
pub const FIRST_TOTP_NAME: &str = "Authenticator";

/// `wanted`, or if one of `factors` has that name (case-insensitively), `wanted` with the
/// first number from 2 that makes it free.
pub(in crate::service) fn free_name(wanted: &str, factors: &[Factor]) -> String {
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

pub(in crate::service) const ACTIVATION_TOKEN_TYPE: &str = "mfagate-totp-activation+jwt";

impl Gatekeeper {
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

    /// An enrolment with a setup token completes that user's login: audited as one.
    pub(in crate::service) async fn audit_enrolment_login(
        &self,
        enroller: &Enroller,
        ctx: &Context,
    ) {
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
        let images = qr::images(&totp_url)?;
        Ok(TotpEnrollment {
            secret: totp::encode_secret(&secret),
            qr_code_svg: images.svg,
            qr_code_data_uri: images.png_data_uri,
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
        let amr = ["pwd", "mfa", Method::Totp.amr()];
        let (refresh, record) = self.new_refresh_token(user_id, &amr, ctx);
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
            refresh: record.clone(),
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
        let label = super::super::notices::factor_label(FIRST_TOTP_NAME, FactorKind::Totp);
        self.notify_by_id(
            super::super::notices::Notice::FactorAdded(label),
            user_id,
            ctx,
        )
        .await;
        Ok(TotpActivated {
            recovery_codes: codes,
            tokens: self.token_pair(&record, &amr, refresh, ctx.now)?,
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
        let removed = self.store.remove_totp_factors(user_id, fallback).await?;
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
        let every = "every authenticator app".to_string();
        self.notify(
            super::super::notices::Notice::FactorRemoved(every),
            &user,
            ctx,
        )
        .await;
        Ok(())
    }
}
