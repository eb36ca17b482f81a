//! E-mail: one-time codes, the messages mfagate sends, and the `Mailer` that sends them.
//!
//! Codes are drawn from the OS CSPRNG and stored only as a keyed hash bound to their challenge:
//! a 7-digit code has too little entropy for a plain hash to resist an offline search.

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::secret::SecretBytes;

/// A code of `digits` decimal digits, uniformly drawn.
pub fn generate_code(digits: u32) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..digits)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// HMAC-SHA256 of the code, bound to its challenge; hex.
pub fn code_hash(key: &SecretBytes, challenge_id: &str, code: &str) -> String {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key.expose()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is unreachable but keeps the function total.
        Err(_) => return String::new(),
    };
    mac.update(challenge_id.as_bytes());
    mac.update(b":");
    mac.update(code.as_bytes());
    data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
}

/// One message, in plain text and HTML.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Email {
    // Bodies carry codes and keys: never in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .field("subject", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// For development without a mail server: writes each message to the log.
#[derive(Debug, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        tracing::warn!(
            target: "mfagate::mail",
            to = %email.to,
            subject = %email.subject,
            body = %email.text,
            "no mail server is configured (the server: MFAGATE_SMTP_URL), so this e-mail is written to the log instead of sent; for development only"
        );
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    EmailCode,
    Verification,
    Invitation,
    PasswordReset,
    // Security notices (`MFAGATE_SECURITY_EMAILS`): something changed how the user signs in.
    FactorAdded,
    FactorRemoved,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    PasswordChanged,
    PasswordWasReset,
    MfaReset,
    DeviceLogin,
}

impl MessageKind {
    pub const ALL: [MessageKind; 12] = [
        Self::EmailCode,
        Self::Verification,
        Self::Invitation,
        Self::PasswordReset,
        Self::FactorAdded,
        Self::FactorRemoved,
        Self::RecoveryCodesRegenerated,
        Self::RecoveryCodeUsed,
        Self::PasswordChanged,
        Self::PasswordWasReset,
        Self::MfaReset,
        Self::DeviceLogin,
    ];

    /// The file-name stem of this message's templates.
    pub fn name(self) -> &'static str {
        match self {
            Self::EmailCode => "email_code",
            Self::Verification => "verification",
            Self::Invitation => "invitation",
            Self::PasswordReset => "password_reset",
            Self::FactorAdded => "factor_added",
            Self::FactorRemoved => "factor_removed",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::PasswordChanged => "password_changed",
            Self::PasswordWasReset => "password_was_reset",
            Self::MfaReset => "mfa_reset",
            Self::DeviceLogin => "device_login",
        }
    }

    /// The path under the link base URL that takes the key (none for the other messages).
    pub fn link_path(self) -> &'static str {
        match self {
            Self::Verification => "verify-email",
            Self::Invitation => "set-password",
            Self::PasswordReset => "reset-password",
            _ => "",
        }
    }
}

/// What every security notice ends with: what to do if it was not the user.
const NOT_YOU: &str = "If this was not you, your password may be known to someone else: change it now (or reset it from the sign-in page), then sign out everywhere, which also forgets every remembered device. If you cannot sign in, contact your administrator.";

/// A key's or code's lifetime as a reader says it: "3 days", "1 hour", "5 minutes".
pub fn lifetime_in_words(seconds: i64) -> String {
    let count = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    match seconds.max(1) {
        s if s >= 86_400 && s % 86_400 == 0 => count(s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => count(s / 3_600, "hour"),
        s if s >= 60 => count((s + 30) / 60, "minute"),
        s => count(s, "second"),
    }
}

#[derive(Debug, Clone)]
struct Template {
    subject: String,
    text: String,
    html: String,
}

/// Subject, text and HTML per message; `{{name}}` placeholders: `product`, `username`, `code`,
/// `key`, `link`, `lifetime` (in words: "3 days") and `minutes` (the same as a number, kept for
/// templates written before `lifetime`); the security notices have `when` (RFC 3339, UTC), `ip`
/// (the client's address) and `detail` (which factor; how many codes are left).
#[derive(Debug, Clone)]
pub struct Templates {
    templates: HashMap<MessageKind, Template>,
}

fn default_template(kind: MessageKind) -> Template {
    let notice = |subject: &str, what: &str| {
        (
            subject.to_string(),
            format!("Hello {{{{username}}}},\n\n{what}\n\nWhen: {{{{when}}}} (UTC)\nFrom: {{{{ip}}}}\n\n{NOT_YOU}\n"),
        )
    };
    let (subject, text): (String, String) = match kind {
        MessageKind::EmailCode => (
            "{{product}} sign-in code".into(),
            "Hello {{username}},\n\nYour {{product}} sign-in code is:\n\n    {{code}}\n\nIt expires in {{lifetime}}. If you did not try to sign in, change your password.\n".into(),
        ),
        MessageKind::Verification => (
            "Confirm your e-mail address for {{product}}".into(),
            "Hello {{username}},\n\nConfirm your e-mail address for {{product}}:\n\n    {{link}}\n\nor send this key to /auth/register/verify-email:\n\n    {{key}}\n\nThe key works once and expires in {{lifetime}}.\n".into(),
        ),
        MessageKind::Invitation => (
            "You are invited to {{product}}".into(),
            "Hello {{username}},\n\nYou are invited to {{product}}. Choose your password here:\n\n    {{link}}\n\nor send this key with your new password to /auth/register/set-password:\n\n    {{key}}\n\nThe key works once and expires in {{lifetime}}.\n".into(),
        ),
        MessageKind::PasswordReset => (
            "Reset your {{product}} password".into(),
            "Hello {{username}},\n\nSomeone asked to reset your {{product}} password. If it was you, choose a new one here:\n\n    {{link}}\n\nor send this key with your new password to /auth/password/reset/confirm:\n\n    {{key}}\n\nThe key works once and expires in {{lifetime}}. Your second factor stays on. If it was not you, ignore this message.\n".into(),
        ),
        MessageKind::FactorAdded => notice(
            "A second factor was added to your {{product}} account",
            "A second factor, {{detail}}, was added to your {{product}} account. It can now be used to sign in.",
        ),
        MessageKind::FactorRemoved => notice(
            "A second factor was removed from your {{product}} account",
            "A second factor, {{detail}}, was removed from your {{product}} account. It can no longer be used to sign in.",
        ),
        MessageKind::RecoveryCodesRegenerated => notice(
            "Your {{product}} recovery codes were replaced",
            "New recovery codes were made for your {{product}} account; the earlier ones no longer work.",
        ),
        MessageKind::RecoveryCodeUsed => notice(
            "A recovery code was used on your {{product}} account",
            "A recovery code was used on your {{product}} account instead of your second factor ({{detail}}).",
        ),
        MessageKind::PasswordChanged => notice(
            "Your {{product}} password was changed",
            "The password of your {{product}} account was changed, and every session was ended.",
        ),
        MessageKind::PasswordWasReset => notice(
            "Your {{product}} password was reset",
            "The password of your {{product}} account was reset with a key from an e-mail, and every session was ended. Your second factor stays on.",
        ),
        MessageKind::MfaReset => notice(
            "The second factors of your {{product}} account were reset",
            "An administrator removed every second factor and recovery code of your {{product}} account; the password alone signs you in until you enrol a new factor.",
        ),
        MessageKind::DeviceLogin => notice(
            "A sign-in to {{product}} skipped your second factor",
            "Your {{product}} account was signed in to with your password on a remembered device, so the second factor was not asked for.",
        ),
    };
    Template {
        html: format!(
            "<!doctype html><html><body><pre style=\"font-family:sans-serif\">{}</pre></body></html>",
            text
        ),
        subject,
        text,
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn fill(template: &str, values: &[(&str, &str)], html: bool) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        let value = if html {
            escape_html(value)
        } else {
            (*value).to_string()
        };
        out = out.replace(&format!("{{{{{name}}}}}"), &value);
    }
    out
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            templates: MessageKind::ALL
                .iter()
                .map(|k| (*k, default_template(*k)))
                .collect(),
        }
    }
}

impl Templates {
    /// The defaults, with any of `<kind>.subject`, `<kind>.txt`, `<kind>.html` found in `dir`
    /// replacing their part.
    pub fn from_dir(dir: &Path) -> Result<Self, String> {
        let mut templates = Self::default();
        if !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        for kind in MessageKind::ALL {
            let Some(template) = templates.templates.get_mut(&kind) else {
                continue;
            };
            for (extension, slot) in [
                ("subject", &mut template.subject),
                ("txt", &mut template.text),
                ("html", &mut template.html),
            ] {
                let path = dir.join(format!("{}.{extension}", kind.name()));
                if path.exists() {
                    *slot = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                        .trim_end_matches('\n')
                        .to_string();
                }
            }
        }
        Ok(templates)
    }

    pub fn render(&self, kind: MessageKind, to: &str, values: &[(&str, &str)]) -> Email {
        let template = self
            .templates
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| default_template(kind));
        Email {
            to: to.to_string(),
            subject: fill(&template.subject, values, false).replace(['\r', '\n'], " "),
            text: fill(&template.text, values, false),
            html: fill(&template.html, values, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_asked_length_and_only_digits() {
        for digits in [6, 7, 8] {
            let code = generate_code(digits);
            assert_eq!(code.len(), digits as usize);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn code_hashes_are_bound_to_key_challenge_and_code() {
        let key = SecretBytes::new(vec![1; 32]);
        let other = SecretBytes::new(vec![2; 32]);
        let base = code_hash(&key, "c1", "1234567");
        assert_eq!(base, code_hash(&key, "c1", "1234567"));
        assert_ne!(base, code_hash(&key, "c2", "1234567"));
        assert_ne!(base, code_hash(&key, "c1", "1234568"));
        assert_ne!(base, code_hash(&other, "c1", "1234567"));
    }

    #[test]
    fn templates_fill_placeholders_and_escape_html() {
        let email = Templates::default().render(
            MessageKind::EmailCode,
            "ann@example.com",
            &[
                ("product", "Acme <b>"),
                ("username", "ann"),
                ("code", "1234567"),
                ("lifetime", "5 minutes"),
            ],
        );
        assert_eq!(email.subject, "Acme <b> sign-in code");
        assert!(email.text.contains("1234567") && email.text.contains("5 minutes"));
        assert!(email.html.contains("Acme &lt;b&gt;"));
        assert!(!format!("{email:?}").contains("1234567"));
    }

    #[test]
    fn lifetimes_read_as_people_say_them() {
        assert_eq!(lifetime_in_words(259_200), "3 days");
        assert_eq!(lifetime_in_words(604_800), "7 days");
        assert_eq!(lifetime_in_words(86_400), "1 day");
        assert_eq!(lifetime_in_words(3_600), "1 hour");
        assert_eq!(lifetime_in_words(7_200), "2 hours");
        assert_eq!(lifetime_in_words(300), "5 minutes");
        assert_eq!(lifetime_in_words(299), "5 minutes");
        assert_eq!(lifetime_in_words(90_000), "25 hours");
        assert_eq!(lifetime_in_words(90_060), "1501 minutes");
        assert_eq!(lifetime_in_words(60), "1 minute");
        assert_eq!(lifetime_in_words(45), "45 seconds");
        assert_eq!(lifetime_in_words(0), "1 second");
    }

    #[test]
    fn templates_in_a_directory_replace_the_defaults() {
        let dir = std::env::temp_dir().join(format!("mfagate-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("email_code.subject"), "Code {{code}}\n").unwrap();
        let templates = Templates::from_dir(&dir).unwrap();
        let email = templates.render(MessageKind::EmailCode, "a@b.c", &[("code", "42")]);
        assert_eq!(email.subject, "Code 42");
        assert!(email.text.contains("42"), "the text part keeps its default");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
