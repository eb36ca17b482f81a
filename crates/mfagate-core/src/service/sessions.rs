//! Sessions and recent authentication: list and end the user's sessions, sign out everywhere,
//! and prove who you are again within a session (`POST /auth/reauthenticate`).

use super::*;

/// A live session as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub amr: Vec<String>,
    /// The session of the calling token.
    pub current: bool,
}

fn no_session() -> Error {
    Error::NotFound(
        "no such session: it is unknown, over, or another user's; list yours at GET /auth/sessions"
            .into(),
    )
}

impl Gatekeeper {
    /// The caller's live sessions, newest first.
    pub async fn list_sessions(&self, caller: &AccessClaims, now: i64) -> Result<Vec<SessionView>> {
        self.user(&caller.sub).await?;
        Ok(self
            .store
            .live_sessions(&caller.sub, now)
            .await?
            .into_iter()
            .map(|s| SessionView {
                current: s.id == caller.sid,
                amr: stored_amr(&s.amr).map(str::to_string).collect(),
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect())
    }

    /// Ends one of the caller's sessions: its refresh tokens die (its access tokens live until
    /// they expire, as after `logout`).
    pub async fn end_session(
        &self,
        caller: &AccessClaims,
        session_id: &str,
        ctx: &Context,
    ) -> Result<()> {
        self.user(&caller.sub).await?;
        if !self
            .store
            .end_session(&caller.sub, session_id, ctx.now)
            .await?
        {
            return Err(no_session());
        }
        self.audit(
            audit::SESSION_ENDED,
            Some(&caller.sub),
            ctx,
            Some(format!("session {session_id}")),
        )
        .await;
        Ok(())
    }

    /// Ends every session of the caller; how many there were.
    pub async fn logout_all(&self, caller: &AccessClaims, ctx: &Context) -> Result<u64> {
        self.user(&caller.sub).await?;
        let ended = self.store.end_all_sessions(&caller.sub, ctx.now).await?;
        self.audit(
            audit::LOGOUT_ALL,
            Some(&caller.sub),
            ctx,
            Some(format!("{ended} sessions")),
        )
        .await;
        Ok(ended)
    }

    /// The step-up rule for a host app's own sensitive routes: a token from an authentication
    /// within `max_age` seconds that, for a user with a second factor switched on, used one.
    /// Else `ReauthenticationRequired` (the RFC 9470 challenge); the cure is
    /// `POST /auth/reauthenticate`.
    pub async fn require_recent_authentication(
        &self,
        caller: &AccessClaims,
        max_age: i64,
        now: i64,
    ) -> Result<()> {
        let user = self.user(&caller.sub).await?;
        let recent = now - caller.auth_time <= max_age;
        if recent && (!self.mfa_enabled(&user) || caller.has_second_factor()) {
            return Ok(());
        }
        Err(Error::ReauthenticationRequired { max_age })
    }

    /// Proves who the caller is again, in the caller's session: a user with a second factor
    /// gets a challenge (the password may be left out; the factor is the proof), whose answer
    /// at `mfa/verify` continues this session with a fresh `auth_time`; a user without one must
    /// give the password and gets the new pair at once. A password, when given, is checked and
    /// throttled like a login's.
    pub async fn reauthenticate(
        &self,
        caller: &AccessClaims,
        password: Option<&str>,
        ctx: &Context,
    ) -> Result<LoginOutcome> {
        let user = self.user(&caller.sub).await?;
        if caller.sid.is_empty() {
            // A token from before sessions had ids: there is no session to continue.
            return Err(Error::NotAuthenticated);
        }
        if let Some(password) = password {
            let windows = self.login_windows(&user.username.to_lowercase(), Some(&user), ctx);
            if !self
                .attempt_password(&windows, Some(&user), password, ctx)
                .await?
            {
                self.audit(
                    audit::LOGIN_FAILED,
                    Some(&user.id),
                    ctx,
                    Some("reauthentication".into()),
                )
                .await;
                return Err(Error::InvalidCredentials);
            }
        }
        let methods = if self.config.mode == MfaMode::Disabled {
            Vec::new()
        } else {
            self.verify_methods(&user).await?
        };
        if !methods.is_empty() {
            let challenge = self
                .issue_challenge(&user, methods, Some(&caller.sid), &[], ctx)
                .await?;
            return Ok(LoginOutcome::Challenge(challenge));
        }
        if password.is_none() {
            return Err(Error::validation(
                "password",
                "is required: this account has no second factor to prove instead",
            ));
        }
        let amr = ["pwd"];
        let (refresh, mut record) = self.new_refresh_token(&user.id, &amr, ctx);
        record.family_id = caller.sid.clone();
        if !self.store.continue_session(&record, ctx.now).await? {
            // The session was ended meanwhile (logout, another device's `logout/all`).
            return Err(Error::NotAuthenticated);
        }
        self.audit(
            audit::REAUTHENTICATED,
            Some(&user.id),
            ctx,
            Some(format!("session {}", caller.sid)),
        )
        .await;
        Ok(LoginOutcome::Tokens(
            self.token_pair(&record, &amr, refresh, ctx.now)?,
        ))
    }
}
