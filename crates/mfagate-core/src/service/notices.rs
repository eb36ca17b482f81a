//! Security e-mails (`MFAGATE_SECURITY_EMAILS`, on by default): a factor added or removed,
//! recovery codes replaced or one used, the password changed or reset, an administrator's MFA
//! reset, a login that a remembered device let skip the second factor. Each says what
//! happened, when, from which address, and what to do if it was not the user.
//!
//! A notice never holds up or fails the user's action: it is rendered here and sent by a task
//! of its own; a send that fails is logged and audited (`security_email_failed`).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::*;

/// What happened, for the user's notice.
#[derive(Debug, Clone)]
pub(super) enum Notice {
    /// The factor, as the notice names it ("“Phone” (TOTP)").
    FactorAdded(String),
    FactorRemoved(String),
    RecoveryCodesRegenerated,
    /// How many unused codes are left.
    RecoveryCodeUsed(u64),
    PasswordChanged,
    PasswordReset,
    MfaReset,
    DeviceLogin,
}

impl Notice {
    fn kind(&self) -> MessageKind {
        match self {
            Self::FactorAdded(_) => MessageKind::FactorAdded,
            Self::FactorRemoved(_) => MessageKind::FactorRemoved,
            Self::RecoveryCodesRegenerated => MessageKind::RecoveryCodesRegenerated,
            Self::RecoveryCodeUsed(_) => MessageKind::RecoveryCodeUsed,
            Self::PasswordChanged => MessageKind::PasswordChanged,
            Self::PasswordReset => MessageKind::PasswordWasReset,
            Self::MfaReset => MessageKind::MfaReset,
            Self::DeviceLogin => MessageKind::DeviceLogin,
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::FactorAdded(factor) | Self::FactorRemoved(factor) => factor.clone(),
            Self::RecoveryCodeUsed(1) => "1 unused code is left".into(),
            Self::RecoveryCodeUsed(left) => format!("{left} unused codes are left"),
            _ => String::new(),
        }
    }
}

/// A factor as a notice names it.
pub(super) fn factor_label(name: &str, kind: FactorKind) -> String {
    let kind = match kind {
        FactorKind::Totp => "authenticator app",
        FactorKind::Webauthn => "passkey",
    };
    format!("\u{201c}{name}\u{201d} ({kind})")
}

impl Gatekeeper {
    /// `notify` for a caller that has only the user's id: reads the user first.
    pub(super) async fn notify_by_id(&self, notice: Notice, user_id: &str, ctx: &Context) {
        if !self.config.security_emails {
            return;
        }
        match self.store.user_by_id(user_id).await {
            Ok(Some(user)) => self.notify(notice, &user, ctx).await,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "could not read the user for a security e-mail; none sent");
            }
        }
    }

    /// Sends the user a security notice, unless they are off; never fails the caller.
    pub(super) async fn notify(&self, notice: Notice, user: &User, ctx: &Context) {
        if !self.config.security_emails {
            return;
        }
        let when = OffsetDateTime::from_unix_timestamp(ctx.now)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| ctx.now.to_string());
        let ip = ctx
            .ip
            .map_or_else(|| "an unknown address".to_string(), |ip| ip.to_string());
        let message = self.templates.render(
            notice.kind(),
            &user.email,
            &[
                ("product", &self.config.product_name),
                ("username", &user.username),
                ("when", &when),
                ("ip", &ip),
                ("detail", &notice.detail()),
            ],
        );
        let mailer = self.mailer.clone();
        let audit = self.audit_writer.clone();
        let record = AuditRecord {
            at: ctx.now,
            user_id: Some(user.id.clone()),
            event: audit::SECURITY_EMAIL_FAILED,
            ip: ctx.ip.map(|ip| ip.to_string()),
            detail: None,
        };
        let name = notice.kind().name();
        let sending = tokio::spawn(async move {
            if let Err(error) = mailer.send(&message).await {
                tracing::warn!(
                    notice = name,
                    reason = %error,
                    "could not send a security e-mail; the action it reports stands. Check MFAGATE_SMTP_URL and the mail server"
                );
                audit
                    .record(AuditRecord {
                        detail: Some(format!("{name}: {}", error.0)),
                        ..record
                    })
                    .await;
            }
        });
        if let Ok(mut in_flight) = self.notices_in_flight.lock() {
            in_flight.retain(|handle| !handle.is_finished());
            in_flight.push(sending);
        }
    }
}
