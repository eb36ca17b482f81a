//! The second factor at login (`mfa/verify`), and the code that management calls demand.

use super::*;
use crate::email;
use crate::recovery_codes;
use crate::totp;
use crate::webauthn::Refusal;

/// The audit detail of a second factor that answered a challenge: its `amr`, and the factor.
pub(super) fn claim_detail(method: Method, claim: &FactorClaim) -> String {
    match claim {
        FactorClaim::TotpStep { factor_id, .. } | FactorClaim::SignCount { factor_id, .. } => {
            format!("{} factor {factor_id}", method.amr())
        }
        _ => method.amr().to_string(),
    }
}

/// A challenge answered: the token pair, and the device token when one was asked for.
#[derive(Clone)]
pub struct SecondFactorPassed {
    pub tokens: TokenPair,
    pub device_token: Option<String>,
    /// The method that answered.
    pub method: Method,
}

crate::debug_showing!(SecondFactorPassed { tokens, method });

impl Gatekeeper {
    async fn notify_recovery_code_used(&self, user_id: &str, ctx: &Context) {
        let left = self
            .store
            .count_unused_recovery_codes(user_id)
            .await
            .unwrap_or_default();
        self.notify_by_id(notices::Notice::RecoveryCodeUsed(left), user_id, ctx)
            .await;
    }

    /// A new device token for the user: only its hash is stored.
    async fn remember_device(&self, user_id: &str, ctx: &Context) -> Result<String> {
        let token = generate_token();
        self.store
            .remember_device(
                &hash_token(&token),
                user_id,
                ctx.now + self.config.remember_device_ttl,
                ctx.now,
            )
            .await?;
        self.audit(audit::DEVICE_REMEMBERED, Some(user_id), ctx, None)
            .await;
        Ok(token)
    }

    /// Answers a challenge. With `remember_device`, a right answer also gives a device token
    /// that lets this user's later password logins skip the challenge (`login`).
    pub async fn verify_second_factor(
        &self,
        ephemeral_token: &str,
        answer: &Proof,
        remember_device: bool,
        ctx: &Context,
    ) -> Result<SecondFactorPassed> {
        let outcome = self
            .verify_counted(ephemeral_token, answer, remember_device, ctx)
            .await;
        // Which method a wrong answer meant is not known: a code, or a passkey.
        let tried = match answer {
            Proof::Code(_) => "code",
            Proof::Credential(_) => Method::Webauthn.as_str(),
        };
        let (method, result) = match &outcome {
            Ok(passed) => (passed.method.as_str(), "ok"),
            Err(Error::InvalidCode { attempts_remaining })
            | Err(Error::InvalidCredential { attempts_remaining }) => {
                if *attempts_remaining == Some(0) {
                    crate::metrics::challenge("dead");
                }
                (tried, "invalid")
            }
            Err(Error::TooManyAttempts { .. }) => (tried, "too_many_attempts"),
            Err(Error::Throttled { .. }) => (tried, "throttled"),
            Err(Error::InvalidToken) => (tried, "invalid_token"),
            Err(_) => (tried, "error"),
        };
        crate::metrics::second_factor(method, result);
        outcome
    }

    async fn verify_counted(
        &self,
        ephemeral_token: &str,
        answer: &Proof,
        remember_device: bool,
        ctx: &Context,
    ) -> Result<SecondFactorPassed> {
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
        let identified = match answer {
            Proof::Code(code) => self
                .identify_second_factor(&user_id, code, Some(&challenge), ctx.now)
                .await?
                .ok_or(Refusal::Invalid),
            Proof::Credential(credential) => self
                .identify_passkey(&challenge, credential)
                .await?
                .map(|claim| (Method::Webauthn, claim)),
        };
        let mut refusal = identified.as_ref().err().copied();
        if let Ok((method, claim)) = identified {
            let amr = ["pwd", "mfa", method.amr()];
            let detail = claim_detail(method, &claim);
            let counter_claim = matches!(claim, FactorClaim::SignCount { .. });
            let (refresh, mut record) = self.new_refresh_token(&user_id, &amr, ctx);
            // A reauthentication's answer continues its session, with a fresh `auth_time`.
            if let Some(session) = &challenge.session_id {
                record.family_id = session.clone();
            }
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
                        self.notify_recovery_code_used(&user_id, ctx).await;
                    }
                    let tokens = self.token_pair(&record, &amr, refresh, ctx.now)?;
                    let device_token = if remember_device {
                        Some(self.remember_device(&user_id, ctx).await?)
                    } else {
                        None
                    };
                    return Ok(SecondFactorPassed {
                        tokens,
                        device_token,
                        method,
                    });
                }
                // Spent by another right answer, or ended by a password reset or a disable.
                Completion::ChallengeGone => return Err(Error::InvalidToken),
                // Replayed step or code used meanwhile: a wrong code, like any other. A
                // passkey counter that lost its claim did not grow past what was stored.
                Completion::FactorRefused => {
                    if counter_claim {
                        refusal = Some(Refusal::PossibleClone);
                    }
                }
            }
        }
        if refusal == Some(Refusal::PossibleClone) {
            // The same answer sent twice at once: the first spent the challenge and moved the
            // counter, so the second looks like a clone. It is a replay of a spent challenge.
            let spent = self
                .store
                .challenge_by_token(&hash_token(ephemeral_token))
                .await?
                .is_none_or(|c| c.spent);
            if spent {
                return Err(Error::InvalidToken);
            }
            self.audit(audit::PASSKEY_POSSIBLE_CLONE, Some(&user_id), ctx, None)
                .await;
        }
        self.audit(audit::SECOND_FACTOR_FAILED, Some(&user_id), ctx, None)
            .await;
        let attempts_remaining = Some(max.saturating_sub(failures));
        Err(match answer {
            Proof::Code(_) => Error::InvalidCode { attempts_remaining },
            Proof::Credential(_) => Error::InvalidCredential { attempts_remaining },
        })
    }

    /// The user's window of failed second-factor attempts, across all of their challenges.
    pub(super) fn user_failure_window(&self, user_id: &str) -> Option<WindowLimit> {
        self.config
            .user_failures
            .map(|rate| self.throttle_keys.window(rate, "mfa-user", &[user_id]))
    }

    /// Checks a TOTP or recovery code and, if right, uses it up atomically. `None` for a wrong,
    /// replayed or already used code.
    pub(super) async fn check_second_factor(
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
            // Management calls take codes, never a passkey.
            FactorClaim::SignCount { .. } => false,
        };
        Ok(claimed.then_some(method))
    }

    /// Which factor `code` proves, and what must be claimed for it to count; claims nothing.
    pub(super) async fn identify_second_factor(
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
    pub(super) fn match_totp(
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
    pub(super) async fn require_second_factor(
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
                    self.notify_recovery_code_used(user_id, ctx).await;
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
}
