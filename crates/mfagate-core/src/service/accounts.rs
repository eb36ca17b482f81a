//! Registration and account creation; the user lookups the other flows share.

use super::*;

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

impl Gatekeeper {
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
            LoginOutcome::Tokens(self.issue_tokens(&user.id, &["pwd"], ctx).await?)
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

    pub(super) async fn user_by_name(&self, username: &str) -> Result<User> {
        if username.contains('\0') {
            return Err(Error::NotFound(format!("no user named '{username}'")));
        }
        self.store
            .user_by_login(&username.trim().to_lowercase())
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user named '{username}'")))
    }
}
