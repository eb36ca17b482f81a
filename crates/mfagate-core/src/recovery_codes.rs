//! One-time recovery codes.
//!
//! Codes are shown to the user again on request, so the store keeps them sealed rather than
//! hashed. Checking unseals the user's unused codes and compares each in constant time; the
//! one-time rule is the store's atomic `consume_recovery_code`.

use rand::Rng;

use crate::secret::constant_time_eq;

/// Lower-case base32 letters and digits without look-alikes (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
const GROUP: usize = 5;
const GROUPS: usize = 2;

/// A fresh code shown as `xxxxx-xxxxx` (about 49 bits of entropy).
pub fn generate() -> String {
    let mut rng = rand::rngs::OsRng;
    let groups: Vec<String> = (0..GROUPS)
        .map(|_| {
            (0..GROUP)
                .map(|_| {
                    let index = rng.gen_range(0..ALPHABET.len());
                    char::from(ALPHABET.get(index).copied().unwrap_or(b'a'))
                })
                .collect()
        })
        .collect();
    groups.join("-")
}

pub fn generate_set(count: usize) -> Vec<String> {
    (0..count).map(|_| generate()).collect()
}

/// Case, spaces and dashes are ignored when a user types a code back.
pub fn normalize(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a typed code matches a stored one; constant time in the content.
pub fn matches(input: &str, stored: &str) -> bool {
    constant_time_eq(normalize(input).as_bytes(), normalize(stored).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_documented_shape_and_differ() {
        let codes = generate_set(10);
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 11);
            assert_eq!(code.as_bytes()[5], b'-');
        }
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
    }

    #[test]
    fn case_spaces_and_dashes_are_ignored() {
        assert!(matches(" ABCDE fghjk ", "abcde-fghjk"));
        assert!(matches("abcdefghjk", "abcde-fghjk"));
        assert!(!matches("abcde-fghjm", "abcde-fghjk"));
        assert!(!matches("", "abcde-fghjk"));
    }
}
