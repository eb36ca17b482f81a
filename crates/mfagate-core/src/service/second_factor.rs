//! The second factor at login (`mfa/verify`), and the code that management calls demand.

use super::*;
use crate::email;
use crate::recovery_codes;
use crate::store::{AnswerCheck, Answered, Proven};
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
    /// The challenge an `ephemeral_token` names, if the token is its own (live or not).
    pub(super) async fn challenge_of_token(&self, token: &str) -> Result<Option<Challenge>> {
        let Some(id) = token_row(token) else {
            return Ok(None);
        };
        Ok(self
            .store
            .challenge_by_id(&id)
            .await?
            .filter(|c| token_matches(token, &c.token_hash)))
    }

    /// `challenge_of_token`, with the verified factors of the challenge's user, in one read.
    async fn challenge_and_factors_of_token(
        &self,
        token: &str,
    ) -> Result<Option<(Challenge, Vec<Factor>)>> {
        let Some(id) = token_row(token) else {
            return Ok(None);
        };
        Ok(self
            .store
            .challenge_and_factors(&id)
            .await?
            .filter(|(c, _)| token_matches(token, &c.token_hash)))
    }

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
        // The factors a code is compared with come with the challenge (a passkey's answer
        // reads its passkey itself, in `verify_passkey_answer`).
        let (challenge, factors) = self
            .challenge_and_factors_of_token(ephemeral_token)
            .await?
            .filter(|(c, _)| !c.spent && c.expires_at > ctx.now)
            .ok_or(Error::InvalidToken)?;
        let user_id = challenge.user_id.clone();
        // The refresh token a right answer gets; its `amr` is set once the method is known.
        let (refresh, mut template) = self.new_refresh_token(&user_id, &[], ctx);
        // A reauthentication's answer continues its session, with a fresh `auth_time`.
        if let Some(session) = &challenge.session_id {
            template.family_id = session.clone();
        }
        let code = match answer {
            Proof::Code(code) => code,
            Proof::Credential(credential) => {
                let session = (refresh, template);
                return self
                    .verify_passkey_answer(
                        ephemeral_token,
                        &challenge,
                        credential,
                        session,
                        remember_device,
                        ctx,
                    )
                    .await;
            }
        };
        // (A passkey's answer derives the user's window itself.)
        let user_window = self.user_failure_window(&user_id);
        // Everything the code is compared with is read (and opened) first; the comparison runs
        // in the store after the attempt is claimed: of any burst, at most `max_attempts` codes
        // per challenge (and the user's window) are ever checked.
        let check = self
            .prepare_code_check(&user_id, code, Some(&challenge), Some(factors))
            .await?;
        let now = ctx.now;
        let answer_check: AnswerCheck = Box::new(move || {
            let (method, claim) = check.run(now)?;
            let mut refresh = template;
            refresh.amr = login_amr(method).join(" ");
            Some(Proven { claim, refresh })
        });
        let answered = self
            .store
            .answer_challenge(
                &challenge.id,
                self.config.max_attempts,
                user_window.as_ref(),
                answer_check,
                ctx.now,
            )
            .await?;
        match answered {
            Answered::NotClaimed(refused) => {
                Err(self.attempt_refused(refused, &user_id, ctx).await)
            }
            Answered::Wrong { failures } => {
                Err(self.wrong_answer(false, failures, &user_id, ctx).await)
            }
            Answered::Proved {
                failures,
                proven,
                completion,
            } => match completion {
                Completion::Completed => {
                    self.answer_passed(proven, refresh, remember_device, ctx)
                        .await
                }
                // Spent by another right answer, or ended by a password reset or a disable.
                Completion::ChallengeGone => Err(Error::InvalidToken),
                // Replayed step or code used meanwhile: a wrong code, like any other.
                Completion::FactorRefused => {
                    Err(self.wrong_answer(false, failures, &user_id, ctx).await)
                }
            },
        }
    }

    /// A challenge answered with a passkey: the attempt is claimed, then the signature checked
    /// (a WebAuthn verification reads the stored passkey, so it runs between two transactions),
    /// then the login completed with the counter it claims.
    async fn verify_passkey_answer(
        &self,
        ephemeral_token: &str,
        challenge: &Challenge,
        credential: &serde_json::Value,
        (refresh, mut template): (String, NewRefreshToken),
        remember_device: bool,
        ctx: &Context,
    ) -> Result<SecondFactorPassed> {
        let user_id = challenge.user_id.clone();
        let user_window = self.user_failure_window(&user_id);
        let failures = match self
            .store
            .claim_challenge_attempt(
                &challenge.id,
                self.config.max_attempts,
                user_window.as_ref(),
                ctx.now,
            )
            .await?
        {
            AttemptClaim::Claimed { failures } => failures,
            refused => return Err(self.attempt_refused(refused, &user_id, ctx).await),
        };
        let refusal = match self.identify_passkey(challenge, credential).await? {
            Ok(claim) => {
                template.amr = login_amr(Method::Webauthn).join(" ");
                let proven = Proven {
                    claim,
                    refresh: template,
                };
                match self
                    .store
                    // The user's window counts failures: a right answer hands its claim back.
                    .complete_challenge(
                        &challenge.id,
                        proven.claim.clone(),
                        &proven.refresh,
                        user_window.as_ref(),
                        ctx.now,
                    )
                    .await?
                {
                    Completion::Completed => {
                        return self
                            .answer_passed(proven, refresh, remember_device, ctx)
                            .await
                    }
                    Completion::ChallengeGone => return Err(Error::InvalidToken),
                    // A counter that lost its claim did not grow past what was stored.
                    Completion::FactorRefused => Refusal::PossibleClone,
                }
            }
            Err(refused) => refused,
        };
        if refusal == Refusal::PossibleClone {
            // The same answer sent twice at once: the first spent the challenge and moved the
            // counter, so the second looks like a clone. It is a replay of a spent challenge.
            let spent = self
                .challenge_of_token(ephemeral_token)
                .await?
                .is_none_or(|c| c.spent);
            if spent {
                return Err(Error::InvalidToken);
            }
            self.audit(audit::PASSKEY_POSSIBLE_CLONE, Some(&user_id), ctx, None)
                .await;
        }
        Err(self.wrong_answer(true, failures, &user_id, ctx).await)
    }

    /// The error for an attempt the store did not claim (never `Claimed`).
    async fn attempt_refused(&self, refused: AttemptClaim, user_id: &str, ctx: &Context) -> Error {
        match refused {
            AttemptClaim::Claimed { .. } | AttemptClaim::ChallengeGone => Error::InvalidToken,
            AttemptClaim::ChallengeDead { expires_at } => Error::TooManyAttempts {
                retry_after: seconds_until(expires_at, ctx.now),
            },
            AttemptClaim::UserThrottled { retry_after } => {
                self.audit(audit::SECOND_FACTOR_THROTTLED, Some(user_id), ctx, None)
                    .await;
                Error::Throttled {
                    retry_after: seconds_until(ctx.now + retry_after, ctx.now),
                }
            }
        }
    }

    /// The error for a claimed attempt whose answer was wrong (or lost a race for its factor),
    /// with the attempts the challenge has left.
    async fn wrong_answer(
        &self,
        by_passkey: bool,
        failures: u32,
        user_id: &str,
        ctx: &Context,
    ) -> Error {
        self.audit(audit::SECOND_FACTOR_FAILED, Some(user_id), ctx, None)
            .await;
        let attempts_remaining = Some(self.config.max_attempts.saturating_sub(failures));
        if by_passkey {
            Error::InvalidCredential { attempts_remaining }
        } else {
            Error::InvalidCode { attempts_remaining }
        }
    }

    /// A completed login: audited, the user told of a recovery code's use, the token pair
    /// signed, and a device token when one was asked for.
    async fn answer_passed(
        &self,
        proven: Proven,
        refresh: String,
        remember_device: bool,
        ctx: &Context,
    ) -> Result<SecondFactorPassed> {
        let Proven {
            claim,
            refresh: record,
        } = proven;
        let method = claim.method();
        let user_id = record.user_id.as_str();
        self.audit(
            audit::SECOND_FACTOR_OK,
            Some(user_id),
            ctx,
            Some(claim_detail(method, &claim)),
        )
        .await;
        if method == Method::RecoveryCode {
            self.audit(audit::RECOVERY_CODE_USED, Some(user_id), ctx, None)
                .await;
            self.notify_recovery_code_used(user_id, ctx).await;
        }
        let tokens = self.token_pair(&record, &login_amr(method), refresh, ctx.now)?;
        let device_token = if remember_device {
            Some(self.remember_device(user_id, ctx).await?)
        } else {
            None
        };
        Ok(SecondFactorPassed {
            tokens,
            device_token,
            method,
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
        Ok(self
            .prepare_code_check(user_id, code, challenge, None)
            .await?
            .run(now))
    }

    /// Reads and opens what `code` will be compared with (`CodeCheck::run`); compares nothing.
    /// Which kind of code it is comes from its shape: TOTP-shaped codes are compared with the
    /// user's TOTP factors, others with the unused recovery codes (every one of them opened, so
    /// that timing does not tell which one matched); an e-mailed code with its challenge's.
    ///
    /// `factors`: the user's verified factors, when read already (with the challenge); `None`
    /// reads them.
    pub(super) async fn prepare_code_check(
        &self,
        user_id: &str,
        code: &str,
        challenge: Option<&Challenge>,
        factors: Option<Vec<Factor>>,
    ) -> Result<CodeCheck> {
        // An e-mailed code is bound to its challenge: spending the challenge uses it up.
        let email = challenge.and_then(|challenge| {
            let stored_hash = challenge.email_code_hash.clone()?;
            Some(EmailCodeCheck {
                key: self.email_code_key.clone(),
                challenge_id: challenge.id.clone(),
                stored_hash,
                digits: self.config.email_code_digits as usize,
            })
        });
        let mut check = CodeCheck {
            typed: code.to_string(),
            totp: self.config.totp,
            email,
            candidates: Candidates::Nothing,
        };
        let factors = match factors {
            Some(read) => read,
            None => self.store.factors(user_id).await?,
        };
        if factors.is_empty() {
            return Ok(check);
        }
        if totp::looks_like_code(code, &self.config.totp) {
            let mut opened = Vec::new();
            for factor in factors.iter().filter(|f| f.kind == FactorKind::Totp) {
                let Some(sealed) = &factor.secret_sealed else {
                    continue;
                };
                opened.push(OpenedTotp {
                    factor_id: factor.id.clone(),
                    secret: self.sealer.open(sealed, &totp_context(user_id))?,
                    last_step: factor.last_step,
                });
            }
            check.candidates = Candidates::Totp(opened);
            return Ok(check);
        }
        if recovery_codes::normalize(code).is_empty() {
            return Ok(check);
        }
        let mut opened = Vec::new();
        for stored in self.store.unused_recovery_codes(user_id).await? {
            let plain = self
                .sealer
                .open(&stored.code_sealed, &recovery_context(user_id))?;
            opened.push((stored.id, String::from_utf8_lossy(&plain).into_owned()));
        }
        check.candidates = Candidates::RecoveryCodes(opened);
        Ok(check)
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

/// The `amr` of a login completed with a second factor of `method`.
fn login_amr(method: Method) -> [&'static str; 3] {
    ["pwd", "mfa", method.amr()]
}

/// A typed code and what it is to be compared with, read and opened before the attempt is
/// claimed (`Gatekeeper::prepare_code_check`). `run` only compares, in constant time, and
/// reads nothing, so the store can run it inside the transaction that claims the attempt
/// (`ChallengeStore::answer_challenge`). No `Debug`: it holds the code and opened secrets.
pub(super) struct CodeCheck {
    typed: String,
    totp: totp::TotpParams,
    email: Option<EmailCodeCheck>,
    candidates: Candidates,
}

/// The challenge's e-mailed code, as its keyed hash.
struct EmailCodeCheck {
    key: SecretBytes,
    challenge_id: String,
    stored_hash: String,
    digits: usize,
}

/// A TOTP factor with its secret opened.
struct OpenedTotp {
    factor_id: String,
    secret: Vec<u8>,
    last_step: Option<i64>,
}

enum Candidates {
    Nothing,
    Totp(Vec<OpenedTotp>),
    /// Unused recovery codes: id and the code.
    RecoveryCodes(Vec<(i64, String)>),
}

impl CodeCheck {
    /// The factor the code proves at `now`, and what must be claimed for it to count.
    pub(super) fn run(self, now: i64) -> Option<(Method, FactorClaim)> {
        if let Some(email) = &self.email {
            let typed = totp::normalize_code(&self.typed);
            let shaped = typed.len() == email.digits && typed.bytes().all(|b| b.is_ascii_digit());
            let hash = email::code_hash(&email.key, &email.challenge_id, &typed);
            if shaped
                && crate::secret::constant_time_eq(hash.as_bytes(), email.stored_hash.as_bytes())
            {
                return Some((Method::Email, FactorClaim::EmailCode));
            }
        }
        match &self.candidates {
            Candidates::Nothing => None,
            // The first TOTP factor for which the code is right at a step later than the
            // factor's last, with that step to claim. Replay protection is per factor: a step
            // used by one factor is still open to another.
            Candidates::Totp(factors) => factors.iter().find_map(|factor| {
                let step = totp::matching_step(&factor.secret, &self.typed, now, &self.totp)?;
                // Cheap early refusal of a replay; the claim itself is atomic in the store.
                if factor.last_step.is_some_and(|last| step <= last) {
                    return None;
                }
                Some((
                    Method::Totp,
                    FactorClaim::TotpStep {
                        factor_id: factor.factor_id.clone(),
                        step,
                    },
                ))
            }),
            Candidates::RecoveryCodes(codes) => {
                let typed = recovery_codes::normalize(&self.typed);
                // Every code is compared, so timing does not tell which one matched.
                let mut matched = None;
                for (id, code) in codes {
                    if recovery_codes::matches(&typed, code) {
                        matched = Some(*id);
                    }
                }
                matched.map(|id| (Method::RecoveryCode, FactorClaim::RecoveryCode(id)))
            }
        }
    }
}
