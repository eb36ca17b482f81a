//! The windows every limit is counted in, and the keys they are stored under.
//!
//! A limit is claimed in the store *before* the work it guards (a password hash, a code check):
//! of N concurrent attempts past a limit of L at most L are checked, on one instance or many.
//! Limits that count failures hand the claim back once the attempt turns out right.
//!
//! Keys are fixed-size keyed hashes: a throttle row never holds a login name, an address or an
//! IP in clear, and a flood of long unknown names cannot grow the table's rows.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::rate::Rate;
use crate::secret::SecretBytes;
use crate::store::WindowLimit;

/// Hashes throttle keys with a key of their own (derived from the root secret).
#[derive(Clone)]
pub struct ThrottleKeys {
    key: SecretBytes,
}

impl std::fmt::Debug for ThrottleKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThrottleKeys(..)")
    }
}

impl ThrottleKeys {
    pub fn new(key: SecretBytes) -> Self {
        Self { key }
    }

    /// `kind:` and 128 bits of HMAC-SHA256 over the parts (each length-prefixed, so parts
    /// cannot run into each other).
    pub fn key(&self, kind: &str, parts: &[&str]) -> String {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose()) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this arm is unreachable but keeps the function total.
            Err(_) => return kind.to_string(),
        };
        mac.update(kind.as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        let short = digest.get(..16).unwrap_or(&digest);
        format!("{kind}:{}", data_encoding::HEXLOWER.encode(short))
    }

    pub fn window(&self, rate: Rate, kind: &str, parts: &[&str]) -> WindowLimit {
        WindowLimit {
            key: self.key(kind, parts),
            limit: rate.limit,
            window_seconds: rate.window_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_size_keyed_and_unambiguous() {
        let keys = ThrottleKeys::new(SecretBytes::new(vec![7; 32]));
        let long = "x".repeat(10_000);
        let a = keys.key("login", &[&long, "127.0.0.1"]);
        assert_eq!(a.len(), "login:".len() + 32);
        assert!(!a.contains("127.0.0.1"));
        assert_ne!(
            keys.key("login", &["ab", "c"]),
            keys.key("login", &["a", "bc"])
        );
        let other = ThrottleKeys::new(SecretBytes::new(vec![8; 32]));
        assert_ne!(keys.key("login", &["ann"]), other.key("login", &["ann"]));
        assert_eq!(keys.key("login", &["ann"]), keys.key("login", &["ann"]));
    }
}
