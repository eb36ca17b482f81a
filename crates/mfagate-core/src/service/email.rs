//! E-mailed sign-in codes and address verification: the flows that go through the mailbox.

use super::*;
use crate::email;

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
            .challenge_of_token(ephemeral_token)
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
            .verify_address_with_key(&hash_token(key), ctx.now)
            .await?
            .ok_or(Error::InvalidKey)?;
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

    pub(super) async fn user_with_email(&self, address: &str) -> Result<Option<User>> {
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
}
