//! Pure rules about factors: which methods answer a user's challenge, in what order, and when
//! MFA counts as on. No store and no clock: the flows gather the facts and ask here.

use crate::config::{Config, MfaMode};
use crate::factors::Method;

/// What the rules need to know of one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holdings {
    /// At least one verified TOTP factor.
    pub totp: bool,
    /// At least one verified passkey.
    pub webauthn: bool,
    /// At least one unused recovery code.
    pub recovery_codes: bool,
    pub email_verified: bool,
    /// E-mailed codes switched on.
    pub email_otp: bool,
    /// The user's preferred method is e-mail.
    pub prefers_email: bool,
    /// The user's preferred method is a passkey.
    pub prefers_webauthn: bool,
}

/// The methods a login challenge offers this user, the one to use first at the front. Empty:
/// the user has no second factor.
pub fn challenge_methods(config: &Config, user: &Holdings) -> Vec<Method> {
    let mut methods = Vec::new();
    let totp = config.allows(Method::Totp) && user.totp;
    let webauthn = config.allows(Method::Webauthn) && user.webauthn;
    if totp {
        methods.push(Method::Totp);
    }
    if webauthn {
        if user.prefers_webauthn {
            methods.insert(0, Method::Webauthn);
        } else {
            methods.push(Method::Webauthn);
        }
    }
    let factor = totp || webauthn;
    if factor && user.recovery_codes {
        methods.push(Method::RecoveryCode);
    }
    // In `required` mode a verified address is a factor even if the user never chose it:
    // better an e-mailed code than a login without a second factor.
    let email_usable = config.allows(Method::Email)
        && user.email_verified
        && (user.email_otp || (config.mode == MfaMode::Required && !factor));
    if email_usable {
        if user.prefers_email || methods.is_empty() {
            methods.insert(0, Method::Email);
        } else {
            methods.push(Method::Email);
        }
    }
    methods
}

/// Whether the user has any second factor switched on.
pub fn mfa_enabled(config: &Config, user: &Holdings) -> bool {
    user.totp || user.webauthn || (user.email_otp && config.allows(Method::Email))
}

/// The preferred method once the user's last factor of the preferred kind is gone: e-mailed codes if they are
/// on, else none.
pub fn fallback_method(config: &Config, user: &Holdings) -> Option<Method> {
    (user.email_otp && config.allows(Method::Email)).then_some(Method::Email)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: MfaMode) -> Config {
        Config {
            mode,
            ..Config::default()
        }
    }

    #[test]
    fn totp_first_then_recovery_codes_then_email() {
        let user = Holdings {
            totp: true,
            recovery_codes: true,
            email_verified: true,
            email_otp: true,
            prefers_email: false,
            ..Holdings::default()
        };
        assert_eq!(
            challenge_methods(&config(MfaMode::Optional), &user),
            [Method::Totp, Method::RecoveryCode, Method::Email]
        );
        let prefers_email = Holdings {
            prefers_email: true,
            ..user
        };
        assert_eq!(
            challenge_methods(&config(MfaMode::Optional), &prefers_email),
            [Method::Email, Method::Totp, Method::RecoveryCode]
        );
    }

    #[test]
    fn passkeys_come_after_totp_unless_preferred_and_bring_recovery_codes() {
        let user = Holdings {
            totp: true,
            webauthn: true,
            recovery_codes: true,
            ..Holdings::default()
        };
        assert_eq!(
            challenge_methods(&config(MfaMode::Optional), &user),
            [Method::Totp, Method::Webauthn, Method::RecoveryCode]
        );
        let only_passkey = Holdings {
            totp: false,
            prefers_webauthn: true,
            email_verified: true,
            ..user
        };
        // In `required` mode a passkey is a factor: no e-mailed code is forced on the user.
        assert_eq!(
            challenge_methods(&config(MfaMode::Required), &only_passkey),
            [Method::Webauthn, Method::RecoveryCode]
        );
        assert!(mfa_enabled(&config(MfaMode::Optional), &only_passkey));
    }

    #[test]
    fn no_factor_means_no_challenge_unless_required_with_a_verified_address() {
        let user = Holdings {
            email_verified: true,
            ..Holdings::default()
        };
        assert!(challenge_methods(&config(MfaMode::Optional), &user).is_empty());
        assert_eq!(
            challenge_methods(&config(MfaMode::Required), &user),
            [Method::Email]
        );
        assert!(!mfa_enabled(&config(MfaMode::Optional), &user));
    }

    #[test]
    fn methods_the_server_does_not_offer_are_left_out() {
        let only_totp = Config {
            methods: vec![Method::Totp],
            ..Config::default()
        };
        let user = Holdings {
            totp: true,
            email_verified: true,
            email_otp: true,
            ..Holdings::default()
        };
        assert_eq!(challenge_methods(&only_totp, &user), [Method::Totp]);
        assert_eq!(fallback_method(&only_totp, &user), None);
        assert_eq!(
            fallback_method(&Config::default(), &user),
            Some(Method::Email)
        );
        let disabled = config(MfaMode::Disabled);
        assert!(challenge_methods(&disabled, &user).is_empty());
    }
}
