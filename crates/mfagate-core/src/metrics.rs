//! What mfagate counts, through the `metrics` facade (the server exports it to Prometheus at
//! `MFAGATE_METRICS_LISTEN`; a host app installs any recorder it likes, or none). Every name and
//! every label value is fixed here: no label ever holds a user, an address or a token.

use crate::audit;

/// Password logins (and passkey logins without a password) by how they ended.
pub const LOGINS: &str = "mfagate_logins_total";
/// Answers to a challenge by method and outcome.
pub const SECOND_FACTOR: &str = "mfagate_second_factor_total";
/// Every audit event, by its name.
pub const AUDIT_EVENTS: &str = "mfagate_audit_events_total";
/// Requests refused by a limit, by which one (`ip`, `login`, `second_factor`, `password_reset`).
pub const THROTTLED: &str = "mfagate_throttled_total";
/// Challenges issued, and challenges that died of too many wrong answers.
pub const CHALLENGES: &str = "mfagate_challenges_total";
/// E-mails by kind (`email_code`, `security`) and outcome (`sent`, `failed`).
pub const EMAILS: &str = "mfagate_emails_total";
/// Seconds a password hash waited for a core, and took once it had one.
pub const HASH_WAIT_SECONDS: &str = "mfagate_password_hash_wait_seconds";
pub const HASH_SECONDS: &str = "mfagate_password_hash_seconds";
/// Store calls that failed (the database away, or an error it reported).
pub const DATABASE_ERRORS: &str = "mfagate_database_errors_total";

pub fn login(outcome: &'static str) {
    metrics::counter!(LOGINS, "outcome" => outcome).increment(1);
}

pub fn second_factor(method: &'static str, outcome: &'static str) {
    metrics::counter!(SECOND_FACTOR, "method" => method, "outcome" => outcome).increment(1);
}

pub fn throttled(kind: &'static str) {
    metrics::counter!(THROTTLED, "kind" => kind).increment(1);
}

pub fn challenge(outcome: &'static str) {
    metrics::counter!(CHALLENGES, "outcome" => outcome).increment(1);
}

pub fn database_error() {
    metrics::counter!(DATABASE_ERRORS).increment(1);
}

/// Counts an audit event, and what an operator watches that it stands for.
pub fn audit_event(event: &'static str) {
    metrics::counter!(AUDIT_EVENTS, "event" => event).increment(1);
    match event {
        audit::LOGIN_THROTTLED => throttled("login"),
        audit::SECOND_FACTOR_THROTTLED => throttled("second_factor"),
        audit::PASSWORD_RESET_THROTTLED => throttled("password_reset"),
        audit::CHALLENGE_ISSUED => challenge("issued"),
        audit::EMAIL_CODE_SENT => {
            metrics::counter!(EMAILS, "kind" => "email_code", "outcome" => "sent").increment(1)
        }
        audit::EMAIL_SEND_FAILED => {
            metrics::counter!(EMAILS, "kind" => "email_code", "outcome" => "failed").increment(1)
        }
        audit::SECURITY_EMAIL_FAILED => {
            metrics::counter!(EMAILS, "kind" => "security", "outcome" => "failed").increment(1)
        }
        _ => {}
    }
}
