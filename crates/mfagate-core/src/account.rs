//! Validated account input. Each value is built by `parse`, so a `Username` in hand is valid.

use std::collections::BTreeMap;

use crate::config::PASSWORD_MAX_BYTES;
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// 3 to 150 of `[A-Za-z0-9_.@+-]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let length = text.chars().count();
        if !(3..=150).contains(&length) {
            return Err("must be 3 to 150 characters".into());
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-'))
        {
            return Err("may contain only letters, digits and _ . @ + -".into());
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// An address the mail library delivers to exactly as written: a dot-atom local part
    /// (RFC 5322 `atext`, no quoted strings, comments, commas or angle brackets) with no
    /// RFC 2047 encoded word (`=?charset?q?...?=`, which a mail client decodes into another
    /// address), and a domain of letter-digit-hyphen labels that neither start nor end with a
    /// hyphen; at most 254 characters (RFC 5321 path limit), 64 for the local part.
    pub fn parse(text: &str) -> Result<Self, String> {
        let problem = || "must be an e-mail address like name@example.com".to_string();
        let text = text.trim();
        if text.len() > 254 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(problem());
        }
        let (local, domain) = text.rsplit_once('@').ok_or_else(problem)?;
        let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && !local.contains("=?")
            && local.chars().all(|c| atext(c) || c == '.');
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && domain.len() <= 253
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(problem());
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a new password against the rules; `field` names it in the error.
pub fn check_new_password(password: &str, username: &str, min_length: usize) -> Result<(), String> {
    if password.chars().count() < min_length {
        return Err(format!("must be at least {min_length} characters"));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(format!("must be at most {PASSWORD_MAX_BYTES} bytes"));
    }
    if password.to_lowercase() == username.to_lowercase() {
        return Err("must not be the username".into());
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub username: Username,
    pub email: EmailAddress,
    pub password: String,
}

impl Registration {
    /// Validates all three fields and reports every problem at once.
    pub fn parse(
        username: &str,
        email: &str,
        password: &str,
        min_length: usize,
    ) -> Result<Self, Error> {
        let mut fields = BTreeMap::new();
        let username = Username::parse(username)
            .map_err(|p| fields.insert("username".to_string(), p))
            .ok();
        let email = EmailAddress::parse(email)
            .map_err(|p| fields.insert("email".to_string(), p))
            .ok();
        if let Err(problem) = check_new_password(
            password,
            username.as_ref().map_or("", |u| u.as_str()),
            min_length,
        ) {
            fields.insert("password".to_string(), problem);
        }
        match (username, email) {
            (Some(username), Some(email)) if fields.is_empty() => Ok(Self {
                username,
                email,
                password: password.to_string(),
            }),
            _ => Err(Error::Validation(fields)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_contract() {
        assert!(Username::parse("ann.o+1@x-y_z").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(151)).is_err());
        assert!(Username::parse("ann smith").is_err());
        assert!(Username::parse("änn").is_err());
    }

    #[test]
    fn email_addresses_are_checked_pragmatically() {
        assert!(EmailAddress::parse("ann@example.com").is_ok());
        for bad in [
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@exa..com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_follow_the_contract_and_every_problem_is_reported() {
        assert!(check_new_password("short", "ann", 8).is_err());
        assert!(check_new_password("annsmith", "AnnSmith", 8).is_err());
        assert!(check_new_password(&"x".repeat(1025), "ann", 8).is_err());
        assert!(check_new_password("long enough", "ann", 8).is_ok());
        let Err(Error::Validation(fields)) = Registration::parse("a", "nope", "x", 8) else {
            panic!("expected a validation error");
        };
        assert_eq!(fields.len(), 3);
    }
}
