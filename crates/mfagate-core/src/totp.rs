//! TOTP (RFC 6238) on top of HOTP (RFC 4226).
//!
//! This module only computes and compares codes. Which step was last accepted, and the rule that
//! a step is accepted at most once, live in the store (`RecoveryCodeStore::accept_totp_step`), so the replay
//! guard holds across server instances.

use hmac::{Hmac, Mac};
use rand::RngCore;
use subtle::ConstantTimeEq;

/// Number of steps either side of the current one that a code may come from (clock drift).
pub const ALLOWED_SKEW_STEPS: i64 = 1;
/// 160-bit secrets, as RFC 4226 section 4 recommends.
pub const SECRET_BYTES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The name used in `otpauth://` URIs.
    pub fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: Algorithm,
    /// 6 to 8.
    pub digits: u32,
    /// Seconds per step.
    pub period: u64,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

fn hmac_digest(algorithm: Algorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here; the fallback keeps
    // the function total without a panic path.
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
        match <M as hmac::digest::KeyInit>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, message),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, message),
    }
}

/// HOTP value (RFC 4226 section 5.3): HMAC, dynamic truncation, modulo 10^digits.
pub fn hotp(secret: &[u8], counter: u64, algorithm: Algorithm, digits: u32) -> u32 {
    let digest = hmac_digest(algorithm, secret, &counter.to_be_bytes());
    let offset = digest.last().map_or(0, |b| usize::from(b & 0x0f));
    let mut word = [0u8; 4];
    for (i, slot) in word.iter_mut().enumerate() {
        *slot = digest.get(offset + i).copied().unwrap_or(0);
    }
    let binary = u32::from_be_bytes(word) & 0x7fff_ffff;
    binary % 10u32.pow(digits.min(9))
}

/// The time step (RFC 6238 section 4.2, T0 = 0) that `unix_seconds` falls in.
pub fn step_at(unix_seconds: i64, period: u64) -> i64 {
    let period = i64::try_from(period.max(1)).unwrap_or(30);
    unix_seconds.div_euclid(period)
}

/// The code for one step, zero-padded to `digits`.
pub fn code_for_step(secret: &[u8], step: i64, params: &TotpParams) -> String {
    let counter = u64::try_from(step).unwrap_or(0);
    let value = hotp(secret, counter, params.algorithm, params.digits);
    format!("{:0width$}", value, width = params.digits as usize)
}

/// The code valid at `unix_seconds`.
pub fn code_at(secret: &[u8], unix_seconds: i64, params: &TotpParams) -> String {
    code_for_step(secret, step_at(unix_seconds, params.period), params)
}

/// Strips the spaces people type inside codes ("123 456").
pub fn normalize_code(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Whether `input` has the shape of a TOTP code for these parameters.
pub fn looks_like_code(input: &str, params: &TotpParams) -> bool {
    let code = normalize_code(input);
    code.len() == params.digits as usize && code.bytes().all(|b| b.is_ascii_digit())
}

/// The latest step within the allowed skew whose code equals `input`, compared in constant time.
/// The caller must still claim that step atomically in the store (replay guard).
pub fn matching_step(secret: &[u8], input: &str, now: i64, params: &TotpParams) -> Option<i64> {
    let code = normalize_code(input);
    if !looks_like_code(&code, params) {
        return None;
    }
    let current = step_at(now, params.period);
    let mut found = None;
    // Every candidate is computed and compared, so timing says nothing about which one matched.
    for step in (current - ALLOWED_SKEW_STEPS)..=(current + ALLOWED_SKEW_STEPS) {
        let expected = code_for_step(secret, step, params);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// Base32 without padding, as authenticator apps expect.
pub fn encode_secret(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn uri_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `otpauth://totp/ISSUER:ACCOUNT?...` key URI that authenticator apps import.
pub fn key_uri(issuer: &str, account: &str, secret: &[u8], params: &TotpParams) -> String {
    let issuer = uri_component(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm={algorithm}&digits={digits}&period={period}",
        account = uri_component(account),
        secret = encode_secret(secret),
        algorithm = params.algorithm.uri_name(),
        digits = params.digits,
        period = params.period,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn hotp_matches_rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, value) in expected.iter().enumerate() {
            assert_eq!(hotp(SEED_SHA1, counter as u64, Algorithm::Sha1, 6), *value);
        }
    }

    #[test]
    fn totp_matches_rfc6238_appendix_b_for_every_algorithm() {
        // (time, SHA1, SHA256, SHA512), 8 digits, 30 s steps.
        let vectors: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in vectors {
            for (algorithm, seed, expected) in [
                (Algorithm::Sha1, SEED_SHA1, sha1),
                (Algorithm::Sha256, SEED_SHA256, sha256),
                (Algorithm::Sha512, SEED_SHA512, sha512),
            ] {
                let params = TotpParams {
                    algorithm,
                    digits: 8,
                    period: 30,
                };
                assert_eq!(
                    code_at(seed, time, &params),
                    expected,
                    "{algorithm:?} at {time}"
                );
            }
        }
    }

    #[test]
    fn a_code_from_one_step_either_side_matches_and_two_steps_do_not() {
        let params = TotpParams::default();
        let now = 1_700_000_015;
        let step = step_at(now, 30);
        for offset in [-1, 0, 1] {
            let code = code_for_step(SEED_SHA1, step + offset, &params);
            assert_eq!(
                matching_step(SEED_SHA1, &code, now, &params),
                Some(step + offset)
            );
        }
        for offset in [-2, 2] {
            let code = code_for_step(SEED_SHA1, step + offset, &params);
            assert_ne!(
                matching_step(SEED_SHA1, &code, now, &params),
                Some(step + offset)
            );
        }
    }

    #[test]
    fn spaces_inside_a_code_are_ignored_and_other_shapes_are_refused() {
        let params = TotpParams::default();
        let code = code_at(SEED_SHA1, 1_700_000_000, &params);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(matching_step(SEED_SHA1, &spaced, 1_700_000_000, &params).is_some());
        assert!(matching_step(SEED_SHA1, "12345", 1_700_000_000, &params).is_none());
        assert!(matching_step(SEED_SHA1, "abcdef", 1_700_000_000, &params).is_none());
    }

    #[test]
    fn key_uri_has_the_google_authenticator_shape() {
        let uri = key_uri(
            "Acme Co",
            "ann@example.com",
            SEED_SHA1,
            &TotpParams::default(),
        );
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Co:ann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Co&algorithm=SHA1&digits=6&period=30"
        );
    }
}
