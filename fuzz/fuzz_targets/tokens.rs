//! Access and setup tokens (JWT, HS256 and EdDSA) and the opaque tokens' hashing: any string a
//! client sends as a token is refused without a panic, and never verifies without the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagate_core::jwt::{EdKey, EdKeyRing, HsSigner};
use mfagate_core::{AccessClaims, SecretBytes};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let hs = HsSigner::new(SecretBytes::new(vec![7; 32]), "JWT");
    assert!(
        hs.verify::<AccessClaims>(token, 0).is_err(),
        "a token verified with a key the input never saw"
    );
    let ring = EdKeyRing::new(vec![EdKey::from_seed(&[9; 32], 0, None)]);
    assert!(ring.verify::<AccessClaims>(token, 0).is_err());
    // Refresh, ephemeral, setup, device and passkey tokens are looked up by their hash.
    let hash = mfagate_core::secret::hash_token(token);
    assert_eq!(hash.len(), 64);
});
