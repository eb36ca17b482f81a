//! What a user has switched on (`mfa/status`) and the method offered first (`mfa/method`).

use super::*;

#[derive(Debug, Clone)]
pub struct MfaStatus {
    pub mfa_enabled: bool,
    pub methods: Vec<Method>,
    pub preferred_method: Option<Method>,
    pub created_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub recovery_codes_remaining: usize,
}

impl Gatekeeper {
    /// The methods a user switched on (`totp`, `webauthn`, `email`), and their verified factors.
    pub(super) async fn enabled_methods(&self, user: &User) -> Result<(Vec<Method>, Vec<Factor>)> {
        let factors = self.store.factors(&user.id).await?;
        let mut methods = Vec::new();
        for kind in [FactorKind::Totp, FactorKind::Webauthn] {
            if factors.iter().any(|f| f.kind == kind) {
                methods.push(kind.method());
            }
        }
        if user.email_otp && self.config.allows(Method::Email) {
            methods.push(Method::Email);
        }
        Ok((methods, factors))
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

    pub async fn set_preferred_method(
        &self,
        caller: &AccessClaims,
        method: &str,
        ctx: &Context,
    ) -> Result<String> {
        let user_id = caller.sub.as_str();
        let user = self.user(user_id).await?;
        let has_totp = user.has_totp;
        let totp_off = || {
            Error::InvalidMethod(
                "TOTP is not enabled: activate it first with /auth/mfa/totp/activate".into(),
            )
        };
        let wanted = crate::factors::parse_preference(method).ok_or_else(|| {
            Error::InvalidMethod("method must be one of: totp, webauthn, email, none".into())
        })?;
        // The method, and whether e-mailed codes switch on or off with it.
        let email_otp = match wanted {
            Some(Method::Totp) if has_totp => None,
            Some(Method::Webauthn) if user.has_webauthn => None,
            Some(Method::Webauthn) => {
                return Err(Error::InvalidMethod(
                    "you have no passkey: add one with POST /auth/mfa/factors (kind webauthn)"
                        .into(),
                ))
            }
            Some(Method::Email) if !self.config.allows(Method::Email) => {
                return Err(Error::InvalidMethod(
                    "e-mailed codes are not offered by this server (MFAGATE_MFA_METHODS)".into(),
                ))
            }
            Some(Method::Email) if !user.email_verified => {
                return Err(Error::InvalidMethod(
                    "verify your e-mail address first (/auth/register/resend-verification)".into(),
                ))
            }
            Some(Method::Email) => (!user.email_otp).then_some(true),
            Some(_) => return Err(totp_off()),
            None if self.config.mode != MfaMode::Optional => {
                return Err(Error::InvalidMethod(
                    "'none' is allowed only when MFA is optional".into(),
                ))
            }
            None if has_totp => {
                return Err(Error::InvalidMethod(
                    "TOTP is enabled: switch it off with /auth/mfa/totp/deactivate".into(),
                ))
            }
            None if user.has_webauthn => {
                return Err(Error::InvalidMethod(
                    "passkeys are enrolled: remove them with DELETE /auth/mfa/factors/{id}".into(),
                ))
            }
            None => {
                // Switching a factor off needs proof of it: a recent login that used a second
                // factor (e-mailed codes have no code to give outside a login).
                if user.email_otp
                    && !caller.recent_second_factor(ctx.now, self.config.reauth_max_age)
                {
                    return Err(Error::ReauthenticationRequired {
                        max_age: self.config.reauth_max_age,
                    });
                }
                user.email_otp.then_some(false)
            }
        };
        let chosen = crate::factors::preference_name(wanted);
        // One statement: the preference and the switch change together, and `totp` only while
        // a TOTP factor is held.
        if !self.store.choose_method(user_id, wanted, email_otp).await? {
            return Err(totp_off());
        }
        match email_otp {
            Some(true) => {
                self.audit(audit::EMAIL_OTP_ENABLED, Some(user_id), ctx, None)
                    .await
            }
            Some(false) => {
                self.audit(audit::EMAIL_OTP_DISABLED, Some(user_id), ctx, None)
                    .await
            }
            None => {}
        }
        self.audit(
            audit::PREFERRED_METHOD_CHANGED,
            Some(user_id),
            ctx,
            Some(chosen.into()),
        )
        .await;
        Ok(chosen.to_string())
    }
}
