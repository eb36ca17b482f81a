//! Sealing secrets at rest with XChaCha20-Poly1305.
//!
//! A sealed value is `KEYID.BASE64URL(nonce || ciphertext)`. The key id is derived from the key,
//! so rotating is only a matter of configuration: the newest key seals, every listed key opens
//! what it sealed. The associated data names what the value is and whose it is
//! (e.g. `totp:USER_ID`), so a sealed value copied to another row or user does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::secret::SecretBytes;

const NONCE_BYTES: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error(
        "sealed with key {0}, which is not configured (list it in MFAGATE_ENCRYPTION_KEYS_OLD)"
    )]
    UnknownKey(String),
    #[error("sealed value failed authentication (wrong key, or tampered)")]
    Tampered,
}

struct SealingKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl SealingKey {
    fn new(key: &SecretBytes) -> Self {
        let digest = Sha256::new()
            .chain_update(b"mfagate sealing key id\0")
            .chain_update(key.expose())
            .finalize();
        let id = data_encoding::HEXLOWER.encode(digest.get(..4).unwrap_or_default());
        let material = Sha256::digest(key.expose());
        Self {
            id,
            cipher: XChaCha20Poly1305::new(&material),
        }
    }
}

/// Seals with the current key; opens with the current or any older key.
pub struct Sealer {
    current: SealingKey,
    older: Vec<SealingKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current_key_id", &self.current.id)
            .field(
                "older_key_ids",
                &self.older.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Sealer {
    pub fn new(current: &SecretBytes, older: &[SecretBytes]) -> Self {
        Self {
            current: SealingKey::new(current),
            older: older.iter().map(SealingKey::new).collect(),
        }
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Whether a value sealed under this key id can be opened.
    pub fn has_key(&self, key_id: &str) -> bool {
        self.current.id == key_id || self.older.iter().any(|k| k.id == key_id)
    }

    /// The ids of the keys it can open with, the current one first.
    pub fn key_ids(&self) -> Vec<&str> {
        std::iter::once(&self.current)
            .chain(self.older.iter())
            .map(|k| k.id.as_str())
            .collect()
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encryption only fails for messages beyond 256 GiB; an empty ciphertext would then fail
        // to open, which is loud, rather than panicking here.
        let ciphertext = self
            .current
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut body = nonce.to_vec();
        body.extend_from_slice(&ciphertext);
        format!(
            "{}.{}",
            self.current.id,
            data_encoding::BASE64URL_NOPAD.encode(&body)
        )
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let (key_id, body) = sealed.split_once('.').ok_or(SealError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(self.older.iter())
            .find(|k| k.id == key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_string()))?;
        let body = data_encoding::BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| SealError::Malformed)?;
        if body.len() <= NONCE_BYTES {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_BYTES);
        key.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretBytes {
        SecretBytes::new(vec![byte; 32])
    }

    #[test]
    fn sealing_round_trips_and_hides_the_plaintext() {
        let sealer = Sealer::new(&key(1), &[]);
        let sealed = sealer.seal(b"JBSWY3DPEHPK3PXP", "totp:u1");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            sealer.open(&sealed, "totp:u1").unwrap(),
            b"JBSWY3DPEHPK3PXP"
        );
        // Two seals of one value differ (random nonce).
        assert_ne!(sealed, sealer.seal(b"JBSWY3DPEHPK3PXP", "totp:u1"));
    }

    #[test]
    fn a_rotated_key_still_opens_what_it_sealed_and_new_values_use_the_new_key() {
        let old = Sealer::new(&key(1), &[]);
        let sealed_by_old = old.seal(b"secret", "ctx");
        let rotated = Sealer::new(&key(2), &[key(1)]);
        assert_eq!(rotated.open(&sealed_by_old, "ctx").unwrap(), b"secret");
        let sealed_by_new = rotated.seal(b"secret", "ctx");
        assert!(sealed_by_new.starts_with(rotated.current_key_id()));
        assert_ne!(rotated.current_key_id(), old.current_key_id());
        // Without the old key listed, the old value is reported, not silently lost.
        let forgotten = Sealer::new(&key(2), &[]);
        assert!(matches!(
            forgotten.open(&sealed_by_old, "ctx"),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn tampering_or_another_context_is_refused() {
        let sealer = Sealer::new(&key(1), &[]);
        let sealed = sealer.seal(b"secret", "totp:u1");
        assert_eq!(sealer.open(&sealed, "totp:u2"), Err(SealError::Tampered));
        let mut tampered = sealed.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(sealer.open(&tampered, "totp:u1").is_err());
        assert_eq!(sealer.open("nodot", "totp:u1"), Err(SealError::Malformed));
    }
}
