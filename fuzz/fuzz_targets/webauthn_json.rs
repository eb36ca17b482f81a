//! The passkey answer a client sends (`credential.toJSON()`): any JSON is parsed or refused
//! without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagate_core::webauthn::Assertion;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = Assertion::parse(&value);
    }
});
