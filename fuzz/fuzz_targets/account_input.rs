//! Registration input: username, e-mail address and password as a client sends them (three
//! lines). Never a panic; what is accepted follows the stated rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagate_core::account::{EmailAddress, Registration, Username};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let (username, email, password) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    if let Ok(name) = Username::parse(username) {
        let n = name.as_str().chars().count();
        assert!((3..=150).contains(&n));
        assert!(name
            .as_str()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c)));
    }
    if let Ok(address) = EmailAddress::parse(email) {
        let a = address.as_str();
        assert!(a.len() <= 254 && a.contains('@'));
        assert!(!a.contains("=?"), "no encoded words");
        assert!(!a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,\"()".contains(c)));
    }
    if let Ok(registration) = Registration::parse(username, email, password, 8) {
        assert!(registration.password.chars().count() >= 8);
        assert_ne!(registration.password, registration.username.as_str());
    }
});
