//! Types that hold secrets: their `Debug` never shows the value.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Key material. Parsed from hex or base64 in the settings.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn generate(len: usize) -> Self {
        let mut bytes = vec![0u8; len];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Accepts 32+ bytes written as hex (64+ hex digits) or standard/url-safe base64.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let decoded = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .or_else(|_| data_encoding::BASE64.decode(text.as_bytes()))
            .or_else(|_| data_encoding::BASE64URL.decode(text.as_bytes()))
            .or_else(|_| data_encoding::BASE64URL_NOPAD.decode(text.as_bytes()))
            .or_else(|_| data_encoding::BASE64_NOPAD.decode(text.as_bytes()))
            .map_err(|_| "must be hex or base64".to_string())?;
        if decoded.len() < 32 {
            return Err(format!(
                "must be at least 32 bytes, got {}; generate one with `openssl rand -hex 32`",
                decoded.len()
            ));
        }
        Ok(Self(decoded))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// A key for one purpose, derived with HKDF-SHA256 so that purposes never share a key.
    pub fn derive(&self, purpose: &str) -> SecretBytes {
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(b"mfagate"), &self.0);
        let mut out = vec![0u8; 32];
        // 32 bytes is far below HKDF's 255 * 32 limit, so expand cannot fail.
        let _ = hkdf.expand(purpose.as_bytes(), &mut out);
        SecretBytes(out)
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// A high-entropy opaque token (refresh, ephemeral, setup): 256 random bits, base64url.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// What the store keeps of an opaque token. A plain SHA-256 suffices: the token has 256 bits of
/// entropy, so there is nothing to brute-force.
pub fn hash_token(token: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

/// A token that names its row: `<id>.<secret>`, the id an ordered one (`new_ordered_id`), the
/// secret 256 random bits (`generate_token`). The store finds the row by its primary key and
/// the caller proves the whole token against the row's hash of it, in constant time
/// (`token_matches`).
///
/// Why: found by the hash of the token, the row needed an index of token hashes, which are
/// random, so every insert wrote a random page of it (1.1 pages of the 12 that a login with TOTP
/// wrote to the WAL; at a million accounts, a page of its own each). The id's index is ordered:
/// the inserts of one commit share its last page. The id tells no more than when the row was
/// made; the secret still guards it.
pub fn token_naming(id: &str) -> String {
    format!("{id}.{}", generate_token())
}

/// A new row's id made now, the token that names it, and the hash the row keeps.
pub struct NamedToken {
    pub id: String,
    pub token: String,
    pub hash: String,
}

impl NamedToken {
    pub fn new(now: i64) -> Self {
        let id = new_ordered_id(now);
        let token = token_naming(&id);
        let hash = hash_token(&token);
        Self { id, token, hash }
    }
}

/// The id of the row a token names (`token_naming`). A token made before tokens named their
/// rows (no `.`) names the row whose id is its hash: the migration that began them gave the
/// rows then live those ids. `None` for anything no row can have (an id of other than 1-64 hex
/// digits).
pub fn token_row(token: &str) -> Option<String> {
    let id = match token.split_once('.') {
        Some((id, _)) => id.to_owned(),
        None => hash_token(token),
    };
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Whether `token` is the one whose hash a row keeps, compared in constant time.
pub fn token_matches(token: &str, token_hash: &str) -> bool {
    constant_time_eq(hash_token(token).as_bytes(), token_hash.as_bytes())
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// An id for a request's log lines and `X-Request-Id`: a UUID v4 from the thread's CSPRNG,
/// without a system call. It identifies; it guards nothing (ids that do use `new_id`).
pub fn request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// A random id for rows (users, challenges, token families, factors): 128 bits, hex.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    data_encoding::HEXLOWER.encode(&bytes)
}

/// An id that sorts by the time it was made: `now` (Unix seconds, 32 bits), then the
/// microseconds since this process started (32 bits, wrapping every 71 minutes), then 64 random
/// bits; 128 bits, hex, the same shape as `new_id`'s.
///
/// For the rows every login makes (challenges, sessions and their refresh families): an index
/// of random ids takes each insert on a random page, which at a million accounts is a page of
/// its own, written out whole to the WAL. With the second alone in front, the ids of one second
/// still fell at random places among that second's thousands (in S2 each of these indexes wrote
/// 0.8 pages per login); the microseconds put each id after the ones made before it, so the
/// inserts of one commit share the index's last page. A clock, not a counter: a user sees their
/// sessions' ids, and a counter would tell them how many logins the server had between two of
/// theirs. Unique by the random part, across processes too (several instances on PostgreSQL).
/// Not for anything a guess must not find: these ids guard nothing (a session id is checked
/// against its user, a challenge is reached through its token).
pub fn new_ordered_id(now: i64) -> String {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let mut bytes = [0u8; 16];
    let seconds = u32::try_from(now.max(0)).unwrap_or(u32::MAX);
    bytes[..4].copy_from_slice(&seconds.to_be_bytes());
    // When it wraps, one id sorts before the ones of the same second made just before it: that
    // costs a page write, nothing more.
    let micros = STARTED
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros()
        & 0xFFFF_FFFF;
    bytes[4..8].copy_from_slice(&u32::try_from(micros).unwrap_or(0).to_be_bytes());
    rand::rngs::OsRng.fill_bytes(&mut bytes[8..]);
    data_encoding::HEXLOWER.encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_row_and_only_its_own_token_matches() {
        let id = new_ordered_id(1_796_000_000);
        let token = token_naming(&id);
        assert_eq!(token_row(&token).as_deref(), Some(id.as_str()));
        assert!(token_matches(&token, &hash_token(&token)));
        // Another secret for the same row: the row is found, the token does not match.
        let forged = token_naming(&id);
        assert_eq!(token_row(&forged).as_deref(), Some(id.as_str()));
        assert!(!token_matches(&forged, &hash_token(&token)));
        // A token from before: its row's id is its hash.
        let old = generate_token();
        assert_eq!(token_row(&old), Some(hash_token(&old)));
        assert!(token_matches(&old, &hash_token(&old)));
        // Nothing a row's id can be.
        for bad in [
            ".secret",
            "not-hex.secret",
            "'; DROP TABLE x.y",
            &format!("{}.s", "a".repeat(65)),
        ] {
            assert_eq!(token_row(bad), None, "{bad}");
        }
    }

    #[test]
    fn ordered_ids_sort_by_time_and_look_like_random_ones() {
        let now = 1_796_000_000;
        let first = new_ordered_id(now);
        let second = new_ordered_id(now + 1);
        assert!(first < second, "{first} !< {second}");
        assert_eq!(first.len(), new_id().len());
        assert!(first
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(u32::from_str_radix(&first[..8], 16).unwrap(), 1_796_000_000);
        // Made in the same second: the same prefix, different random parts.
        let (a, b) = (new_ordered_id(now), new_ordered_id(now));
        assert_eq!(a[..8], b[..8]);
        assert_ne!(a, b);
        // And in the order they were made (a microsecond apart at least).
        std::thread::sleep(std::time::Duration::from_millis(1));
        let c = new_ordered_id(now);
        assert!(a < c && b < c, "{a}, {b} !< {c}");
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_short_keys_are_refused() {
        let hex = "00".repeat(32);
        assert_eq!(SecretBytes::parse(&hex).unwrap().expose().len(), 32);
        let b64 = data_encoding::BASE64.encode(&[7u8; 48]);
        assert_eq!(SecretBytes::parse(&b64).unwrap().expose().len(), 48);
        assert!(SecretBytes::parse("abcd")
            .unwrap_err()
            .contains("at least 32 bytes"));
        assert!(format!("{:?}", SecretBytes::parse(&hex).unwrap()).contains("redacted"));
    }

    #[test]
    fn derived_keys_differ_by_purpose() {
        let root = SecretBytes::new(vec![1; 32]);
        assert_ne!(root.derive("a"), root.derive("b"));
        assert_eq!(root.derive("a"), root.derive("a"));
    }
}
