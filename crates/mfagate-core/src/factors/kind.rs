//! The one type for the ways a user answers a challenge. Wire names, `amr` values and the
//! names in `MFAGATE_MFA_METHODS` all derive from it; nowhere else spells them.

use serde::{Serialize, Serializer};

/// A way to answer a login challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// A code from an enrolled authenticator app (a factor of kind `totp`).
    Totp,
    /// A passkey (a factor of kind `webauthn`).
    Webauthn,
    /// A code mailed to the user's verified address (a method, not a factor).
    Email,
    /// One of the user's one-time recovery codes (a set per user, not a factor).
    RecoveryCode,
}

impl Method {
    /// The name on the wire: in a challenge's `methods`, in `mfa/status`, in settings.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Webauthn => "webauthn",
            Self::Email => "email",
            Self::RecoveryCode => "recovery_code",
        }
    }

    /// The RFC 8176 `amr` value a token gets after this method.
    pub const fn amr(self) -> &'static str {
        match self {
            Self::Totp => "otp",
            Self::Webauthn => "hwk",
            Self::Email => "eml",
            Self::RecoveryCode => "rec",
        }
    }

    /// A method an operator can switch on in `MFAGATE_MFA_METHODS` (recovery codes always go
    /// with a factor, so they are not named there).
    pub fn parse_setting(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "totp" => Some(Self::Totp),
            "email" => Some(Self::Email),
            "webauthn" => Some(Self::Webauthn),
            _ => None,
        }
    }
}

/// The method a login challenge offers first, as stored and on the wire: a method, or `none`.
pub fn preference_name(preferred: Option<Method>) -> &'static str {
    preferred.map_or("none", Method::as_str)
}

/// `none`, or a method a user can prefer; `None` for anything else.
pub fn parse_preference(text: &str) -> Option<Option<Method>> {
    match text {
        "none" => Some(None),
        "totp" => Some(Some(Method::Totp)),
        "email" => Some(Some(Method::Email)),
        "webauthn" => Some(Some(Method::Webauthn)),
        _ => None,
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an enrolled factor (a row of the store's `factors`) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactorKind {
    Totp,
    Webauthn,
}

impl FactorKind {
    /// The method the factor answers challenges with.
    pub const fn method(self) -> Method {
        match self {
            Self::Totp => Method::Totp,
            Self::Webauthn => Method::Webauthn,
        }
    }

    /// The name on the wire and in the store.
    pub const fn as_str(self) -> &'static str {
        self.method().as_str()
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Totp, Self::Webauthn]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl Serialize for FactorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_amr_values_derive_from_one_type() {
        let all = [
            Method::Totp,
            Method::Webauthn,
            Method::Email,
            Method::RecoveryCode,
        ];
        let names: Vec<_> = all.iter().map(|m| m.as_str()).collect();
        assert_eq!(names, ["totp", "webauthn", "email", "recovery_code"]);
        let amr: Vec<_> = all.iter().map(|m| m.amr()).collect();
        assert_eq!(amr, ["otp", "hwk", "eml", "rec"]);
        assert_eq!(FactorKind::parse("totp"), Some(FactorKind::Totp));
        assert_eq!(FactorKind::parse("webauthn"), Some(FactorKind::Webauthn));
        assert_eq!(FactorKind::parse("email"), None);
        assert_eq!(Method::parse_setting(" TOTP "), Some(Method::Totp));
        assert_eq!(Method::parse_setting("recovery_code"), None);
        for preferred in [
            None,
            Some(Method::Totp),
            Some(Method::Email),
            Some(Method::Webauthn),
        ] {
            assert_eq!(
                parse_preference(preference_name(preferred)),
                Some(preferred)
            );
        }
        assert_eq!(parse_preference("recovery_code"), None);
        assert_eq!(
            serde_json::to_string(&vec![Method::Totp, Method::RecoveryCode]).ok(),
            Some(r#"["totp","recovery_code"]"#.to_string())
        );
    }
}
