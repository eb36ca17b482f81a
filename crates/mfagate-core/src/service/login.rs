//! Password login: throttled attempts, then tokens, a challenge or a setup token.

use super::*;
use crate::password;

#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChallengeIssued {
    pub ephemeral_token: String,
    /// What `mfa/verify` accepts, preferred first: `totp`, `webauthn`, `email`, `recovery_code`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub methods: Vec<Method>,
    pub expires_in: i64,
    /// Present when e-mail is the preferred or only method: whether login sent the first code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_sent: Option<bool>,
    /// When the user has passkeys: the `PublicKeyCredentialRequestOptionsJSON` to answer with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<serde_json::Value>,
}

crate::debug_showing!(ChallengeIssued {
    methods,
    expires_in,
    email_sent
});

#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The `amr` value of a second factor a remembered device stood in for (RFC 8176 `swk`:
/// a software-secured key the browser holds).
pub const REMEMBERED_DEVICE_AMR: &str = "swk";

/// Longest username or e-mail worth looking up.
pub(super) const LOGIN_MAX_CHARS: usize = 320;

impl Gatekeeper {
    /// A password login. `device_token`, from an earlier `mfa/verify` with `remember_device`,
    /// stands in for the second factor while it is live and the user's; otherwise it is
    /// ignored.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        device_token: Option<&str>,
        ctx: &Context,
    ) -> Result<LoginOutcome> {
        let outcome = self.login_counted(login, password, device_token, ctx).await;
        crate::metrics::login(match &outcome {
            Ok(LoginOutcome::Tokens(_)) => "tokens",
            Ok(LoginOutcome::Challenge(_)) => "challenge",
            Ok(LoginOutcome::SetupRequired(_)) => "setup_required",
            Err(Error::InvalidCredentials) => "invalid_credentials",
            Err(Error::Throttled { .. }) => "throttled",
            Err(Error::EmailNotVerified) => "email_not_verified",
            Err(Error::Overloaded { .. }) => "overloaded",
            Err(_) => "error",
        });
        outcome
    }

    async fn login_counted(
        &self,
        login: &str,
        password: &str,
        device_token: Option<&str>,
        ctx: &Context,
    ) -> Result<LoginOutcome> {
        let (login, candidate) = self.lookup_login_candidate(login).await?;
        let (user, has_recovery_codes) = match candidate {
            Some(found) => (Some(found.user), found.has_unused_recovery_codes),
            None => (None, false),
        };
        let windows = self.login_windows(&login, user.as_ref(), ctx);
        // A disabled account is checked against the decoy: same time, and a failure like any.
        let active = user.as_ref().filter(|u| !u.disabled);
        // A right password's claim is handed back by the login's next write (see
        // `after_password`), not by a write of its own.
        let matched = self
            .claim_and_check_password(&windows, active, password, ctx)
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
            self.hand_back(&windows, ctx).await?;
            return Err(Error::EmailNotVerified);
        }
        self.after_password_holding(&user, Some(has_recovery_codes), device_token, &windows, ctx)
            .await
    }

    /// A login name as typed (username or address), normalised (trimmed, lowercase), and its
    /// user if there is one. NUL can be in no stored name (and PostgreSQL refuses it in text),
    /// and names over 320 characters in none either: such a name is simply unknown.
    pub(super) async fn lookup_login(&self, typed: &str) -> Result<(String, Option<User>)> {
        let (name, storable) = normalise_login(typed);
        let user = if storable {
            self.store.user_by_login(&name).await?
        } else {
            None
        };
        Ok((name, user))
    }

    /// `lookup_login` for a password login: the user comes with whether any of their recovery
    /// codes is unused, which the challenge needs, in the same read.
    async fn lookup_login_candidate(
        &self,
        typed: &str,
    ) -> Result<(String, Option<LoginCandidate>)> {
        let (name, storable) = normalise_login(typed);
        let found = if storable {
            self.store.login_candidate(&name).await?
        } else {
            None
        };
        Ok((name, found))
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
    pub(super) fn login_windows(
        &self,
        name: &str,
        user: Option<&User>,
        ctx: &Context,
    ) -> Vec<WindowLimit> {
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
    pub(super) async fn attempt_password(
        &self,
        windows: &[WindowLimit],
        user: Option<&User>,
        password: &str,
        ctx: &Context,
    ) -> Result<bool> {
        let matched = self
            .claim_and_check_password(windows, user, password, ctx)
            .await?;
        if matched {
            self.hand_back(windows, ctx).await?;
        }
        Ok(matched)
    }

    /// `attempt_password` without the hand-back of a right password's claim: the caller hands
    /// it back itself, in its next write (`hand_back`, or a challenge's insert).
    pub(super) async fn claim_and_check_password(
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
        if checked.is_err() {
            // Never checked (the hash queue refused it): not a failure.
            self.hand_back(windows, ctx).await?;
        }
        checked
    }

    /// Hands back a right password's claim on its login windows (they count failures).
    pub(super) async fn hand_back(&self, windows: &[WindowLimit], ctx: &Context) -> Result<()> {
        if !windows.is_empty() {
            self.store.release_windows(windows, ctx.now).await?;
        }
        Ok(())
    }

    /// One full argon2 verification, whoever asks: an unknown user and one without a password
    /// yet (a pending invitation) are checked against the decoy hash, so the time tells
    /// nothing.
    pub(super) async fn check_password(
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

    /// What a user who proved their password gets: tokens, a challenge, or a setup token. A
    /// live device token of the user's skips the challenge.
    ///
    /// `hand_back`: the login windows the password was counted in, handed back here: in the
    /// challenge's insert when one is issued (the usual login with a second factor writes
    /// once fewer), else by a write before the tokens or setup token. Should a read fail
    /// first, the attempt stays counted, as a failure would be.
    pub async fn after_password(
        &self,
        user: &User,
        device_token: Option<&str>,
        hand_back: &[WindowLimit],
        ctx: &Context,
    ) -> Result<LoginOutcome> {
        self.after_password_holding(user, None, device_token, hand_back, ctx)
            .await
    }

    /// `after_password`, told already whether the user has unused recovery codes (`Some`:
    /// read with the user) or left to read it (`None`).
    async fn after_password_holding(
        &self,
        user: &User,
        has_recovery_codes: Option<bool>,
        device_token: Option<&str>,
        hand_back: &[WindowLimit],
        ctx: &Context,
    ) -> Result<LoginOutcome> {
        let methods = if self.config.mode == MfaMode::Disabled {
            Vec::new()
        } else {
            self.verify_methods_holding(user, has_recovery_codes)
                .await?
        };
        if !methods.is_empty() {
            if let Some(device) = device_token {
                if self
                    .store
                    .use_remembered_device(&hash_token(device), &user.id, ctx.now)
                    .await?
                {
                    self.hand_back(hand_back, ctx).await?;
                    self.audit(audit::DEVICE_LOGIN, Some(&user.id), ctx, None)
                        .await;
                    self.notify(notices::Notice::DeviceLogin, user, ctx).await;
                    let amr = ["pwd", "mfa", REMEMBERED_DEVICE_AMR];
                    return Ok(LoginOutcome::Tokens(
                        self.issue_tokens(&user.id, &amr, ctx).await?,
                    ));
                }
            }
            return Ok(LoginOutcome::Challenge(
                self.issue_challenge(user, methods, None, hand_back, ctx)
                    .await?,
            ));
        }
        self.hand_back(hand_back, ctx).await?;
        if self.config.mode == MfaMode::Required {
            return Ok(LoginOutcome::SetupRequired(
                self.issue_setup_token(&user.id, ctx).await?,
            ));
        }
        self.audit(audit::LOGIN_OK, Some(&user.id), ctx, None).await;
        Ok(LoginOutcome::Tokens(
            self.issue_tokens(&user.id, &["pwd"], ctx).await?,
        ))
    }

    /// What `mfa/verify` accepts for this user, preferred first.
    pub(super) async fn verify_methods(&self, user: &User) -> Result<Vec<Method>> {
        self.verify_methods_holding(user, None).await
    }

    /// `verify_methods`; `has_recovery_codes`, when known already, saves reading it.
    async fn verify_methods_holding(
        &self,
        user: &User,
        has_recovery_codes: Option<bool>,
    ) -> Result<Vec<Method>> {
        let factor = (user.has_totp && self.config.allows(Method::Totp))
            || (user.has_webauthn && self.config.allows(Method::Webauthn));
        // Recovery codes stand in for a factor only: without one, none are offered.
        let recovery_codes = factor
            && match has_recovery_codes {
                Some(known) => known,
                None => self.store.count_unused_recovery_codes(&user.id).await? > 0,
            };
        Ok(policy::challenge_methods(
            &self.config,
            &holdings(user, recovery_codes),
        ))
    }

    /// A challenge for `user`; with `session`, a reauthentication's, whose answer continues
    /// that session instead of beginning one.
    pub(super) async fn issue_challenge(
        &self,
        user: &User,
        methods: Vec<Method>,
        session: Option<&str>,
        hand_back: &[WindowLimit],
        ctx: &Context,
    ) -> Result<ChallengeIssued> {
        let expires_at = ctx.now + self.config.challenge_ttl;
        let NamedToken {
            id: challenge_id,
            token,
            hash: token_hash,
        } = NamedToken::new(ctx.now);
        let passkey = if methods.contains(&Method::Webauthn) {
            self.challenge_passkey_options(user).await?
        } else {
            None
        };
        let (webauthn, webauthn_state) = passkey.unzip();
        let created = self
            .store
            .create_challenge(
                &NewChallenge {
                    id: challenge_id.clone(),
                    user_id: user.id.clone(),
                    token_hash,
                    created_at: ctx.now,
                    expires_at,
                    webauthn_state,
                    session_id: session.map(str::to_string),
                },
                self.config.max_challenges,
                self.config.max_attempts,
                hand_back,
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
            webauthn,
        })
    }

    pub(super) async fn issue_setup_token(
        &self,
        user_id: &str,
        ctx: &Context,
    ) -> Result<SetupIssued> {
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
}

/// A login name as typed, normalised (trimmed, lowercase), and whether a stored name can be it:
/// none holds NUL (PostgreSQL refuses it in text) or is over `LOGIN_MAX_CHARS` characters.
fn normalise_login(typed: &str) -> (String, bool) {
    let name = typed.trim().to_lowercase().replace('\0', "\u{fffd}");
    let storable = name.chars().count() <= LOGIN_MAX_CHARS && !name.contains('\u{fffd}');
    (name, storable)
}
