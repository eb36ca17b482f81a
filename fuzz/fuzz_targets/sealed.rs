//! Sealed values as read back from the database: anything that was not sealed with the key and
//! context is refused, without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagate_core::sealing::Sealer;
use mfagate_core::SecretBytes;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sealer = Sealer::new(&SecretBytes::new(vec![3; 32]), &[]);
    assert!(sealer.open(text, "totp:user").is_err());
    // A value sealed here opens only under its own context.
    let sealed = sealer.seal(data, "totp:user");
    assert_eq!(
        sealer.open(&sealed, "totp:user").ok().as_deref(),
        Some(data)
    );
    assert!(sealer.open(&sealed, "totp:other").is_err());
});
