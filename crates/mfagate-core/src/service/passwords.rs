//! Passwords: change, reset by a mailed key, and the first one an invitation sets.

use super::*;

/// The password hash of an invited user who has not chosen a password: no password verifies
/// against it, since it is not a PHC string.
pub const INVITED_PASSWORD_MARKER: &str = "!invited";

impl Gatekeeper {
    /// Accepts an invitation: sets the password, marks the address verified, and answers as a
    /// login with that password would.
    pub async fn set_password_with_key(
        &self,
        key: &str,
        password: &str,
        ctx: &Context,
    ) -> Result<LoginOutcome> {
        let user = self
            .set_password_by_key(key, KeyPurpose::Invitation, password, "password", ctx)
            .await?;
        self.audit(audit::INVITATION_ACCEPTED, Some(&user.id), ctx, None)
            .await;
        let user = self.user(&user.id).await?;
        self.after_password(&user, None, &[], ctx).await
    }

    /// Sets a password with a mailed key (`field` names the password in a validation error).
    /// In one transaction the key is used up, the password set, the address marked verified
    /// (the key came through the mailbox), and every credential of the user ended, other
    /// invitation and reset keys included: a second mailed key cannot set the password again.
    pub(super) async fn set_password_by_key(
        &self,
        key: &str,
        purpose: KeyPurpose,
        password: &str,
        field: &str,
        ctx: &Context,
    ) -> Result<User> {
        let key_hash = hash_token(key);
        let user = self.key_holder(&key_hash, purpose, ctx).await?;
        check_new_password(password, &user.username, self.config.password_min_length)
            .map_err(|p| Error::validation(field, p))?;
        let hash = self.hasher.hash(password.to_string(), ctx.ip).await?;
        let change = AccountChange::SetPassword {
            hash,
            verify_email: true,
        };
        if !self
            .store
            .change_account(&user.id, &change, Some((&key_hash, purpose)), ctx.now)
            .await?
        {
            return Err(Error::InvalidKey);
        }
        Ok(user)
    }

    pub(super) async fn key_holder(
        &self,
        key_hash: &str,
        purpose: KeyPurpose,
        ctx: &Context,
    ) -> Result<User> {
        let user_id = self
            .store
            .email_key_user(key_hash, purpose, ctx.now)
            .await?
            .ok_or(Error::InvalidKey)?;
        self.store
            .user_by_id(&user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(Error::InvalidKey)
    }

    /// Needs the old password, which is counted against the account's failed-login windows
    /// like a login (claimed before the hash); ends every credential of the user.
    pub async fn change_password(
        &self,
        user_id: &str,
        old: &str,
        new: &str,
        ctx: &Context,
    ) -> Result<()> {
        let user = self.user(user_id).await?;
        let windows = self.login_windows(&user.username.to_lowercase(), Some(&user), ctx);
        if !self
            .attempt_password(&windows, Some(&user), old, ctx)
            .await?
        {
            self.audit(
                audit::LOGIN_FAILED,
                Some(&user.id),
                ctx,
                Some("wrong old password at password change".into()),
            )
            .await;
            return Err(Error::InvalidPassword);
        }
        check_new_password(new, &user.username, self.config.password_min_length)
            .map_err(|p| Error::validation("new_password", p))?;
        let hash = self.hasher.hash(new.to_string(), ctx.ip).await?;
        let change = AccountChange::SetPassword {
            hash,
            verify_email: false,
        };
        self.store
            .change_account(&user.id, &change, None, ctx.now)
            .await?;
        self.audit(audit::PASSWORD_CHANGED, Some(&user.id), ctx, None)
            .await;
        self.notify(notices::Notice::PasswordChanged, &user, ctx)
            .await;
        Ok(())
    }

    /// Mails a reset key if the address is known, at most once a minute and
    /// `reset_mails_per_hour` times an hour per address. Callers answer the same whether or not
    /// it is known or throttled (and should not wait for this, so that timing tells nothing
    /// either).
    pub async fn request_password_reset(&self, address: &str, ctx: &Context) {
        let Ok(Some(user)) = self.user_with_email(address).await else {
            return;
        };
        let windows = [
            self.throttle_keys.window(
                crate::rate::Rate {
                    limit: 1,
                    window_seconds: 60,
                },
                "reset-mail-minute",
                &[&user.id],
            ),
            self.throttle_keys.window(
                crate::rate::Rate {
                    limit: self.config.reset_mails_per_hour.max(1),
                    window_seconds: 3600,
                },
                "reset-mail-hour",
                &[&user.id],
            ),
        ];
        match self.store.claim_windows(&windows, ctx.now).await {
            Ok(Claim::Granted) => {
                let _ = self
                    .send_key_mail(&user, KeyPurpose::PasswordReset, ctx)
                    .await;
            }
            Ok(Claim::Refused { .. }) => {
                self.audit(audit::PASSWORD_RESET_THROTTLED, Some(&user.id), ctx, None)
                    .await;
            }
            Err(error) => {
                tracing::warn!(%error, "could not count a password-reset mail; none was sent");
            }
        }
    }

    /// Sets a new password with a reset key. Never logs in, never touches second factors; ends
    /// every credential of the user, and uses the key up, in one transaction.
    pub async fn confirm_password_reset(&self, key: &str, new: &str, ctx: &Context) -> Result<()> {
        let user = self
            .set_password_by_key(key, KeyPurpose::PasswordReset, new, "new_password", ctx)
            .await?;
        self.audit(audit::PASSWORD_RESET, Some(&user.id), ctx, None)
            .await;
        self.notify(notices::Notice::PasswordReset, &user, ctx)
            .await;
        Ok(())
    }
}
