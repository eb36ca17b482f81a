//! Flows that go through the user's mailbox: e-mailed codes, address verification,
//! invitations, password change and reset; and the administrator's actions on other users.
//!
//! Keys mailed for verification, invitation and reset are 256-bit tokens stored as hashes, used
//! once (atomically), with lifetimes from the config. None of these flows ever issues tokens that
//! skip a second factor: a set password leads to the same answer a login would give.

use super::*;
use crate::account::check_new_password;
use crate::store::UserPageStart;

/// The deepest offset the user list takes; further pages go by cursor.
pub const MAX_USER_LIST_OFFSET: u32 = 10_000;

/// The password hash of an invited user who has not chosen a password: no password verifies
/// against it, since it is not a PHC string.
pub const INVITED_PASSWORD_MARKER: &str = "!invited";

impl Gatekeeper {
    /// Mails a fresh code for a challenge, within the resend rules. If the mail cannot be sent,
    /// the reservation is undone: the earlier code stays valid and the user may ask again.
    pub(super) async fn send_email_code(
        &self,
        challenge_id: &str,
        expires_at: i64,
        user: &User,
        ctx: &Context,
    ) -> Result<()> {
        let code = email::generate_code(self.config.email_code_digits);
        let hash = email::code_hash(&self.email_code_key, challenge_id, &code);
        let reservation = self
            .store
            .reserve_email_send(
                challenge_id,
                &hash,
                ctx.now,
                self.config.email_resend_interval,
                self.config.email_max_sends,
                self.config.max_attempts,
            )
            .await?;
        match reservation {
            EmailReservation::Reserved => {}
            EmailReservation::TooSoon { retry_after } => {
                return Err(Error::Throttled {
                    retry_after: seconds_until(ctx.now + retry_after, ctx.now),
                })
            }
            EmailReservation::LimitReached => {
                return Err(Error::Throttled {
                    retry_after: seconds_until(expires_at, ctx.now),
                })
            }
            EmailReservation::NotLive => return Err(Error::InvalidToken),
        }
        let minutes = ((expires_at - ctx.now) / 60).max(1).to_string();
        let lifetime = crate::email::lifetime_in_words(expires_at - ctx.now);
        let message = self.templates.render(
            MessageKind::EmailCode,
            &user.email,
            &[
                ("product", &self.config.product_name),
                ("username", &user.username),
                ("code", &code),
                ("minutes", &minutes),
                ("lifetime", &lifetime),
            ],
        );
        match self.mailer.send(&message).await {
            Ok(()) => {
                self.audit(audit::EMAIL_CODE_SENT, Some(&user.id), ctx, None)
                    .await;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(reason = %error, "could not send a sign-in code; check MFAGATE_SMTP_URL and the mail server");
                self.store.release_email_send(challenge_id, &hash).await?;
                self.audit(audit::EMAIL_SEND_FAILED, Some(&user.id), ctx, Some(error.0))
                    .await;
                Err(Error::EmailUnavailable)
            }
        }
    }

    /// `POST /auth/mfa/email/send`: a new code for a live challenge. Returns the seconds the
    /// code stays valid (it expires with its challenge).
    pub async fn request_email_code(&self, ephemeral_token: &str, ctx: &Context) -> Result<i64> {
        if self.config.mode == MfaMode::Disabled {
            return Err(Error::MfaDisabled);
        }
        let challenge = self
            .store
            .challenge_by_token(&hash_token(ephemeral_token))
            .await?
            .filter(|c| !c.spent && c.expires_at > ctx.now)
            .ok_or(Error::InvalidToken)?;
        if challenge.failures >= self.config.max_attempts {
            return Err(Error::TooManyAttempts {
                retry_after: seconds_until(challenge.expires_at, ctx.now),
            });
        }
        let user = self.user(&challenge.user_id).await?;
        if !self.verify_methods(&user).await?.contains(&Method::Email) {
            return Err(Error::InvalidMethod(
                "e-mailed codes are not among this user's methods".into(),
            ));
        }
        self.send_email_code(&challenge.id, challenge.expires_at, &user, ctx)
            .await?;
        Ok(challenge.expires_at - ctx.now)
    }

    /// Mails a single-use key for `purpose`.
    pub(super) async fn send_key_mail(
        &self,
        user: &User,
        purpose: KeyPurpose,
        ctx: &Context,
    ) -> Result<()> {
        let (ttl, kind, event) = match purpose {
            KeyPurpose::Verification => (
                self.config.verification_ttl,
                MessageKind::Verification,
                audit::VERIFICATION_SENT,
            ),
            KeyPurpose::Invitation => (
                self.config.invitation_ttl,
                MessageKind::Invitation,
                audit::USER_INVITED,
            ),
            KeyPurpose::PasswordReset => (
                self.config.password_reset_ttl,
                MessageKind::PasswordReset,
                audit::PASSWORD_RESET_REQUESTED,
            ),
        };
        let key = generate_token();
        self.store
            .create_email_key(&hash_token(&key), &user.id, purpose, ctx.now + ttl)
            .await?;
        let link = format!(
            "{}/{}?key={key}",
            self.config.link_base_url.trim_end_matches('/'),
            kind.link_path()
        );
        let minutes = (ttl / 60).to_string();
        let lifetime = crate::email::lifetime_in_words(ttl);
        let message = self.templates.render(
            kind,
            &user.email,
            &[
                ("product", &self.config.product_name),
                ("username", &user.username),
                ("key", &key),
                ("link", &link),
                ("minutes", &minutes),
                ("lifetime", &lifetime),
            ],
        );
        match self.mailer.send(&message).await {
            Ok(()) => {
                self.audit(event, Some(&user.id), ctx, None).await;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(reason = %error, kind = kind.name(), "could not send an e-mail; check MFAGATE_SMTP_URL and the mail server");
                self.audit(
                    audit::EMAIL_SEND_FAILED,
                    Some(&user.id),
                    ctx,
                    Some(format!("{}: {}", kind.name(), error.0)),
                )
                .await;
                Err(Error::EmailUnavailable)
            }
        }
    }

    pub async fn verify_email(&self, key: &str, ctx: &Context) -> Result<()> {
        let user_id = self
            .store
            .consume_email_key(&hash_token(key), KeyPurpose::Verification, ctx.now)
            .await?
            .ok_or(Error::InvalidKey)?;
        self.store.set_email_verified(&user_id).await?;
        self.audit(audit::EMAIL_VERIFIED, Some(&user_id), ctx, None)
            .await;
        Ok(())
    }

    /// Mails a new verification key to a logged-in user whose address is unverified.
    pub async fn resend_verification_for_user(&self, user_id: &str, ctx: &Context) -> Result<()> {
        let user = self.user(user_id).await?;
        if user.email_verified {
            return Ok(());
        }
        self.send_key_mail(&user, KeyPurpose::Verification, ctx)
            .await
    }

    /// The same by address, for users who cannot log in yet. Says nothing about whether the
    /// address is known: callers answer the same either way.
    pub async fn resend_verification_for_email(&self, address: &str, ctx: &Context) {
        if let Ok(Some(user)) = self.user_with_email(address).await {
            if !user.email_verified {
                let _ = self
                    .send_key_mail(&user, KeyPurpose::Verification, ctx)
                    .await;
            }
        }
    }

    async fn user_with_email(&self, address: &str) -> Result<Option<User>> {
        let address = address.trim().to_lowercase();
        if address.len() > 320 || address.contains('\0') {
            return Ok(None);
        }
        Ok(self
            .store
            .user_by_login(&address)
            .await?
            .filter(|u| u.email.to_lowercase() == address && !u.disabled))
    }

    /// Creates a user without a password and mails an invitation key. Inviting an address again
    /// while the invitation is pending sends a fresh key.
    pub async fn invite(
        &self,
        address: &str,
        username: Option<&str>,
        ctx: &Context,
    ) -> Result<User> {
        let address = EmailAddress::parse(address).map_err(|p| Error::validation("email", p))?;
        let username = Username::parse(username.unwrap_or(address.as_str()))
            .map_err(|p| Error::validation("username", p))?;
        let pending = self
            .user_with_email(address.as_str())
            .await?
            .filter(|u| u.password_hash == INVITED_PASSWORD_MARKER);
        let user = match pending {
            Some(user) => user,
            None => {
                self.store
                    .create_user(&NewUser {
                        id: new_id(),
                        username: username.as_str().to_string(),
                        email: address.as_str().to_string(),
                        password_hash: INVITED_PASSWORD_MARKER.to_string(),
                        is_admin: false,
                        created_at: ctx.now,
                    })
                    .await?
            }
        };
        self.send_key_mail(&user, KeyPurpose::Invitation, ctx)
            .await?;
        Ok(user)
    }

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
        self.after_password(&user, ctx).await
    }

    /// Sets a password with a mailed key (`field` names the password in a validation error).
    /// In one transaction the key is used up, the password set, the address marked verified
    /// (the key came through the mailbox), and every credential of the user ended, other
    /// invitation and reset keys included: a second mailed key cannot set the password again.
    async fn set_password_by_key(
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

    async fn key_holder(&self, key_hash: &str, purpose: KeyPurpose, ctx: &Context) -> Result<User> {
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
        Ok(())
    }

    // ----- administrators -----

    /// The caller, if an administrator (checked against the database on every call, so revoking
    /// the flag takes effect at once).
    pub async fn require_admin(&self, user_id: &str) -> Result<User> {
        let user = self.user(user_id).await?;
        if !user.is_admin {
            return Err(Error::Forbidden);
        }
        Ok(user)
    }

    /// A page of users in order of creation. An offset walks past every user before it, so it
    /// is bounded; `UserPageStart::After` (the cursor of the previous page) costs the same on
    /// any page.
    pub async fn list_users(&self, limit: u32, start: &UserPageStart) -> Result<Vec<User>> {
        if matches!(start, UserPageStart::Offset(offset) if *offset > MAX_USER_LIST_OFFSET) {
            return Err(Error::validation(
                "offset",
                format!("is over {MAX_USER_LIST_OFFSET}; page with `after` (the `next` of the page before) instead"),
            ));
        }
        Ok(self.store.list_users(limit.clamp(1, 1000), start).await?)
    }

    /// The newest audit events, of one user or of everyone (1 to 1000, newest first).
    pub async fn audit_events(
        &self,
        user_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::store::StoredAuditEvent>> {
        Ok(self
            .store
            .recent_audit_events(user_id, limit.clamp(1, 1000))
            .await?)
    }

    async fn target_user(&self, user_id: &str) -> Result<User> {
        if user_id.contains('\0') {
            return Err(Error::NotFound("no such user".into()));
        }
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user with id '{user_id}'")))
    }

    pub async fn admin_reset_mfa_of(
        &self,
        admin: &User,
        user_id: &str,
        ctx: &Context,
    ) -> Result<User> {
        let user = self.target_user(user_id).await?;
        self.reset_mfa(&user, &format!("by administrator {}", admin.username), ctx)
            .await?;
        Ok(user)
    }

    /// Disabled users cannot log in, refresh or finish a login begun before; their credentials
    /// end in the same transaction. Access tokens
    /// already issued stay valid until they expire (at most `access_ttl`).
    pub async fn admin_set_disabled(
        &self,
        admin: &User,
        user_id: &str,
        disabled: bool,
        ctx: &Context,
    ) -> Result<User> {
        let user = self.target_user(user_id).await?;
        if disabled {
            // Every live challenge, setup token, pending enrolment and session ends with it.
            self.store
                .change_account(&user.id, &AccountChange::Disable, None, ctx.now)
                .await?;
        } else {
            self.store.enable_user(&user.id).await?;
        }
        let event = if disabled {
            audit::ADMIN_DISABLED_USER
        } else {
            audit::ADMIN_ENABLED_USER
        };
        self.audit(
            event,
            Some(&user.id),
            ctx,
            Some(format!("by administrator {}", admin.username)),
        )
        .await;
        Ok(user)
    }
}
