//! What users type as codes: TOTP codes, recovery codes, secrets in settings. Normalising and
//! matching never panic, and what matches is what the rules say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagate_core::totp::{self, TotpParams};
use mfagate_core::{recovery_codes, SecretBytes};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let params = TotpParams::default();
    let secret = b"12345678901234567890";
    let normalized = totp::normalize_code(input);
    if totp::looks_like_code(input, &params) {
        assert_eq!(normalized.len(), params.digits as usize);
    }
    if let Some(step) = totp::matching_step(secret, input, 1_700_000_000, &params) {
        assert_eq!(totp::code_for_step(secret, step, &params), normalized);
        assert!((step - totp::step_at(1_700_000_000, params.period)).abs() <= 1);
    }
    // Typing a code back as it was shown, or as normalised, always matches it.
    let code = recovery_codes::normalize(input);
    assert_eq!(
        recovery_codes::normalize(&code),
        code,
        "normalising is idempotent"
    );
    assert!(recovery_codes::matches(input, input));
    assert!(recovery_codes::matches(&code, input));
    let _ = SecretBytes::parse(input);
    let _ = totp::Algorithm::parse(input);
    let _ = data_encoding::BASE32_NOPAD.decode(input.as_bytes());
});
