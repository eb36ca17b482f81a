//! Second factors: the kinds there are and how each is named ([`kind`]), and the pure rules of
//! which ones a user is asked for ([`policy`]). The flows that enrol, use, rename and remove
//! factors are in `service::factors`; their storage is `store::FactorStore`.

pub mod kind;
pub mod policy;

pub use kind::{parse_preference, preference_name, FactorKind, Method};

/// The most characters a factor's name may have.
pub const NAME_MAX_CHARS: usize = 64;

/// A factor's name as the user typed it, trimmed: 1 to 64 characters, none of them a control
/// character (names are shown in lists and e-mails). `None` names what is wrong.
pub fn parse_name(name: &str) -> Result<String, &'static str> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err("must not be empty");
    }
    if chars > NAME_MAX_CHARS {
        return Err("must be at most 64 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(name.to_string())
}

/// The form names are compared in (unique per user, case-insensitively).
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(parse_name("  Phone  ").as_deref(), Ok("Phone"));
        assert_eq!(
            parse_name(&"é".repeat(64)).map(|n| n.chars().count()),
            Ok(64)
        );
        assert!(parse_name(&"é".repeat(65)).is_err());
        assert!(parse_name("   ").is_err());
        assert!(parse_name("a\u{0}b").is_err());
        assert!(parse_name("a\nb").is_err());
        assert_eq!(name_key("YubiKey Ä"), "yubikey ä");
    }
}
